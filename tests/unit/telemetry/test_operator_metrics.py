"""The operator's metrics: level gauges computed from a snapshot of its cache, and the counters and
histograms fed by the changes its cache sees (each change counted once, nothing from before start-up)."""

import itertools
from datetime import timedelta
from typing import Any

from prometheus_client.registry import CollectorRegistry

from buildfarm.api.builds import Build
from buildfarm.domain.scheduling import Snapshot
from buildfarm.telemetry import operator as metrics
from buildfarm.telemetry.exporter import registry_for
from tests.factories import T0, build, reservation, worker


def with_status(b: Build, **status: Any) -> Build:
    fields = b.status.model_dump(mode="json", by_alias=True, exclude_none=True) | status
    version = str(int(b.resource_version) + 1)
    return Build.model_validate(
        {"metadata": {**b.metadata, "resourceVersion": version}, "spec": b.spec.to_api(), "status": fields}
    )


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def samples(snapshot: Snapshot) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(name, labels): value for name, labels, value in metrics.gauges(snapshot)}


def test_levels_from_a_snapshot() -> None:
    snapshot = Snapshot(
        builds=[
            build("new", phase=None, created=590),
            build("old", created=0).model_copy(deep=True),
            build("waits", created=300, platform="android"),
            build("runs", phase="Running", worker="mac", attempt=1),
            build("done", phase="Succeeded", worker="mac", attempt=1),
        ],
        workers=[
            worker("mac", capacity=2, reservations=[reservation("runs")]),
            worker("linux", platforms=("android",), capacity=3, ready=False),
            worker("cordoned", platforms=("ios",), cordoned=True),
        ],
        now=T0 + timedelta(seconds=600),
    )
    snapshot.builds[1].status.reason = "WorkerBusy"
    got = samples(snapshot)

    assert got[("buildfarm_builds", ("New", "ios"))] == 1
    assert got[("buildfarm_builds", ("Pending", "ios"))] == 1
    assert got[("buildfarm_builds", ("Pending", "android"))] == 1
    assert got[("buildfarm_builds", ("Running", "ios"))] == 1
    assert got[("buildfarm_builds", ("Succeeded", "ios"))] == 1
    assert got[("buildfarm_builds", ("Failed", "android"))] == 0  # every phase and platform, even at 0
    assert len([k for k in got if k[0] == "buildfarm_builds"]) == 7 * 2
    assert {k: v for k, v in got.items() if k[0] == "buildfarm_pending_builds"} == {
        ("buildfarm_pending_builds", ("android", "Unknown")): 1,
        ("buildfarm_pending_builds", ("ios", "WorkerBusy")): 1,
    }
    assert got[("buildfarm_oldest_pending_build_age_seconds", ("ios",))] == 600
    assert got[("buildfarm_oldest_pending_build_age_seconds", ("android",))] == 300
    assert [got[("buildfarm_workers", (s,))] for s in ("Ready", "NotReady", "Cordoned")] == [1, 1, 1]
    assert got[("buildfarm_worker_ready", ("mac",))] == 1
    assert got[("buildfarm_worker_ready", ("linux",))] == 0
    assert got[("buildfarm_worker_capacity_slots", ("mac", "ios"))] == 2
    assert got[("buildfarm_worker_capacity_slots", ("mac", "android"))] == 2
    assert ("buildfarm_worker_capacity_slots", ("linux", "ios")) not in got
    assert got[("buildfarm_worker_busy_slots", ("mac",))] == 1
    assert got[("buildfarm_worker_busy_slots", ("linux",))] == 0
    # Only Ready, uncordoned workers count: linux is not Ready, cordoned is cordoned.
    assert got[("buildfarm_ready_capacity_slots", ("ios",))] == 2
    assert got[("buildfarm_ready_capacity_slots", ("android",))] == 2


def test_no_samples_until_the_cache_is_complete() -> None:
    registry = CollectorRegistry()
    gauges = metrics.CacheGauges()
    registry.register(gauges)
    assert registry.get_sample_value("buildfarm_workers", {"state": "Ready"}) is None
    gauges.watch(lambda: Snapshot(builds=[], workers=[worker("w")], now=T0))
    assert registry.get_sample_value("buildfarm_workers", {"state": "Ready"}) == 1
    assert registry.get_sample_value("buildfarm_oldest_pending_build_age_seconds", {"platform": "ios"}) == 0


class Values:
    """Read the operator's metrics; module-level objects, so tests compare before and after."""

    def __init__(self) -> None:
        self.registry = registry_for("operator")

    def __call__(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def test_a_build_through_its_life_is_counted_once_per_change() -> None:
    read = Values()
    before = {
        "wait_count": read("buildfarm_build_queue_wait_seconds_count", platform="android"),
        "wait_sum": read("buildfarm_build_queue_wait_seconds_sum", platform="android"),
        "requeued": read("buildfarm_requeues_total", reason="WorkerLost"),
        "handed": read("buildfarm_requeues_total", reason="HandedBack"),
        "finished": read(
            "buildfarm_builds_finished_total", platform="android", result="Failed", reason="BuildFailed"
        ),
        "ran": read("buildfarm_build_duration_seconds_sum", platform="android", result="Failed"),
    }
    pending = with_status(build("b", platform="android", created=0), phase="Pending", reason="Queued")
    first = with_status(pending, phase="Assigned", workerName="w", attempt=1, assignedAt=at(90))
    running = with_status(first, phase="Running", startedAt=at(100))
    requeued = with_status(
        running,
        phase="Pending",
        workerName="",
        reason="Requeued",
        conditions=[
            {"type": "Scheduled", "status": "False", "reason": "Requeued", "lastTransitionTime": at(200)}
        ],
    )
    second = with_status(requeued, phase="Assigned", workerName="w2", attempt=2, assignedAt=at(230))
    running2 = with_status(second, phase="Running", startedAt=at(240))
    handed = with_status(
        running2,
        phase="Pending",
        workerName="",
        reason="HandedBack",
        handbacks=1,
        conditions=[
            {"type": "Scheduled", "status": "False", "reason": "HandedBack", "lastTransitionTime": at(250)}
        ],
    )
    third = with_status(handed, phase="Assigned", workerName="w3", attempt=3, assignedAt=at(260))
    started3 = with_status(third, phase="Running", startedAt=at(270))
    failed = with_status(started3, phase="Failed", reason="BuildFailed", finishedAt=at(570))

    chain = [None, pending, first, running, requeued, second, running2, handed, third, started3, failed]
    for previous, current in itertools.pairwise(chain):
        metrics.build_changed(previous, current)
    metrics.build_changed(failed, failed)  # seen again (the watch after the write's answer): no change

    assert read("buildfarm_build_queue_wait_seconds_count", platform="android") - before["wait_count"] == 3
    # From creation to the first assignment (90 s), then from each return to the queue (30 s, 10 s).
    assert (
        read("buildfarm_build_queue_wait_seconds_sum", platform="android") - before["wait_sum"]
        == 90 + 30 + 10
    )
    assert read("buildfarm_requeues_total", reason="WorkerLost") - before["requeued"] == 1
    assert read("buildfarm_requeues_total", reason="HandedBack") - before["handed"] == 1
    finished = read(
        "buildfarm_builds_finished_total", platform="android", result="Failed", reason="BuildFailed"
    )
    assert finished - before["finished"] == 1
    assert (
        read("buildfarm_build_duration_seconds_sum", platform="android", result="Failed") - before["ran"]
        == 300
    )


def test_what_happened_before_start_up_is_not_counted_again() -> None:
    read = Values()
    labels = {"platform": "ios", "result": "Succeeded", "reason": "Succeeded"}
    before = read("buildfarm_builds_finished_total", **labels)
    long_ago = with_status(
        build("old", phase="Succeeded", worker="w", attempt=1),
        reason="Succeeded",
        assignedAt=at(0),
        startedAt=at(1),
        finishedAt=at(2),
    )
    metrics.build_changed(None, long_ago)  # first seen in the LIST after a restart
    assert read("buildfarm_builds_finished_total", **labels) == before
    just_now = metrics.STARTED + timedelta(seconds=1)
    recent = with_status(long_ago, finishedAt=just_now.isoformat())
    metrics.build_changed(None, recent)  # finished after this process started, before it was seen
    assert read("buildfarm_builds_finished_total", **labels) == before + 1


def test_ready_transitions_are_changes_of_the_ready_condition() -> None:
    read = Values()
    before = read("buildfarm_worker_ready_transitions_total", worker="flappy")
    ready, lost = worker("flappy"), worker("flappy", ready=False)
    metrics.worker_changed(None, ready)  # first seen: no change
    metrics.worker_changed(ready, ready)
    metrics.worker_changed(ready, lost)
    metrics.worker_changed(lost, ready)
    assert read("buildfarm_worker_ready_transitions_total", worker="flappy") - before == 2
