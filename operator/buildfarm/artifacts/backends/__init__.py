"""Storage backends of the artifact service; each implements `base.Backend`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from buildfarm.artifacts.backends.base import Backend

if TYPE_CHECKING:
    # Types only: artifacts.settings imports backends.s3_settings, which runs this package first.
    from buildfarm.artifacts.backends.s3_settings import S3Settings
    from buildfarm.artifacts.settings import ArtifactSettings


def make_backend(settings: ArtifactSettings, s3: S3Settings | None = None) -> Backend:
    """The backend the settings name. With s3, `s3` are its settings; None: read and validated from
    BUILDFARM_ARTIFACTS_S3_* (a wrong one raises buildfarm.settings.SettingsError, one line)."""
    if settings.backend == "s3":
        # Imported here, not at the top: minio takes a noticeable time to import, and every `buildfarm`
        # command imports the artifact settings.
        from buildfarm.artifacts.backends.s3 import S3Backend
        from buildfarm.artifacts.backends.s3_settings import S3Settings
        from buildfarm.settings import validated

        return S3Backend(s3 if s3 is not None else validated(S3Settings))
    from buildfarm.artifacts.backends.filesystem import FilesystemBackend

    assert settings.root is not None  # checked by the settings
    return FilesystemBackend(settings.root)
