"""A stalled API server: the agent's calls time out, its Lease renewals fail and are logged, the build
it runs goes on regardless, and when the server answers again the renewals resume and the build is
reported. The stall is a TCP proxy in front of the real API server that stops forwarding bytes."""

from pathlib import Path

from tests.integration.operator.test_stalled_api import api_port, proxied_kubeconfig
from tests.support.agents import AgentFarm, ArchiveServer, assign
from tests.support.farm import Farm, wait_for
from tests.support.stallproxy import StallProxy


def test_the_agent_rides_out_a_stalled_api_server(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, kubeconfig: str, tmp_path: Path
) -> None:
    with StallProxy("127.0.0.1", api_port(kubeconfig)) as proxy:
        agents.kubeconfig = str(proxied_kubeconfig(kubeconfig, proxy.port, tmp_path / "kubeconfig"))
        with agents.agent("mac", request_timeout=2, connect_timeout=1) as agent:
            farm.build("b", source=archives.source("b", seconds=6, lines=12))
            assign(farm, "b", agent.worker)
            wait_for("Running", lambda: farm.get_build("b").status.phase == "Running")

            proxy.stall()  # the test itself talks to the API server directly
            wait_for("a failed renewal", lambda: "Could not renew lease" in agent.log())
            proxy.resume()
            wait_for("renewals again", lambda: "Renewed lease" in agent.log())
            done = wait_for("Succeeded", lambda: (b := farm.get_build("b")).status.phase == "Succeeded" and b)

    assert "[fake-eas] Wrote b.ipa" in done.status.log_tail
