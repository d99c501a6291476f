"""Classify what the Kubernetes client raises into buildfarm's error classes, in one place."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from buildfarm.errors import Conflict, NotFound, PermanentError, TransientError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@contextmanager
def classified(what: str) -> Iterator[None]:
    """Re-raise API and transport errors of `what` (e.g. "update build ns/b") as buildfarm errors."""
    try:
        yield
    except ApiException as exc:
        raise classify(exc, what) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        # Timeouts, refused or reset connections, TLS errors mid-stream: all worth a retry.
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}", reason="ApiUnavailable") from exc


def classify(exc: ApiException, what: str) -> Exception:
    status = exc.status or 0
    detail = exc.reason or ""
    if status == 409:
        return Conflict(f"{what}: the object changed since it was read", reason="Conflict")
    if status == 404:
        return NotFound(f"{what}: not found")
    if status in RETRYABLE_STATUS or status >= 500 or status == 0:
        return TransientError(f"{what}: API server answered {status} {detail}", reason="ApiUnavailable")
    if status == 403 and "being terminated" in _message(exc):
        # Nothing new may be created in a namespace being deleted (e.g. an Event about its last builds).
        return TransientError(f"{what}: the namespace is being deleted", reason="NamespaceTerminating")
    if status == 403:
        # An RBAC problem is fixed by an administrator, not by the build's owner: keep the build queued.
        return TransientError(f"{what}: forbidden; check the operator's RBAC", reason="Forbidden")
    if status == 422:
        # A CEL rule refused the write: the state moved on under us (e.g. already assigned). Re-read.
        return Conflict(f"{what}: refused by validation: {_message(exc)}", reason="Invalid")
    return PermanentError(
        f"{what}: API server answered {status} {detail}: {_message(exc)}", reason="ApiError"
    )


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", ""))[:500]
    except ValueError:
        return str(exc.body or "")[:500]
