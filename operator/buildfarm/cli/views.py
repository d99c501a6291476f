"""What `buildfarm queue` and `buildfarm workers` show, computed from what the cluster holds (no I/O here):
the queue in the scheduler's own order with each build's wait reason, and each worker's readiness,
load and heartbeat as the scheduler counts them."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from buildfarm.api.builds import Build, BuildPhase
from buildfarm.api.meta import ConditionStatus
from buildfarm.api.workers import READY, Worker
from buildfarm.domain.conditions import SCHEDULED
from buildfarm.domain.health import Heartbeat
from buildfarm.domain.scheduling import Snapshot, queue_order, view_worker

NOT_ADMITTED: Final = "NotAdmitted"  # created, not yet taken into the queue by the operator
NONE: Final = "-"


@dataclass(frozen=True)
class QueueRow:
    position: int | None  # in the whole farm's queue; None when only part of it could be read
    build: Build
    age_seconds: int
    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "namespace": self.build.namespace,
            "name": self.build.name,
            "platform": self.build.spec.platform.value,
            "priority": self.build.spec.priority,
            "createdAt": self.build.created,
            "ageSeconds": self.age_seconds,
            "phase": self.build.status.phase.value if self.build.status.phase else None,
            "attempt": self.build.status.attempt,
            "reason": self.reason,
            "message": self.message,
        }

    def cells(self) -> list[str]:
        return [
            NONE if self.position is None else str(self.position),
            self.build.namespace,
            self.build.name,
            self.build.spec.platform.value,
            str(self.build.spec.priority),
            short_age(self.age_seconds),
            self.reason,
            self.message,
        ]


QUEUE_HEADER: Final = ["POSITION", "NAMESPACE", "NAME", "PLATFORM", "PRIORITY", "AGE", "REASON", "MESSAGE"]


def queue(
    builds: Iterable[Build],
    now: datetime,
    *,
    platform: str | None = None,
    namespace: str | None = None,
    whole_farm: bool = True,
) -> list[QueueRow]:
    """The builds waiting for a worker, in the order the scheduler offers them slots (priority, then
    creation time): not yet admitted or Pending, and not being cancelled (the scheduler skips those).
    Positions count every waiting build given, also those `platform` and `namespace` leave out; when
    `whole_farm` is false (only one namespace could be read) they are unknown."""
    waiting = sorted(
        (b for b in builds if b.status.phase in (None, BuildPhase.PENDING) and not b.spec.cancel),
        key=queue_order,
    )
    rows = []
    for position, build in enumerate(waiting, start=1):
        if platform and build.spec.platform.value != platform:
            continue
        if namespace and build.namespace != namespace:
            continue
        reason, message = wait_reason(build)
        rows.append(
            QueueRow(
                position if whole_farm else None, build, age_seconds(build.created, now), reason, message
            )
        )
    return rows


def wait_reason(build: Build) -> tuple[str, str]:
    """Why the build waits: the reason and message of its Scheduled condition (False while it waits),
    as the operator last wrote them; a build the operator has not admitted yet has none."""
    if build.status.phase is None:
        return NOT_ADMITTED, "Created; the operator has not taken it into the queue yet."
    scheduled = next((c for c in build.status.conditions if c.type == SCHEDULED), None)
    if scheduled is not None and scheduled.status == ConditionStatus.FALSE:
        return scheduled.reason, scheduled.message
    return build.status.reason or NONE, build.status.message


@dataclass(frozen=True)
class WorkerRow:
    worker: Worker
    busy: int
    builds: tuple[str, ...]  # namespace/name of its Assigned and Running builds
    heartbeat: Heartbeat | None
    heartbeat_age_seconds: int | None

    @property
    def ready(self) -> str:
        """Ready, NotReady or Unknown (the Ready condition), and Cordoned when unschedulable."""
        condition = self.worker.condition(READY)
        if condition is None or condition.status == ConditionStatus.UNKNOWN:
            state = "Unknown"
        else:
            state = "Ready" if condition.status == ConditionStatus.TRUE else "NotReady"
        return f"{state},Cordoned" if self.worker.spec.unschedulable else state

    @property
    def heartbeat_text(self) -> str:
        if self.heartbeat is None:
            return "never"
        if not self.heartbeat.holder:
            return "released"  # the agent stopped and gave its Lease up
        return NONE if self.heartbeat_age_seconds is None else short_age(self.heartbeat_age_seconds)

    def to_json(self) -> dict[str, Any]:
        condition = self.worker.condition(READY)
        return {
            "name": self.worker.name,
            "ready": self.worker.ready,
            "readyReason": condition.reason if condition else None,
            "cordoned": self.worker.spec.unschedulable,
            "platforms": [p.value for p in self.worker.spec.platforms],
            "busy": self.busy,
            "capacity": self.worker.spec.capacity,
            "builds": list(self.builds),
            "heartbeatAgeSeconds": self.heartbeat_age_seconds,
            "heartbeatReleased": self.heartbeat is not None and not self.heartbeat.holder,
        }

    def cells(self) -> list[str]:
        return [
            self.worker.name,
            self.ready,
            ",".join(p.value for p in self.worker.spec.platforms),
            f"{self.busy}/{self.worker.spec.capacity}",
            ",".join(self.builds) or NONE,
            self.heartbeat_text,
        ]


WORKERS_HEADER: Final = ["NAME", "READY", "PLATFORMS", "BUSY", "BUILDS", "HEARTBEAT"]


def workers(
    workers: Sequence[Worker],
    builds: Sequence[Build],
    heartbeats: Mapping[str, Heartbeat],
    now: datetime,
    *,
    platform: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[WorkerRow]:
    """Each worker (by name) with its load as the scheduler counts it: live reservations plus active
    builds bound to it without one."""
    snapshot = Snapshot(builds=builds, workers=workers, now=now)
    rows = []
    for worker in sorted(workers, key=lambda w: w.name):
        if platform and platform not in {p.value for p in worker.spec.platforms}:
            continue
        if labels and any(worker.labels.get(k) != v for k, v in labels.items()):
            continue
        active = sorted(f"{b.namespace}/{b.name}" for b in snapshot.active_by_worker.get(worker.name, ()))
        beat = heartbeats.get(worker.name)
        age = None
        if beat is not None and beat.renewed is not None:
            age = max(0, int((now - beat.renewed).total_seconds()))
        rows.append(WorkerRow(worker, view_worker(worker, snapshot).load, tuple(active), beat, age))
    return rows


def age_seconds(created: str, now: datetime) -> int:
    try:
        at = datetime.fromisoformat(created)
    except ValueError:
        return 0
    return max(0, int((now - at.astimezone(UTC)).total_seconds()))


def short_age(seconds: int) -> str:
    """An age as kubectl shows one, two units at most: 45s, 3m5s, 2h10m, 3d4h."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, as kubectl prints them; the last column is not padded."""
    lines = [list(header), *[list(r) for r in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)] + [line[-1]]
        out.append("  ".join(padded).rstrip())
    return "\n".join(out)
