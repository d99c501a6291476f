"""Admission: a new Build is checked for what no retry could fix (its credentials Secret exists), or failed
with a reason. It writes nothing when the check passes: the scheduler takes the build from there, straight
to Assigned when a worker is free, or Pending with its reason when it must wait. A build that names no
Secret needs no admission at all.

Two callers, one path: kopf's admission handler (on create and on resume) and the scheduler's periodic
pass, which checks any build its handler dropped (reconcile by level). Admissions in flight are bounded,
and they run on their own threads so the scheduler never queues behind them.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from buildfarm.api.builds import Build
from buildfarm.errors import NotFound, PermanentError, TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.outcomes import Reporter

log = logging.getLogger(__name__)

CREDENTIALS_NOT_FOUND = "CredentialsNotFound"


class Admissions:
    def __init__(self, gateway: Gateway, reporter: Reporter, *, limit: int, timeout: float) -> None:
        self.gateway = gateway
        self.reporter = reporter
        self.timeout = timeout
        self._slots = asyncio.Semaphore(limit)
        self._threads = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="buildfarm-admit")
        self._in_flight: set[str] = set()

    def in_flight(self, uid: str) -> bool:
        return uid in self._in_flight

    async def admit(self, build: Build) -> bool:
        """Check `build`; True if it may be scheduled (its Secret exists, or it names none), False if it
        was admitted already (it has a phase).

        Raises TransientError (retry later; also on timeout) or PermanentError (the build was failed
        with its reason). The deadline covers the work, not the wait for a free admission slot.
        """
        if build.status.phase is not None:
            return False
        if build.spec.credentials is None:
            return True
        self._in_flight.add(build.uid)
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(self._threads, self._check, build)
                try:
                    await asyncio.wait_for(future, timeout=self.timeout)
                except TimeoutError:
                    raise TransientError(
                        f"admitting build {build.namespace}/{build.name} took longer than {self.timeout:g}s "
                        "(BUILDFARM_HANDLER_TIMEOUT)",
                        reason="ApiUnavailable",
                    ) from None
            return True
        finally:
            self._in_flight.discard(build.uid)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _check(self, build: Build) -> None:
        try:
            self._check_credentials(build)
        except PermanentError as exc:
            with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to fail
                self.reporter.fail(build, exc)
            raise

    def _check_credentials(self, build: Build) -> None:
        if build.spec.credentials is None:
            return
        name = build.spec.credentials.secret_name
        if not self.gateway.secret_exists(build.namespace, name):
            raise PermanentError(
                f"Secret {name} with the signing credentials does not exist in namespace {build.namespace}: "
                f"create it, then re-create the build (`kubectl delete build {build.name}`, then apply it "
                "again); the API server keeps a failed build failed.",
                reason=CREDENTIALS_NOT_FOUND,
            )
