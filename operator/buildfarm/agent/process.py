"""Running one build's commands, each in its own process group, and stopping them for good.

Stopping is as buildkite-agent does it: SIGTERM to the whole group, a grace period, then SIGKILL to the
group. After every command the group is killed too, so nothing a build left in the background outlives
it. Once stopped, a Processes refuses to start anything more.
"""

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import psutil

from buildfarm.agent.logs import BuildLog

log = logging.getLogger(__name__)
READ_SIZE = 65536


class Stopped(Exception):
    """The build was stopped (cancel, deadline, handback, lost); carries why."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class Processes:
    def __init__(
        self,
        build_log: BuildLog,
        env: Mapping[str, str],
        kill_grace: float,
        record: Path | None = None,
    ) -> None:
        """`record`: a file listing every process group started, so that a restarted agent can kill
        what a crashed one left running (see leftovers.py)."""
        self.log = build_log
        self.env = dict(env)
        self.kill_grace = kill_grace
        self.record = record
        self._lock = threading.Lock()
        self._current: list[subprocess.Popen[bytes]] = []
        self._stopped: str | None = None
        self.pids: list[int] = []  # every process group leader started, for tests and diagnostics

    @property
    def stopped(self) -> str | None:
        return self._stopped

    def check(self) -> None:
        """Raise Stopped if the build was stopped; call between steps that do not run a process."""
        if self._stopped is not None:
            raise Stopped(self._stopped)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        stdin: IO[bytes] | None = None,
        stdout: int | IO[bytes] | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run argv to completion with its output in the log (or `stdout`, its stderr still logged).
        Returns the exit code (negative: killed by that signal); raises Stopped if stopped meanwhile."""
        proc = self.spawn(argv, cwd=cwd, stdin=stdin, stdout=stdout)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc)
            code = proc.wait()
        finally:
            self._finish(proc)
        self.check()
        return code

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        stdin: IO[bytes] | None = None,
        stdout: int | IO[bytes] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start argv in a new process group (session); call `finish` when done with it."""
        with self._lock:
            self.check()
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=self.env,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
                start_new_session=True,  # its own session and process group: killpg reaches its children
                close_fds=True,
            )
            self._current.append(proc)
            self.pids.append(proc.pid)
            if self.record is not None:
                _remember(self.record, proc.pid)
        pipe = proc.stderr if stdout is not None else proc.stdout
        if pipe is not None:
            reader = threading.Thread(target=self._pump, args=(pipe,), name=f"log-{proc.pid}", daemon=True)
            reader.start()
            proc._buildfarm_reader = reader  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop a spawned process (if still running) and whatever it left in its group."""
        if proc.poll() is None:
            self._kill_group(proc)
        proc.wait()
        self._finish(proc)

    def stop(self, why: str, *, grace: float | None = None) -> None:
        """Stop the build: no new commands, the running ones' groups TERM, grace (kill_grace unless
        given; 0: KILL at once), KILL. Returns when the running commands are gone."""
        with self._lock:
            if self._stopped is None:
                self._stopped = why
            current = list(self._current)
        for proc in current:
            self._kill_group(proc, self.kill_grace if grace is None else grace)

    def _finish(self, proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of a command that ended by itself
        reader = getattr(proc, "_buildfarm_reader", None)
        if reader is not None:
            reader.join(timeout=5)
        with self._lock:
            if proc in self._current:
                self._current.remove(proc)

    def _kill_group(self, proc: subprocess.Popen[bytes], grace: float | None = None) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + (self.kill_grace if grace is None else grace)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("Process %d did not exit after SIGKILL.", proc.pid)

    def _pump(self, pipe: IO[bytes]) -> None:
        try:
            for line in iter(pipe.readline, b""):
                self.log.write(line)
        except (OSError, ValueError):
            pass
        finally:
            pipe.close()


def _remember(record: Path, pid: int) -> None:
    """Append `pid start-time` (the start time tells a reused PID from ours)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # already gone
    with record.open("a") as file:
        file.write(f"{pid} {started}\n")


def kill_recorded(record: Path) -> list[int]:
    """SIGKILL every process group in `record` whose leader is still the process recorded; returns
    the groups killed."""
    killed = []
    try:
        lines = record.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            pid_text, started_text = line.split()
            pid, started = int(pid_text), float(started_text)
        except ValueError:
            continue
        try:
            alive = abs(psutil.Process(pid).create_time() - started) < 0.01
        except psutil.Error:
            alive = False
        if alive or _group_exists(pid):
            _signal_group(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _group_exists(pgid: int) -> bool:
    """Whether any process is still in group pgid (the leader may be gone, its children not)."""
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid:
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
