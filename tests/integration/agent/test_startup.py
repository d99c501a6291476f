"""`buildfarm agent` refuses to start with one line: exit 2 for a bad setting, 1 for a cluster it cannot
use (here: the farm namespace for its Lease does not exist)."""

import os
import subprocess

from tests.support.agents import AgentFarm
from tests.support.operators import buildfarm_command


def run_agent(agents: AgentFarm, *args: str, **settings: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("BUILDFARM_", "KUBECONFIG"))}
    env |= {"KUBECONFIG": agents.kubeconfig, **agents.settings_env("mac", **settings)}
    agents.farm.workers.append(agents.worker_name("mac"))
    return subprocess.run(
        [*buildfarm_command(), "agent", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_setting(agents: AgentFarm) -> None:
    result = run_agent(agents, "--capacity", "0", relist_seconds="soon")
    assert result.returncode == 2
    assert result.stderr == (
        "error: --capacity: must be between 1 and 64 (got 0); "
        "BUILDFARM_AGENT_RELIST_SECONDS: must be a number of seconds (got soon)\n"
    )


def test_a_missing_farm_namespace(agents: AgentFarm) -> None:
    result = run_agent(agents, namespace="no-such-farm")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: the agent cannot run: the namespace no-such-farm for the agent's Lease does not exist: "
        "create it (`kubectl create namespace no-such-farm`) or set BUILDFARM_AGENT_NAMESPACE"
    )
