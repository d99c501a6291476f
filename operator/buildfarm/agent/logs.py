"""A build's log: every line to a file (kept after the build), the last lines in memory for status."""

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from buildfarm.api.builds import LOG_TAIL_MAX
from buildfarm.domain.runs import bound_tail

LINE_MAX = 4096  # longer lines are cut in the tail (the file keeps them whole)


class BuildLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: IO[bytes] = path.open("ab")
        self._tail: deque[str] = deque()
        self._tail_chars = 0
        self._version = 0
        self._lock = threading.Lock()
        self.on_write: Callable[[], None] | None = None  # e.g. wakes the log shipper

    def write(self, data: bytes) -> None:
        """Append raw output (one or more lines)."""
        text = data.decode("utf-8", errors="replace")
        with self._lock:
            self._file.write(data)
            self._file.flush()
            for line in text.splitlines():
                line = line[:LINE_MAX]
                self._tail.append(line)
                self._tail_chars += len(line) + 1
                while self._tail_chars > LOG_TAIL_MAX and len(self._tail) > 1:
                    self._tail_chars -= len(self._tail.popleft()) + 1
            self._version += 1
        if self.on_write is not None:
            self.on_write()

    def say(self, message: str) -> None:
        """A line of the agent's own, marked so a reader tells it from the build's output."""
        self.write(f"[buildfarm] {message}\n".encode())

    def tail(self) -> tuple[str, int]:
        """The last lines (bounded for Build.status.logTail) and a version that moves on every write."""
        with self._lock:
            return bound_tail("\n".join(self._tail) + ("\n" if self._tail else "")), self._version

    def close(self) -> None:
        with self._lock:
            self._file.close()
