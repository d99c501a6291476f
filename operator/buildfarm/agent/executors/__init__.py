"""Executors: how a build's command runs. `shell` on this machine, `tart` in a throwaway VM."""
