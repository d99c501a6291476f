"""Test helpers that create Workers and Builds on the real API server and read back what happened."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from kubernetes.client import (
    CoordinationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1Lease,
    V1LeaseSpec,
    V1Namespace,
    V1ObjectMeta,
)
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker

TIMEOUT = 10
FARM_NAMESPACE = "buildfarm-system"  # the operator's default BUILDFARM_FARM_NAMESPACE
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.2) -> T:
    """Poll until probe() returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {last!r}")


@dataclass
class Farm:
    """Workers and Builds of one test: workers get names unique to the test and are deleted afterwards."""

    api: CustomObjectsApi
    namespace: str
    workers: list[str] = field(default_factory=list)

    def worker(
        self,
        name: str,
        *,
        platforms: tuple[str, ...] = ("ios", "android"),
        capacity: int = 1,
        ready: bool = True,
        cordoned: bool = False,
        labels: dict[str, str] | None = None,
    ) -> str:
        full = f"{self.namespace}-{name}"
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.WORKER_KIND,
            "metadata": {"name": full, "labels": {"buildfarm.dev/test": self.namespace, **(labels or {})}},
            "spec": {"platforms": list(platforms), "capacity": capacity, "unschedulable": cordoned},
        }
        self.api.create_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, body, _request_timeout=TIMEOUT
        )
        self.workers.append(full)
        self.set_ready(full, ready)
        return full

    def set_ready(self, worker: str, ready: bool) -> None:
        """Stand in for the worker's agent: a heartbeat Lease the operator reads (fresh for an hour, or
        expired), and the Ready condition the operator would write from it, for tests without one."""
        self.heartbeat(worker, renewed=datetime.now(UTC) - (timedelta(0) if ready else timedelta(hours=2)))
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "AgentHeartbeat" if ready else "AgentSilent",
            "message": "",
            "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self.api.patch_cluster_custom_object_status(
            c.GROUP,
            c.VERSION,
            c.WORKER_PLURAL,
            worker,
            {"status": {"conditions": [condition]}},
            _request_timeout=TIMEOUT,
        )

    def heartbeat(
        self, worker: str, *, renewed: datetime, duration: int = 3600, holder: str | None = None
    ) -> None:
        """Write the worker's Lease in the farm namespace as its agent would (renewTime = `renewed`)."""
        coordination = CoordinationV1Api(self.api.api_client)
        # The client writes a MicroTime with isoformat(), which drops a zero fraction that the API server
        # then cannot parse: never send one.
        renewed = renewed.replace(microsecond=renewed.microsecond or 1)
        ensure_namespace(CoreV1Api(self.api.api_client), FARM_NAMESPACE)
        body = V1Lease(
            metadata=V1ObjectMeta(name=worker, namespace=FARM_NAMESPACE),
            spec=V1LeaseSpec(
                holder_identity=worker if holder is None else holder,
                lease_duration_seconds=duration,
                renew_time=renewed,
            ),
        )
        try:
            coordination.patch_namespaced_lease(worker, FARM_NAMESPACE, body, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
            coordination.create_namespaced_lease(FARM_NAMESPACE, body, _request_timeout=TIMEOUT)

    def patch_worker(self, worker: str, spec: dict[str, Any]) -> None:
        self.api.patch_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, worker, {"spec": spec}, _request_timeout=TIMEOUT
        )

    def delete_worker(self, worker: str) -> None:
        self.api.delete_cluster_custom_object(
            c.GROUP, c.VERSION, c.WORKER_PLURAL, worker, _request_timeout=TIMEOUT
        )
        self.workers.remove(worker)

    def build(self, name: str | None = None, *, platform: str = "ios", **spec: Any) -> str:
        name = name or f"b-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.BUILD_KIND,
            "metadata": {"name": name},
            "spec": {"platform": platform, "source": {"git": {"url": "https://example.com/app.git"}}, **spec},
        }
        self.api.create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
        )
        return name

    def get_build(self, name: str) -> Build:
        return Build.model_validate(
            self.api.get_namespaced_custom_object(
                c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, name, _request_timeout=TIMEOUT
            )
        )

    def builds(self) -> list[Build]:
        body = self.api.list_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, _request_timeout=TIMEOUT
        )
        return [Build.model_validate(item) for item in body["items"]]

    def get_worker(self, name: str) -> Worker:
        return Worker.model_validate(
            self.api.get_cluster_custom_object(
                c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=TIMEOUT
            )
        )

    def phases(self) -> dict[str, str | None]:
        return {b.name: (b.status.phase.value if b.status.phase else None) for b in self.builds()}

    def cleanup(self) -> None:
        for worker in list(self.workers):
            try:
                self.delete_worker(worker)
            except ApiException:
                self.workers.remove(worker)


def ensure_namespace(core: CoreV1Api, name: str) -> None:
    try:
        core.create_namespace(V1Namespace(metadata=V1ObjectMeta(name=name)), _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status != 409:
            raise


def events_for(core: CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about one object, as `kubectl describe` shows them."""
    listed = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}", _request_timeout=TIMEOUT
    )
    return [(e.type, e.reason, e.message or "") for e in listed.items]
