"""Test helpers that create Workers and Builds on the real API server and read back what happened."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker

TIMEOUT = 10
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


def events_for(core: CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about one object, as `kubectl describe` shows them."""
    listed = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}", _request_timeout=TIMEOUT
    )
    return [(e.type, e.reason, e.message or "") for e in listed.items]
