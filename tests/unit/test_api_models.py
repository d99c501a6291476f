"""The API models: samples parse, defaults match the CRDs, bad input is refused, and the formats the
API server enforces (tests/integration/test_hostile_input.py runs the same tables against it) agree."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from buildfarm.api import formats
from buildfarm.api.builds import PHASE_TRANSITIONS, TERMINAL_PHASES, Build, BuildPhase, BuildSpec
from buildfarm.api.meta import Platform
from buildfarm.api.workers import Worker
from buildfarm.domain import phases
from tests.support import inputs

SAMPLES = Path(__file__).parents[2] / "crds" / "samples"


def load(name: str) -> dict[str, object]:
    return yaml.safe_load((SAMPLES / name).read_text())  # type: ignore[no-any-return]


def test_build_sample_parses_with_defaults() -> None:
    build = Build.model_validate(load("build-android-git.yaml"))
    assert build.spec.platform is Platform.ANDROID
    assert build.spec.source.git is not None
    assert build.spec.source.git.revision == "main"
    assert (build.spec.priority, build.spec.timeout_seconds, build.spec.max_attempts) == (0, 7200, 3)
    assert build.spec.cancel is False
    assert build.status.phase is None
    assert build.status.attempt == 0
    assert build.status.worker_name == ""


def test_worker_sample_parses() -> None:
    worker = Worker.model_validate(load("worker-mac-mini.yaml"))
    assert worker.spec.platforms == [Platform.IOS, Platform.ANDROID]
    assert worker.spec.capacity == 2
    assert worker.labels["buildfarm.dev/xcode"] == "16"
    assert not worker.ready


def test_to_api_uses_camel_case_and_drops_unset() -> None:
    spec = BuildSpec.model_validate(
        {"platform": "ios", "source": {"git": {"url": "https://x/y.git"}}, "timeoutSeconds": 600}
    )
    body = spec.to_api()
    assert body["timeoutSeconds"] == 600
    assert "profile" not in body
    assert "credentials" not in body
    assert body["source"] == {"git": {"url": "https://x/y.git", "revision": "HEAD"}}


@pytest.mark.parametrize(
    ("name", "patch"),
    [
        ("unknown platform", {"platform": "windows"}),
        ("negative timeout", {"timeoutSeconds": -1}),
        ("zero attempts", {"maxAttempts": 0}),
        ("priority out of range", {"priority": 5000}),
    ],
)
def test_bad_spec_is_refused(name: str, patch: dict[str, object]) -> None:
    body = {"platform": "ios", "source": {"git": {"url": "https://x/y.git"}}} | patch
    with pytest.raises(ValidationError):
        BuildSpec.model_validate(body)


def test_phase_values_match_the_documented_set() -> None:
    assert [p.value for p in BuildPhase] == [
        "Pending",
        "Assigned",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]


FORMAT_CASES = [
    (formats.GIT_URL, inputs.GIT_URLS_HOSTILE, inputs.GIT_URLS_VALID),
    (formats.ARCHIVE_URL, inputs.ARCHIVE_URLS_HOSTILE, inputs.ARCHIVE_URLS_VALID),
    (formats.GIT_REVISION, inputs.REVISIONS_HOSTILE, inputs.REVISIONS_VALID),
    (formats.PROFILE, inputs.PROFILES_HOSTILE, inputs.PROFILES_VALID),
    (formats.DNS_SUBDOMAIN, inputs.SECRET_NAMES_HOSTILE, inputs.SECRET_NAMES_VALID),
    (formats.LABEL_KEY, inputs.LABEL_KEYS_HOSTILE, inputs.LABEL_KEYS_VALID),
    (formats.LABEL_VALUE, inputs.LABEL_VALUES_HOSTILE, inputs.LABEL_VALUES_VALID),
]
_NAMES = {id(fmt): name for name, fmt in vars(formats).items() if isinstance(fmt, formats.Format)}


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        pytest.param(fmt, value, id=f"{_NAMES[id(fmt)]}={case}")
        for fmt, hostile, _ in FORMAT_CASES
        for case, value in hostile
    ],
)
def test_format_refuses_hostile_value(fmt: formats.Format, value: str) -> None:
    assert not fmt.accepts(value)


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        pytest.param(fmt, value, id=f"{_NAMES[id(fmt)]}={case}")
        for fmt, _, valid in FORMAT_CASES
        for case, value in valid
    ],
)
def test_format_accepts_valid_value(fmt: formats.Format, value: str) -> None:
    assert fmt.accepts(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [("", True), ("Queued", True), ("NoMatchingWorker", True), ("no worker", False), ("queued", False)],
)
def test_reason_is_camel_case(value: str, want: bool) -> None:
    assert (value == "" or formats.CAMEL_CASE.accepts(value)) is want


def test_the_phase_graph_has_one_source() -> None:
    assert phases.ALLOWED is PHASE_TRANSITIONS
    assert {p for p, targets in PHASE_TRANSITIONS.items() if p and not targets} == TERMINAL_PHASES
    assert BuildPhase.ASSIGNED in PHASE_TRANSITIONS[None], "a new build may be assigned in one write"
    assert BuildPhase.SUCCEEDED not in PHASE_TRANSITIONS[BuildPhase.PENDING]
