"""The assignment protocol: reserve a slot on the Worker, then bind the Build, both as conditional writes.

1. Reserve: take the Worker as the watch cache has it, count its live reservations, and add one for each
   (build, attempt) planned on it, only into free slots, with activeBuilds, in one write guarded by the
   Worker's resourceVersion. A conflict means someone else changed the Worker: re-read and re-check.
   This is what stops two operators filling one free slot.
2. Bind: write the Build's status (worker, attempt + 1, phase Assigned) guarded by the Build's
   resourceVersion. On conflict re-read: if the build is still pending at the previous attempt, try
   again; if it was taken, cancelled or deleted, give the slot back (the SKIP LOCKED of this world).
   The CEL assign-once rule is the last line of defence.
A reserver that dies between 1 and 2 leaves an in-flight reservation, which any operator completes.
See docs/assignment-protocol.md. Blocking code: run it in a thread.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from buildfarm.api.builds import AGENT_STATUS_FIELDS, Build
from buildfarm.api.workers import Reservation, Worker
from buildfarm.domain import transitions
from buildfarm.domain.reservations import can_roll_forward
from buildfarm.domain.scheduling import (
    Assignment,
    Snapshot,
    WaitReason,
    eligible,
    finished_here,
    view_worker,
)
from buildfarm.errors import Conflict, NotFound, TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.telemetry.logs import about

log = logging.getLogger(__name__)

WORKER_GONE = "WorkerGone"
MAX_CONFLICTS = 5  # re-reads per write before the build is left for the next cycle


class Result(Enum):
    ASSIGNED = "assigned"  # this call (or an operator it raced with) bound the build as planned
    SKIPPED = "skipped"  # the build was taken, cancelled, changed or deleted meanwhile


@dataclass(frozen=True)
class Reserved:
    """What a reservation write got: (build, attempt, the reservation this call wrote or None if one was
    there already) for each build that has a slot; the worker as written (None if nothing was written);
    and why the others got none."""

    slots: list[tuple[Build, int, Reservation | None]]
    worker: Worker | None
    refusal: TransientError | None


@dataclass(frozen=True)
class Outcome:
    result: Result
    build: Build | None
    wrote: bool = False  # True when this call made the binding write (so it also posts the Event)


class Assigner:
    def __init__(self, gateway: Gateway, clock: Callable[[], datetime]) -> None:
        self.gateway = gateway
        self.clock = clock

    def assign(self, plan: Assignment, snapshot: Snapshot, cached: Worker | None = None) -> Outcome:
        """`snapshot` (the watch cache) only judges which reservations are stale; see reservations.py."""
        reserved = self.reserve(plan.worker, [(plan.build, plan.attempt)], snapshot, cached)
        return self.bind(plan.build, plan.worker, plan.attempt, held=reserved.slots[0][2])

    def reserve(
        self,
        worker_name: str,
        wanted: Sequence[tuple[Build, int]],
        snapshot: Snapshot,
        cached: Worker | None = None,
    ) -> Reserved:
        """Hold a slot on the worker for each (build, attempt) that fits, in one write that also sets the
        worker's activeBuilds. `cached`: the worker as the watch cache has it; its resourceVersion guards
        the write, so no read is needed unless someone changed the worker since (a 409: re-read and
        re-check). Builds that do not fit are left out; raises TransientError if none fits."""
        worker = cached if cached is not None else self._read_worker(worker_name)
        for _ in range(MAX_CONFLICTS):
            view = view_worker(worker, snapshot)
            free = view.free
            slots: list[tuple[Build, int, Reservation | None]] = []
            new: list[Reservation] = []
            refusal: TransientError | None = None
            for build, attempt in wanted:
                # Any reservation for this attempt, stale or not: adding a second would let the same
                # finished build be counted twice. An in-flight one is completed (rolled forward).
                if any(_is_for(r, build, attempt) for r in worker.status.reservations):
                    slots.append((build, attempt, None))
                elif not eligible(worker, build) or not view.schedulable:
                    refusal = TransientError(
                        f"worker {worker_name} is no longer Ready or eligible",
                        reason=WaitReason.WORKER_NOT_READY,
                    )
                elif free <= 0:
                    refusal = TransientError(
                        f"worker {worker_name} has no free slot", reason=WaitReason.WORKER_BUSY
                    )
                else:
                    held = self._reservation(build, attempt)
                    new.append(held)
                    slots.append((build, attempt, held))
                    free -= 1
            if not new:
                if slots or refusal is None:
                    return Reserved(slots, None, refusal)
                raise refusal
            # Stale reservations go in the same write, and the builds that finished here are counted
            # in it, as release_stale does: the write is conditional, so each is counted once.
            succeeded, failed = finished_here(view, snapshot)
            status = worker.status.model_copy(
                update={
                    "reservations": [*view.live, *new],
                    "active_builds": view.load + len(new),
                    "builds_succeeded": worker.status.builds_succeeded + succeeded,
                    "builds_failed": worker.status.builds_failed + failed,
                }
            )
            try:
                written = self.gateway.write_worker_status(worker, status)
                return Reserved(slots, written, refusal)
            except Conflict:
                worker = self._read_worker(worker_name)
        raise Conflict(f"worker {worker_name} kept changing; will retry", reason=WaitReason.WORKER_BUSY)

    def bind(
        self, build: Build, worker_name: str, attempt: int, *, held: Reservation | None = None
    ) -> Outcome:
        """Bind the build to the worker at `attempt`, guarded by the build's resourceVersion. `held`: the
        reservation this operator just wrote, if it wrote one (see _lost)."""
        expected = self._reservation(build, attempt)
        for _ in range(MAX_CONFLICTS):
            if not can_roll_forward(expected, build):
                return self._lost(build, worker_name, attempt, held=held)
            try:
                bound = self.gateway.write_build_status(
                    build,
                    transitions.assigned(build, worker_name, attempt, self.clock()),
                    leave=AGENT_STATUS_FIELDS,
                )
                return Outcome(Result.ASSIGNED, bound, wrote=True)
            except Conflict:
                try:
                    build = self.gateway.get_build(build.namespace, build.name)
                except NotFound:
                    self.release(worker_name, expected)
                    return Outcome(Result.SKIPPED, None)
                if build.uid != expected.uid:
                    self.release(worker_name, expected)
                    return Outcome(Result.SKIPPED, build)
        raise Conflict(f"build {build.namespace}/{build.name} kept changing; will retry", reason="Conflict")

    def _lost(
        self, build: Build, worker_name: str, attempt: int, *, held: Reservation | None = None
    ) -> Outcome:
        status = build.status
        if status.attempt == attempt and status.worker_name == worker_name:
            if held is not None and status.assigned_at is not None and status.assigned_at < held.reserved_at:
                # Bound here before we reserved, yet the worker had no reservation for it: the planner's
                # cache was so stale that the build had run (even finished) and its slot was released.
                # Ours is surplus (and never counted: see finished_here). Bound after: we were completed.
                self.release(worker_name, self._reservation(build, attempt))
            return Outcome(Result.ASSIGNED, build)  # someone completed an assignment to this worker
        self.release(worker_name, self._reservation(build, attempt))
        return Outcome(Result.SKIPPED, build)

    def release(self, worker_name: str, reservation: Reservation) -> None:
        """Give a slot back. Best effort: a reservation left behind is found stale and released later."""
        try:
            for _ in range(MAX_CONFLICTS):
                worker = self._read_worker(worker_name)
                keep = [r for r in worker.status.reservations if not _same_slot(r, reservation)]
                if len(keep) == len(worker.status.reservations):
                    return
                try:
                    self.gateway.write_worker_status(
                        worker, worker.status.model_copy(update={"reservations": keep})
                    )
                    return
                except Conflict:
                    continue
        except (TransientError, NotFound) as exc:
            log.info(
                "Left reservation of %s/%s on %s for later: %s",
                reservation.namespace,
                reservation.name,
                worker_name,
                exc,
                extra=about(
                    namespace=reservation.namespace,
                    name=reservation.name,
                    attempt=reservation.attempt,
                    worker=worker_name,
                ),
            )

    def release_stale(self, worker: Worker, snapshot: Snapshot) -> Worker | None:
        """Drop the worker's stale reservations, count the builds that finished there, and refresh its
        active count, in one write guarded by the worker's resourceVersion; None if nothing changed."""
        view = view_worker(worker, snapshot)
        if not view.stale and worker.status.active_builds == view.load:
            return None
        succeeded, failed = finished_here(view, snapshot)
        status = worker.status.model_copy(
            update={
                "reservations": list(view.live),
                "active_builds": view.load,
                "builds_succeeded": worker.status.builds_succeeded + succeeded,
                "builds_failed": worker.status.builds_failed + failed,
            }
        )
        return self.gateway.write_worker_status(worker, status)

    def _reservation(self, build: Build, attempt: int) -> Reservation:
        return Reservation(
            namespace=build.namespace,
            name=build.name,
            uid=build.uid,
            attempt=attempt,
            reserved_at=self.clock(),
        )

    def _read_worker(self, name: str) -> Worker:
        try:
            return self.gateway.get_worker(name)
        except NotFound:
            raise TransientError(f"worker {name} is gone", reason=WORKER_GONE) from None


def _is_for(reservation: Reservation, build: Build, attempt: int) -> bool:
    return reservation.uid == build.uid and reservation.attempt == attempt


def _same_slot(a: Reservation, b: Reservation) -> bool:
    return (a.namespace, a.name, a.uid, a.attempt) == (b.namespace, b.name, b.uid, b.attempt)
