"""The calls a worker agent makes besides its Lease: its Worker (create, adopt, capabilities) and the
Builds assigned to it (list and watch by field selector). Every call has an explicit timeout; every
status write is conditional on the resourceVersion read. Build status writes reuse Gateway."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker, WorkerCapabilities, WorkerSpec
from buildfarm.errors import TransientError
from buildfarm.kube.errors import classified

Timeout = tuple[float, float]


@dataclass(frozen=True)
class BuildEvent:
    type: str  # ADDED, MODIFIED, DELETED (also: left the field selection)
    build: Build


class AgentGateway:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self.timeout = timeout
        self._custom = k8s.CustomObjectsApi(api_client)

    # The Worker

    def get_worker(self, name: str) -> Worker:
        with classified(f"read worker {name}"):
            body = self._custom.get_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=self.timeout
            )
        return Worker.model_validate(body)

    def create_worker(self, name: str, spec: WorkerSpec, labels: dict[str, str]) -> Worker:
        """Create the Worker; Conflict if it exists already (then adopt it)."""
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.WORKER_KIND,
            "metadata": {"name": name, "labels": labels},
            "spec": spec.to_api(),
        }
        with classified(f"create worker {name}"):
            created = self._custom.create_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, body, _request_timeout=self.timeout
            )
        return Worker.model_validate(created)

    def write_capabilities(self, worker: Worker, capabilities: WorkerCapabilities) -> Worker:
        """Set status.capabilities, and nothing else, if the Worker is unchanged since read (else Conflict).
        Every field is sent, unknown ones as null, so a capability that went away is removed."""
        body = {
            "metadata": {"resourceVersion": worker.resource_version},
            "status": {"capabilities": capabilities.model_dump(mode="json", by_alias=True)},
        }
        with classified(f"update capabilities of worker {worker.name}"):
            patched = self._custom.patch_cluster_custom_object_status(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, worker.name, body, _request_timeout=self.timeout
            )
        return Worker.model_validate(patched)

    # The Builds assigned to it

    def list_builds_on(self, worker: str) -> tuple[list[Build], str]:
        """The builds whose status.workerName is `worker`, in all namespaces, and the list's version."""
        with classified(f"list builds of worker {worker}"):
            body: Any = self._custom.list_cluster_custom_object(
                c.GROUP,
                c.VERSION,
                c.BUILD_PLURAL,
                field_selector=_on(worker),
                _request_timeout=self.timeout,
            )
        items = [Build.model_validate(item) for item in body["items"]]
        return items, str(body["metadata"].get("resourceVersion", ""))

    def watch_builds_on(self, worker: str, resource_version: str, seconds: float) -> Iterator[BuildEvent]:
        """Changes after `resource_version` for `seconds` (then the stream ends: list again). A build that
        stops matching (reassigned, requeued) arrives as DELETED. Raises TransientError when the version
        is too old (410) or the connection fails."""
        stream = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        connect, read = self.timeout
        try:
            with classified(f"watch builds of worker {worker}"):
                for event in stream.stream(  # type: ignore[no-untyped-call]
                    self._custom.list_cluster_custom_object,
                    c.GROUP,
                    c.VERSION,
                    c.BUILD_PLURAL,
                    field_selector=_on(worker),
                    resource_version=resource_version,
                    allow_watch_bookmarks=False,
                    timeout_seconds=max(1, int(seconds)),
                    _request_timeout=(connect, seconds + read),
                ):
                    kind, obj = event.get("type"), event.get("object")
                    if kind == "ERROR":
                        code = obj.get("code") if isinstance(obj, dict) else None
                        raise TransientError(
                            f"watch of builds of worker {worker} ended: {code}", reason="Gone"
                        )
                    if kind in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                        yield BuildEvent(str(kind), Build.model_validate(obj))
        finally:
            stream.stop()  # type: ignore[no-untyped-call]


def _on(worker: str) -> str:
    return f"{c.BUILD_WORKER_FIELD}={worker}"
