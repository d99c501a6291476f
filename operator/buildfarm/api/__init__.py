"""API models: the single Python vocabulary of Build and Worker, mirroring crds/ (generated from here)."""
