"""The scheduling loop: woken by watch events (a new Build, a Worker gaining a free slot or becoming
Ready), it takes a snapshot of the store, asks the pure scheduler for a plan, and carries it out through
the assignment protocol. No per-build polling: a periodic pass is the safety net that reconciles by level
(builds whose admission was dropped, reservations and assignments whose objects are gone).

It plans only from a complete view: before its first cycle it LISTs every Build and Worker it serves.
"""

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from buildfarm.api.builds import Build
from buildfarm.api.workers import READY, Worker
from buildfarm.domain import transitions
from buildfarm.domain.scheduling import Assignment, Plan, Snapshot, WaitReason, admission_overdue, schedule
from buildfarm.errors import BuildfarmError, Conflict, NotFound, PermanentError, TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.admission import Admissions
from buildfarm.operator.assignment import WORKER_GONE, Assigner, Result
from buildfarm.operator.evidence import Evidence
from buildfarm.operator.outcomes import Reporter
from buildfarm.operator.store import Store
from buildfarm.telemetry import operator as metrics
from buildfarm.telemetry.logs import about_build

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
# Steps in flight at once: assignments to different workers, and wait-reason writes. Each is a few
# conditional writes; one at a time capped the rate near a quarter of what the API server takes.
IN_FLIGHT = 8
STEP_THREADS = IN_FLIGHT + 2  # a timed-out step keeps its thread until its own API timeout ends it
# Threads that post the Assigned Events. An Event is a courtesy that follows the binding write: posted off
# the assignment's path, it no longer delays the next assignment to the same worker, or the next cycle.
# With 2, both were busy for the whole of a large backlog (py-spy) and capped it; 4 keep up.
EVENT_THREADS = 4
# Events waiting to be posted at most; beyond that, assignments wait for them (bounded memory, and a stop
# that posts what is pending in bounded time).
EVENTS_PENDING = 64
# Waiting for a worker is the protocol at work, not a problem worth an INFO line per attempt.
_QUIET_REASONS = frozenset({WaitReason.WORKER_BUSY, WaitReason.WORKER_NOT_READY, WORKER_GONE, "Conflict"})


class Scheduler:
    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        assigner: Assigner,
        reporter: Reporter,
        admissions: Admissions,
        clock: Callable[[], datetime],
        *,
        call_timeout: float,
        resync_seconds: float,
        backoff_seconds: float,
        requeue_delay: timedelta = timedelta(0),
        deadline_grace: timedelta = timedelta(minutes=5),
        in_startup_grace: Callable[[datetime], bool] = lambda _: False,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.assigner = assigner
        self.reporter = reporter
        self.admissions = admissions
        self.evidence = Evidence(gateway, store)
        self.clock = clock
        self.call_timeout = call_timeout
        self.resync_seconds = resync_seconds
        self.backoff_seconds = backoff_seconds
        # A build its admission handler has not admitted after this long is admitted by the loop.
        self.admission_grace = timedelta(seconds=resync_seconds)
        self.requeue_delay = requeue_delay
        self.deadline_grace = deadline_grace
        self.in_startup_grace = in_startup_grace
        self._wake = asyncio.Event()
        self._failures = 0
        self._threads = ThreadPoolExecutor(max_workers=STEP_THREADS, thread_name_prefix="buildfarm-sched")
        self._events = ThreadPoolExecutor(max_workers=EVENT_THREADS, thread_name_prefix="buildfarm-events")
        self._events_pending = threading.BoundedSemaphore(EVENTS_PENDING)

    def kick(self) -> None:
        """Ask for a scheduling cycle soon; many kicks before it runs make one cycle."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                changes = self.store.changes
                try:
                    with metrics.SCHEDULING_CYCLE.time():
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
                if self.store.changes != changes:
                    self.kick()  # the cycle's own writes, or events meanwhile: plan again from them
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.resync_seconds)
                self._wake.clear()
        finally:
            self.close()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        # Not cancelled: an assignment made is announced, also when the operator stops right after it.
        self._events.shutdown(wait=False)

    async def cycle(self) -> bool:
        """One pass over the queue; True if something failed transiently and deserves a retry."""
        if not self.store.synced:
            await self._guard(self._sync)
            if not self.store.synced:
                return True
        snapshot, plan = self._plan()
        transient, gone_workers = await self._gather_evidence(plan)
        if plan.orphans or any(view.unconfirmed for view in plan.workers.values()):
            snapshot, plan = self._plan()  # again, with what the reads established
        for build in plan.cancellations:
            transient |= await self._guard(self.reporter.cancel, build)
        by_worker: dict[str, list[Assignment]] = {}
        for assignment in plan.assignments:
            by_worker.setdefault(assignment.worker, []).append(assignment)
        transient |= await self._guard_all(
            [(self._assign, group, plan.workers[name].worker, snapshot) for name, group in by_worker.items()]
        )
        # Only the builds whose wait is news: the rest of a long queue costs nothing per cycle.
        transient |= await self._guard_all(
            [
                (self._wait, waiting.build, waiting.reason, waiting.message)
                for waiting in plan.waiting
                if transitions.wait_is_news(waiting.build, waiting.reason)
            ]
        )
        for view in plan.workers.values():
            if view.stale or view.worker.status.active_builds != view.load:
                transient |= await self._guard(self._release_stale, view.worker, snapshot)
        for build in plan.orphans:
            if build.status.worker_name in gone_workers:
                why = f"Worker {build.status.worker_name} does not exist"
                transient |= await self._guard(self.reporter.worker_lost, build, why)
        for build in plan.lost:
            why = f"Worker {build.status.worker_name} is not Ready ({_ready_reason(plan, build)})"
            transient |= await self._guard(self.reporter.worker_lost, build, why)
        for build in plan.overdue:
            transient |= await self._guard(self.reporter.deadline_exceeded, build)
        for build in plan.expired:
            transient |= await self._guard(self._expire, build)
        transient |= await self._admit_overdue(plan.unadmitted, snapshot.now)
        return transient

    def _plan(self) -> tuple[Snapshot, Plan]:
        now = self.clock()
        snapshot = dataclasses.replace(
            self.store.snapshot(now),
            requeue_delay=None if self.in_startup_grace(now) else self.requeue_delay,
            deadline_grace=self.deadline_grace,
        )
        return snapshot, schedule(snapshot)

    async def _gather_evidence(self, plan: Plan) -> tuple[bool, set[str]]:
        """Read what the plan could not judge from the cache; the names of workers found gone."""
        transient = False
        seen: set[str] = set()
        for view in plan.workers.values():
            for reservation in view.unconfirmed:
                if reservation.uid not in seen:
                    seen.add(reservation.uid)
                    transient |= await self._guard(self.evidence.confirm_build, reservation)
        gone: set[str] = set()
        for name in sorted({b.status.worker_name for b in plan.orphans}):
            transient |= await self._guard(self._note_if_gone, name, gone)
        return transient, gone

    def _note_if_gone(self, worker: str, gone: set[str]) -> None:
        if self.evidence.worker_gone(worker):
            gone.add(worker)

    async def _admit_overdue(self, unadmitted: Sequence[Build], now: datetime) -> bool:
        overdue = [
            b
            for b in unadmitted
            if admission_overdue(b, now, self.admission_grace) and not self.admissions.in_flight(b.uid)
        ]
        if not overdue:
            return False
        log.info("Admitting %d build(s) whose admission handler did not", len(overdue))
        results = await asyncio.gather(*(self.admissions.admit(b) for b in overdue), return_exceptions=True)
        transient = False
        for build, result in zip(overdue, results, strict=True):
            if result is True:
                self.store.credentials_checked(build.uid)
                self.kick()
            elif isinstance(result, TransientError):
                transient = True
            elif isinstance(result, BaseException) and not isinstance(result, PermanentError):
                raise result
        return transient

    def _sync(self) -> None:
        """The initial LIST: until it is merged, the store may lack busy builds and reservations' builds."""
        namespaces: list[str | None] = [*sorted(self.store.namespaces)] if self.store.namespaces else [None]
        # A page at a time: the cache keeps a compact copy of each build, never every raw object at once.
        builds = (b for ns in namespaces for page in self.gateway.build_pages(ns) for b in page)

        def workers() -> Iterator[Worker]:  # listed after the builds, as before
            yield from self.gateway.list_workers()

        listed, listed_workers = self.store.merge_listing(builds, workers())
        log.info("Listed %d build(s) and %d worker(s); scheduling starts", listed, listed_workers)

    async def _guard_all(self, steps: Sequence[tuple[Any, ...]]) -> bool:
        """Run (step, *args) tuples, at most IN_FLIGHT at once; True if any failed transiently."""
        pending = iter(steps)
        failed = False

        async def runner() -> None:  # IN_FLIGHT runners share one iterator: no coroutine per step
            nonlocal failed
            for step, *args in pending:
                failed |= await self._guard(step, *args)

        await asyncio.gather(*(runner() for _ in range(min(IN_FLIGHT, len(steps)))))
        return failed

    async def _guard(self, step: Callable[..., object], *args: Any) -> bool:
        """Run one blocking step in a thread with a deadline; classify what it raises."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._threads, step, *args), timeout=self.call_timeout
            )
        except TransientError as exc:
            level = logging.DEBUG if exc.reason in _QUIET_REASONS else logging.INFO
            log.log(level, "Will retry: %s", exc.message)
            return True
        except TimeoutError:
            log.warning(
                "A scheduling step took longer than %gs (BUILDFARM_HANDLER_TIMEOUT); it will be retried",
                self.call_timeout,
            )
            return True
        except NotFound:
            return False
        return False

    def _assign(self, group: list[Assignment], cached: Worker, snapshot: Snapshot) -> None:
        """Carry out the plan's assignments to one worker: one reservation write for all of them (guarded
        by the cached worker's resourceVersion), then each build's binding write and its Event."""
        worker = group[0].worker
        try:
            reserved = self.assigner.reserve(worker, [(a.build, a.attempt) for a in group], snapshot, cached)
        except Conflict:
            raise  # someone else moved first: the next cycle re-plans from fresh state, quietly
        except TransientError as exc:
            if exc.reason == WORKER_GONE:
                self.store.forget_worker(worker)
            for assignment in group:
                self._wait(assignment.build, exc.reason, exc.message)
            raise
        if reserved.worker is not None:
            self.store.observe_worker(reserved.worker)
        retry: BuildfarmError | None = reserved.refusal
        for build, attempt, held in reserved.slots:
            try:
                outcome = self.assigner.bind(build, worker, attempt, held=held)
            except PermanentError as exc:
                self.reporter.fail(build, exc)
                continue
            except (TransientError, NotFound) as exc:
                retry = exc  # the others still go ahead; the next cycle retries this one
                continue
            if outcome.build is not None:
                self.store.observe_build(outcome.build)
            if outcome.result is Result.ASSIGNED and outcome.wrote and outcome.build is not None:
                self._events_pending.acquire()
                try:
                    self._events.submit(self._announce, outcome.build)
                except RuntimeError:  # stopping: the pool takes no more; announce it here
                    self._announce(outcome.build)
        if isinstance(retry, TransientError):
            raise retry

    def _announce(self, build: Build) -> None:
        try:
            self.reporter.assigned(build)
        except Exception:  # nobody awaits this thread: say what went wrong here
            log.exception("Could not announce the assignment of %s/%s", build.namespace, build.name)
        finally:
            self._events_pending.release()

    def _wait(self, build: Build, reason: str, message: str) -> None:
        written = self.reporter.waiting(build, reason, message)
        if written is not None:
            self.store.observe_build(written)

    def _expire(self, build: Build) -> None:
        self.assigner.gateway.delete_build(build)
        log.info(
            "Deleted build %s/%s: its ttlSecondsAfterFinished passed",
            build.namespace,
            build.name,
            extra=about_build(build),
        )

    def _release_stale(self, worker: Worker, snapshot: Snapshot) -> None:
        # The cached worker's resourceVersion guards the write; if it is stale the write conflicts and
        # the next cycle, with a fresher cache, tries again.
        updated = self.assigner.release_stale(worker, snapshot)
        if updated is not None:
            self.store.observe_worker(updated)


def _ready_reason(plan: Plan, build: Build) -> str:
    view = plan.workers.get(build.status.worker_name)
    condition = view.worker.condition(READY) if view else None
    return f"{condition.reason}: {condition.message}".rstrip(": ") if condition else "no Ready condition"
