"""Storage backends of the artifact service; each implements `base.Backend`."""
