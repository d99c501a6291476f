"""The artifact service: sources in, artifacts and logs out, authorized by Kubernetes (docs/artifacts.md)."""
