"""An agent killed with SIGKILL mid-build: its build processes outlive it, so the restarted agent kills
them, deletes the old workspace, and requeues the build it can no longer finish (attempt spent)."""

import signal
from pathlib import Path

from tests.support.agents import LONG, AgentFarm, ArchiveServer, assign, gone, running_with_pids
from tests.support.farm import Farm, wait_for


def test_a_restarted_agent_cleans_up_after_a_crash(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    with agents.agent("mac") as crashed:
        farm.build("b", source=archives.source("b", children=1, pid_file=str(pid_file), **LONG))
        assign(farm, "b", crashed.worker)
        pids = running_with_pids(farm, "b", pid_file, 2)
        crashed.signal(signal.SIGKILL)
        assert crashed.wait() == -signal.SIGKILL
    assert not any(gone(pid) for pid in pids)  # the build outlived its agent
    assert list((crashed.work_dir / "workspaces").iterdir())

    with agents.agent("mac") as restarted:
        requeued = wait_for(
            "the build requeued", lambda: (b := farm.get_build("b")).status.phase == "Pending" and b
        )
        assert all(gone(pid) for pid in pids)
        assert list((restarted.work_dir / "workspaces").iterdir()) == []

    status = requeued.status
    assert (status.reason, status.worker_name, status.attempt, status.handbacks) == (
        "AgentRestarted",
        "",
        1,
        0,
    )
