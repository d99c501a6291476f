"""Capacity, order and slots across operator restarts: the operator plans only from a complete view, and
releases a slot only on the API server's word, never on age. Reservation ages are simulated by writing old
(or future) timestamps rather than by waiting."""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api, CustomObjectsApi, V1Namespace, V1ObjectMeta

from buildfarm import constants as c
from tests.conftest import MANAGED_BY_LABEL, discard_namespace
from tests.support.farm import Farm, events_for, wait_for
from tests.support.invariants import watching_active_builds
from tests.support.operators import operator_process

TIMEOUT = 10


@pytest.fixture
def first_namespace(core_v1: CoreV1Api, custom_objects: CustomObjectsApi) -> Iterator[str]:
    """A second namespace whose name lists before the test's own (`a-…` < `test-…`)."""
    name = f"a-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(
        V1Namespace(metadata=V1ObjectMeta(name=name, labels=MANAGED_BY_LABEL)), _request_timeout=TIMEOUT
    )
    yield name
    discard_namespace(core_v1, custom_objects, name)


@contextmanager
def operator(kubeconfig: str, log: Path, *namespaces: str) -> Iterator[None]:
    args = [arg for ns in namespaces for arg in ("--namespace", ns)]
    with operator_process(kubeconfig, log, *args, env={"BUILDFARM_RESYNC_SECONDS": "5"}):
        yield


def set_status(api: CustomObjectsApi, namespace: str, name: str, status: dict[str, Any]) -> None:
    api.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, name, {"status": status}, _request_timeout=TIMEOUT
    )


def age_reservations(farm: Farm, worker: str, reserved_at: datetime) -> None:
    current = farm.get_worker(worker)
    aged = [
        r.model_copy(update={"reserved_at": reserved_at}).model_dump(mode="json", by_alias=True)
        for r in current.status.reservations
    ]
    farm.api.patch_cluster_custom_object_status(
        c.GROUP,
        c.VERSION,
        c.WORKER_PLURAL,
        worker,
        {"status": {"reservations": aged}},
        _request_timeout=TIMEOUT,
    )


def test_capacity_and_fifo_hold_across_restarts(
    farm: Farm, first_namespace: str, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac", capacity=1)
    namespaces = (farm.namespace, first_namespace)
    other = Farm(farm.api, first_namespace)
    with watching_active_builds(farm.api, namespaces, {mac: 1}) as active:
        with operator(kubeconfig, tmp_path / "operator-1.log", *namespaces):
            farm.build("long-running")
            wait_for("the first build assigned", lambda: farm.phases().get("long-running") == "Assigned")
        # It has run for 10 minutes: far past any grace an operator could give a build it has not seen.
        age_reservations(farm, mac, datetime.now(UTC) - timedelta(minutes=10))

        farm.build("earliest")
        time.sleep(1.1)  # creationTimestamp has one-second resolution: make "earliest" strictly first
        later = [other.build(f"later-{i:02d}") for i in range(30)]

        with operator(kubeconfig, tmp_path / "operator-2.log", *namespaces):
            wait_for(
                "every queued build seen waiting for the busy worker",
                lambda: (
                    len(other.builds()) == 30
                    and all(
                        b.status.reason == "WorkerBusy"
                        for b in [*farm.builds(), *other.builds()]
                        if b.name != "long-running"
                    )
                ),
            )
        with operator(kubeconfig, tmp_path / "operator-3.log", *namespaces):
            set_status(farm.api, farm.namespace, "long-running", {"phase": "Succeeded"})
            wait_for(
                "the earliest build gets the freed slot", lambda: farm.phases().get("earliest") == "Assigned"
            )
            age_reservations(farm, mac, datetime.now(UTC) - timedelta(minutes=10))
        with operator(kubeconfig, tmp_path / "operator-4.log", *namespaces):
            set_status(farm.api, farm.namespace, "earliest", {"phase": "Succeeded"})
            wait_for(
                "one later build assigned",
                lambda: sum(p == "Assigned" for p in other.phases().values()) == 1,
            )
            wait_for("the watch to see it", lambda: len(active.assigned_order) == 3)
            # The finished builds' slots go (and are counted) in a later cycle than the new reservation.
            wait_for(
                "only the running build to hold the slot",
                lambda: (
                    [r.name for r in farm.get_worker(mac).status.reservations]
                    == [active.assigned_order[2].split("/")[1]]
                ),
            )

    assert active.over == []
    assert active.peak[mac] == 1
    assert active.assigned_order[:2] == [f"{farm.namespace}/long-running", f"{farm.namespace}/earliest"]
    assert active.assigned_order[2].removeprefix(f"{first_namespace}/") in later
    assert [r.name for r in farm.get_worker(mac).status.reservations] == [
        active.assigned_order[2].split("/")[1]
    ]


def test_a_build_deleted_while_no_operator_runs_frees_its_slot_at_once(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac", capacity=1)
    with operator(kubeconfig, tmp_path / "operator-1.log", farm.namespace):
        farm.build("b1")
        wait_for("b1 assigned", lambda: farm.phases().get("b1") == "Assigned")
    farm.api.delete_namespaced_custom_object(
        c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, "b1", _request_timeout=TIMEOUT
    )
    with operator(kubeconfig, tmp_path / "operator-2.log", farm.namespace):
        farm.build("b2")
        # The old rule kept a slot of a build never seen for 5 minutes; a read settles it now.
        wait_for("b2 assigned to the idle worker", lambda: farm.phases().get("b2") == "Assigned", timeout=60)
    worker = farm.get_worker(mac)
    assert [r.name for r in worker.status.reservations] == ["b2"]
    assert worker.status.active_builds == 1


@pytest.mark.parametrize(
    "reserved_at", ["2999-01-01T00:00:00Z", "2001-01-01T00:00:00Z"], ids=["future-dated", "ancient"]
)
def test_a_reservation_for_a_build_that_does_not_exist_does_not_hold_a_slot(
    farm: Farm, kubeconfig: str, tmp_path: Path, reserved_at: str
) -> None:
    mac = farm.worker("mac", capacity=1)
    ghost = {"namespace": farm.namespace, "name": "ghost", "uid": "no-such-uid", "attempt": 1}
    farm.api.patch_cluster_custom_object_status(
        c.GROUP,
        c.VERSION,
        c.WORKER_PLURAL,
        mac,
        {"status": {"reservations": [{**ghost, "reservedAt": reserved_at}]}},
        _request_timeout=TIMEOUT,
    )
    with operator(kubeconfig, tmp_path / "operator.log", farm.namespace):
        farm.build("real")
        wait_for("the real build assigned", lambda: farm.phases().get("real") == "Assigned", timeout=60)
    assert [r.name for r in farm.get_worker(mac).status.reservations] == ["real"]


def test_a_build_assigned_to_a_worker_that_does_not_exist_is_requeued_or_failed(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    """Someone (a stray agent, a hand-written status) bound builds to a Worker that is not there."""
    ghost = f"{farm.namespace}-ghost"
    farm.build("retried", maxAttempts=2)
    farm.build("spent", maxAttempts=1)
    for name in ("retried", "spent"):
        set_status(farm.api, farm.namespace, name, {"phase": "Pending", "reason": "Queued"})
        set_status(farm.api, farm.namespace, name, {"phase": "Assigned", "workerName": ghost, "attempt": 1})
    real = farm.worker("real", capacity=2)

    with operator(kubeconfig, tmp_path / "operator.log", farm.namespace):
        wait_for(
            "retried runs on the real worker", lambda: farm.get_build("retried").status.worker_name == real
        )
        wait_for("spent failed", lambda: farm.phases().get("spent") == "Failed")

    retried, spent = farm.get_build("retried"), farm.get_build("spent")
    assert (retried.status.phase, retried.status.attempt) == ("Assigned", 2)
    assert (spent.status.reason, spent.status.worker_name, spent.status.attempt) == ("WorkerLost", ghost, 1)
    assert spent.status.message == (
        f"Worker {ghost} does not exist; all 1 attempt(s) allowed by spec.maxAttempts are used."
    )
    reasons = [reason for _, reason, _ in events_for(core_v1, farm.namespace, "retried")]
    assert "Requeued" in reasons
