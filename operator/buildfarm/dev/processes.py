"""Starts and stops the control plane's child processes so that none outlives the control plane.

A process started attached dies with the Python process that started it (PR_SET_PDEATHSIG on Linux), so a
crashed or killed test run leaks nothing. A detached one survives it and is found again through the
`ProcessRecord` written to the state directory; the record holds the start time, so a pid the system has
since reused for something else is never signalled.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

_PR_SET_PDEATHSIG: Final = 1
# psutil reports start times rounded differently across calls on some platforms.
_START_TIME_TOLERANCE_SECONDS: Final = 1.0


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    started_at: float

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None if it has exited (or the pid was reused)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.started_at) > _START_TIME_TOLERANCE_SECONDS:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return process


def spawn(
    name: str, args: Sequence[str], log_path: Path, *, cwd: Path, detached: bool
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Starts `args` with stdout and stderr appended to `log_path`."""
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # Detached: its own session, so the terminal's Ctrl-C and hang-up do not reach it.
            start_new_session=detached,
            preexec_fn=None if detached else _die_with_parent(),
        )
    try:
        started_at = psutil.Process(child.pid).create_time()
    except psutil.Error:
        started_at = 0.0  # Already gone: the caller finds out when it waits for readiness.
    return child, ProcessRecord(name=name, pid=child.pid, started_at=started_at)


def terminate(records: Sequence[ProcessRecord], *, grace_seconds: float) -> None:
    """Stops each process in order: SIGTERM, then SIGKILL if it has not exited after `grace_seconds`."""
    for record in records:
        process = record.process()
        if process is None:
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
        _, alive = psutil.wait_procs([process], timeout=grace_seconds)
        for straggler in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        psutil.wait_procs(alive, timeout=grace_seconds)


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None  # No PDEATHSIG elsewhere: ControlPlane.stop() and `down` are the only clean-up.
    # Resolved before fork: the child should do as little as possible between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        # The signal is tied to the thread that forks, so start attached children from a thread that lives
        # as long as the control plane (pytest's main thread does).
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # The parent died before prctl took effect.
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec
