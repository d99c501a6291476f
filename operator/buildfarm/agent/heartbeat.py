"""The heartbeat: a Lease named after the Worker in the farm's namespace, renewed on its own thread (as a
kubelet renews its Lease in kube-node-lease), so a busy build never delays it. Failures are logged and
retried at the next tick; on a graceful stop the Lease is released (holderIdentity "")."""

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from buildfarm.errors import BuildfarmError, Conflict, NotFound, PermanentError
from buildfarm.kube.leases import Lease, Leases
from buildfarm.telemetry import agent as metrics

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        leases: Leases,
        *,
        namespace: str,
        name: str,
        duration_seconds: int,
        interval_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.leases = leases
        self.namespace = namespace
        self.name = name
        self.duration = duration_seconds
        self.interval = interval_seconds
        self.clock = clock
        self._lease: Lease | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        """Take the Lease, then keep renewing it. The first renewal must succeed: a missing namespace
        or missing permissions are fixed by a person, so the agent stops with one line saying what."""
        try:
            self._lease = self._renew()
        except NotFound:
            raise PermanentError(
                f"the namespace {self.namespace} for the agent's Lease does not exist: create it "
                f"(`kubectl create namespace {self.namespace}`) or set BUILDFARM_AGENT_NAMESPACE"
            ) from None
        except BuildfarmError as error:
            raise PermanentError(f"cannot take the Lease {self.namespace}/{self.name}: {error}") from None
        self._thread.start()

    def beat(self) -> bool:
        """Create or renew the Lease once; False (and logged) if that failed."""
        try:
            with metrics.LEASE_RENEW_SECONDS.time():
                self._lease = self._renew()
        except BuildfarmError as error:
            metrics.LEASE_RENEW_FAILURES.inc()
            if not self._failing:
                log.warning("Could not renew lease %s/%s: %s", self.namespace, self.name, error)
            self._failing = True
            self._lease = None  # read it again next time
            return False
        if self._failing:
            log.info("Renewed lease %s/%s again.", self.namespace, self.name)
        self._failing = False
        return True

    def stop(self, *, release: bool) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 30)
        if release:
            self._release()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def _renew(self) -> Lease:
        now = self.clock()
        lease = self._lease
        if lease is None:
            try:
                lease = self.leases.get(self.namespace, self.name)
            except NotFound:
                try:
                    return self.leases.create(self.namespace, self.name, self.name, self.duration, now)
                except Conflict:
                    lease = self.leases.get(self.namespace, self.name)
        try:
            return self.leases.renew(lease, self.name, self.duration, now)
        except Conflict:
            # Someone else wrote it (an administrator, or a second agent with this name): read, renew.
            fresh = self.leases.get(self.namespace, self.name)
            if fresh.holder not in ("", self.name):
                log.warning(
                    "Lease %s/%s was held by %r; taking it back.", self.namespace, self.name, fresh.holder
                )
            return self.leases.renew(fresh, self.name, self.duration, self.clock())

    def _release(self) -> None:
        for _ in range(3):
            try:
                lease = self._lease or self.leases.get(self.namespace, self.name)
                self._lease = None
                if lease.holder == self.name:
                    self.leases.release(lease)
                    log.info("Released lease %s/%s.", self.namespace, self.name)
                return
            except NotFound:
                return
            except BuildfarmError as error:
                log.warning("Could not release lease %s/%s: %s", self.namespace, self.name, error)
