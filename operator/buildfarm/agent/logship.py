"""Streaming a build's log to the artifact service while the build runs.

The build's log file on the worker (agent/logs.py) is the buffer: the shipper reads it from the offset the
service confirmed, at most CHUNK bytes at a time, and appends that at the same offset. So memory stays
bounded however fast the build writes or however long the service is away, and after a network error the
same bytes are sent again at the same offset: the service skips what it already has (an answer lost on
the way), and answers OffsetMismatch with its size when it has less, from where the shipper resends. No
line is lost or doubled.

It stops for good when the service refuses the attempt (StaleAttempt, Forbidden, NotFound: the build is
no longer this agent's) or the log outgrows the service's limit (TooLarge); the local file keeps it all.
"""

import logging
import threading
from pathlib import Path
from typing import Final

from buildfarm.transfer.client import ArtifactClient, ArtifactError, OffsetMismatch

log = logging.getLogger(__name__)

CHUNK: Final = 256 * 1024  # bytes per request at most
IDLE_SECONDS: Final = 1.0  # the longest a written line waits before it is sent (it is woken on writes)
BACKOFF_MAX: Final = 10.0


class LogShipper:
    def __init__(
        self,
        client: ArtifactClient,
        namespace: str,
        build: str,
        attempt: int,
        path: Path,
        *,
        first_backoff: float = 0.5,
        chunk: int = CHUNK,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.build = build
        self.attempt = attempt
        self.path = path
        self.sent = 0  # bytes the service has confirmed
        self.gave_up: str | None = None
        self.first_backoff = first_backoff
        self.chunk = chunk
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"log-{namespace}/{build}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        """New bytes were written: send them soon."""
        self._wake.set()

    def finish(self, patience: float) -> bool:
        """Send everything written so far, trying for at most `patience` seconds; True if all of it is
        on the service. The thread is stopped afterwards."""
        self._stop.set()
        self._wake.set()
        self._thread.join(patience)
        done = self.gave_up is None and self.sent >= self._size()
        self.abandon()  # past its patience a retrying thread stops too
        return done

    def abandon(self) -> None:
        """Stop without sending more (the build is no longer ours)."""
        self.gave_up = self.gave_up or "abandoned"
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        backoff = self.first_backoff
        while self.gave_up is None:
            try:
                more = self.ship_once()
                backoff = self.first_backoff
            except ArtifactError as error:
                if not error.retryable:
                    self.gave_up = str(error)
                    log.warning("Stopped streaming the log of %s/%s: %s", self.namespace, self.build, error)
                    return
                log.info(
                    "Streaming the log of %s/%s paused (retrying): %s", self.namespace, self.build, error
                )
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if more:
                continue
            if self._stop.is_set():
                return  # all written is sent, and no more will be
            self._wake.wait(IDLE_SECONDS)
            self._wake.clear()

    def ship_once(self) -> bool:
        """Send the next chunk after `sent`, if any; True if one was sent (there may be more)."""
        try:
            with self.path.open("rb") as file:
                file.seek(self.sent)
                data = file.read(self.chunk)
        except FileNotFoundError:
            return False
        if not data:
            return False
        try:
            size = self.client.append_log(self.namespace, self.build, self.attempt, self.sent, data)
        except OffsetMismatch as mismatch:
            # The service has less than we thought (it lost a tail): resend from where it ends.
            log.info(
                "The service has %d bytes of the log of %s, resending from there.", mismatch.size, self.build
            )
            self.sent = min(mismatch.size, self._size())
            return True
        self.sent = size  # the service's end: normally sent + len(data)
        return True

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0
