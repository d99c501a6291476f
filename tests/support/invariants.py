"""Invariants checked continuously from a watch on the real API server, not from snapshots: every state
the API server ever held between start and stop is seen, in resourceVersion order."""

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import watch
from kubernetes.client import CustomObjectsApi

from buildfarm import constants as c

ACTIVE = ("Assigned", "Running")
WATCH_SECONDS = 5  # each watch call returns after this long and is reopened from the last version


@dataclass
class ActiveBuilds:
    """Which builds were active on which worker, at every moment a watch saw."""

    capacity: dict[str, int]
    namespaces: frozenset[str]
    now: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, name) -> worker
    peak: Counter[str] = field(default_factory=Counter)
    over: list[str] = field(default_factory=list)
    assigned_order: list[str] = field(default_factory=list)  # "namespace/name" as each got its first worker
    attempts_per_worker: dict[tuple[str, str, int], set[str]] = field(default_factory=dict)

    def apply(self, event_type: str, body: dict[str, Any]) -> None:
        meta, status = body["metadata"], body.get("status") or {}
        key = (meta["namespace"], meta["name"])
        if key[0] not in self.namespaces:
            return
        worker = status.get("workerName") or ""
        if event_type != "DELETED" and status.get("phase") in ACTIVE and worker:
            if key not in self.now and f"{key[0]}/{key[1]}" not in self.assigned_order:
                self.assigned_order.append(f"{key[0]}/{key[1]}")
            self.now[key] = worker
            self.attempts_per_worker.setdefault((*key, int(status.get("attempt", 0))), set()).add(worker)
        else:
            self.now.pop(key, None)
        load = Counter(self.now.values())
        for name, count in load.items():
            self.peak[name] = max(self.peak[name], count)
            if count > self.capacity.get(name, 0):
                self.over.append(f"{name} ran {count} builds (capacity {self.capacity.get(name, 0)})")


@contextmanager
def watching_active_builds(
    api: CustomObjectsApi, namespaces: Iterable[str], capacity: dict[str, int]
) -> Iterator[ActiveBuilds]:
    """Track active builds per worker from a cluster-wide watch until the block ends."""
    state = ActiveBuilds(capacity=dict(capacity), namespaces=frozenset(namespaces))
    listed = api.list_cluster_custom_object(c.GROUP, c.VERSION, c.BUILD_PLURAL, _request_timeout=10)
    for item in listed["items"]:
        state.apply("ADDED", item)
    version = listed["metadata"]["resourceVersion"]
    stop = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:
        nonlocal version
        try:
            while not stop.is_set():
                stream = watch.Watch().stream(
                    api.list_cluster_custom_object,
                    c.GROUP,
                    c.VERSION,
                    c.BUILD_PLURAL,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + 10,
                )
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    state.apply(event["type"], obj)
        except BaseException as exc:  # surfaced in the test, not lost in a thread
            errors.append(exc)

    thread = threading.Thread(target=follow, name="active-builds-watch", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=WATCH_SECONDS + 15)
    assert not errors, f"the watch failed: {errors[0]!r}"
