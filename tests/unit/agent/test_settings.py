"""Agent settings: BUILDFARM_AGENT_* parsing and one clear line for each bad value."""

import os

import pytest

from buildfarm.agent.settings import AgentSettings, host_worker_name
from buildfarm.api.meta import Platform
from buildfarm.settings import SettingsError, validated


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BUILDFARM_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("hostname", "want"),
    [
        ("Johns-MacBook-Pro.local", "johns-macbook-pro"),
        ("mac_mini 1", "mac-mini-1"),
        ("---", "worker"),
        ("A" * 80, "a" * 63),
    ],
)
def test_host_worker_name(hostname: str, want: str) -> None:
    assert host_worker_name(hostname) == want


def test_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BUILDFARM_AGENT_WORKER_NAME": "mac-mini-7",
        "BUILDFARM_AGENT_PLATFORMS": "ios, android",
        "BUILDFARM_AGENT_CAPACITY": "2",
        "BUILDFARM_AGENT_LABELS": "xcode=16.2, buildfarm.dev/pool=ci",
        "BUILDFARM_AGENT_PASS_ENV": "ANDROID_HOME,JAVA_HOME",
    }.items():
        monkeypatch.setenv(name, value)
    settings = validated(AgentSettings)
    assert (settings.worker_name, settings.platforms, settings.capacity) == (
        "mac-mini-7",
        [Platform.IOS, Platform.ANDROID],
        2,
    )
    assert settings.labels == {"xcode": "16.2", "buildfarm.dev/pool": "ci"}
    assert settings.pass_env == ["ANDROID_HOME", "JAVA_HOME"]
    assert (settings.lease_duration_seconds, settings.renew_interval_seconds) == (40, 10)


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        pytest.param(
            {"capacity": "0"}, "BUILDFARM_AGENT_CAPACITY: must be between 1 and 64 (got 0)", id="capacity"
        ),
        pytest.param(
            {"worker_name": "Mac_1"},
            "BUILDFARM_AGENT_WORKER_NAME: 'Mac_1' is not a Worker name "
            "(lowercase letters, digits, '-' and '.', at most 253)",
            id="worker-name",
        ),
        pytest.param(
            {"platforms": "ios,linux"},
            "BUILDFARM_AGENT_PLATFORMS: must be 'ios' or 'android' (got linux)",
            id="platform",
        ),
        pytest.param({"labels": "a=b,c"}, "BUILDFARM_AGENT_LABELS: 'c' is not key=value", id="label"),
        pytest.param(
            {"renew_interval_seconds": "30"},
            "BUILDFARM_AGENT_RENEW_INTERVAL_SECONDS (30) must be at most half of "
            "BUILDFARM_AGENT_LEASE_DURATION_SECONDS (40), or one slow renewal lets the Lease lapse",
            id="renewal-vs-lease",
        ),
        pytest.param(
            {"executor": "tart"},
            "BUILDFARM_AGENT_TART_IMAGE is required with the tart executor: name the image each build VM "
            "is cloned from (see `tart list`)",
            id="tart-needs-an-image",
        ),
        pytest.param(
            {"capacty": "3"},
            "BUILDFARM_AGENT_CAPACTY is not a setting of the agent; did you mean BUILDFARM_AGENT_CAPACITY?",
            id="misspelled",
        ),
    ],
)
def test_one_line_per_bad_value(overrides: dict[str, str], want: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validated(AgentSettings, **overrides)
    assert str(caught.value) == want


def test_an_unknown_variable_is_refused_and_the_operators_are_not_the_agents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUILDFARM_AGENT_WORKER_NAEM", "mac-1")
    monkeypatch.setenv("BUILDFARM_REQUEST_TIMEOUT", "3")  # the operator's: not the agent's business
    with pytest.raises(SettingsError) as caught:
        validated(AgentSettings)
    assert str(caught.value) == (
        "BUILDFARM_AGENT_WORKER_NAEM is not a setting of the agent; did you mean BUILDFARM_AGENT_WORKER_NAME?"
    )
