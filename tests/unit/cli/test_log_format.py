"""`buildfarm --log-format` (or BUILDFARM_LOG_FORMAT) is resolved once by the root command; a bad
variable is one line, exit 2."""

import pytest
from click.testing import CliRunner

from buildfarm.cli import logformat
from buildfarm.cli.errors import BadSettingsError
from buildfarm.cli.main import cli


@pytest.mark.parametrize(
    ("flag", "env", "want"),
    [
        (None, None, "text"),
        (None, "json", "json"),
        (None, " JSON ", "json"),
        ("text", "json", "text"),  # the flag wins
        ("json", None, "json"),
    ],
)
def test_resolve(monkeypatch: pytest.MonkeyPatch, flag: str | None, env: str | None, want: str) -> None:
    if env is None:
        monkeypatch.delenv(logformat.LOG_FORMAT_ENV, raising=False)
    else:
        monkeypatch.setenv(logformat.LOG_FORMAT_ENV, env)
    assert logformat.resolve(flag) == want


def test_a_bad_variable_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(logformat.LOG_FORMAT_ENV, "xml")
    with pytest.raises(BadSettingsError, match=r"^BUILDFARM_LOG_FORMAT: must be text or json \(got xml\)$"):
        logformat.resolve(None)
    result = CliRunner().invoke(cli, ["worker", "--help"])
    assert result.exit_code == 2
    assert result.output == "error: BUILDFARM_LOG_FORMAT: must be text or json (got xml)\n"


def test_every_command_takes_it_before_its_name() -> None:
    result = CliRunner().invoke(cli, ["--log-format", "json", "operator", "--help"])
    assert result.exit_code == 0, result.output
    assert "--metrics-port" in result.output
