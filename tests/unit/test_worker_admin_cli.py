"""`buildfarm worker add|rotate|remove` before any API call: flags refused with one line, and the kubeconfig
a Mac gets."""

from datetime import UTC, datetime

import pytest
import yaml
from click.testing import CliRunner

from buildfarm.cli.main import cli
from buildfarm.kube.worker_access import Credentials, agent_user


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["add", "Mac_Mini"], "is not a Worker name"),
        (["add", "mac", "--token-lifetime", "5m"], "give 10m to 366d"),
        (["add", "mac", "--token-lifetime", "2y"], "give 10m to 366d"),
        (["add", "mac", "--capacity", "0"], "0 is not in the range 1<=x<=64"),
        (["add", "mac", "--platform", "windows"], "'windows' is not one of 'ios', 'android'"),
        (["add", "mac", "--label", "novalue"], "give KEY=VALUE"),
        (["rotate", "mac..1"], "is not a Worker name"),
    ],
)
def test_bad_flags_are_refused_before_any_call(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, ["worker", *args])
    assert result.exit_code == 2
    assert complaint in result.output


def test_a_missing_kubeconfig_is_one_line(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["worker", "remove", "mac", "--kubeconfig", "/nonexistent/kubeconfig"])
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1


def test_worker_group_offers_the_admin_commands() -> None:
    result = CliRunner().invoke(cli, ["worker", "--help"])
    for command in ("add", "rotate", "remove"):
        assert f"  {command} " in result.output


def test_kubeconfig_holds_the_token_and_says_when_it_expires() -> None:
    credentials = Credentials(
        server="https://api.example.com:6443",
        certificate_authority_data="Q0E=",
        insecure_skip_tls_verify=False,
        token="secret-token",
        expires=datetime(2026, 2, 1, tzinfo=UTC),
        user=agent_user("mac-1", "buildfarm-system"),
    )
    text = credentials.kubeconfig("mac-1")
    assert "system:serviceaccount:buildfarm-system:worker-mac-1" in text
    assert "expires 2026-02-01T00:00:00Z" in text
    assert "`buildfarm worker rotate mac-1`" in text
    config = yaml.safe_load(text)
    assert config["clusters"][0]["cluster"] == {
        "server": "https://api.example.com:6443",
        "certificate-authority-data": "Q0E=",
    }
    assert config["users"][0]["user"] == {"token": "secret-token"}
    assert config["current-context"] == config["contexts"][0]["name"]


def test_liveness_flag_is_validated() -> None:
    result = CliRunner().invoke(cli, ["operator", "--liveness", "not a url"])
    assert result.exit_code == 2
    assert "--liveness" in result.output
