"""Stop signals, handled on a thread of their own instead of in a Python signal handler.

A Python handler runs in the main thread, between two of its bytecodes, and so possibly while that thread
holds a lock: `threading.Event.wait` holds the Event's own lock on its way in and out, so a handler that
sets that Event deadlocks the agent. And the kernel may deliver a signal to any thread: the main thread,
blocked in a wait, then runs the handler only when the wait ends. Python's C-level handler, though, writes
each signal's number to the wakeup fd from whichever thread received it, at once: this module reads the
numbers there, on a thread that holds nothing, and hands them to the agent.
"""

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

log = logging.getLogger(__name__)


def relay(signums: Iterable[int], handle: Callable[[int], None]) -> None:
    """From now on, call `handle(signum)` on a thread named "signals" for each of `signums` this process
    receives, whichever thread the kernel delivers it to. Call it from the main thread: Python installs
    signal handlers and the wakeup fd only there."""
    wanted = frozenset(int(s) for s in signums)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler must never block
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in wanted:
        signal.signal(signum, _caught)  # caught, so not the default action; nothing done here
    threading.Thread(target=_read, args=(read_end, wanted, handle), name="signals", daemon=True).start()


def _caught(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing, by design (see the module's docstring)."""


def _read(fd: int, wanted: frozenset[int], handle: Callable[[int], None]) -> None:
    while True:
        received = os.read(fd, 64)
        if not received:
            return
        for signum in received:
            if signum in wanted:
                try:
                    handle(signum)
                except Exception:
                    log.exception("Handling signal %d failed.", signum)
