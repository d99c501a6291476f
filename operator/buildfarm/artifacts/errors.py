"""The service's refusals: an HTTP status, a CamelCase reason and one line saying what to do.

Every refusal is raised before anything is written (docs/artifacts-api.md, "Errors")."""

from typing import Any


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "reason": self.reason, **self.extra}


def unauthenticated(message: str) -> Refused:
    return Refused(401, "Unauthenticated", message)


def forbidden(message: str) -> Refused:
    return Refused(403, "Forbidden", message)


def not_found(message: str) -> Refused:
    return Refused(404, "NotFound", message)


def stale_attempt(message: str) -> Refused:
    return Refused(409, "StaleAttempt", message)


def too_large(message: str) -> Refused:
    return Refused(413, "TooLarge", message)


def bad_name(message: str) -> Refused:
    return Refused(422, "BadName", message)


def digest_mismatch(message: str) -> Refused:
    return Refused(422, "DigestMismatch", message)


def unavailable(message: str) -> Refused:
    return Refused(503, "Unavailable", message)
