"""The error classes every layer shares. Each carries a CamelCase reason and a one-line message.

Transient errors leave a build queued and are retried; permanent errors fail the build with the reason
and message a user reads in `kubectl describe`. The gateway classifies API errors into these, and the
operator turns them into kopf.TemporaryError / kopf.PermanentError in one place.
"""


class BuildfarmError(Exception):
    reason = "InternalError"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class TransientError(BuildfarmError):
    """Retrying later can succeed: conflicts, throttling, 5xx, timeouts, busy or offline workers."""

    reason = "TransientError"


class Conflict(TransientError):
    """Someone else wrote the object first (409, or a precondition failed): re-read and re-check."""

    reason = "Conflict"


class NotFound(BuildfarmError):
    reason = "NotFound"


class PermanentError(BuildfarmError):
    """No retry can fix it: the build fails, with a reason and message a user can act on."""

    reason = "PermanentError"
