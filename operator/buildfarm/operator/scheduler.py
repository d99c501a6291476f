"""The scheduling loop: woken by watch events (a new Build, a Worker gaining a free slot or becoming
Ready), it takes a snapshot of the store, asks the pure scheduler for a plan, and carries it out through
the assignment protocol. No per-build polling: a periodic resync is only a safety net.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from buildfarm.api.workers import Worker
from buildfarm.domain.scheduling import Assignment, Snapshot, schedule
from buildfarm.errors import Conflict, NotFound, PermanentError, TransientError
from buildfarm.operator.assignment import WORKER_GONE, Assigner, Result
from buildfarm.operator.outcomes import Reporter
from buildfarm.operator.store import Store

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


class Scheduler:
    def __init__(
        self,
        store: Store,
        assigner: Assigner,
        reporter: Reporter,
        clock: Callable[[], datetime],
        *,
        call_timeout: float,
        resync_seconds: float,
        backoff_seconds: float,
    ) -> None:
        self.store = store
        self.assigner = assigner
        self.reporter = reporter
        self.clock = clock
        self.call_timeout = call_timeout
        self.resync_seconds = resync_seconds
        self.backoff_seconds = backoff_seconds
        self._wake = asyncio.Event()
        self._failures = 0

    def kick(self) -> None:
        """Ask for a scheduling cycle soon; many kicks before it runs make one cycle."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.resync_seconds)
            self._wake.clear()
            try:
                transient = await self.cycle()
            except Exception:
                log.exception("Scheduling cycle failed; retrying after a backoff")
                transient = True
            if transient:
                self._failures += 1
                delay = min(MAX_BACKOFF, self.backoff_seconds * 2 ** min(self._failures - 1, 5))
                asyncio.get_running_loop().call_later(delay, self.kick)
            else:
                self._failures = 0

    async def cycle(self) -> bool:
        """One pass over the queue; True if something failed transiently and deserves a retry."""
        snapshot = self.store.snapshot(self.clock())
        plan = schedule(snapshot)
        transient = False
        for build in plan.cancellations:
            transient |= await self._guard(self.reporter.cancel_pending, build)
        for assignment in plan.assignments:
            transient |= await self._guard(self._assign, assignment, snapshot)
        for waiting in plan.waiting:
            transient |= await self._guard(
                self.reporter.waiting, waiting.build, waiting.reason, waiting.message
            )
        for view in plan.workers.values():
            if view.stale or view.worker.status.active_builds != view.load:
                transient |= await self._guard(self._release_stale, view.worker, snapshot)
        return transient

    async def _guard(self, step: Callable[..., object], *args: object) -> bool:
        """Run one blocking step in a thread with a deadline; classify what it raises."""
        try:
            await asyncio.wait_for(asyncio.to_thread(step, *args), timeout=self.call_timeout)
        except Conflict as exc:
            log.debug("Conflict, will re-check: %s", exc.message)
            return True
        except TransientError as exc:
            log.info("Transient: %s", exc.message)
            return True
        except TimeoutError:
            log.warning("A scheduling step took longer than %.0fs; it will be retried", self.call_timeout)
            return True
        except NotFound:
            return False
        return False

    def _assign(self, assignment: Assignment, snapshot: Snapshot) -> None:
        try:
            outcome = self.assigner.assign(assignment, snapshot)
        except PermanentError as exc:
            self.reporter.fail(assignment.build, exc)
            return
        except Conflict:
            raise  # someone else moved first: the next cycle re-plans from fresh state, quietly
        except TransientError as exc:
            if exc.reason == WORKER_GONE:
                self.store.forget_worker(assignment.worker)
            self.reporter.waiting(assignment.build, exc.reason, exc.message)
            raise
        if outcome.build is not None:
            self.store.observe_build(outcome.build)
        if outcome.result is Result.ASSIGNED and outcome.wrote and outcome.build is not None:
            self.reporter.assigned(outcome.build)

    def _release_stale(self, worker: Worker, snapshot: Snapshot) -> None:
        # The cached worker's resourceVersion guards the write; if it is stale the write conflicts and
        # the next cycle, with a fresher cache, tries again.
        updated = self.assigner.release_stale(worker, snapshot)
        if updated is not None:
            self.store.observe_worker(updated)
