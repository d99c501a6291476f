"""The gateway: the only code that calls the Kubernetes API. Every call has an explicit timeout, and
every write of state that matters is conditional on the resourceVersion the caller read."""

import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s

from buildfarm import constants as c
from buildfarm.api.builds import Build, BuildStatus
from buildfarm.api.meta import Resource
from buildfarm.api.workers import Worker, WorkerStatus
from buildfarm.errors import NotFound
from buildfarm.kube.errors import classified

Timeout = tuple[float, float]  # (connect, read) seconds, as the client's _request_timeout takes it

PAGE_SIZE = 500
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# Which operator process reported an Event, when several run.
REPORTING_INSTANCE = f"buildfarm-operator-{socket.gethostname()}"[:128]


class Gateway:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self.timeout = timeout
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._events = k8s.EventsV1Api(api_client)

    # Builds

    def get_build(self, namespace: str, name: str) -> Build:
        with classified(f"read build {namespace}/{name}"):
            body = self._custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, name, _request_timeout=self.timeout
            )
        return Build.model_validate(body)

    def list_builds(self, namespace: str | None = None, field_selector: str | None = None) -> list[Build]:
        """Every build (of `namespace`, or all), read in pages so no single call is huge or slow."""
        where = namespace or "all namespaces"
        extra: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
        if namespace:
            items = self._paged(
                f"list builds in {where}",
                lambda **kw: self._custom.list_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, **extra, **kw
                ),
            )
        else:
            items = self._paged(
                f"list builds in {where}",
                lambda **kw: self._custom.list_cluster_custom_object(
                    c.GROUP, c.VERSION, c.BUILD_PLURAL, **extra, **kw
                ),
            )
        return [Build.model_validate(item) for item in items]

    def write_build_status(self, build: Build, status: BuildStatus) -> Build:
        """Replace the build's status if nobody changed the build since `build` was read (else Conflict)."""
        with classified(f"update build {build.namespace}/{build.name}"):
            body = self._custom.patch_namespaced_custom_object_status(
                c.GROUP,
                c.VERSION,
                build.namespace,
                c.BUILD_PLURAL,
                build.name,
                _guarded(build.resource_version, status.to_api()),
                _request_timeout=self.timeout,
            )
        return Build.model_validate(body)

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

    def _paged(self, what: str, call: Callable[..., Any]) -> list[dict[str, Any]]:
        """All items of a LIST, PAGE_SIZE at a time; each page is one call with the gateway's timeout."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE_SIZE, "_request_timeout": self.timeout}
            if token:
                kwargs["_continue"] = token
            with classified(what):
                body = call(**kwargs)
            items.extend(body.get("items") or [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                return items

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
        """Record an Event users see in `kubectl describe` (events.k8s.io/v1)."""
        namespace = obj.namespace or "default"  # a cluster-scoped Worker's events go to default
        event = k8s.EventsV1Event(
            # Named like the events Kubernetes itself records: <object>.<unique suffix>.
            metadata=k8s.V1ObjectMeta(name=f"{obj.name}.{uuid.uuid4().hex[:16]}", namespace=namespace),
            event_time=datetime.now(UTC),
            reporting_controller=f"{c.GROUP}/operator",
            reporting_instance=REPORTING_INSTANCE,
            action=action,
            reason=reason,
            note=note[:1024],
            type=type_,
            regarding=k8s.V1ObjectReference(
                api_version=c.API_VERSION,
                kind=obj.kind,
                name=obj.name,
                namespace=obj.namespace or None,
                uid=obj.uid,
                resource_version=obj.resource_version,
            ),
        )
        with classified(f"post event {reason} for {obj.kind} {obj.name}"):
            self._events.create_namespaced_event(namespace, event, _request_timeout=self.timeout)


def _guarded(resource_version: str, status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that the API server applies only at this resourceVersion (409 otherwise)."""
    if not resource_version:
        raise ValueError("a conditional write needs the resourceVersion that was read")
    return {"metadata": {"resourceVersion": resource_version}, "status": status}
