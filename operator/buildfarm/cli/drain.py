"""Draining a worker: wait for its builds to finish until a deadline, then hand the rest back to the queue.

The worker is cordoned first (by the caller), so the operator assigns nothing new to it. Waiting is
reconciled by level: list the worker's builds, watch from that list's version, and list again whenever the
watch ends, so a missed event costs a little time, never a wrong answer. Each requeue is a conditional
status write (the resourceVersion read); on a conflict the build is read again and re-checked, never
written blindly: a build that finished or moved on meanwhile is reported as such, not requeued.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from buildfarm.api.builds import ACTIVE_PHASES, Build, BuildPhase
from buildfarm.domain import transitions
from buildfarm.errors import Conflict, NotFound
from buildfarm.kube.builds_admin import AdminGateway, WatchExpired

# How often one build may change under a requeue before the drain gives up on it (each time it is re-read
# and re-checked; a build that is still on the worker after this many writes by others is very busy).
MAX_CONFLICTS: Final = 5
# Builds bound to the worker after the cordon (their slot was reserved before it) are requeued in a
# following round; two rounds are enough unless someone keeps uncordoning.
MAX_ROUNDS: Final = 3

Key = tuple[str, str]


def key(build: Build) -> Key:
    return (build.namespace, build.name)


def shown(k: Key) -> str:
    return f"{k[0]}/{k[1]}"


@dataclass(frozen=True)
class Requeued:
    build: Key
    was: BuildPhase
    attempt: int

    def line(self) -> str:
        return f"requeued {shown(self.build)} (was {self.was.value}, attempt {self.attempt})"


@dataclass(frozen=True)
class Left:
    """A build that left the worker without being requeued by the drain: it finished, someone else
    requeued it, or it was deleted (phase None)."""

    build: Key
    phase: BuildPhase | None
    reason: str

    def line(self) -> str:
        if self.phase is None:
            return f"{shown(self.build)} was deleted"
        if self.phase in ACTIVE_PHASES or self.phase == BuildPhase.PENDING:
            return f"{shown(self.build)} left the worker ({self.phase.value}: {self.reason or 'no reason'})"
        return f"{shown(self.build)} finished ({self.phase.value})"


@dataclass
class DrainReport:
    worker: str
    requeued: list[Requeued] = field(default_factory=list)
    left: list[Left] = field(default_factory=list)

    def summary(self) -> str:
        if not self.requeued and not self.left:
            return f"drained worker {self.worker}: no builds were on it"
        return (
            f"drained worker {self.worker}: {len(self.requeued)} requeued, "
            f"{len(self.left)} finished or left while waiting"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "worker": self.worker,
            "requeued": [
                {"namespace": r.build[0], "name": r.build[1], "wasPhase": r.was.value, "attempt": r.attempt}
                for r in self.requeued
            ],
            "left": [
                {
                    "namespace": g.build[0],
                    "name": g.build[1],
                    "phase": g.phase.value if g.phase else None,
                    "reason": g.reason,
                }
                for g in self.left
            ],
        }


class DrainFailed(Exception):
    """A build could not be requeued; the message says which and what to do."""


class Drain:
    def __init__(
        self,
        admin: AdminGateway,
        worker: str,
        *,
        message: str,
        on_result: Callable[[Requeued | Left], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.admin = admin
        self.worker = worker
        self.message = message
        self.report = DrainReport(worker)
        self._on_result = on_result
        self._clock = clock
        self._now = now
        self._seen: set[Key] = set()  # every build seen on the worker, so its leaving is reported
        self._reported: set[Key] = set()

    def active(self) -> list[Build]:
        """The builds on the worker now; each is reported when it leaves, also if that happens before
        wait() or requeue_all() reads the worker again."""
        builds, _ = self.admin.list_worker_builds(self.worker)
        active = [b for b in builds if self._on_worker(b)]
        self._seen.update(key(b) for b in active)
        return active

    def wait(self, seconds: int) -> list[Build]:
        """Wait up to `seconds` until no build is Assigned or Running on the worker; the ones still there."""
        end = self._clock() + seconds
        while True:
            builds, version = self.admin.list_worker_builds(self.worker)
            active = {key(b): b for b in builds if self._on_worker(b)}
            self._seen.update(active)
            for build in builds:
                if key(build) not in active:
                    self._left(build)
            remaining = end - self._clock()
            if not active or remaining <= 0:
                return list(active.values())
            try:
                for kind, build in self.admin.watch_worker_builds(self.worker, version, math.ceil(remaining)):
                    if kind != "DELETED" and self._on_worker(build):
                        active[key(build)] = build
                        self._seen.add(key(build))
                        continue
                    active.pop(key(build), None)
                    self._left(build, deleted=kind == "DELETED" and build.status.worker_name == self.worker)
                    if not active:
                        break
            except WatchExpired:
                pass  # list again and watch from there
            if not active:
                return []

    def requeue_all(self) -> None:
        """Requeue every build still on the worker; again for builds bound after the cordon took effect."""
        for _ in range(MAX_ROUNDS):
            active = self.active()
            if not active:
                return
            for build in active:
                self.requeue(build)
        if self.active():
            raise DrainFailed(
                f"builds keep arriving on worker {self.worker} although it is cordoned: "
                f"check `kubectl get worker {self.worker}` (spec.unschedulable) and drain again"
            )

    def requeue(self, build: Build) -> None:
        """Hand `build` (as read) back to the queue if it is still on the worker; report what happened."""
        self._seen.add(key(build))
        current: Build | None = build
        last = ""
        for _ in range(MAX_CONFLICTS):
            if current is None or not self._on_worker(current):
                if current is not None:
                    self._left(current)
                return
            status = transitions.handed_back(current, transitions.DRAINED, self.message, self._now())
            try:
                self.admin.write_build_status(current, status)
            except Conflict as error:
                last = error.message  # a 409, or a 422 from a CEL rule: either way, read and re-check
                current = self._reread(current)
                continue
            result = Requeued(
                key(current), current.status.phase or BuildPhase.PENDING, current.status.attempt
            )
            self.report.requeued.append(result)
            self._reported.add(result.build)
            self._on_result(result)
            return
        raise DrainFailed(
            f"could not requeue build {shown(key(build))} in {MAX_CONFLICTS} tries (last: {last}): "
            f"run `buildfarm worker drain {self.worker} --deadline 0` again"
        )

    def _reread(self, build: Build) -> Build | None:
        try:
            return self.admin.get_build(build.namespace, build.name)
        except NotFound:
            self._report_left(Left(key(build), None, ""))
            return None

    def _on_worker(self, build: Build) -> bool:
        return build.status.worker_name == self.worker and build.status.phase in ACTIVE_PHASES

    def _left(self, build: Build, *, deleted: bool = False) -> None:
        if key(build) in self._seen:
            phase = None if deleted else build.status.phase
            self._report_left(Left(key(build), phase, build.status.reason))

    def _report_left(self, result: Left) -> None:
        if result.build in self._reported:
            return
        self._reported.add(result.build)
        self.report.left.append(result)
        self._on_result(result)
