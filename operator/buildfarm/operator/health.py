"""The worker health monitor (after Kubernetes' node lifecycle controller): every few seconds it reads
the workers' heartbeat Leases and writes each Worker's Ready condition from them. The operator is the only
writer of Ready; agents only renew their Lease. The scheduler requeues the builds of a worker that stays
not Ready (see domain/scheduling.py), so this loop never touches a Build.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from buildfarm.api.meta import Condition
from buildfarm.api.workers import READY, Worker
from buildfarm.domain.conditions import set_condition
from buildfarm.domain.health import readiness, should_write
from buildfarm.errors import BuildfarmError, Conflict, NotFound
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.store import Store
from buildfarm.telemetry.logs import about

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(
        self,
        store: Store,
        gateway: Gateway,
        clock: Callable[[], datetime],
        *,
        farm_namespace: str,
        grace: timedelta,
        startup_grace: timedelta,
        call_timeout: float,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.farm_namespace = farm_namespace
        self.grace = grace
        self.startup_grace = startup_grace
        self.call_timeout = call_timeout
        self.period = min(5.0, grace.total_seconds() / 4)
        self.started = clock()

    def in_startup_grace(self, now: datetime) -> bool:
        return now - self.started < self.startup_grace

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(asyncio.to_thread(self.check), timeout=self.call_timeout)
            except BuildfarmError as exc:
                log.warning("Could not check worker heartbeats: %s", exc.message)
            except TimeoutError:
                log.warning("Checking worker heartbeats took longer than %gs; will retry", self.call_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(self.period)

    def check(self) -> None:
        """One pass: read the Leases, write every Ready condition that changed."""
        if not self.store.synced:
            return
        beats = self.gateway.list_heartbeats(self.farm_namespace)
        now = self.clock()
        for worker in self.store.snapshot(now).workers:
            verdict = readiness(beats.get(worker.name), now=now, grace=self.grace)
            current = worker.condition(READY)
            if not should_write(
                current.status if current else None, verdict, in_startup_grace=self.in_startup_grace(now)
            ):
                continue
            conditions = set_condition(
                worker.status.conditions,
                type_=READY,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message,
                generation=worker.generation,
                now=now,
            )
            self._write(worker, conditions, verdict.reason)

    def _write(self, worker: Worker, conditions: list[Condition], reason: str) -> None:
        try:
            updated = self.gateway.write_worker_status(
                worker, worker.status.model_copy(update={"conditions": conditions})
            )
        except (Conflict, NotFound):
            return  # the worker changed or went: the next pass judges it again
        log.info(
            "Worker %s is %s Ready (%s)", worker.name, _word(updated), reason, extra=about(worker=worker.name)
        )
        self.store.observe_worker(updated)


def _word(worker: Worker) -> str:
    condition = worker.condition(READY)
    return {"True": "now", "False": "not", "Unknown": "not known to be"}.get(
        str(condition.status) if condition else "", "not"
    )
