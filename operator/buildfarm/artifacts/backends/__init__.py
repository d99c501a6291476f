"""Storage backends of the artifact service; each implements `base.Backend`."""

import importlib

from buildfarm.artifacts.backends.base import Backend
from buildfarm.artifacts.settings import ArtifactSettings


def make_backend(settings: ArtifactSettings) -> Backend:
    """The backend the settings name. The s3 module is imported only when used (its client is heavy)."""
    if settings.backend == "s3":
        # By name: the s3 module is another helper's and may be absent from a checkout.
        s3 = importlib.import_module("buildfarm.artifacts.backends.s3")
        backend: Backend = s3.S3Backend.from_settings(settings)
        return backend
    from buildfarm.artifacts.backends.filesystem import FilesystemBackend

    assert settings.root is not None  # checked by the settings
    return FilesystemBackend(settings.root)
