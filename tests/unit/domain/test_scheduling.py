"""Table tests for the pure scheduler: order, matching, capacity, and why a build waits."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker
from buildfarm.domain.scheduling import Snapshot, WaitReason, admission_overdue, finished_here, schedule
from tests.factories import T0, build, reservation, worker


@dataclass
class Case:
    name: str
    builds: list[Build]
    workers: list[Worker]
    want_assigned: dict[str, str]
    want_waiting: dict[str, WaitReason] = field(default_factory=dict)
    want_cancelled: list[str] = field(default_factory=list)


CASES = [
    Case(
        "one build, one free worker",
        [build("b1")],
        [worker("w1")],
        want_assigned={"b1": "w1"},
    ),
    Case(
        "higher priority first, then FIFO",
        [build("old", created=1), build("new", created=2), build("urgent", created=3, priority=10)],
        [worker("w1"), worker("w2")],
        want_assigned={"urgent": "w1", "old": "w2"},
        want_waiting={"new": WaitReason.WORKER_BUSY},
    ),
    Case(
        "capacity two takes two builds",
        [build("b1", created=1), build("b2", created=2), build("b3", created=3)],
        [worker("w1", capacity=2)],
        want_assigned={"b1": "w1", "b2": "w1"},
        want_waiting={"b3": WaitReason.WORKER_BUSY},
    ),
    Case(
        "spread over the emptiest worker",
        [build("b1", created=1), build("b2", created=2)],
        [worker("w1", capacity=2), worker("w2", capacity=2)],
        want_assigned={"b1": "w1", "b2": "w2"},
    ),
    Case(
        "android takes the Linux machine and keeps the Mac for iOS",
        [build("android", platform="android", created=1), build("ios", platform="ios", created=2)],
        [worker("mac", platforms=("ios", "android"), capacity=2), worker("linux", platforms=("android",))],
        want_assigned={"android": "linux", "ios": "mac"},
    ),
    Case(
        "android falls back to the Mac when Linux is full",
        [build("a1", platform="android", created=1), build("a2", platform="android", created=2)],
        [worker("mac", platforms=("ios", "android")), worker("linux", platforms=("android",))],
        want_assigned={"a1": "linux", "a2": "mac"},
    ),
    Case(
        "platform must be listed",
        [build("ios", platform="ios"), build("android", platform="android")],
        [worker("linux", platforms=("android",))],
        want_assigned={"android": "linux"},
        want_waiting={"ios": WaitReason.NO_MATCHING_WORKER},
    ),
    Case(
        "selector picks the Xcode 16 machine",
        [build("b1", selector={"matchLabels": {"xcode": "16"}})],
        [worker("a", labels={"xcode": "15"}), worker("b", labels={"xcode": "16"})],
        want_assigned={"b1": "b"},
    ),
    Case(
        "set-based selector",
        [
            build(
                "b1", selector={"matchExpressions": [{"key": "xcode", "operator": "NotIn", "values": ["15"]}]}
            )
        ],
        [worker("a", labels={"xcode": "15"}), worker("b", labels={"xcode": "17"})],
        want_assigned={"b1": "b"},
    ),
    Case(
        "cordoned and not-ready workers get nothing",
        [build("b1")],
        [worker("cordoned", cordoned=True), worker("down", ready=False)],
        want_assigned={},
        want_waiting={"b1": WaitReason.WORKER_NOT_READY},
    ),
    Case(
        "an active build fills the slot",
        [build("running", phase="Running", worker="w1", attempt=1), build("b1")],
        [worker("w1", reservations=[reservation("running")])],
        want_assigned={},
        want_waiting={"b1": WaitReason.WORKER_BUSY},
    ),
    Case(
        "a build assigned by hand, without a reservation, still counts",
        [build("manual", phase="Assigned", worker="w1", attempt=1), build("b1")],
        [worker("w1")],
        want_assigned={},
        want_waiting={"b1": WaitReason.WORKER_BUSY},
    ),
    Case(
        "a finished build frees its slot",
        [build("done", phase="Succeeded", worker="w1", attempt=1), build("b1")],
        [worker("w1", reservations=[reservation("done")])],
        want_assigned={"b1": "w1"},
    ),
    Case(
        "an in-flight reservation is completed, not duplicated",
        [build("b1")],
        [worker("w1", reservations=[reservation("b1", attempt=1)]), worker("w2")],
        want_assigned={"b1": "w1"},
    ),
    Case(
        "a cancelled pending build is cancelled, not assigned",
        [build("b1", cancel=True)],
        [worker("w1")],
        want_assigned={},
        want_cancelled=["b1"],
    ),
    Case(
        "a new build with a free worker is assigned straight away, with no admission write first",
        [build("new", phase=None), build("failed", phase="Failed")],
        [worker("w1")],
        want_assigned={"new": "w1"},
    ),
    Case(
        "a new build that must wait is listed as waiting (written Pending with its reason)",
        [build("first", created=1), build("new", phase=None, created=2)],
        [worker("w1")],
        want_assigned={"first": "w1"},
        want_waiting={"new": WaitReason.WORKER_BUSY},
    ),
    Case(
        "a build whose credentials are not checked yet keeps its place: a later build does not take its slot",
        [build("earlier", phase=None, created=1, credentials="sign"), build("later", created=2)],
        [worker("w1")],
        want_assigned={},
        want_waiting={"later": WaitReason.WORKER_BUSY},
    ),
    Case(
        "a build whose credentials are not checked yet, after the free slots, takes nothing away",
        [build("first", created=1), build("unchecked", phase=None, created=2, credentials="sign")],
        [worker("w1")],
        want_assigned={"first": "w1"},
    ),
    Case(
        "a reservation for a build out of view counts, however old",
        [build("b1")],
        [worker("w1", reservations=[reservation("unseen", age=10 * 86400)])],
        want_assigned={},
        want_waiting={"b1": WaitReason.WORKER_BUSY},
    ),
    Case(
        "retry after an infrastructure failure gets the next attempt",
        [build("b1", attempt=2)],
        [worker("w1")],
        want_assigned={"b1": "w1"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_schedule(case: Case) -> None:
    plan = schedule(Snapshot(builds=case.builds, workers=case.workers, now=T0))
    assert {a.build.name: a.worker for a in plan.assignments} == case.want_assigned
    assert {w.build.name: w.reason for w in plan.waiting} == case.want_waiting
    assert [b.name for b in plan.cancellations] == case.want_cancelled
    for a in plan.assignments:
        assert a.attempt == a.build.status.attempt + 1


def test_in_flight_completion_is_marked_as_already_reserved() -> None:
    plan = schedule(Snapshot([build("b1")], [worker("w1", reservations=[reservation("b1")])], now=T0))
    assert [a.already_reserved for a in plan.assignments] == [True]


def test_no_worker_is_ever_given_more_than_its_capacity() -> None:
    builds = [build(f"b{i}", created=i, priority=i % 3) for i in range(30)]
    workers = [worker(f"w{i}", capacity=1 + i % 3) for i in range(7)]
    plan = schedule(Snapshot(builds, workers, now=T0))
    per_worker: dict[str, int] = {}
    for a in plan.assignments:
        per_worker[a.worker] = per_worker.get(a.worker, 0) + 1
    assert all(per_worker[w.name] <= w.spec.capacity for w in workers if w.name in per_worker)
    assert len(plan.assignments) == sum(w.spec.capacity for w in workers)
    assert len({a.build.name for a in plan.assignments}) == len(plan.assignments)


def test_waiting_message_says_what_to_do() -> None:
    plan = schedule(
        Snapshot([build("b1", selector={"matchLabels": {"xcode": "99"}})], [worker("w1")], now=T0)
    )
    assert plan.waiting[0].message == (
        "No Worker serves platform ios with labels xcode=99; register one, "
        "or change spec.workerSelector on a new Build."
    )


@pytest.mark.parametrize(
    ("name", "age_days"), [("a day old", 1), ("dated far in the future", -365 * 900)], ids=["old", "future"]
)
def test_a_reservation_out_of_view_is_read_before_it_is_released(name: str, age_days: int) -> None:
    res = reservation("unseen", age=age_days * 86400)
    plan = schedule(Snapshot([], [worker("w1", reservations=[res])], now=T0))
    view = plan.workers["w1"]
    assert [r.name for r in view.unconfirmed] == ["unseen"]
    assert (view.load, view.stale) == (1, ())


def test_a_reservation_whose_build_was_seen_gone_is_released() -> None:
    res = reservation("gone")
    snapshot = Snapshot([], [worker("w1", reservations=[res])], now=T0, deleted=frozenset({res["uid"]}))
    view = schedule(snapshot).workers["w1"]
    assert ([r.name for r in view.stale], view.unconfirmed, view.load) == (["gone"], (), 0)


def test_a_build_on_a_worker_that_is_not_there_is_an_orphan() -> None:
    builds = [
        build("lost", phase="Running", worker="ghost", attempt=1),
        build("fine", phase="Assigned", worker="w1", attempt=1),
        build("done", phase="Succeeded", worker="ghost", attempt=1),
    ]
    plan = schedule(Snapshot(builds, [worker("w1")], now=T0))
    assert [b.name for b in plan.orphans] == ["lost"]


def test_unchecked_builds_are_listed_in_queue_order() -> None:
    builds = [
        build("b2", phase=None, created=2, credentials="s"),
        build("b1", phase=None, created=1, credentials="s"),
        build("checked", phase=None, created=1, credentials="s"),
        build("plain", phase=None, created=0),
        build("p", created=0),
    ]
    checked = frozenset({builds[2].uid})
    plan = schedule(Snapshot(builds, [], now=T0, checked=checked))
    assert [b.name for b in plan.unadmitted] == ["b1", "b2"]
    assert sorted(w.build.name for w in plan.waiting) == ["checked", "p", "plain"]


def test_a_build_that_names_no_secret_is_never_overdue_for_admission() -> None:
    assert not admission_overdue(build("b", phase=None), T0 + timedelta(days=1), timedelta(seconds=30))


@pytest.mark.parametrize(
    ("name", "phase", "age", "want"),
    [
        ("just created", None, timedelta(seconds=5), False),
        ("older than the grace", None, timedelta(seconds=30), True),
        ("admitted", "Pending", timedelta(days=1), False),
    ],
)
def test_admission_overdue(name: str, phase: str | None, age: timedelta, want: bool) -> None:
    b = build("b", phase=phase, credentials="sign")  # created at T0
    assert admission_overdue(b, T0 + age, timedelta(seconds=30)) is want


def test_finished_builds_are_counted_once_on_the_worker_they_ran_on() -> None:
    builds = [
        build("ok", phase="Succeeded", worker="w1", attempt=1),
        build("bad", phase="Failed", worker="w1", attempt=1),
        build("cancelled", phase="Cancelled", worker="w1", attempt=1),
        build("elsewhere", phase="Succeeded", worker="w2", attempt=1),
        build("requeued", phase="Pending", attempt=1),
    ]
    held = [reservation(b.name) for b in builds]
    snapshot = Snapshot(builds, [worker("w1", capacity=5, reservations=held), worker("w2")], now=T0)
    view = schedule(snapshot).workers["w1"]
    assert len(view.stale) == 5
    assert finished_here(view, snapshot) == (1, 1)


@pytest.mark.parametrize(
    ("name", "started_ago", "ready", "not_ready_for", "cancel", "want"),
    [
        ("healthy and in time", timedelta(minutes=1), True, None, False, ""),
        ("past timeout plus grace", timedelta(hours=3), True, None, False, "overdue"),
        ("worker lost past the delay", timedelta(minutes=1), False, timedelta(minutes=2), False, "lost"),
        ("worker lost, cancel requested", timedelta(minutes=1), False, timedelta(minutes=2), True, "cancel"),
        ("worker lost, within the delay", timedelta(minutes=1), False, timedelta(seconds=30), False, ""),
    ],
)
def test_started_builds_that_need_the_operator(
    name: str, started_ago: timedelta, ready: bool, not_ready_for: timedelta | None, cancel: bool, want: str
) -> None:
    b = build("b", phase="Running", worker="w1", attempt=1, cancel=cancel)
    b.status.started_at = T0 - started_ago  # timeoutSeconds defaults to 2 hours
    w = worker("w1", ready=ready)
    if not_ready_for is not None:
        w.status.conditions[0].last_transition_time = T0 - not_ready_for
    snapshot = Snapshot([b], [w], now=T0, requeue_delay=timedelta(minutes=1))
    plan = schedule(snapshot)
    got = {"overdue": plan.overdue, "lost": plan.lost, "cancel": plan.cancellations}
    assert {k for k, v in got.items() if v} == ({want} if want else set())


def test_no_build_is_lost_during_the_startup_grace() -> None:
    b = build("b", phase="Running", worker="w1", attempt=1)
    w = worker("w1", ready=False)
    w.status.conditions[0].last_transition_time = T0 - timedelta(hours=1)
    assert schedule(Snapshot([b], [w], now=T0, requeue_delay=None)).lost == []


def test_finished_builds_past_their_ttl_expire() -> None:
    done = build("done", phase="Succeeded", worker="w1", attempt=1)
    done.spec.ttl_seconds_after_finished = 60
    done.status.finished_at = T0 - timedelta(seconds=61)
    fresh = done.model_copy(deep=True)
    fresh.metadata["name"] = "fresh"
    fresh.status.finished_at = T0 - timedelta(seconds=59)
    assert [b.name for b in schedule(Snapshot([done, fresh], [], now=T0)).expired] == ["done"]


def test_a_duplicate_reservation_written_after_the_bind_is_not_counted() -> None:
    done = build("done", phase="Succeeded", worker="w1", attempt=1)
    done.status.assigned_at = T0 - timedelta(seconds=50)
    original = reservation("done", age=60)  # reserved, then bound 10 s later
    late = reservation("done", age=5)  # re-added by a planner that still saw the build Pending
    snapshot = Snapshot([done], [worker("w1", capacity=2, reservations=[original, late])], now=T0)
    view = schedule(snapshot).workers["w1"]
    assert len(view.stale) == 2
    assert finished_here(view, snapshot) == (1, 0)
