"""Kubernetes API metrics, recorded where every call of the gateway passes: the API client's call_api
(see buildfarm.kube.client). Labels are the verb and resource as the API server names them (get, list,
watch, create, update, patch, delete, deletecollection; builds, builds/status, leases, events, ...),
read from the request's method and path, so no call site has to say what it does."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlsplit

import urllib3.exceptions

from buildfarm.telemetry.catalog import FAST_BUCKETS, counter, histogram

REQUEST_SECONDS: Final = histogram(
    "kube",
    "buildfarm_kube_api_request_duration_seconds",
    "Kubernetes API calls, until the answer's headers (a watch: until the stream opened).",
    FAST_BUCKETS,
    ("verb", "resource"),
)
REQUEST_ERRORS: Final = counter(
    "kube",
    "buildfarm_kube_api_request_errors_total",
    "Kubernetes API calls that failed: code is the HTTP status, or timeout or connection.",
    ("verb", "resource", "code"),
)
# An operator metric, counted here because a 409 is seen here first; the agent records it too but does
# not expose it.
CONFLICTS: Final = counter(
    "operator",
    "buildfarm_conflicts_total",
    "409 Conflicts met by conditional writes (someone else changed the object since it was read).",
    ("resource",),
)

_VERBS: Final = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str  # with the subresource: builds/status

    @property
    def kind(self) -> str:
        """The resource without its subresource: builds."""
        return self.resource.split("/", 1)[0]


def request_of(method: str, url: str) -> Request:
    """What a call does, from its method and URL: PATCH .../namespaces/n/builds/b/status is
    patch builds/status; GET .../builds?watch=true is watch builds."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    method = method.upper()
    if segments[:1] == ["api"]:
        rest = segments[2:]
    elif segments[:1] == ["apis"]:
        rest = segments[3:]
    else:  # /version, /healthz, /openapi/v2: not a resource
        return Request(method.lower(), segments[0] if segments else "root")
    if not rest:
        return Request(method.lower(), "discovery")
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # namespaced: namespaces/<ns>/<resource>/...
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    named = len(rest) > 1
    if method == "GET":
        watch = parse_qs(parts.query).get("watch", [""])[0] in ("true", "1")
        verb = "watch" if watch else "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return Request(verb, resource)


def error_code(error: BaseException) -> str | None:
    """The code label of a call that raised `error`; None for an error that is no API failure (a bug)."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status >= 400:
        return str(status)
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return "connection"  # a subclass of ConnectTimeoutError, but refused rather than slow
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, urllib3.exceptions.HTTPError | OSError) or status == 0:
        return "connection"  # refused, reset, TLS (the client raises ApiException(status=0) for those)
    return None


class Call:
    """One call in flight: say its status once it answers (see measured)."""

    def __init__(self) -> None:
        self.status: int | None = None

    def answered(self, status: int) -> None:
        self.status = status


@contextmanager
def measured(method: str, url: str) -> Iterator[Call]:
    """Time one call and count it as failed if it raised or answered >= 400 (409 is also a conflict)."""
    request = request_of(method, url)
    call = Call()
    started = time.monotonic()
    try:
        yield call
    except BaseException as error:
        code = error_code(error)
        if code is not None:
            _failed(request, code)
        raise
    finally:
        REQUEST_SECONDS.labels(request.verb, request.resource).observe(time.monotonic() - started)
    if call.status is not None and call.status >= 400:
        _failed(request, str(call.status))


def _failed(request: Request, code: str) -> None:
    REQUEST_ERRORS.labels(request.verb, request.resource, code).inc()
    if code == "409":
        CONFLICTS.labels(request.kind).inc()
