"""Small builders of API objects for tests: only what a test states differs from a sane default."""

from datetime import UTC, datetime, timedelta
from typing import Any

from buildfarm.api.builds import Build
from buildfarm.api.workers import Worker

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(
    name: str,
    *,
    namespace: str = "ns",
    platform: str = "ios",
    priority: int = 0,
    created: int = 0,
    phase: str | None = "Pending",
    worker: str = "",
    attempt: int = 0,
    selector: dict[str, Any] | None = None,
    cancel: bool = False,
    uid: str | None = None,
    credentials: str | None = None,
) -> Build:
    spec: dict[str, Any] = {
        "platform": platform,
        "source": {"git": {"url": "https://example.com/app.git"}},
        "priority": priority,
        "cancel": cancel,
    }
    if selector is not None:
        spec["workerSelector"] = selector
    if credentials is not None:
        spec["credentials"] = {"secretName": credentials}
    status: dict[str, Any] = {"workerName": worker, "attempt": attempt}
    if phase:
        status["phase"] = phase
    created_at = (T0 + timedelta(seconds=created)).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "creationTimestamp": created_at,
        "resourceVersion": "1",
        "generation": 1,
    }
    return Build.model_validate({"metadata": metadata, "spec": spec, "status": status})


def worker(
    name: str,
    *,
    platforms: tuple[str, ...] = ("ios", "android"),
    capacity: int = 1,
    ready: bool = True,
    cordoned: bool = False,
    labels: dict[str, str] | None = None,
    reservations: list[dict[str, Any]] | None = None,
) -> Worker:
    conditions = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "AgentHeartbeat" if ready else "AgentSilent",
            "lastTransitionTime": T0.isoformat(),
        }
    ]
    return Worker.model_validate(
        {
            "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "1"},
            "spec": {"platforms": list(platforms), "capacity": capacity, "unschedulable": cordoned},
            "status": {"conditions": conditions, "reservations": reservations or []},
        }
    )


def reservation(build_name: str, attempt: int = 1, *, namespace: str = "ns", age: int = 0) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "name": build_name,
        "uid": f"uid-{namespace}-{build_name}",
        "attempt": attempt,
        "reservedAt": (T0 - timedelta(seconds=age)).isoformat(),
    }
