"""`buildfarm artifacts serve` refuses bad settings with one line and exit code 2."""

import os

import pytest
from click.testing import CliRunner

from buildfarm.cli.main import cli


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ([], "error: BUILDFARM_ARTIFACTS_BACKEND=filesystem needs BUILDFARM_ARTIFACTS_ROOT"),
        (["--root", "/nonexistent/dir"], "error: --root (/nonexistent/dir) is not a directory"),
        (["--root", "/", "--port", "70000"], "error: --port: must be between 0 and 65535 (got 70000)"),
        (
            ["--root", "/", "--tls-cert", __file__],
            "error: --tls-cert and BUILDFARM_ARTIFACTS_TLS_KEY_FILE go",
        ),
    ],
)
def test_bad_settings(args: list[str], want: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("BUILDFARM_ARTIFACTS_")]:
        monkeypatch.delenv(name)

    result = CliRunner().invoke(cli, ["artifacts", "serve", *args])

    assert result.exit_code == 2, result.output
    assert result.output.startswith(want), result.output
    assert result.output.count("\n") == 1
