"""Moving bytes to and from the artifact service: its client (used by the worker agent and the CLI)."""
