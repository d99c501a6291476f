"""The operator's metrics. Two kinds:

- Events the operator takes part in, counted where they happen: assignments (its own binding writes),
  scheduling cycles, conflicts (kube.py), and what its cache sees change (`build_changed`,
  `worker_changed`, called by the store): builds assigned (queue wait), requeued and finished (duration).
- Levels (builds by phase, pending builds, workers, slots), computed from the cache when Prometheus
  scrapes (`CacheGauges`), so they are right after a restart and never drift from missed events.
"""

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from buildfarm.api.builds import ACTIVE_PHASES, TERMINAL_PHASES, Build, BuildPhase
from buildfarm.api.meta import Platform
from buildfarm.api.workers import READY, Worker
from buildfarm.domain.conditions import SCHEDULED
from buildfarm.domain.scheduling import Snapshot, view_worker
from buildfarm.telemetry.catalog import (
    BUILD_DURATION_BUCKETS,
    FAST_BUCKETS,
    QUEUE_WAIT_BUCKETS,
    Definition,
    computed,
    counter,
    histogram,
    register_collector,
)
from buildfarm.telemetry.kube import CONFLICTS

__all__ = ["CONFLICTS"]

QUEUE_WAIT: Final = histogram(
    "operator",
    "buildfarm_build_queue_wait_seconds",
    "From creation (or the requeue) of a build to its assignment.",
    QUEUE_WAIT_BUCKETS,
    ("platform",),
)
BUILD_DURATION: Final = histogram(
    "operator",
    "buildfarm_build_duration_seconds",
    "From the start of a build on its worker (Running) to its final phase.",
    BUILD_DURATION_BUCKETS,
    ("platform", "result"),
)
BUILDS_FINISHED: Final = counter(
    "operator",
    "buildfarm_builds_finished_total",
    "Builds that reached a final phase; reason is the reason of their Complete or Failed condition.",
    ("platform", "result", "reason"),
)
ASSIGNMENTS: Final = counter(
    "operator", "buildfarm_assignments_total", "Builds this operator bound to a worker.", ("platform",)
)
REQUEUES: Final = counter(
    "operator",
    "buildfarm_requeues_total",
    "Builds put back in the queue from a worker (WorkerLost, HandedBack, AgentRestarted, Drained).",
    ("reason",),
)
SCHEDULING_CYCLE: Final = histogram(
    "operator", "buildfarm_scheduling_cycle_duration_seconds", "One scheduler cycle.", FAST_BUCKETS
)
WORKER_READY_TRANSITIONS: Final = counter(
    "operator",
    "buildfarm_worker_ready_transitions_total",
    "Changes of a worker's Ready condition seen by the operator.",
    ("worker",),
)

BUILDS: Final = computed(
    "operator",
    "buildfarm_builds",
    'Builds seen by the operator, by phase ("New": not admitted yet).',
    ("phase", "platform"),
)
PENDING: Final = computed(
    "operator", "buildfarm_pending_builds", "Pending builds by the reason they wait.", ("platform", "reason")
)
OLDEST_PENDING: Final = computed(
    "operator",
    "buildfarm_oldest_pending_build_age_seconds",
    "Age (since creation) of the oldest Pending build; 0 if none.",
    ("platform",),
)
WORKERS: Final = computed(
    "operator",
    "buildfarm_workers",
    "Workers by state: Cordoned (whatever their readiness), else Ready or NotReady.",
    ("state",),
)
WORKER_READY: Final = computed(
    "operator", "buildfarm_worker_ready", "1 if the worker is Ready, else 0.", ("worker",)
)
WORKER_CAPACITY: Final = computed(
    "operator",
    "buildfarm_worker_capacity_slots",
    "A worker's capacity, one series per platform it serves.",
    ("worker", "platform"),
)
WORKER_BUSY: Final = computed(
    "operator",
    "buildfarm_worker_busy_slots",
    "Slots held on a worker (its live reservations and active builds).",
    ("worker",),
)
READY_CAPACITY: Final = computed(
    "operator",
    "buildfarm_ready_capacity_slots",
    "Capacity of the Ready, uncordoned workers serving the platform.",
    ("platform",),
)

NEW_PHASE: Final = "New"
REQUEUED_BY_OPERATOR: Final = "Requeued"  # the status reason of transitions.worker_lost
WORKER_LOST: Final = "WorkerLost"
# Events older than this process are not counted when a build is first seen (at start-up, in the LIST):
# the previous process counted them.
STARTED: Final = datetime.now(UTC)


def build_changed(previous: Build | None, current: Build) -> None:
    """Count what happened between two copies of a build in the cache (previous None: first seen)."""
    before = previous.status if previous is not None else None
    status, platform = current.status, current.spec.platform.value
    if _newly(before, status.assigned_at) and status.attempt > (before.attempt if before else 0):
        since = _queued_since(previous, current)
        if status.assigned_at is not None and since is not None:
            waited = (status.assigned_at - since).total_seconds()
            QUEUE_WAIT.labels(platform).observe(max(0.0, waited))
    if before is not None and before.phase in ACTIVE_PHASES and status.phase == BuildPhase.PENDING:
        reason = WORKER_LOST if status.reason == REQUEUED_BY_OPERATOR else status.reason or "Unknown"
        REQUEUES.labels(reason).inc()
    finished = status.phase in TERMINAL_PHASES and (before is None or before.phase not in TERMINAL_PHASES)
    if finished and _newly(before, status.finished_at):
        result = str(status.phase)
        BUILDS_FINISHED.labels(platform, result, status.reason or "Unknown").inc()
        if status.started_at is not None and status.finished_at is not None:
            ran = (status.finished_at - status.started_at).total_seconds()
            BUILD_DURATION.labels(platform, result).observe(max(0.0, ran))


def _newly(before: object | None, at: datetime | None) -> bool:
    """Whether a change of a build is this process's to count: seen happen (there was a copy before),
    or first seen but stamped after this process started (else its predecessor counted it)."""
    return at is not None and (before is not None or at >= STARTED)


def _queued_since(previous: Build | None, current: Build) -> datetime | None:
    """When the build entered the queue for the attempt just assigned: its creation for the first
    attempt, else when it went back to Pending (its Scheduled condition's last change)."""
    if previous is not None and previous.status.attempt > 0 and previous.status.phase == BuildPhase.PENDING:
        scheduled = next((c for c in previous.status.conditions if c.type == SCHEDULED), None)
        if scheduled is not None:
            return scheduled.last_transition_time
    return created_at(current)


def created_at(build: Build) -> datetime | None:
    try:
        return datetime.fromisoformat(build.created)
    except ValueError:
        return None


def worker_changed(previous: Worker | None, current: Worker) -> None:
    if previous is None:
        return
    before, now = previous.condition(READY), current.condition(READY)
    if (before.status if before else None) != (now.status if now else None):
        WORKER_READY_TRANSITIONS.labels(current.name).inc()


def assigned(build: Build) -> None:
    """This operator bound `build` to a worker."""
    ASSIGNMENTS.labels(build.spec.platform.value).inc()


class CacheGauges(Collector):
    """The level gauges, computed from a snapshot of the operator's cache at each scrape."""

    def __init__(self) -> None:
        self.snapshot: Callable[[], Snapshot | None] = lambda: None

    def watch(self, snapshot: Callable[[], Snapshot | None]) -> None:
        """Compute the gauges from `snapshot()` (None while the cache is incomplete: no samples)."""
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshot = self.snapshot()
        families = {d.name: _family(d) for d in CACHE_GAUGES}
        if snapshot is not None:
            for name, labels, value in gauges(snapshot):
                families[name].add_metric(list(labels), value)
        yield from families.values()


CACHE_GAUGES: Final = (
    BUILDS,
    PENDING,
    OLDEST_PENDING,
    WORKERS,
    WORKER_READY,
    WORKER_CAPACITY,
    WORKER_BUSY,
    READY_CAPACITY,
)
CACHE: Final = CacheGauges()
register_collector("operator", CACHE)

Sample = tuple[str, tuple[str, ...], float]


def gauges(snapshot: Snapshot) -> Iterable[Sample]:
    """Every sample of the level gauges for one snapshot: pure, so it is table-tested."""
    platforms = [p.value for p in Platform]
    by_phase = Tally((_phase(b), b.spec.platform.value) for b in snapshot.builds)
    for phase in [NEW_PHASE, *(p.value for p in BuildPhase)]:
        for platform in platforms:
            yield BUILDS.name, (phase, platform), by_phase[(phase, platform)]
    pending = [b for b in snapshot.builds if b.status.phase == BuildPhase.PENDING]
    for (platform, reason), count in sorted(
        Tally((b.spec.platform.value, b.status.reason or "Unknown") for b in pending).items()
    ):
        yield PENDING.name, (platform, reason), count
    for platform in platforms:
        created = [t for b in pending if b.spec.platform.value == platform and (t := created_at(b))]
        age = (snapshot.now - min(created)).total_seconds() if created else 0.0
        yield OLDEST_PENDING.name, (platform,), max(0.0, age)

    states = Tally(_state(w) for w in snapshot.workers)
    for state in ("Ready", "NotReady", "Cordoned"):
        yield WORKERS.name, (state,), states[state]
    ready_capacity = Tally[str]()
    for worker in sorted(snapshot.workers, key=lambda w: w.name):
        yield WORKER_READY.name, (worker.name,), 1.0 if worker.ready else 0.0
        for platform in worker.spec.platforms:
            yield WORKER_CAPACITY.name, (worker.name, platform.value), worker.spec.capacity
            if _state(worker) == "Ready":
                ready_capacity[platform.value] += worker.spec.capacity
        yield WORKER_BUSY.name, (worker.name,), view_worker(worker, snapshot).load
    for platform in platforms:
        yield READY_CAPACITY.name, (platform,), ready_capacity[platform]


def _phase(build: Build) -> str:
    return build.status.phase.value if build.status.phase else NEW_PHASE


def _state(worker: Worker) -> str:
    if worker.spec.unschedulable:
        return "Cordoned"
    return "Ready" if worker.ready else "NotReady"


def _family(definition: Definition) -> GaugeMetricFamily:
    return GaugeMetricFamily(definition.name, definition.help, labels=list(definition.labels))
