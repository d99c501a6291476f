"""Following a build's log from the artifact service until the build finishes (`logs -f`, `submit --wait`).

The service keeps a follow request open and streams bytes as the agent appends them; it ends the response
when the build finished (everything sent) or the attempt was superseded. A broken connection is picked up
again at the byte offset reached, so nothing is shown twice or skipped. A build that is not assigned yet
is waited for (its status is read every POLL_SECONDS); when the build starts another attempt (its worker
was lost), that attempt's log follows, after a line saying so.
"""

import threading
from collections import deque
from typing import BinaryIO, Final

from buildfarm.api.builds import TERMINAL_PHASES, Build
from buildfarm.cli.session import Session, note
from buildfarm.transfer.client import ArtifactClient, ArtifactError

POLL_SECONDS: Final = 2.0
BACKOFF_MAX: Final = 10.0
LINE_MAX: Final = 1024 * 1024


def follow_log(
    s: Session,
    client: ArtifactClient,
    namespace: str,
    name: str,
    out: BinaryIO,
    *,
    offset: int = 0,
    attempt: int | None = None,
    pause: threading.Event | None = None,
) -> Build:
    """Write the log to `out` as it grows, from `offset` of `attempt` (None: the current one); returns the
    finished build."""
    sleeper = pause or threading.Event()  # never set: only its wait() is used, as an interruptible sleep
    backoff = 1.0
    while True:
        build = s.admin.get_build(namespace, name)
        current = build.status.attempt
        if current < 1:
            if build.status.phase in TERMINAL_PHASES:
                return build  # finished before it ever ran (cancelled while pending)
            sleeper.wait(POLL_SECONDS)
            continue
        if attempt is None:
            attempt = current
        elif attempt != current and attempt < current:
            note(f"build {namespace}/{name} started attempt {current}; its log follows")
            attempt, offset = current, 0
        try:
            for chunk in client.read_log(namespace, name, offset=offset, follow=True, attempt=attempt):
                out.write(chunk)
                out.flush()
                offset += len(chunk)
            backoff = 1.0
        except ArtifactError as error:
            if not error.retryable:
                raise
            note(f"warning: {error}; reconnecting")
            sleeper.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        build = s.admin.get_build(namespace, name)
        if build.status.phase in TERMINAL_PHASES and build.status.attempt == attempt:
            return build


def tail_lines(
    client: ArtifactClient, namespace: str, name: str, lines: int, attempt: int | None
) -> tuple[list[bytes], int]:
    """The last `lines` lines of the log as it is now, and the byte offset after them (where a follow
    goes on); memory is bounded by those lines, not the log."""
    kept: deque[bytes] = deque(maxlen=max(lines, 1))
    partial = b""
    offset = 0
    for chunk in client.read_log(namespace, name, offset=0, follow=False, attempt=attempt):
        offset += len(chunk)
        parts = (partial + chunk).split(b"\n")
        partial = parts.pop()[-LINE_MAX:]  # a line without end is cut, not kept whole
        kept.extend(part + b"\n" for part in parts)
    if partial:
        kept.append(partial)
    if lines == 0:
        return [], offset
    return list(kept), offset
