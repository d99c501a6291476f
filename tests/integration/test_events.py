"""Events users see: posted for any build name, stored with the timestamps `kubectl describe` sorts by, and
listed there in the order they happened. Against the real API server and the real kubectl; no operator."""

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi, EventsV1Api

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.dev.binaries import kubectl
from buildfarm.errors import NotFound
from buildfarm.kube.gateway import NAME_MAX, REPORTING_CONTROLLER, Gateway, event_name, micro_time
from buildfarm.operator.outcomes import Reporter
from tests.support.farm import Farm

TIMEOUT = (5.0, 10.0)
# A DNS subdomain: dot-separated labels of [a-z0-9-], each starting and ending alphanumeric.
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
KEPT = NAME_MAX - 17  # what is left of the object's name beside `.<16 hex digits>`


def longest_name(at_cut: str) -> str:
    """A valid 253-character name whose character just before the cut is `at_cut`."""
    return "a" * (KEPT - 1) + at_cut + "b" * (NAME_MAX - KEPT)


@pytest.fixture
def gateway(api_client: ApiClient) -> Gateway:
    return Gateway(api_client, TIMEOUT)


def new_build(custom_objects: CustomObjectsApi, namespace: str, name: str) -> Build:
    farm = Farm(custom_objects, namespace)
    return farm.get_build(farm.build(name))


def raw_events(api: CoreV1Api | EventsV1Api, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events about one object as the API server serves them, unparsed by the client's models."""
    selector = {
        CoreV1Api: f"involvedObject.name={name}",
        EventsV1Api: f"regarding.name={name}",
    }[type(api)]
    response = api.list_namespaced_event(
        namespace, field_selector=selector, _preload_content=False, _request_timeout=TIMEOUT
    )
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def describe_events(kubeconfig: str, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, from) of each row of the Events table `kubectl describe build` prints, in order."""
    result = subprocess.run(
        [str(kubectl()), "--kubeconfig", kubeconfig, "-n", namespace, "describe", c.BUILD_KIND.lower(), name],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Events:"))
    assert lines[start + 1].split() == ["Type", "Reason", "Age", "From", "Message"], result.stdout
    rows = []
    for line in lines[start + 3 :]:  # after the header and its ---- underline
        if not line.startswith("  "):
            break
        type_, reason, _age, source, *_ = line.split()
        rows.append((type_, reason, source))
    return rows


@pytest.mark.parametrize(
    ("name", "want"),
    [
        pytest.param("b1", "b1", id="short name kept whole"),
        pytest.param(longest_name("a"), "a" * KEPT, id="253 characters cut"),
        pytest.param(longest_name("-"), "a" * (KEPT - 1), id="cut before a dash"),
        pytest.param(longest_name("."), "a" * (KEPT - 1), id="cut before a dot"),
        pytest.param("a-" * 126 + "a", ("a-" * 126)[: KEPT - 1], id="dashes up to the cut"),
    ],
)
def test_event_names_fit_any_object_name(name: str, want: str) -> None:
    at_ns = 1_780_000_000_123_456_789
    got = event_name(name, at_ns)
    assert (got, len(got) <= NAME_MAX, bool(DNS_SUBDOMAIN.fullmatch(got))) == (
        f"{want}.{at_ns:016x}",
        True,
        True,
    )


def test_micro_time_always_has_six_digits() -> None:
    # isoformat() drops a zero fraction, and the API server cannot parse a MicroTime without one.
    assert micro_time(datetime(2026, 1, 1, 12, tzinfo=UTC)) == "2026-01-01T12:00:00.000000Z"
    assert micro_time(datetime(2026, 1, 1, 12, 0, 0, 7, tzinfo=UTC)) == "2026-01-01T12:00:00.000007Z"


@pytest.mark.parametrize("at_cut", ["a", "-", "."])
def test_a_build_with_a_253_character_name_gets_events(
    gateway: Gateway,
    custom_objects: CustomObjectsApi,
    core_v1: CoreV1Api,
    namespace: str,
    kubeconfig: str,
    at_cut: str,
) -> None:
    build = new_build(custom_objects, namespace, longest_name(at_cut))

    gateway.post_event(build, type_="Normal", reason="Queued", action="Queue", note="Waiting for a worker.")

    [stored] = raw_events(core_v1, namespace, build.name)
    assert (stored["reason"], stored["involvedObject"]["uid"]) == ("Queued", build.uid)
    assert describe_events(kubeconfig, namespace, build.name) == [("Normal", "Queued", REPORTING_CONTROLLER)]


def test_events_posted_in_sequence_are_described_in_that_order(
    gateway: Gateway, custom_objects: CustomObjectsApi, namespace: str, kubeconfig: str
) -> None:
    build = new_build(custom_objects, namespace, "b")
    # Several in one second, as the operator posts them (Queued, a wait, Assigned): kubectl sorts by
    # lastTimestamp, which has only seconds, so the order within a second must hold as well.
    reasons = [f"Step{i:02}" for i in range(10)]

    for reason in reasons:
        gateway.post_event(build, type_="Normal", reason=reason, action="Test", note=f"{reason} happened.")

    assert [reason for _, reason, _ in describe_events(kubeconfig, namespace, "b")] == reasons


def test_the_stored_event_has_the_timestamps_kubectl_sorts_by(
    gateway: Gateway,
    api_client: ApiClient,
    custom_objects: CustomObjectsApi,
    core_v1: CoreV1Api,
    namespace: str,
) -> None:
    build = new_build(custom_objects, namespace, "b")
    before = datetime.now(UTC)

    gateway.post_event(build, type_="Warning", reason="ApiError", action="Failed", note="é" * 600)

    after = datetime.now(UTC)
    [core] = raw_events(core_v1, namespace, "b")
    [events] = raw_events(EventsV1Api(api_client), namespace, "b")
    event_time = datetime.strptime(core["eventTime"], "%Y-%m-%dT%H:%M:%S.%f%z")
    seconds = event_time.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert before - timedelta(microseconds=1) <= event_time <= after
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", core["eventTime"]), core["eventTime"]
    assert {k: core.get(k) for k in ("firstTimestamp", "lastTimestamp", "count", "series")} == {
        "firstTimestamp": seconds,
        "lastTimestamp": seconds,
        "count": 1,
        "series": None,
    }
    assert {
        k: events.get(k) for k in ("eventTime", "deprecatedFirstTimestamp", "deprecatedLastTimestamp")
    } == {
        "eventTime": core["eventTime"],
        "deprecatedFirstTimestamp": seconds,
        "deprecatedLastTimestamp": seconds,
    }
    assert (events["deprecatedCount"], events["reportingController"], events["note"]) == (
        1,
        REPORTING_CONTROLLER,
        "é" * 512,  # cut to the API server's 1024 bytes, not 1024 characters
    )


def test_a_refused_event_is_classified(
    gateway: Gateway, custom_objects: CustomObjectsApi, namespace: str
) -> None:
    build = new_build(custom_objects, namespace, "b")
    build.metadata["namespace"] = f"{namespace}-gone"

    with pytest.raises(NotFound):
        gateway.post_event(build, type_="Normal", reason="Queued", action="Queue", note="Waiting.")


def test_a_build_admitted_to_the_queue_gets_a_queued_event(
    gateway: Gateway, custom_objects: CustomObjectsApi, core_v1: CoreV1Api, namespace: str
) -> None:
    build = new_build(custom_objects, namespace, "b")

    queued = Reporter(gateway, lambda: datetime.now(UTC)).queued(build)

    [event] = raw_events(core_v1, namespace, "b")
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Queued", queued.status.message)
