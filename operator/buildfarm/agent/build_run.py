"""One build on this worker, from Assigned to a final phase (or handed back), on its own threads: the
executor runs the build while the monitor watches the deadline, cancel and the fencing token, writes the
log tail (at most once per log interval), and finally reports the outcome. Only the monitor writes."""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from pathlib import Path

from buildfarm.agent import artifacts, leftovers
from buildfarm.agent.executors.base import Executor, Job, Outcome
from buildfarm.agent.fenced import FencedWriter, Lost
from buildfarm.agent.logs import BuildLog
from buildfarm.agent.process import Processes, Stopped
from buildfarm.agent.settings import AgentSettings
from buildfarm.agent.sources import SourceError, git_env
from buildfarm.api.builds import TERMINAL_PHASES, Build, BuildPhase, BuildStatus
from buildfarm.domain import runs
from buildfarm.domain.fencing import Token
from buildfarm.errors import TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.telemetry import agent as metrics
from buildfarm.telemetry import logs

log = logging.getLogger(__name__)

TICK = 0.2
SOURCE_UNAVAILABLE = "SourceUnavailable"
AGENT_ERROR = "AgentError"
FINAL_WRITE_PATIENCE = 600.0  # seconds a final status is retried while the API is unavailable


class Why(Enum):
    CANCEL = "cancelled"
    DEADLINE = "deadline"
    HANDBACK = "handback"
    LOST = "lost"


class BuildRun:
    def __init__(
        self,
        build: Build,
        *,
        settings: AgentSettings,
        gateway: Gateway,
        executor: Executor,
        clock: Callable[[], datetime],
        on_done: Callable[["BuildRun"], None],
    ) -> None:
        self.build = build
        self.key = f"{build.namespace}/{build.name}"
        self.token = Token.of(build)
        self.settings = settings
        self.executor = executor
        self.clock = clock
        self.on_done = on_done
        self.writer = FencedWriter(gateway, build.namespace, build.name, self.token)
        self._why: Why | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=f"build-{self.key}", daemon=True)
        self._executing: threading.Thread | None = None
        self.workspace = settings.workspaces / f"{build.uid}-{self.token.attempt}"
        log_path = settings.logs / build.namespace / f"{build.name}-{self.token.attempt}.log"
        self.log = BuildLog(log_path)
        self.processes = Processes(
            self.log,
            self._env(),
            settings.kill_grace_seconds,
            record=self.workspace / leftovers.PROCESSES_FILE,
        )

    # Called by the supervisor

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, why: Why) -> None:
        """Stop the build for this reason; the first reason wins (a lost build stays lost)."""
        with self._lock:
            if self._why is None or why is Why.LOST:
                self._why = why

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # The run

    def _main(self) -> None:
        # Every line this thread logs (the run, its writes, its processes) is about this build.
        token = self.token
        with logs.context(
            namespace=self.build.namespace, name=self.build.name, attempt=token.attempt, worker=token.worker
        ):
            self._main_in_context()

    def _main_in_context(self) -> None:
        try:
            self._run()
        except Lost as lost:
            self._stop_now(Why.LOST)
            log.warning("Stopped %s and wrote nothing more: %s", self.key, lost)
        except TransientError as error:
            # Only the first write (Assigned -> Running) gets here: nothing ran yet, and the build is
            # still Assigned, so the next relist starts it again.
            log.warning("Could not start %s (the next relist tries again): %s", self.key, error)
        except Exception:
            log.exception("The run of %s failed unexpectedly.", self.key)
            self._stop_now(Why.LOST)
        finally:
            if self._executing is not None:
                self._executing.join(self.settings.kill_grace_seconds + 30)
            self.log.close()
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.on_done(self)

    def _run(self) -> None:
        started = self.writer.write(self._start)
        if started.status.phase == BuildPhase.CANCELLED:
            metrics.BUILDS.labels(str(BuildPhase.CANCELLED)).inc()
            log.info("Cancelled %s before it started.", self.key)
            return
        log.info("Started %s (attempt %d).", self.key, self.token.attempt)
        self.workspace.mkdir(parents=True, exist_ok=True)
        (self.workspace / "home").mkdir(exist_ok=True)
        (self.workspace / "tmp").mkdir(exist_ok=True)
        limit = started.spec.timeout_seconds
        if self.settings.max_build_seconds is not None:
            limit = min(limit, self.settings.max_build_seconds)
        deadline = time.monotonic() + limit
        job = Job(started, self.workspace, self.log, self.processes)
        result: dict[str, Outcome | BaseException] = {}
        worker = threading.Thread(
            target=self._execute, args=(job, result), name=f"exec-{self.key}", daemon=True
        )
        self._executing = worker
        worker.start()
        next_check = time.monotonic() + self.settings.log_interval_seconds
        written_version = -1
        while worker.is_alive():
            worker.join(TICK)
            if self._why is not None:
                self._stop_now(self._why)
            elif time.monotonic() >= deadline:
                self.log.say(f"The build ran out of time ({limit}s); stopping it.")
                self.request_stop(Why.DEADLINE)
            elif time.monotonic() >= next_check:
                next_check = time.monotonic() + self.settings.log_interval_seconds
                written_version = self._check_in(written_version)
        self._finish(started, limit, result.get("outcome"))

    def _execute(self, job: Job, result: dict[str, Outcome | BaseException]) -> None:
        try:
            result["outcome"] = self.executor.execute(job)
        except BaseException as error:  # reported by the monitor
            result["outcome"] = error

    def _start(self, build: Build) -> BuildStatus | None:
        if build.spec.cancel:
            return runs.cancelled(build, "", self.clock())
        if build.status.phase == BuildPhase.ASSIGNED:
            return runs.running(build, self.clock())
        return None  # already Running at this attempt: our own earlier write landed

    def _check_in(self, written_version: int) -> int:
        """Every log interval: read the build (token, cancel) and write the log tail if it moved on."""
        tail, version = self.log.tail()

        def change(build: Build) -> BuildStatus | None:
            if build.spec.cancel:
                self.request_stop(Why.CANCEL)
                return None
            if version == written_version or build.status.log_tail == tail:
                return None
            return runs.log_tail(build, tail)

        try:
            self.writer.write(change)
        except TransientError as error:
            log.info("Skipped a log tail write of %s: %s", self.key, error)
            return written_version
        return version

    def _stop_now(self, why: Why) -> None:
        """Stop the build's processes: a grace period for cancel, deadline and handback (as buildkite
        gives one); none when the build is no longer ours, so two workers never run it at once."""
        self.request_stop(why)
        why = self._why or why
        if self.processes.stopped is not None and why is not Why.LOST:
            return  # already stopped; new commands are refused
        self.processes.stop(why.value, grace=0 if why is Why.LOST else None)

    def _finish(self, started: Build, limit: int, outcome: Outcome | BaseException | None) -> None:
        why = self._why
        if why is Why.LOST:
            raise Lost(f"build {self.key} was taken away while it ran")
        if self.processes.stopped is None:
            why = None  # the build ended by itself before a stop reached it: report what it did
        tail, _ = self.log.tail()
        now = self.clock
        change: Callable[[Build], BuildStatus | None]
        if why is Why.CANCEL:
            change = lambda b: runs.cancelled(b, tail, now())  # noqa: E731
        elif why is Why.DEADLINE:
            message = f"The build did not finish within {limit}s and was stopped. Last lines:\n"
            message += runs.last_lines(tail, runs.FAILURE_LINES)
            change = lambda b: runs.failed(b, runs.DEADLINE_EXCEEDED, message, tail, now())  # noqa: E731
        elif why is Why.HANDBACK:
            change = lambda b: runs.handed_back(b, self.token.worker, now())  # noqa: E731
        elif isinstance(outcome, Outcome) and outcome.exit_code == 0:
            kept = artifacts.keep(self.workspace / "out", self.settings.artifacts, started)
            change = lambda b: runs.succeeded(b, kept, tail, now())  # noqa: E731
        elif isinstance(outcome, Outcome):
            message = runs.exit_message(outcome.exit_code, tail)
            change = lambda b: runs.failed(b, runs.BUILD_FAILED, message, tail, now())  # noqa: E731
        elif isinstance(outcome, SourceError):
            metrics.EXECUTOR_FAILURES.labels(SOURCE_UNAVAILABLE).inc()
            change = lambda b: runs.failed(b, SOURCE_UNAVAILABLE, str(outcome), tail, now())  # noqa: E731
        elif isinstance(outcome, Stopped):
            raise Lost(f"build {self.key} stopped without a reason")  # not reachable: a stop has a why
        else:
            metrics.EXECUTOR_FAILURES.labels(AGENT_ERROR).inc()
            text = f"The worker could not run the build: {type(outcome).__name__}: {outcome}"
            change = lambda b: runs.failed(b, AGENT_ERROR, text, tail, now())  # noqa: E731
        final = self.writer.write_until_done(change, give_up_after=FINAL_WRITE_PATIENCE)
        if final is not None:
            if final.status.phase in TERMINAL_PHASES:
                metrics.BUILDS.labels(str(final.status.phase)).inc()
            log.info("Reported %s: %s (%s).", self.key, final.status.phase, final.status.reason)

    def _env(self) -> dict[str, str]:
        """The build's whole environment: nothing of the agent's own (no KUBECONFIG, no credentials)
        except the variables named in pass_env."""
        build = self.build
        env = {name: os.environ[name] for name in self.settings.pass_env if name in os.environ}
        env.update(git_env(self.settings.allow_file_sources))
        env.update(
            {
                "PATH": self.settings.build_path,
                "HOME": str(self.workspace / "home"),
                "TMPDIR": str(self.workspace / "tmp"),
                "LANG": self.settings.lang,
                "CI": "1",
                "BUILDFARM_BUILD_NAME": build.name,
                "BUILDFARM_BUILD_NAMESPACE": build.namespace,
                "BUILDFARM_BUILD_UID": build.uid,
                "BUILDFARM_BUILD_PLATFORM": build.spec.platform.value,
                "BUILDFARM_BUILD_PROFILE": build.spec.profile or "",
                "BUILDFARM_BUILD_ATTEMPT": str(build.status.attempt),
                "BUILDFARM_BUILD_WORKER": build.status.worker_name,
            }
        )
        return env

    @property
    def log_path(self) -> Path:
        return self.log.path
