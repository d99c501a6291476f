"""The agent with the real operator: a build submitted by a user is assigned by the operator and run to
Succeeded by the agent. The operator does not derive Ready from the Lease yet, so the test marks the
agent's Worker Ready as farm.set_ready does."""

from pathlib import Path

from tests.support.agents import AgentFarm, ArchiveServer
from tests.support.farm import Farm, wait_for
from tests.support.operators import operators


def test_operator_assigns_and_the_agent_runs(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, kubeconfig: str, tmp_path: Path
) -> None:
    with agents.agent("mac", capacity=2) as agent:
        wait_for("the worker", lambda: _exists(farm, agent.worker))
        farm.set_ready(agent.worker, True)
        with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
            for name in ("ios-1", "android-1", "ios-2"):
                platform = name.split("-")[0]
                farm.build(name, platform=platform, source=archives.source(name, seconds=1, lines=3))
            wait_for(
                "all Succeeded",
                lambda: set(farm.phases().values()) == {"Succeeded"} and len(farm.phases()) == 3,
                timeout=90,
            )

    for build in farm.builds():
        assert (build.status.worker_name, build.status.attempt, len(build.status.artifacts)) == (
            agent.worker,
            1,
            1,
        )
    worker = farm.get_worker(agent.worker)
    assert worker.status.capabilities.cpu_cores  # the operator's writes kept the agent's field


def _exists(farm: Farm, name: str) -> bool:
    try:
        farm.get_worker(name)
    except Exception:
        return False
    return True
