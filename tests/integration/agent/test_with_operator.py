"""The agent with the real operator: the operator marks the agent's Worker Ready from the agent's Lease,
assigns the builds a user submits, and the agent runs them to Succeeded; when the agent stops and
releases its Lease, the operator marks the Worker not Ready at once (AgentStopped)."""

import signal
from pathlib import Path

from kubernetes.client import CoreV1Api

from buildfarm.api.workers import Worker
from tests.support.agents import AgentFarm, ArchiveServer
from tests.support.farm import FARM_NAMESPACE, Farm, ensure_namespace, wait_for
from tests.support.operators import operators

# No startup grace: the operator may mark the worker not Ready as soon as the agent releases its Lease.
OPERATOR_ENV = {"BUILDFARM_STARTUP_GRACE_SECONDS": "0"}


def test_operator_assigns_and_the_agent_runs(
    agents: AgentFarm,
    farm: Farm,
    archives: ArchiveServer,
    kubeconfig: str,
    tmp_path: Path,
    core_v1: CoreV1Api,
) -> None:
    ensure_namespace(core_v1, FARM_NAMESPACE)  # the operator's default farm namespace
    with (
        operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace], env=OPERATOR_ENV),
        agents.agent("mac", capacity=2, namespace=FARM_NAMESPACE) as agent,
    ):
        wait_for("the worker Ready from its Lease", lambda: (w := _worker(farm, agent.worker)) and w.ready)
        for name in ("ios-1", "android-1", "ios-2"):
            platform = name.split("-")[0]
            farm.build(name, platform=platform, source=archives.source(name, seconds=1, lines=3))
        wait_for(
            "all Succeeded",
            lambda: len(farm.phases()) == 3 and set(farm.phases().values()) == {"Succeeded"},
            timeout=90,
        )
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.log()
        stopped = wait_for(
            "the worker not Ready",
            lambda: (w := farm.get_worker(agent.worker)).condition("Ready") and not w.ready and w,
        )

    for build in farm.builds():
        assert (build.status.worker_name, build.status.attempt, len(build.status.artifacts)) == (
            agent.worker,
            1,
            1,
        )
    ready = stopped.condition("Ready")
    assert ready is not None
    assert ready.reason == "AgentStopped"
    assert stopped.status.capabilities.cpu_cores  # the operator's writes kept the agent's field


def _worker(farm: Farm, name: str) -> Worker | None:
    try:
        return farm.get_worker(name)
    except Exception:
        return None
