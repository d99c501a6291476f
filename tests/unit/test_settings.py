"""Operator settings: defaults, parsing of BUILDFARM_* variables, and one clear line for each bad value."""

import os
from pathlib import Path

import kopf
import pytest
from pydantic import SecretStr

from buildfarm.dev import binaries
from buildfarm.operator.config import NoDiffBaseStorage, RetriesOnlyProgressStorage, configure_kopf
from buildfarm.settings import (
    FOREIGN_VARIABLES,
    OperatorSettings,
    SettingsError,
    is_foreign,
    load_settings,
    setting_variables,
)

SECRET_32 = "s3cr3t-" + "k" * 25  # exactly 32 bytes
SHORT_SECRET = "hunter2-too-short"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BUILDFARM_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("BUILDFARM_"):
            monkeypatch.delenv(name)


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_defaults() -> None:
    settings = load_settings()
    assert settings == OperatorSettings(
        kubeconfig=None,
        context=None,
        namespaces=[],
        standalone=False,
        request_timeout=10,
        connect_timeout=5,
        watch_server_timeout=60,
        watch_client_timeout=90,
        handler_timeout=60,
        resync_seconds=30,
        retry_backoff_seconds=2,
        artifact_signing_key=None,
    )


@pytest.mark.parametrize(
    ("env", "want"),
    [
        pytest.param(
            {"BUILDFARM_KUBECONFIG": "/etc/kube/config"},
            {"kubeconfig": Path("/etc/kube/config")},
            id="kubeconfig",
        ),
        pytest.param({"BUILDFARM_CONTEXT": "kind-dev"}, {"context": "kind-dev"}, id="context"),
        pytest.param({"BUILDFARM_STANDALONE": "true"}, {"standalone": True}, id="standalone"),
        pytest.param({"buildfarm_request_timeout": "2.5"}, {"request_timeout": 2.5}, id="case-insensitive"),
        pytest.param({"BUILDFARM_CONTEXT": ""}, {"context": None}, id="empty-means-unset"),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "2"},
            {"request_timeout": 2, "connect_timeout": 2},
            id="connect-timeout-follows-a-lower-request-timeout",
        ),
        pytest.param(
            {"BUILDFARM_WATCH_SERVER_TIMEOUT": "300"},
            {"watch_server_timeout": 300, "watch_client_timeout": 330},
            id="watch-client-timeout-follows-server-timeout",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "300", "BUILDFARM_CONNECT_TIMEOUT": "60"},
            {"request_timeout": 300, "connect_timeout": 60},
            id="upper-bounds",
        ),
    ],
)
def test_env_is_read(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want: dict[str, object]) -> None:
    set_env(monkeypatch, env)
    settings = load_settings()
    assert {name: getattr(settings, name) for name in want} == want


@pytest.mark.parametrize(
    ("value", "want_namespaces"),
    [
        pytest.param("builds", ["builds"], id="one"),
        pytest.param("team-a,team-b", ["team-a", "team-b"], id="two"),
        pytest.param(" team-a , team-b ,", ["team-a", "team-b"], id="spaces-and-trailing-comma"),
        pytest.param("team-a,team-a,team-b", ["team-a", "team-b"], id="duplicates-dropped"),
        pytest.param(",", [], id="only-commas-means-all"),
    ],
)
def test_namespaces_from_env_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, value: str, want_namespaces: list[str]
) -> None:
    monkeypatch.setenv("BUILDFARM_NAMESPACES", value)
    assert load_settings().namespaces == want_namespaces


def test_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, {"BUILDFARM_REQUEST_TIMEOUT": "-1", "BUILDFARM_NAMESPACES": "a,b"})
    settings = load_settings(request_timeout=20, namespaces=[])
    assert (settings.request_timeout, settings.namespaces) == (20, [])


@pytest.mark.parametrize(
    ("env", "want_error"),
    [
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "-1"},
            "BUILDFARM_REQUEST_TIMEOUT: must be between 0.5 and 300 seconds (got -1)",
            id="request-timeout-negative",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "301"},
            "BUILDFARM_REQUEST_TIMEOUT: must be between 0.5 and 300 seconds (got 301)",
            id="request-timeout-too-long",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "ten"},
            "BUILDFARM_REQUEST_TIMEOUT: must be a number of seconds (got ten)",
            id="request-timeout-not-a-number",
        ),
        pytest.param(
            {"BUILDFARM_CONNECT_TIMEOUT": "0"},
            "BUILDFARM_CONNECT_TIMEOUT: must be between 0.1 and 60 seconds (got 0)",
            id="connect-timeout-zero",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "2", "BUILDFARM_CONNECT_TIMEOUT": "3"},
            "BUILDFARM_CONNECT_TIMEOUT (3) must not exceed BUILDFARM_REQUEST_TIMEOUT (2): "
            "lower the first or raise the second",
            id="connect-timeout-above-request-timeout",
        ),
        pytest.param(
            {"BUILDFARM_WATCH_SERVER_TIMEOUT": "5"},
            "BUILDFARM_WATCH_SERVER_TIMEOUT: must be between 10 and 3600 seconds (got 5)",
            id="watch-server-timeout-too-short",
        ),
        pytest.param(
            {"BUILDFARM_WATCH_SERVER_TIMEOUT": "60.5"},
            "BUILDFARM_WATCH_SERVER_TIMEOUT: must be a whole number of seconds (got 60.5)",
            id="watch-server-timeout-fraction",
        ),
        pytest.param(
            {"BUILDFARM_WATCH_SERVER_TIMEOUT": "120", "BUILDFARM_WATCH_CLIENT_TIMEOUT": "120"},
            "BUILDFARM_WATCH_CLIENT_TIMEOUT (120) must be greater than BUILDFARM_WATCH_SERVER_TIMEOUT (120), "
            "or the operator drops healthy watches: raise the first or lower the second",
            id="watch-client-timeout-not-above-server-timeout",
        ),
        pytest.param(
            {"BUILDFARM_HANDLER_TIMEOUT": "0.5"},
            "BUILDFARM_HANDLER_TIMEOUT: must be between 1 and 3600 seconds (got 0.5)",
            id="handler-timeout-too-short",
        ),
        pytest.param(
            {"BUILDFARM_RESYNC_SECONDS": "86400"},
            "BUILDFARM_RESYNC_SECONDS: must be between 1 and 3600 seconds (got 86400)",
            id="resync-too-long",
        ),
        pytest.param(
            {"BUILDFARM_RETRY_BACKOFF_SECONDS": "0"},
            "BUILDFARM_RETRY_BACKOFF_SECONDS: must be between 0.1 and 300 seconds (got 0)",
            id="retry-backoff-zero",
        ),
        pytest.param(
            {"BUILDFARM_STANDALONE": "maybe"},
            "BUILDFARM_STANDALONE: must be true or false (got maybe)",
            id="standalone-not-a-bool",
        ),
        pytest.param(
            {"BUILDFARM_NAMESPACES": "team-a,Team_B"},
            "BUILDFARM_NAMESPACES: 'Team_B' is not a namespace name (lowercase letters, digits and '-', "
            "at most 63)",
            id="namespace-not-a-dns-label",
        ),
        pytest.param(
            {"BUILDFARM_ARTIFACT_SIGNING_KEY": SHORT_SECRET},
            "BUILDFARM_ARTIFACT_SIGNING_KEY: must be at least 32 bytes (got 17); "
            "generate one with `openssl rand -hex 32`",
            id="secret-too-short",
        ),
        pytest.param(
            {"BUILDFARM_REQUEST_TIMEOUT": "0", "BUILDFARM_HANDLER_TIMEOUT": "0"},
            "BUILDFARM_REQUEST_TIMEOUT: must be between 0.5 and 300 seconds (got 0); "
            "BUILDFARM_HANDLER_TIMEOUT: must be between 1 and 3600 seconds (got 0)",
            id="several-wrong-on-one-line",
        ),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want_error: str
) -> None:
    set_env(monkeypatch, env)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == want_error
    assert "\n" not in str(info.value)
    assert info.value.__suppress_context__, "the pydantic error (which echoes inputs) must not be chained"


@pytest.mark.parametrize(
    ("env", "overrides", "names", "want_error"),
    [
        pytest.param(
            {},
            {"request_timeout": "-1"},
            {"request_timeout": "--request-timeout"},
            "--request-timeout: must be between 0.5 and 300 seconds (got -1)",
            id="flag-named",
        ),
        pytest.param(
            {"BUILDFARM_CONNECT_TIMEOUT": "5"},
            {"request_timeout": 1.0},
            {"request_timeout": "--request-timeout"},
            "BUILDFARM_CONNECT_TIMEOUT (5) must not exceed --request-timeout (1): "
            "lower the first or raise the second",
            id="conflict-names-the-flag-and-the-variable",
        ),
        pytest.param(
            {},
            {"handler_timeout": 0},
            {},
            "BUILDFARM_HANDLER_TIMEOUT: must be between 1 and 3600 seconds (got 0)",
            id="no-renaming",
        ),
    ],
)
def test_render_names_settings_by_their_flags(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    overrides: dict[str, object],
    names: dict[str, str],
    want_error: str,
) -> None:
    set_env(monkeypatch, env)
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert info.value.render(names) == want_error


def test_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(retries=3)
    assert str(info.value) == (
        f"BUILDFARM_RETRIES is not a setting of the operator; unset it (the settings are "
        f"{', '.join(setting_variables())})"
    )


@pytest.mark.parametrize(
    ("env", "want_error"),
    [
        pytest.param(
            {"BUILDFARM_REQEST_TIMEOUT": "3"},
            "BUILDFARM_REQEST_TIMEOUT is not a setting of the operator; "
            "did you mean BUILDFARM_REQUEST_TIMEOUT?",
            id="misspelled",
        ),
        pytest.param(
            {"buildfarm_namespace": "team-a"},
            "buildfarm_namespace is not a setting of the operator; did you mean BUILDFARM_NAMESPACES?",
            id="named-as-written-any-case",
        ),
        pytest.param(
            {"BUILDFARM_KUBE_CONFIG": "/etc/kube/config"},
            "BUILDFARM_KUBE_CONFIG is not a setting of the operator; did you mean BUILDFARM_KUBECONFIG?",
            id="extra-underscore",
        ),
        pytest.param(
            {"BUILDFARM_SIGNING_KEY": SECRET_32},
            "BUILDFARM_SIGNING_KEY is not a setting of the operator; "
            "did you mean BUILDFARM_ARTIFACT_SIGNING_KEY?",
            id="part-of-a-name-and-value-not-shown",
        ),
        pytest.param(
            {"BUILDFARM_REQEST_TIMEOUT": "3", "BUILDFARM_HANDLER_TIMEOUT": "0"},
            "BUILDFARM_REQEST_TIMEOUT is not a setting of the operator; "
            "did you mean BUILDFARM_REQUEST_TIMEOUT?; "
            "BUILDFARM_HANDLER_TIMEOUT: must be between 1 and 3600 seconds (got 0)",
            id="with-a-bad-value-on-one-line",
        ),
    ],
)
def test_unknown_variable_is_an_error_naming_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want_error: str
) -> None:
    set_env(monkeypatch, env)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == want_error
    assert SECRET_32 not in str(info.value)


def test_unknown_variable_far_from_every_setting_lists_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDFARM_FOO", "1")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("BUILDFARM_FOO is not a setting of the operator; unset it (the settings are ")
    assert all(name in message for name in setting_variables())


@pytest.mark.parametrize(
    "name",
    [
        "BUILDFARM_AGENT_NAME",
        "BUILDFARM_AGENT_HEARTBEAT_SECONDS",
        "BUILDFARM_TEST_KUBECONFIG",
        "BUILDFARM_TEST_ROUNDS",
        "buildfarm_test_use_existing_cluster",
        "BUILDFARM_ETCD",
        "BUILDFARM_KUBE_APISERVER",
        "BUILDFARM_KUBECTL",
        "BUILDFARM_CACHE_DIR",
    ],
)
def test_other_programs_variables_are_left_alone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "x")
    assert load_settings() == OperatorSettings()


def test_an_empty_unknown_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDFARM_REQEST_TIMEOUT", "")
    assert load_settings() == OperatorSettings()


def test_foreign_variables_cover_the_dev_tooling_and_no_setting() -> None:
    """The dev tooling's variables stay allowed when it renames them; no setting hides behind a pattern."""
    for name in (binaries.ETCD_ENV, binaries.KUBE_APISERVER_ENV, binaries.KUBECTL_ENV):
        assert is_foreign(name), f"{name} (buildfarm/dev/binaries.py) is missing from FOREIGN_VARIABLES"
    assert not [name for name in setting_variables() if is_foreign(name)]
    assert all(pattern.startswith("BUILDFARM_") and pattern.isupper() for pattern in FOREIGN_VARIABLES)


@pytest.mark.parametrize(
    ("secret", "want_accepted"),
    [
        pytest.param("x" * 31, False, id="31-bytes"),
        pytest.param("x" * 32, True, id="32-bytes"),
        pytest.param("x" * 64, True, id="64-bytes"),
        pytest.param("é" * 16, True, id="16-characters-32-bytes"),
        pytest.param("é" * 15 + "x", False, id="16-characters-31-bytes"),
    ],
)
def test_secret_needs_32_bytes(monkeypatch: pytest.MonkeyPatch, secret: str, want_accepted: bool) -> None:
    monkeypatch.setenv("BUILDFARM_ARTIFACT_SIGNING_KEY", secret)
    if want_accepted:
        key = load_settings().artifact_signing_key
        assert key is not None
        assert key.get_secret_value() == secret
    else:
        with pytest.raises(SettingsError, match="must be at least 32 bytes"):
            load_settings()


def test_secret_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILDFARM_ARTIFACT_SIGNING_KEY", SECRET_32)
    settings = load_settings()
    assert SECRET_32 not in repr(settings)
    assert SECRET_32 not in str(settings)
    assert SECRET_32 not in settings.model_dump_json()

    monkeypatch.setenv("BUILDFARM_ARTIFACT_SIGNING_KEY", SHORT_SECRET)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert SHORT_SECRET not in str(info.value)
    assert SHORT_SECRET not in repr(info.value)
    assert info.value.__context__ is None or info.value.__suppress_context__

    with pytest.raises(SettingsError) as wrong_type:
        load_settings(artifact_signing_key=SecretStr(SHORT_SECRET))
    assert SHORT_SECRET not in str(wrong_type.value)


def test_every_field_is_documented() -> None:
    for name, field in OperatorSettings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_configure_kopf_applies_timeouts_peering_and_storage() -> None:
    settings = load_settings(request_timeout=20, connect_timeout=3, watch_server_timeout=120, standalone=True)
    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings, settings)

    assert (kopf_settings.networking.request_timeout, kopf_settings.networking.connect_timeout) == (20, 3)
    assert (
        kopf_settings.watching.server_timeout,
        kopf_settings.watching.client_timeout,
        kopf_settings.watching.connect_timeout,
    ) == (120, 150, 3)
    assert kopf_settings.peering.standalone is True
    assert kopf_settings.execution.default_backoff == settings.retry_backoff_seconds
    progress = kopf_settings.persistence.progress_storage
    diffbase = kopf_settings.persistence.diffbase_storage
    assert isinstance(progress, RetriesOnlyProgressStorage)
    assert progress.prefix == "buildfarm.dev"
    assert isinstance(diffbase, NoDiffBaseStorage)
    # Bounded memory at start on a large farm: kopf lists in pages and drops idle per-object tasks soon.
    assert kopf_settings.watching.chunk_size == 500
    assert kopf_settings.queueing.idle_timeout == 0.5


def test_replicas_peer_with_distinct_priorities_unless_one_is_given() -> None:
    """kopf pauses every replica when two share the highest priority, so each start picks its own."""
    priorities = set()
    for _ in range(20):
        kopf_settings = kopf.OperatorSettings()
        configure_kopf(kopf_settings, load_settings())
        priorities.add(kopf_settings.peering.priority)
        assert kopf_settings.peering.lifetime == 20
    assert len(priorities) == 20

    kopf_settings = kopf.OperatorSettings()
    configure_kopf(kopf_settings, load_settings(peering_priority=7, peering_lifetime_seconds=30))
    assert (kopf_settings.peering.priority, kopf_settings.peering.lifetime) == (7, 30)
