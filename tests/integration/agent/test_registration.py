"""Registration and heartbeat: the agent creates or adopts its Worker, reports capabilities, renews its
Lease and releases it on SIGTERM. A restarted agent keeps its identity and never changes the spec."""

import re
import signal

from kubernetes.client import ApiClient, CoordinationV1Api

from tests.support.agents import AgentFarm
from tests.support.farm import TIMEOUT, Farm, wait_for

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def lease(api_client: ApiClient, namespace: str, name: str) -> dict[str, object]:
    """The Lease as the API server stores it (raw JSON, times as sent back)."""
    response = CoordinationV1Api(api_client).read_namespaced_lease(
        name, namespace, _request_timeout=TIMEOUT, _preload_content=False
    )
    import json

    spec: dict[str, object] = json.loads(response.data)["spec"]
    return spec


def test_registers_renews_and_releases(agents: AgentFarm, farm: Farm, api_client: ApiClient) -> None:
    with agents.agent("mac", capacity=2, labels="xcode=16.2") as agent:
        worker = wait_for(
            "the worker with capabilities",
            lambda: (w := _worker(farm, agent.worker)) and w.status.capabilities.cpu_cores and w,
        )
        assert (worker.spec.capacity, sorted(worker.spec.platforms), worker.labels.get("xcode")) == (
            2,
            ["android", "ios"],
            "16.2",
        )
        caps = worker.status.capabilities
        assert caps.architecture
        assert caps.os_version
        assert caps.agent_version
        assert (caps.memory_bytes or 0) > 0
        assert (caps.free_disk_bytes or 0) > 0
        assert worker.status.conditions == []  # Ready belongs to the operator

        first = wait_for("the lease", lambda: _lease_or_none(api_client, farm.namespace, agent.worker))
        assert (first["holderIdentity"], first["leaseDurationSeconds"]) == (agent.worker, 10)
        assert MICRO_TIME.match(str(first["renewTime"])), first
        assert MICRO_TIME.match(str(first["acquireTime"])), first
        wait_for(
            "a renewal",
            lambda: lease(api_client, farm.namespace, agent.worker)["renewTime"] != first["renewTime"],
        )

        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.log()

    released = lease(api_client, farm.namespace, agent.worker)
    assert released["holderIdentity"] == "", released


def test_a_restarted_agent_adopts_its_worker_and_keeps_the_spec(agents: AgentFarm, farm: Farm) -> None:
    with agents.agent("mac", capacity=1) as agent:
        wait_for(
            "capabilities", lambda: (w := _worker(farm, agent.worker)) and w.status.capabilities.cpu_cores
        )
        uid = farm.get_worker(agent.worker).uid
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.log()

    farm.patch_worker(agent.worker, {"capacity": 3})  # the administrator's change
    farm.api.patch_cluster_custom_object_status(
        "buildfarm.dev",
        "v1alpha1",
        "workers",
        agent.worker,
        {"status": {"capabilities": {"cpuCores": 0, "osVersion": "stale"}}},
        _request_timeout=TIMEOUT,
    )
    with agents.agent("mac", capacity=5, platforms="android") as again:
        refreshed = wait_for(
            "refreshed capabilities",
            lambda: (w := farm.get_worker(again.worker)).status.capabilities.os_version != "stale" and w,
        )
        assert refreshed.uid == uid
        assert (refreshed.spec.capacity, sorted(refreshed.spec.platforms)) == (3, ["android", "ios"])
        assert "Adopted worker" in again.log()


def _worker(farm: Farm, name: str):  # type: ignore[no-untyped-def]
    try:
        return farm.get_worker(name)
    except Exception:
        return None


def _lease_or_none(api_client: ApiClient, namespace: str, name: str) -> dict[str, object] | None:
    try:
        return lease(api_client, namespace, name)
    except Exception:
        return None
