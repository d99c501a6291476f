"""The API models: samples parse, defaults match the CRDs, and bad input is refused."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from buildfarm.api.builds import Build, BuildPhase, BuildSpec
from buildfarm.api.meta import Platform
from buildfarm.api.workers import Worker

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
