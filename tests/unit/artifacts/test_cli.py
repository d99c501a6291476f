"""`buildfarm artifacts serve` refuses bad settings with one line and exit code 2."""

import os

import pytest
from click.testing import CliRunner

from buildfarm.cli.main import cli

S3_KEYS = {"BUILDFARM_ARTIFACTS_S3_ACCESS_KEY_ID": "id", "BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY": "key"}


@pytest.mark.parametrize(
    ("args", "want", "env"),
    [
        ([], "error: BUILDFARM_ARTIFACTS_BACKEND=filesystem needs BUILDFARM_ARTIFACTS_ROOT", {}),
        (["--root", "/nonexistent/dir"], "error: --root (/nonexistent/dir) is not a directory", {}),
        (["--root", "/", "--port", "70000"], "error: --port: must be between 0 and 65535 (got 70000)", {}),
        (
            ["--root", "/", "--tls-cert", __file__],
            "error: --tls-cert and BUILDFARM_ARTIFACTS_TLS_KEY_FILE go",
            {},
        ),
        # S3: its settings are checked before anything connects, each named by its variable.
        (["--backend", "s3"], "error: BUILDFARM_ARTIFACTS_S3_BUCKET: ", S3_KEYS),
        (
            ["--backend", "s3"],
            "error: BUILDFARM_ARTIFACTS_S3_BUCKET: 'No_Bucket' is not an S3 bucket name",
            {"BUILDFARM_ARTIFACTS_S3_BUCKET": "No_Bucket", **S3_KEYS},
        ),
        (
            ["--backend", "s3"],
            "error: BUILDFARM_ARTIFACTS_S3_BUCKETS is not a setting of the artifact service's S3 backend; "
            "did you mean BUILDFARM_ARTIFACTS_S3_BUCKET?",
            {"BUILDFARM_ARTIFACTS_S3_BUCKET": "builds", "BUILDFARM_ARTIFACTS_S3_BUCKETS": "x", **S3_KEYS},
        ),
        (
            ["--backend", "s3"],
            "error: BUILDFARM_ARTIFACTS_BUCKET is not a setting of the artifact service; "
            "did you mean BUILDFARM_ARTIFACTS_S3_BUCKET?",
            {"BUILDFARM_ARTIFACTS_BUCKET": "builds", **S3_KEYS},
        ),
    ],
)
def test_bad_settings(
    args: list[str], want: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("BUILDFARM_ARTIFACTS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    result = CliRunner().invoke(cli, ["artifacts", "serve", *args])

    assert result.exit_code == 2, result.output
    assert result.output.startswith(want), result.output
    assert result.output.count("\n") == 1
