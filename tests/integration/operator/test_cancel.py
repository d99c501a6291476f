"""Cancelling: the operator cancels a build that has not started; once a build is assigned, stopping it is
its agent's job, so the operator leaves it alone."""

from datetime import UTC, datetime
from pathlib import Path

from kubernetes.client import ApiClient, CoreV1Api

from buildfarm.domain.scheduling import Assignment, Snapshot
from buildfarm.kube.gateway import Gateway
from buildfarm.operator.assignment import Assigner
from buildfarm.operator.outcomes import Reporter
from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operators

TIMEOUT = (5.0, 10.0)


def now() -> datetime:
    return datetime.now(UTC)


def cancel(farm: Farm, name: str) -> None:
    farm.api.patch_namespaced_custom_object(
        "buildfarm.dev",
        "v1alpha1",
        farm.namespace,
        "builds",
        name,
        {"spec": {"cancel": True}},
        _request_timeout=10,
    )


def test_a_pending_build_is_cancelled(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        # No worker of this test's exists, so it waits (it selects ours: other tests' Workers may exist).
        farm.build("waiting", workerSelector={"matchLabels": {"buildfarm.dev/test": farm.namespace}})
        wait_for("queued", lambda: farm.get_build("waiting").status.reason == "NoMatchingWorker")
        cancel(farm, "waiting")
        wait_for("cancelled", lambda: farm.phases()["waiting"] == "Cancelled")

    cancelled = farm.get_build("waiting")
    assert (cancelled.status.reason, cancelled.status.finished_at is not None) == ("Cancelled", True)
    assert ("Normal", "Cancelled") in [(t, r) for t, r, _ in events_for(core_v1, farm.namespace, "waiting")]


def test_an_assigned_build_is_left_to_its_agent(farm: Farm, api_client: ApiClient) -> None:
    gateway = Gateway(api_client, TIMEOUT)
    worker = farm.worker("mac")
    farm.build("b")
    pending = Reporter(gateway, now).queued(farm.get_build("b"))
    Assigner(gateway, now).assign(
        Assignment(pending, worker, 1, already_reserved=False), Snapshot([pending], (), now())
    )
    cancel(farm, "b")

    # A cycle planned on the stale pending copy: its write conflicts, and the re-read shows Assigned.
    Reporter(gateway, now).cancel(pending)

    assert farm.get_build("b").status.phase == "Assigned"
