"""What `buildfarm queue` and `buildfarm workers` show, from objects as the cluster returns them."""

from datetime import timedelta

import pytest

from buildfarm.api.builds import Build
from buildfarm.api.meta import Condition, ConditionStatus
from buildfarm.cli import views
from buildfarm.domain import transitions
from buildfarm.domain.health import Heartbeat
from buildfarm.domain.scheduling import WaitReason
from tests.factories import T0, build, reservation, worker

NOW = T0 + timedelta(hours=1)


def waiting(b: Build, reason: WaitReason, message: str) -> Build:
    """The build as the operator leaves it when it cannot place it (transitions.waiting)."""
    return b.model_copy(update={"status": transitions.waiting(b, reason.value, message, T0)})


def test_queue_is_in_the_schedulers_order_and_skips_what_does_not_wait() -> None:
    builds = [
        build("late-urgent", priority=5, created=300),
        build("old", created=0),
        build("newer", created=60, namespace="other"),
        build("cancelling", created=1, cancel=True),
        build("running", created=2, phase="Running", worker="mac"),
        build("done", created=3, phase="Succeeded"),
        build("new", created=120, phase=None),
    ]
    rows = views.queue(builds, NOW)
    assert [(r.position, r.build.name) for r in rows] == [
        (1, "late-urgent"),
        (2, "old"),
        (3, "newer"),
        (4, "new"),
    ]
    assert rows[1].age_seconds == 3600
    assert rows[1].cells()[:6] == ["2", "ns", "old", "ios", "0", "1h"]
    assert (rows[3].reason, rows[3].cells()[0]) == (views.NOT_ADMITTED, "4")


def test_filters_keep_the_farm_wide_position() -> None:
    builds = [
        build("a", created=0),
        build("b", created=1, platform="android"),
        build("c", created=2, namespace="team"),
        build("d", created=3, namespace="team", platform="android"),
    ]
    assert [(r.position, r.build.name) for r in views.queue(builds, NOW, platform="android")] == [
        (2, "b"),
        (4, "d"),
    ]
    assert [(r.position, r.build.name) for r in views.queue(builds, NOW, namespace="team")] == [
        (3, "c"),
        (4, "d"),
    ]
    partial = views.queue(builds, NOW, namespace="team", whole_farm=False)
    assert [r.position for r in partial] == [None, None]
    assert partial[0].cells()[0] == "-"
    assert partial[0].to_json()["position"] is None


def test_wait_reason_comes_from_the_scheduled_condition() -> None:
    busy = waiting(build("a"), WaitReason.WORKER_BUSY, "All 2 Ready Worker(s) are busy.")
    (row,) = views.queue([busy], NOW)
    assert (row.reason, row.message) == ("WorkerBusy", "All 2 Ready Worker(s) are busy.")
    body = row.to_json()
    assert body == {
        "position": 1,
        "namespace": "ns",
        "name": "a",
        "platform": "ios",
        "priority": 0,
        "createdAt": "2026-01-01T00:00:00Z",
        "ageSeconds": 3600,
        "phase": "Pending",
        "attempt": 0,
        "reason": "WorkerBusy",
        "message": "All 2 Ready Worker(s) are busy.",
    }
    admitted = build("b").model_copy(update={"status": transitions.queued(build("b", phase=None), T0)})
    assert views.wait_reason(admitted) == ("Queued", "Waiting for a worker.")


def heartbeat(age: int, holder: str = "mac") -> Heartbeat:
    return Heartbeat(holder=holder, renewed=NOW - timedelta(seconds=age), duration_seconds=40)


def test_workers_show_readiness_load_builds_and_heartbeat() -> None:
    workers = [
        worker("mac-2", platforms=("ios",), cordoned=True),
        worker("mac-1", capacity=3, reservations=[reservation("a", 1)]),
        worker("linux", platforms=("android",), ready=False),
    ]
    builds = [
        build("a", phase="Assigned", worker="mac-1", attempt=1),
        build("b", phase="Running", worker="mac-1", attempt=1, namespace="team"),  # bound, no reservation
        build("c", phase="Succeeded", worker="mac-1", attempt=1),
    ]
    beats = {"mac-1": heartbeat(4), "linux": heartbeat(840, holder="")}
    rows = views.workers(workers, builds, beats, NOW)
    assert [r.cells() for r in rows] == [
        ["linux", "NotReady", "android", "0/1", "-", "released"],
        ["mac-1", "Ready", "ios,android", "2/3", "ns/a,team/b", "4s"],
        ["mac-2", "Ready,Cordoned", "ios", "0/1", "-", "never"],
    ]
    assert rows[1].to_json() == {
        "name": "mac-1",
        "ready": True,
        "readyReason": "AgentHeartbeat",
        "cordoned": False,
        "platforms": ["ios", "android"],
        "busy": 2,
        "capacity": 3,
        "builds": ["ns/a", "team/b"],
        "heartbeatAgeSeconds": 4,
        "heartbeatReleased": False,
    }
    assert rows[0].to_json()["heartbeatReleased"] is True
    assert rows[2].to_json()["heartbeatAgeSeconds"] is None
    assert [r.worker.name for r in views.workers(workers, builds, beats, NOW, platform="android")] == [
        "linux",
        "mac-1",
    ]


def test_unknown_readiness_and_label_filter() -> None:
    lost = worker("mac", labels={"site": "berlin"})
    lost.status.conditions = [
        Condition(
            type="Ready",
            status=ConditionStatus.UNKNOWN,
            reason="LeaseExpired",
            message="",
            last_transition_time=T0,
        )
    ]
    other = worker("pc", labels={"site": "paris"})
    rows = views.workers([lost, other], [], {}, NOW, labels={"site": "berlin"})
    assert [(r.worker.name, r.ready) for r in rows] == [("mac", "Unknown")]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (185, "3m5s"),
        (3600, "1h"),
        (7800, "2h10m"),
        (273600, "3d4h"),
        (86400, "1d"),
    ],
)
def test_short_age(seconds: int, shown: str) -> None:
    assert views.short_age(seconds) == shown


def test_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    assert views.table(["A", "LONGER", "MSG"], [["xyz", "1", "hello world"], ["q", "22", ""]]) == (
        "A    LONGER  MSG\nxyz  1       hello world\nq    22"
    )
