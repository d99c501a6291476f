"""The gateway: the only code that calls the Kubernetes API. Every call has an explicit timeout, and
every write of state that matters is conditional on the resourceVersion the caller read."""

import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client as k8s

from buildfarm import constants as c
from buildfarm.api.builds import Build, BuildStatus
from buildfarm.api.meta import Resource
from buildfarm.api.workers import Worker, WorkerStatus
from buildfarm.domain.health import Heartbeat
from buildfarm.errors import NotFound
from buildfarm.kube.errors import classified

Timeout = tuple[float, float]  # (connect, read) seconds, as the client's _request_timeout takes it

PAGE_SIZE = 500
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# Who reported an Event, and which operator process, when several run.
REPORTING_CONTROLLER = f"{c.GROUP}/operator"
NAME_MAX = 253  # an object name is a DNS subdomain
NOTE_MAX = 1024  # the API server's limit on an Event's message, in bytes
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Gateway:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout, *, component: str = "operator") -> None:
        """`component` says who reports the Events posted through this gateway: operator or agent."""
        self.reporting_controller = f"{c.GROUP}/{component}"
        self.reporting_instance = f"buildfarm-{component}-{socket.gethostname()}"[:128]
        self.timeout = timeout
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._coordination = k8s.CoordinationV1Api(api_client)
        self._event_clock_lock = threading.Lock()
        self._last_event_ns = 0

    # Builds

    def get_build(self, namespace: str, name: str) -> Build:
        with classified(f"read build {namespace}/{name}"):
            body = self._custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, name, _request_timeout=self.timeout
            )
        return Build.model_validate(body)

    def list_builds(self, namespace: str | None = None, field_selector: str | None = None) -> list[Build]:
        """Every build (of `namespace`, or all), read in pages so no single call is huge or slow."""
        return [build for page in self.build_pages(namespace, field_selector) for build in page]

    def build_pages(
        self, namespace: str | None = None, field_selector: str | None = None
    ) -> Iterator[list[Build]]:
        """The builds of `namespace` (or all), one page at a time: a caller that keeps only part of each
        (the operator's cache) never holds every raw object of a large farm at once."""
        where = namespace or "all namespaces"
        extra: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
        if namespace:
            pages = self._pages(
                f"list builds in {where}",
                lambda **kw: self._custom.list_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, **extra, **kw
                ),
            )
        else:
            pages = self._pages(
                f"list builds in {where}",
                lambda **kw: self._custom.list_cluster_custom_object(
                    c.GROUP, c.VERSION, c.BUILD_PLURAL, **extra, **kw
                ),
            )
        for items in pages:
            yield [Build.model_validate(item) for item in items]

    def write_build_status(self, build: Build, status: BuildStatus, *, leave: Collection[str] = ()) -> Build:
        """Replace the build's status if nobody changed the build since `build` was read (else Conflict).
        `leave`: status fields (by their API names) not sent, so they stay as they are."""
        sent = status.to_api()
        for name in leave:
            sent.pop(name, None)
        with classified(f"update build {build.namespace}/{build.name}"):
            body = self._custom.patch_namespaced_custom_object_status(
                c.GROUP,
                c.VERSION,
                build.namespace,
                c.BUILD_PLURAL,
                build.name,
                _guarded(build.resource_version, sent),
                _request_timeout=self.timeout,
            )
        return Build.model_validate(body)

    def delete_build(self, build: Build) -> None:
        """Delete this build, and not a re-created one of the same name (a uid precondition)."""
        with classified(f"delete build {build.namespace}/{build.name}"):
            self._custom.delete_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                build.namespace,
                c.BUILD_PLURAL,
                build.name,
                body=k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=build.uid)),
                _request_timeout=self.timeout,
            )

    # Workers

    def get_worker(self, name: str) -> Worker:
        with classified(f"read worker {name}"):
            body = self._custom.get_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=self.timeout
            )
        return Worker.model_validate(body)

    def list_workers(self) -> list[Worker]:
        items = self._paged(
            "list workers",
            lambda **kw: self._custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.WORKER_PLURAL, **kw),
        )
        return [Worker.model_validate(item) for item in items]

    def write_worker_status(self, worker: Worker, status: WorkerStatus) -> Worker:
        """Replace the worker's status if nobody changed the worker since it was read (else Conflict)."""
        with classified(f"update worker {worker.name}"):
            body = self._custom.patch_cluster_custom_object_status(
                c.GROUP,
                c.VERSION,
                c.WORKER_PLURAL,
                worker.name,
                _guarded(worker.resource_version, status.to_api()),
                _request_timeout=self.timeout,
            )
        return Worker.model_validate(body)

    # Heartbeats

    def list_heartbeats(self, namespace: str) -> dict[str, Heartbeat]:
        """The workers' Leases in the farm namespace, by name (a Lease is named after its Worker)."""
        with classified(f"list leases in {namespace}"):
            leases = self._coordination.list_namespaced_lease(namespace, _request_timeout=self.timeout)
        beats: dict[str, Heartbeat] = {}
        for lease in leases.items:
            spec = lease.spec
            if lease.metadata is None or spec is None:
                continue
            renewed = spec.renew_time
            beats[str(lease.metadata.name)] = Heartbeat(
                holder=spec.holder_identity or "",
                renewed=renewed.astimezone(UTC) if isinstance(renewed, datetime) else None,
                duration_seconds=int(spec.lease_duration_seconds or 0),
            )
        return beats

    def _paged(self, what: str, call: Callable[..., Any]) -> list[dict[str, Any]]:
        """All items of a LIST, PAGE_SIZE at a time; each page is one call with the gateway's timeout."""
        return [item for page in self._pages(what, call) for item in page]

    def _pages(self, what: str, call: Callable[..., Any]) -> Iterator[list[dict[str, Any]]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE, "_request_timeout": self.timeout}
            if token:
                kwargs["_continue"] = token
            with classified(what):
                body = call(**kwargs)
            yield body.get("items") or []
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return

    # Secrets and events

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether a Secret exists, read as metadata only: the operator never needs its content."""
        try:
            with classified(f"read secret {namespace}/{name}"):
                # Not preloaded, so the answer (PartialObjectMetadata) is not parsed as a V1Secret.
                response: urllib3.BaseHTTPResponse = self._core.read_namespaced_secret(  # type: ignore[assignment]
                    name,
                    namespace,
                    _headers={"Accept": METADATA_ONLY},
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
                response.release_conn()
        except NotFound:
            return False
        return True

    def post_event(self, obj: Resource, *, type_: str, reason: str, action: str, note: str) -> None:
        """Record an Event users see in `kubectl describe`.

        Posted through core/v1, not events.k8s.io/v1: `kubectl describe` sorts Events by the core
        `lastTimestamp` alone, which events.k8s.io/v1 refuses on create ("needs to be unset"). core/v1 takes
        both it and the precise `eventTime`, like the Events kopf posts. Not aggregated into a series: the
        operator posts on changes, not on every cycle, so each Event stands alone with count 1.
        """
        namespace = obj.namespace or "default"  # a cluster-scoped Worker's events go to default
        at_ns = self._event_clock()
        at = EPOCH + timedelta(microseconds=at_ns // 1000)
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(obj.name, at_ns), "namespace": namespace},
            "eventTime": micro_time(at),
            # Seconds only (the API stores no more): `kubectl describe` sorts by lastTimestamp, and keeps
            # Events of the same second in the order the API lists them, by name, which is by time.
            "firstTimestamp": seconds_time(at),
            "lastTimestamp": seconds_time(at),
            "count": 1,
            "reportingComponent": self.reporting_controller,
            "reportingInstance": self.reporting_instance,
            "source": {"component": self.reporting_controller},  # the "From" column of older kubectl
            "action": action,
            "reason": reason,
            "message": _cut_utf8(note, NOTE_MAX),
            "type": type_,
            "involvedObject": {
                "apiVersion": c.API_VERSION,
                "kind": obj.kind,
                "name": obj.name,
                **({"namespace": obj.namespace} if obj.namespace else {}),
                "uid": obj.uid,
                "resourceVersion": obj.resource_version,
            },
        }
        with classified(f"post event {reason} for {obj.kind} {obj.name}"):
            self._post_as_is(f"/api/v1/namespaces/{namespace}/events", event)

    def _post_as_is(self, path: str, body: dict[str, Any]) -> None:
        """POST `body` exactly as given. The client's typed methods parse a body into their model and write it
        out again with isoformat(), which drops a zero fraction from a MicroTime: the API server then refuses
        the whole object ("cannot parse ... as .000000")."""
        api = self._core.api_client
        request = api.param_serialize(
            "POST",
            path,
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*request, _request_timeout=self.timeout)
        response.read()
        api.response_deserialize(response, {})  # raises ApiException unless 2xx; the answer is not needed

    def _event_clock(self) -> int:
        """Now in nanoseconds, never the same twice in this process: the Event's name is made from it."""
        with self._event_clock_lock:
            self._last_event_ns = max(time.time_ns(), self._last_event_ns + 1)
            return self._last_event_ns


def event_name(object_name: str, at_ns: int) -> str:
    """`<object>.<time in hex>`, as Kubernetes names Events, made to fit a DNS subdomain for any object name.

    Where client-go falls back to a bare UUID, the object part is cut instead, so the name still says whose
    Event it is. The suffix is kept whole: it makes the name unique, and at a fixed 16 digits (until 2554)
    it lists one object's Events in time order. A `-` or `.` left at the cut may not precede the dot.
    """
    suffix = f".{at_ns:016x}"
    return object_name[: NAME_MAX - len(suffix)].rstrip("-.") + suffix


def micro_time(at: datetime) -> str:
    """A MicroTime as the API server parses it: always six fraction digits and `Z`.

    The client's own serialization (`isoformat()`) drops the fraction when it is zero, which the API
    server then refuses to parse."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_time(at: datetime) -> str:
    """A Time (seconds precision) in RFC 3339, as the API server writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cut_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8 (the API server counts bytes), never splitting a character."""
    return text.encode()[:limit].decode(errors="ignore")


def _guarded(resource_version: str, status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that the API server applies only at this resourceVersion (409 otherwise)."""
    if not resource_version:
        raise ValueError("a conditional write needs the resourceVersion that was read")
    return {"metadata": {"resourceVersion": resource_version}, "status": status}
