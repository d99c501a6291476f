"""The artifact service's settings: defaults, and one line per mistake."""

from pathlib import Path

import pytest

from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.settings import SettingsError, validated


def test_defaults(tmp_path: Path) -> None:
    settings = validated(ArtifactSettings, {}, root=tmp_path)

    assert (settings.source_limit_bytes, settings.artifact_limit_bytes, settings.log_limit_bytes) == (
        2 * 1024**3,
        4 * 1024**3,
        100 * 1024**2,
    )
    assert settings.backend == "filesystem"


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        ({}, "BUILDFARM_ARTIFACTS_BACKEND=filesystem needs BUILDFARM_ARTIFACTS_ROOT"),
        ({"root": "/nonexistent/dir"}, "is not a directory"),
        ({"backend": "s3"}, "BUILDFARM_ARTIFACTS_BACKEND=s3 needs BUILDFARM_ARTIFACTS_BUCKET"),
        ({"backend": "ftp"}, "BUILDFARM_ARTIFACTS_BACKEND"),
        ({"root": "/", "tls_cert_file": __file__}, "set both or neither"),
        ({"artifact_limit_bytes": 0}, "BUILDFARM_ARTIFACTS_ARTIFACT_LIMIT_BYTES"),
    ],
)
def test_bad_settings_are_one_line(overrides: dict[str, object], want: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        validated(ArtifactSettings, {}, **overrides)

    assert want in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_variable_is_named() -> None:
    with pytest.raises(
        SettingsError, match="BUILDFARM_ARTIFACTS_ROOTS is not a setting of the artifact service"
    ):
        validated(ArtifactSettings, {"BUILDFARM_ARTIFACTS_ROOTS": "/x"}, root=Path("/"))
