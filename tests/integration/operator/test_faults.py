"""Transient faults keep a build queued until it is assigned; permanent ones fail it with a reason a user
can read and an Event. Faults come from the real API server (a failing admission webhook, real
conflicts, a worker that is deleted), never from a mock. Nothing is lost."""

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import AdmissionregistrationV1Api, ApiClient, CoreV1Api, V1ObjectMeta, V1Secret

from buildfarm.api.builds import Build
from buildfarm.domain.scheduling import Assignment, Snapshot
from buildfarm.errors import TransientError
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.assignment import Assigner, Result
from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operators
from tests.support.webhook import fault_webhook

TIMEOUT = (5.0, 10.0)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def gateway(api_client: ApiClient) -> Gateway:
    return Gateway(api_client, TIMEOUT)


def snapshot(builds: list[Build]) -> Snapshot:
    return Snapshot(builds=builds, workers=(), now=now())


def queued(farm: Farm, gateway: Gateway, name: str, **spec: Any) -> None:
    """Create a build and admit it into the queue, as the operator's admission handler would."""
    from buildfarm.operator.outcomes import Reporter

    farm.build(name, **spec)
    Reporter(gateway, now).queued(farm.get_build(name))


def test_missing_credentials_fail_the_build_with_a_reason(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    farm.worker("mac")
    core_v1.create_namespaced_secret(
        farm.namespace,
        V1Secret(metadata=V1ObjectMeta(name="signing"), string_data={"p12": "x"}),
        _request_timeout=10,
    )
    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        farm.build("no-secret", credentials={"secretName": "missing"})
        farm.build("with-secret", credentials={"secretName": "signing"})
        wait_for("the build without its secret failed", lambda: farm.phases().get("no-secret") == "Failed")
        wait_for("the build with its secret assigned", lambda: farm.phases().get("with-secret") == "Assigned")

    failed = farm.get_build("no-secret")
    assert failed.status.reason == "CredentialsNotFound"
    assert failed.status.message == (
        f"Secret missing with the signing credentials does not exist in namespace {farm.namespace}: "
        "create it, then re-create the build (`kubectl delete build no-secret`, then apply it again); "
        "the API server keeps a failed build failed."
    )
    assert failed.status.finished_at is not None
    warnings = [e for e in events_for(core_v1, farm.namespace, "no-secret") if e[0] == "Warning"]
    assert [(reason, message) for _, reason, message in warnings] == [
        ("CredentialsNotFound", failed.status.message)
    ]


def test_builds_wait_while_their_worker_is_gone_and_run_on_a_new_one(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    only = farm.worker("only")
    # Only this test's workers fit: Workers are cluster-scoped, and other tests' may still exist.
    mine = {"matchLabels": {"buildfarm.dev/test": farm.namespace}}
    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        farm.build("first", workerSelector=mine)
        wait_for("first assigned", lambda: farm.phases().get("first") == "Assigned")
        farm.build("second", workerSelector=mine)
        wait_for("second waits for a slot", lambda: farm.get_build("second").status.reason == "WorkerBusy")

        farm.delete_worker(only)
        # The build on the deleted worker is requeued (attempt 1 is spent); both wait for a worker.
        wait_for(
            "both say no worker fits",
            lambda: {b.status.reason for b in farm.builds()} == {"NoMatchingWorker"},
        )
        assert farm.phases() == {"first": "Pending", "second": "Pending"}

        replacement = farm.worker("replacement")
        wait_for(
            "first, the older, assigned to the new worker",
            lambda: farm.get_build("first").status.worker_name == replacement,
        )
        wait_for("second waits for it", lambda: farm.get_build("second").status.reason == "WorkerBusy")
    first = farm.get_build("first")
    assert (first.status.phase, first.status.attempt) == ("Assigned", 2)


def test_api_500_once_on_the_binding_write_keeps_the_build_queued(
    farm: Farm, api_client: ApiClient, kubeconfig: str, tmp_path: Path
) -> None:
    failed_once: set[str] = set()

    def first_of_each_phase(request: dict[str, Any]) -> bool:
        if request["name"] != "target":
            return False
        phase = request["object"].get("status", {}).get("phase", "")
        if phase in failed_once:
            return False
        failed_once.add(phase)
        return True

    admission = AdmissionregistrationV1Api(api_client)
    with fault_webhook(admission, farm.namespace, first_of_each_phase) as hook:
        probe = farm.build("probe")
        gw = Gateway(api_client, TIMEOUT)
        # The API server loads webhook configurations asynchronously: wait until it calls ours.
        wait_for("the webhook to be called", lambda: _touch(gw, farm, probe) and hook.seen)
        farm.api.delete_namespaced_custom_object(
            "buildfarm.dev", "v1alpha1", farm.namespace, "builds", probe, _request_timeout=10
        )

        farm.worker("mac")
        with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
            farm.build("target")
            wait_for(
                "target assigned despite two 500s",
                lambda: farm.phases().get("target") == "Assigned",
            )

    # A new build with a free worker goes straight to Assigned: its first binding write failed.
    assert [r["object"]["status"]["phase"] for r in hook.failed] == ["Assigned"]
    target = farm.get_build("target")
    assert (target.status.attempt, target.status.phase) == (1, "Assigned")


def _touch(gw: Gateway, farm: Farm, name: str) -> bool:
    build = farm.get_build(name)
    with contextlib.suppress(TransientError):
        gw.write_build_status(
            build, build.status.model_copy(update={"message": f"probe {now().isoformat()}"})
        )
    return True


def test_assigner_rereads_after_a_conflict(farm: Farm, gateway: Gateway) -> None:
    worker = farm.worker("mac")
    queued(farm, gateway, "b")
    stale = farm.get_build("b")
    farm.api.patch_namespaced_custom_object(  # someone else changes the build: its resourceVersion moves
        "buildfarm.dev",
        "v1alpha1",
        farm.namespace,
        "builds",
        "b",
        {"metadata": {"labels": {"touched": "yes"}}},
        _request_timeout=10,
    )
    outcome = Assigner(gateway, now).assign(
        Assignment(stale, worker, 1, already_reserved=False), snapshot([stale])
    )

    assert outcome.result is Result.ASSIGNED
    bound = farm.get_build("b")
    assert (bound.status.phase, bound.status.worker_name, bound.status.attempt) == ("Assigned", worker, 1)
    assert bound.metadata["labels"] == {"touched": "yes"}


def test_assigner_skips_a_build_taken_meanwhile_and_gives_the_slot_back(farm: Farm, gateway: Gateway) -> None:
    mine, theirs = farm.worker("mine"), farm.worker("theirs")
    queued(farm, gateway, "b")
    stale = farm.get_build("b")
    Assigner(gateway, now).assign(Assignment(stale, theirs, 1, already_reserved=False), snapshot([stale]))

    outcome = Assigner(gateway, now).assign(
        Assignment(stale, mine, 1, already_reserved=False), snapshot([stale])
    )

    assert outcome.result is Result.SKIPPED
    assert farm.get_build("b").status.worker_name == theirs
    assert farm.get_worker(mine).status.reservations == []
    assert [r.name for r in farm.get_worker(theirs).status.reservations] == ["b"]


def test_assigner_refuses_a_worker_that_disappeared(farm: Farm, gateway: Gateway) -> None:
    gone = farm.worker("gone")
    queued(farm, gateway, "b")
    build = farm.get_build("b")
    farm.delete_worker(gone)

    with pytest.raises(TransientError) as info:
        Assigner(gateway, now).assign(Assignment(build, gone, 1, already_reserved=False), snapshot([build]))

    assert info.value.reason == "WorkerGone"
    after = farm.get_build("b")
    assert (after.status.phase, after.status.attempt, after.status.worker_name) == ("Pending", 0, "")


def test_a_full_worker_is_not_overbooked(farm: Farm, gateway: Gateway) -> None:
    worker = farm.worker("one-slot")
    queued(farm, gateway, "a")
    queued(farm, gateway, "b")
    a, b = farm.get_build("a"), farm.get_build("b")
    Assigner(gateway, now).assign(Assignment(a, worker, 1, already_reserved=False), snapshot([a, b]))

    # A stale plan that still thinks the worker is free must not get the slot.
    with pytest.raises(TransientError) as info:
        Assigner(gateway, now).assign(Assignment(b, worker, 1, already_reserved=False), snapshot([a, b]))

    assert info.value.reason == "WorkerBusy"
    assert farm.get_build("b").status.phase == "Pending"


def test_a_deleted_builds_slot_goes_to_the_next_build(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    worker = farm.worker("one-slot")
    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        farm.build("first")
        wait_for("first assigned", lambda: farm.phases().get("first") == "Assigned")
        farm.build("second")
        wait_for("second waits", lambda: farm.get_build("second").status.reason == "WorkerBusy")

        farm.api.delete_namespaced_custom_object(
            "buildfarm.dev", "v1alpha1", farm.namespace, "builds", "first", _request_timeout=10
        )
        # Well inside the grace kept for builds never seen: the deletion itself frees the slot.
        wait_for("second assigned", lambda: farm.get_build("second").status.worker_name == worker, timeout=30)
    assert [r.name for r in farm.get_worker(worker).status.reservations] == ["second"]
