"""The scheduler as a pure function of a snapshot (after kueue): which pending build goes where, and why
the others wait.

Order: priority (higher first), then creation time (FIFO), then namespace/name for a total order.
A worker can take a build when it is Ready, not cordoned, lists the build's platform, matches the build's
workerSelector and has a free slot. Among those, the most specialised worker wins (so Macs stay free for
iOS), then the emptiest one. Nothing here does I/O; the operator acts on the Plan.

The snapshot must be complete (every Build and Worker the operator serves, e.g. after an initial LIST):
a plan made from part of the cluster could count a busy worker as free.
"""

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property

from buildfarm.api.builds import ACTIVE_PHASES, TERMINAL_PHASES, Build, BuildPhase
from buildfarm.api.workers import READY, Reservation, Worker
from buildfarm.domain import selectors
from buildfarm.domain.reservations import BuildRef, SlotState, can_roll_forward, slot_state


class WaitReason(StrEnum):
    NO_MATCHING_WORKER = "NoMatchingWorker"
    WORKER_NOT_READY = "WorkerNotReady"
    WORKER_BUSY = "WorkerBusy"


@dataclass(frozen=True)
class Snapshot:
    builds: Sequence[Build]
    workers: Sequence[Worker]
    now: datetime
    # The namespaces this operator watches; None means all. Reservations for builds outside them are
    # never judged stale, since this operator cannot see those builds.
    namespaces: frozenset[str] | None = None
    # UIDs of builds the API server reported gone (watch DELETED events, or a read that found nothing):
    # their reservations are released at once.
    deleted: frozenset[str] = frozenset()
    # How long a worker stays not Ready before its builds are requeued; None while the operator is in
    # its startup grace (it has not watched heartbeats long enough to judge a worker lost).
    requeue_delay: timedelta | None = None
    # How long past spec.timeoutSeconds the operator waits for an agent to finish a build before it
    # fails the build itself (the backstop of the agent's own deadline).
    deadline_grace: timedelta = timedelta(minutes=5)
    # UIDs of new builds whose credentials Secret was seen to exist (by the admission handler): a build
    # that names one is assigned only once it was checked; a build that names none needs no check.
    checked: frozenset[str] = frozenset()

    def watched(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    # Indexes computed once per snapshot (a frozen dataclass still has a __dict__ for cached_property).
    @cached_property
    def builds_by_ref(self) -> dict[BuildRef, Build]:
        return {BuildRef(b.namespace, b.name): b for b in self.builds}

    @cached_property
    def active_by_worker(self) -> dict[str, list[Build]]:
        active: dict[str, list[Build]] = {}
        for b in self.builds:
            if b.status.phase in ACTIVE_PHASES and b.status.worker_name:
                active.setdefault(b.status.worker_name, []).append(b)
        return active


@dataclass(frozen=True)
class Assignment:
    build: Build
    worker: str
    attempt: int
    already_reserved: bool  # an in-flight reservation exists: complete it rather than reserve another


@dataclass(frozen=True)
class Waiting:
    build: Build
    reason: WaitReason
    message: str


@dataclass(frozen=True)
class WorkerView:
    """A worker as the scheduler sees it: which reservations still count, and which can go."""

    worker: Worker
    live: tuple[Reservation, ...]  # held, in flight or unconfirmed: each takes a slot
    stale: tuple[Reservation, ...]
    unconfirmed: tuple[Reservation, ...]  # live only until a read says whether the build still exists
    load: int
    schedulable: bool  # Ready and not cordoned

    @property
    def free(self) -> int:
        return max(0, self.worker.spec.capacity - self.load)


@dataclass
class Plan:
    assignments: list[Assignment] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    cancellations: list[Build] = field(default_factory=list)
    workers: dict[str, WorkerView] = field(default_factory=dict)
    # New builds (no phase) whose credentials Secret was not checked yet. Each keeps its place in the
    # queue, so a slot it would get is not given to a later build meanwhile (FIFO while their admission
    # handlers run, e.g. at start-up). New builds that name no Secret are planned like Pending ones.
    unadmitted: list[Build] = field(default_factory=list)
    # Assigned or Running builds whose worker is not in the snapshot: the operator confirms with a read
    # that the worker is gone, then requeues them.
    orphans: list[Build] = field(default_factory=list)
    # Assigned or Running builds on a worker that has not been Ready for requeue_delay: requeued.
    lost: list[Build] = field(default_factory=list)
    # Assigned or Running builds past spec.timeoutSeconds plus the deadline grace: failed.
    overdue: list[Build] = field(default_factory=list)
    # Finished builds past spec.ttlSecondsAfterFinished: deleted.
    expired: list[Build] = field(default_factory=list)


_NEVER = datetime.max.replace(tzinfo=UTC)


def queue_order(build: Build) -> tuple[int, str, datetime, str, str]:
    # creationTimestamp has one-second resolution; queuedAt (set on admission) orders within a second.
    queued = build.status.queued_at or _NEVER
    return (-build.spec.priority, build.created, queued, build.namespace, build.name)


def view_worker(worker: Worker, snapshot: Snapshot) -> WorkerView:
    """Sort the worker's reservations into live and stale; its load also counts builds bound to it
    without a reservation (e.g. assigned by hand), so the Builds stay the source of truth."""
    by_ref = snapshot.builds_by_ref
    live: list[Reservation] = []
    stale: list[Reservation] = []
    unconfirmed: list[Reservation] = []
    for res in worker.status.reservations:
        build = by_ref.get(BuildRef(res.namespace, res.name))
        state = slot_state(
            res, worker.name, build, watched=snapshot.watched(res.namespace), deleted=snapshot.deleted
        )
        (stale if state is SlotState.STALE else live).append(res)
        if state is SlotState.UNCONFIRMED:
            unconfirmed.append(res)
    reserved = {(r.namespace, r.name) for r in live}
    unreserved_active = sum(
        1 for b in snapshot.active_by_worker.get(worker.name, ()) if (b.namespace, b.name) not in reserved
    )
    schedulable = worker.ready and not worker.spec.unschedulable
    return WorkerView(
        worker, tuple(live), tuple(stale), tuple(unconfirmed), len(live) + unreserved_active, schedulable
    )


def finished_here(view: WorkerView, snapshot: Snapshot) -> tuple[int, int]:
    """(succeeded, failed): the stale reservations of the view whose build finished on this worker at
    that attempt. Counted in the same conditional write that releases them, so each counts once. A
    reservation written after the build was bound (by a planner whose cache lagged so far that the build
    had already run) is a duplicate: it is released, never counted."""
    succeeded = failed = 0
    counted: set[tuple[str, int]] = set()
    for res in view.stale:
        build = snapshot.builds_by_ref.get(BuildRef(res.namespace, res.name))
        if build is None or build.uid != res.uid or (res.uid, res.attempt) in counted:
            continue
        status = build.status
        if (status.worker_name, status.attempt) != (view.worker.name, res.attempt):
            continue
        if status.assigned_at is not None and res.reserved_at > status.assigned_at:
            continue
        counted.add((res.uid, res.attempt))
        succeeded += status.phase == BuildPhase.SUCCEEDED
        failed += status.phase == BuildPhase.FAILED
    return succeeded, failed


def eligible(worker: Worker, build: Build) -> bool:
    """Static fit, ignoring readiness and load: the worker could ever run this build."""
    return build.spec.platform in worker.spec.platforms and selectors.matches(
        build.spec.worker_selector, worker.labels
    )


def schedule(snapshot: Snapshot) -> Plan:
    builds = list(snapshot.builds)
    views = {w.name: view_worker(w, snapshot) for w in snapshot.workers}
    plan = Plan(workers=views)
    free = {name: view.free for name, view in views.items()}
    queue = sorted((b for b in builds if b.status.phase in (None, BuildPhase.PENDING)), key=queue_order)
    _sort_active(plan, builds, snapshot, views)

    held_for: dict[BuildRef, list[tuple[WorkerView, Reservation]]] = {}
    for view in views.values():
        for res in view.live:
            held_for.setdefault(BuildRef(res.namespace, res.name), []).append((view, res))
    # Builds asking for the same platform and labels fit the same workers: match each demand once, and
    # keep the workers still open for it in a heap by preference (free slots only go down during a
    # cycle), so a cycle costs O((builds + workers) log workers), not builds x workers.
    fitting: dict[str, _Fit] = {}
    for build in queue:
        admitted = admissible(build, snapshot.checked)
        if not admitted:
            plan.unadmitted.append(build)
        if build.spec.cancel:
            plan.cancellations.append(build)  # cancelled before it started: no check needed
            continue
        demand = _demand(build)
        if demand not in fitting:
            fits = [v for v in views.values() if eligible(v.worker, build)]
            ready = [v for v in fits if v.schedulable]
            open_ = [(_preference(v, free[v.worker.name]), v) for v in ready]
            heapq.heapify(open_)
            fitting[demand] = _Fit(fits, ready, open_)
        fit = fitting[demand]
        resumed = _in_flight_reservation(build, held_for.get(BuildRef(build.namespace, build.name), []))
        if resumed is not None:
            plan.assignments.append(Assignment(build, resumed, resumed_attempt(build), already_reserved=True))
            continue
        best = _best_open(fit, free)
        if best is not None:
            free[best.worker.name] -= 1  # an unadmitted build holds its slot until it is admitted
            if admitted:
                plan.assignments.append(Assignment(build, best.worker.name, resumed_attempt(build), False))
            continue
        if admitted:
            plan.waiting.append(_why_waiting(build, fit.fits, fit.ready))
    return plan


def admissible(build: Build, checked: frozenset[str]) -> bool:
    """Whether a pending or new build may be assigned (or written Pending): what admission checks (its
    credentials Secret exists) holds. A new build goes straight from no phase to Assigned when a worker
    is free, and is written Pending only when it must wait."""
    return build.status.phase is not None or build.spec.credentials is None or build.uid in checked


def admission_overdue(build: Build, now: datetime, grace: timedelta) -> bool:
    """A build still without a phase this long after its creation was dropped by its admission handler
    (e.g. kopf gave up on it): the periodic pass admits it instead (reconcile by level, not by edge)."""
    if build.status.phase is not None or build.spec.credentials is None:
        return False
    try:
        created = datetime.fromisoformat(build.created)
    except ValueError:
        return True  # no creation time to go by: treat it as old rather than wait forever
    return now - created >= grace


def _sort_active(plan: Plan, builds: list[Build], snapshot: Snapshot, views: dict[str, WorkerView]) -> None:
    """Which started or finished builds need the operator: orphaned, lost, overdue, cancelled on a
    worker that cannot stop them, or expired."""
    for build in builds:
        status = build.status
        if status.phase in TERMINAL_PHASES:
            if ttl_expired(build, snapshot.now):
                plan.expired.append(build)
            continue
        if status.phase not in ACTIVE_PHASES:
            continue
        view = views.get(status.worker_name)
        if view is None:
            plan.orphans.append(build)
        elif deadline_passed(build, snapshot.now, snapshot.deadline_grace):
            plan.overdue.append(build)
        elif snapshot.requeue_delay is not None:
            not_ready = not_ready_for(view.worker, snapshot.now)
            if not_ready is not None and not_ready >= snapshot.requeue_delay:
                # A worker that cannot run the build cannot stop it either: cancel it here.
                (plan.cancellations if build.spec.cancel else plan.lost).append(build)


def not_ready_for(worker: Worker, now: datetime) -> timedelta | None:
    """How long the worker has not been Ready (None if it is Ready)."""
    if worker.ready:
        return None
    condition = worker.condition(READY)
    if condition is None:
        return timedelta.max
    return max(timedelta(0), now - condition.last_transition_time)


def deadline_passed(build: Build, now: datetime, grace: timedelta) -> bool:
    started = build.status.started_at or build.status.assigned_at
    if started is None:
        return False
    return now - started > timedelta(seconds=build.spec.timeout_seconds) + grace


def ttl_expired(build: Build, now: datetime) -> bool:
    ttl, finished = build.spec.ttl_seconds_after_finished, build.status.finished_at
    return ttl is not None and finished is not None and now - finished >= timedelta(seconds=ttl)


@dataclass
class _Fit:
    fits: list[WorkerView]  # could ever run the demand
    ready: list[WorkerView]  # ... and are Ready and not cordoned
    # ... and had a free slot when last looked at: a heap of (preference, view), see _best_open
    open: list[tuple[tuple[int, int, int, str], WorkerView]]


def _best_open(fit: _Fit, free: dict[str, int]) -> WorkerView | None:
    """The preferred worker that still has a free slot, as min(_preference) over the open workers would
    choose. A key in the heap was computed when the worker had at least as many free slots as now, so it
    is never worse than the truth: refreshing the top until its key is current finds the true best."""
    heap = fit.open
    while heap:
        key, view = heap[0]
        left = free[key[3]]
        if left <= 0:
            heapq.heappop(heap)
            continue
        current = _preference(view, left)
        if current == key:
            return view
        heapq.heapreplace(heap, (current, view))
    return None


def _demand(build: Build) -> str:
    selector = build.spec.worker_selector
    return f"{build.spec.platform}|{selector.model_dump_json() if selector else ''}"


def _preference(view: WorkerView, free: int) -> tuple[int, int, int, str]:
    """Lower is better. Fewest platforms first, so an Android build takes a Linux machine before a Mac
    that iOS builds (which only Macs can run) may need; then the emptiest worker, to spread the load."""
    return (len(view.worker.spec.platforms), -free, view.load, view.worker.name)


def resumed_attempt(build: Build) -> int:
    return build.status.attempt + 1


def _in_flight_reservation(build: Build, held: list[tuple[WorkerView, Reservation]]) -> str | None:
    """A schedulable worker already holding a slot for this build's next attempt, if any."""
    for view, res in held:
        if view.schedulable and eligible(view.worker, build) and can_roll_forward(res, build):
            return view.worker.name
    return None


def _why_waiting(build: Build, fits: list[WorkerView], ready: list[WorkerView]) -> Waiting:
    platform = build.spec.platform.value
    selector = selectors.describe(build.spec.worker_selector)
    wanted = f"platform {platform}" + (f" with labels {selector}" if selector else "")
    if not fits:
        return Waiting(
            build,
            WaitReason.NO_MATCHING_WORKER,
            f"No Worker serves {wanted}; register one, or change spec.workerSelector on a new Build.",
        )
    if not ready:
        return Waiting(
            build,
            WaitReason.WORKER_NOT_READY,
            f"{len(fits)} Worker(s) serve {wanted} but none is Ready and schedulable (not cordoned).",
        )
    return Waiting(
        build,
        WaitReason.WORKER_BUSY,
        f"All {len(ready)} Ready Worker(s) for {wanted} are busy; waiting in the queue.",
    )
