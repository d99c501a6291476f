"""The supervisor: watches the builds assigned to this worker and runs at most `capacity` of them at
once. It reconciles by level: every watch event and every relist (each relist_seconds) feeds the same
decision (domain.fencing.decide), so a missed event is caught by the next relist.

On a graceful stop it takes nothing new, hands back what it has not started, lets running builds finish
for the stop grace period, then hands back the rest."""

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from buildfarm.agent.build_run import BuildRun, Why
from buildfarm.agent.executors.base import Executor
from buildfarm.agent.fenced import FencedWriter, Lost
from buildfarm.agent.settings import AgentSettings
from buildfarm.api.builds import Build, BuildPhase, BuildStatus
from buildfarm.domain import runs
from buildfarm.domain.fencing import Action, Token, decide
from buildfarm.errors import BuildfarmError, NotFound
from buildfarm.kube.agent_gateway import AgentGateway
from buildfarm.kube.gateway import Gateway
from buildfarm.telemetry.logs import about_build

log = logging.getLogger(__name__)

BACKOFF_MAX = 30.0


class Supervisor:
    def __init__(
        self,
        settings: AgentSettings,
        gateway: Gateway,
        agent_gateway: AgentGateway,
        executor: Executor,
        clock: Callable[[], datetime],
        capacity: int,
    ) -> None:
        self.settings = settings
        self.worker = settings.worker_name
        self.gateway = gateway
        self.agent_gateway = agent_gateway
        self.executor = executor
        self.clock = clock
        self.capacity = capacity
        self.runs: dict[str, BuildRun] = {}
        self._waiting: dict[str, Build] = {}  # assigned here, not started for want of a slot
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch_loop, name="watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # Reconciling

    def reconcile(self, build: Build | None, key: str) -> None:
        with self._lock:
            run = self.runs.get(key)
            action = decide(build, self.worker, run.token if run is not None else None)
            if action is Action.STOP and run is not None:
                run.request_stop(Why.LOST)
                return
            if action is Action.CANCEL_RUNNING and run is not None:
                run.request_stop(Why.CANCEL)
                return
            if build is None:
                self._waiting.pop(key, None)
                return
            if action is Action.START:
                if self._stopping.is_set():
                    self._waiting.pop(key, None)
                    self._hand_back(build)
                elif len(self.runs) < self.capacity:
                    self._waiting.pop(key, None)
                    self._start(build)
                else:
                    self._waiting[key] = build
                return
            self._waiting.pop(key, None)
            if action is Action.CANCEL:
                self._write_unstarted(
                    build, BuildPhase.ASSIGNED, lambda b: runs.cancelled(b, "", self.clock()), "cancelled"
                )
            elif action is Action.ORPHANED:
                self._write_unstarted(
                    build, BuildPhase.RUNNING, lambda b: runs.orphaned(b, self.worker), "requeued (orphaned)"
                )

    def relist(self) -> str:
        """Reconcile every build assigned here, and every run the list no longer shows; returns the list's
        resourceVersion, for the watch."""
        try:
            capacity = self.agent_gateway.get_worker(self.worker).spec.capacity
            with self._lock:
                self.capacity = capacity
        except BuildfarmError as error:
            log.warning(
                "Could not read worker %s (keeping capacity %d): %s", self.worker, self.capacity, error
            )
        builds, version = self.agent_gateway.list_builds_on(self.worker)
        seen = {f"{b.namespace}/{b.name}" for b in builds}
        for build in builds:
            self.reconcile(build, f"{build.namespace}/{build.name}")
        with self._lock:
            gone = [key for key in list(self.runs) + list(self._waiting) if key not in seen]
        for key in gone:
            self.reconcile(self._read(key), key)
        return version

    def _watch_loop(self) -> None:
        backoff = 1.0
        while not self._closed.is_set():
            try:
                version = self.relist()
                for event in self.agent_gateway.watch_builds_on(
                    self.worker, version, self.settings.relist_seconds
                ):
                    if self._closed.is_set():
                        return
                    key = f"{event.build.namespace}/{event.build.name}"
                    if event.type == "DELETED":
                        self.reconcile(self._read(key), key)  # deleted, or no longer ours: look
                    else:
                        self.reconcile(event.build, key)
                backoff = 1.0
            except BuildfarmError as error:
                if self._closed.is_set():
                    return  # the agent is exiting and closed the connections under this thread
                log.warning(
                    "Watching builds of %s failed, listing again in %.0fs: %s", self.worker, backoff, error
                )
                self._closed.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception:
                if self._closed.is_set():
                    return
                log.exception("The watch of builds of %s failed unexpectedly.", self.worker)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _read(self, key: str) -> Build | None:
        namespace, name = key.split("/", 1)
        try:
            return self.gateway.get_build(namespace, name)
        except NotFound:
            return None

    # Runs

    def _start(self, build: Build) -> None:
        run = BuildRun(
            build,
            settings=self.settings,
            gateway=self.gateway,
            executor=self.executor,
            clock=self.clock,
            on_done=self._done,
        )
        self.runs[run.key] = run
        run.start()

    def _done(self, run: BuildRun) -> None:
        with self._lock:
            if self.runs.get(run.key) is run:
                del self.runs[run.key]
            if self._stopping.is_set():
                return
            # A slot is free: start the longest-waiting build (the run re-reads it before writing).
            for key, build in list(self._waiting.items()):
                if len(self.runs) >= self.capacity:
                    break
                del self._waiting[key]
                if key not in self.runs:
                    self._start(build)

    def _write_unstarted(
        self, build: Build, phase: BuildPhase, change: Callable[[Build], BuildStatus], what: str
    ) -> None:
        """A fenced write to a build this agent does not run, made only while it is still in `phase`."""
        writer = FencedWriter(self.gateway, build.namespace, build.name, Token.of(build))
        about = about_build(build)
        try:
            writer.write(lambda b: change(b) if b.status.phase == phase else None)
            log.info("Build %s/%s %s.", build.namespace, build.name, what, extra=about)
        except Lost as lost:
            log.info("Left build %s/%s alone: %s", build.namespace, build.name, lost, extra=about)
        except BuildfarmError as error:
            log.warning(
                "Could not write build %s/%s (next relist tries again): %s",
                build.namespace,
                build.name,
                error,
                extra=about,
            )

    def _hand_back(self, build: Build) -> None:
        self._write_unstarted(
            build,
            BuildPhase.ASSIGNED,
            lambda b: runs.handed_back(b, self.worker, self.clock()),
            "handed back",
        )

    # Stopping

    def drain(self, grace: float, hurry: threading.Event) -> None:
        """Take nothing new, hand back what waits, give running builds `grace` seconds (or until `hurry`
        is set), then hand back the rest and wait until their processes are gone."""
        self._stopping.set()
        with self._lock:
            waiting = list(self._waiting.values())
            self._waiting.clear()
        for build in waiting:
            self._hand_back(build)
        deadline = time.monotonic() + grace
        while not hurry.is_set() and time.monotonic() < deadline:
            with self._lock:
                if not self.runs:
                    break
            hurry.wait(0.2)
        with self._lock:
            remaining = list(self.runs.values())
        for run in remaining:
            log.info("Handing back %s.", run.key, extra=about_build(run.build))
            run.request_stop(Why.HANDBACK)
        for run in remaining:
            run.join()
        self._closed.set()
        # Let a relist in flight end before the caller closes the connections; a watch blocked on a
        # quiet stream is left behind (a daemon thread, gone with the process).
        self._thread.join(timeout=2)

    def close(self) -> None:
        self._closed.set()
