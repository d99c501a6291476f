"""The writes of the assignment protocol, counted from watches (every change of an object is one watch
event): a new build with a free worker is assigned with exactly the documented writes (one reservation
write on the Worker, one binding write on the Build, one Event; no admission write, no kopf bookkeeping),
and a build that must wait is written Pending with its reason once, not once per scheduling cycle. See
docs/assignment-protocol.md."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import watch
from kubernetes.client import CoreV1Api, CustomObjectsApi

from buildfarm import constants as c
from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operator_process

TIMEOUT = 10
# Short resyncs: many scheduling cycles run while the test waits, so a write per cycle would show.
FAST = {"BUILDFARM_RESYNC_SECONDS": "1", "BUILDFARM_STARTUP_GRACE_SECONDS": "0"}


class Changes:
    """Every version of the matching objects that a watch delivered, from a given resourceVersion on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def of(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(t, o) for t, o in self.seen if o["metadata"]["name"] == name]

    def saw_version(self, name: str, resource_version: str) -> bool:
        assert self.error is None, f"the watch stopped: {self.error}"
        return any(o["metadata"]["resourceVersion"] == resource_version for _, o in self.of(name))

    def add(self, event_type: str, obj: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((event_type, obj))


@contextmanager
def watching(
    list_call: Callable[..., Any], *args: Any, resource_version: str, **kwargs: Any
) -> Iterator[Changes]:
    changes = Changes()
    stop = threading.Event()
    watcher = watch.Watch()  # type: ignore[no-untyped-call]

    def run() -> None:
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                list_call,
                *args,
                resource_version=resource_version,
                timeout_seconds=120,
                _request_timeout=150,
                **kwargs,
            ):
                typed: dict[str, Any] = event
                changes.add(typed["type"], typed["object"])
                if stop.is_set():
                    return
        except Exception as exc:  # a watch cut short: the test fails on the versions it did not see
            changes.error = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield changes
    finally:
        stop.set()
        watcher.stop()  # type: ignore[no-untyped-call]


def build_rv(api: CustomObjectsApi, namespace: str) -> str:
    listed = api.list_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, _request_timeout=TIMEOUT
    )
    return str(listed["metadata"]["resourceVersion"])


def test_a_new_build_with_a_free_worker_is_assigned_with_three_writes(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    worker = farm.worker("mac", capacity=2)
    log = tmp_path / "operator.log"
    with operator_process(kubeconfig, log, "--namespace", farm.namespace, env=FAST):
        start = farm.get_worker(worker).resource_version
        with (
            watching(
                farm.api.list_cluster_custom_object,
                c.GROUP,
                c.VERSION,
                c.WORKER_PLURAL,
                field_selector=f"metadata.name={worker}",
                resource_version=start,
            ) as worker_changes,
            watching(
                farm.api.list_namespaced_custom_object,
                c.GROUP,
                c.VERSION,
                farm.namespace,
                c.BUILD_PLURAL,
                resource_version=build_rv(farm.api, farm.namespace),
            ) as build_changes,
        ):
            farm.build("b")
            wait_for("b assigned", lambda: farm.get_build("b").status.phase == "Assigned")
            wait_for("its Event", lambda: events_for(core_v1, farm.namespace, "b"))
            # Several more scheduling cycles (resync every second, and a second build's) change nothing.
            farm.build("other", platform="android", workerSelector={"matchLabels": {"none": "x"}})
            wait_for("other waits", lambda: farm.get_build("other").status.reason == "NoMatchingWorker")
            final_build = farm.get_build("b").resource_version
            final_worker = farm.get_worker(worker).resource_version
            wait_for("the watches to catch up", lambda: build_changes.saw_version("b", final_build))
            wait_for("the watches to catch up", lambda: worker_changes.saw_version(worker, final_worker))

    build_writes = build_changes.of("b")
    assert [t for t, _ in build_writes] == ["ADDED", "MODIFIED"], log.read_text()[-3000:]
    bound = build_writes[1][1]
    assert bound["status"]["phase"] == "Assigned"
    assert "annotations" not in bound["metadata"] or not any(
        k.startswith(c.GROUP) for k in bound["metadata"]["annotations"]
    ), "kopf wrote bookkeeping onto the build"
    worker_writes = worker_changes.of(worker)
    assert len(worker_writes) == 1, [w["status"] for _, w in worker_writes]
    reserved = worker_writes[0][1]["status"]
    assert [r["name"] for r in reserved["reservations"]] == ["b"]
    assert reserved["activeBuilds"] == 1  # in the reservation write, not a separate one
    assert [(t, r) for t, r, _ in events_for(core_v1, farm.namespace, "b")] == [("Normal", "Assigned")]


def test_a_build_that_must_wait_is_written_pending_once(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    farm.worker("mac", capacity=1)
    log = tmp_path / "operator.log"
    with operator_process(kubeconfig, log, "--namespace", farm.namespace, env=FAST):
        farm.build("first")
        wait_for("first assigned", lambda: farm.get_build("first").status.phase == "Assigned")
        with watching(
            farm.api.list_namespaced_custom_object,
            c.GROUP,
            c.VERSION,
            farm.namespace,
            c.BUILD_PLURAL,
            resource_version=build_rv(farm.api, farm.namespace),
        ) as changes:
            farm.build("waiting")
            wait_for("waiting is Pending", lambda: farm.get_build("waiting").status.reason == "WorkerBusy")
            # Each new build makes a cycle that plans `waiting` again; so do the resyncs meanwhile.
            for name in ("later-0", "later-1", "later-2"):
                farm.build(name)
                wait_for(f"{name} waits", lambda name=name: farm.get_build(name).status.phase == "Pending")
            final = farm.get_build("waiting").resource_version
            wait_for("the watch to catch up", lambda: changes.saw_version("waiting", final))

    writes = changes.of("waiting")
    assert [t for t, _ in writes] == ["ADDED", "MODIFIED"], log.read_text()[-3000:]
    status = writes[1][1]["status"]
    assert (status["phase"], status["reason"]) == ("Pending", "WorkerBusy")
    assert [(t, r) for t, r, _ in events_for(core_v1, farm.namespace, "waiting")] == [
        ("Normal", "WorkerBusy")
    ]
