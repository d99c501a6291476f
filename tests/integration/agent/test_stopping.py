"""Stopping builds: cancel (the whole process group really gone), SIGTERM handback, grace for running
builds, and a build taken away mid-run (killed, and nothing more written to it)."""

import ctypes
import errno
import signal
from pathlib import Path

import psutil
import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tests.support.agents import (
    LONG,
    Agent,
    AgentFarm,
    ArchiveServer,
    assign,
    gone,
    patch_build,
    running_with_pids,
)
from tests.support.farm import Farm, wait_for


def cancel(farm: Farm, name: str) -> None:
    patch_build(farm, name, {"spec": {"cancel": True}})


def test_cancel_kills_the_whole_process_group(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    with agents.agent("mac") as agent:
        # The build ignores SIGTERM, so only the SIGKILL after the grace period stops it.
        farm.build(
            "b", source=archives.source("b", children=2, pid_file=str(pid_file), ignore_term=True, **LONG)
        )
        assign(farm, "b", agent.worker)
        pids = running_with_pids(farm, "b", pid_file, 3)
        assert not any(gone(pid) for pid in pids)
        cancel(farm, "b")
        done = wait_for("Cancelled", lambda: (b := farm.get_build("b")).status.phase == "Cancelled" and b)
        assert all(gone(pid) for pid in pids), [p for p in pids if not gone(p)]

    assert (done.status.reason, done.status.finished_at is not None) == ("Cancelled", True)


def test_cancel_of_an_assigned_build_that_waits_for_a_slot(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer
) -> None:
    with agents.agent("mac", capacity=1) as agent:
        farm.build("first", source=archives.source("first", **LONG))
        farm.build("second", source=archives.source("second", **LONG))
        assign(farm, "first", agent.worker)
        wait_for("first Running", lambda: farm.get_build("first").status.phase == "Running")
        assign(farm, "second", agent.worker)
        cancel(farm, "second")
        wait_for("second Cancelled", lambda: farm.get_build("second").status.phase == "Cancelled")
        assert farm.get_build("first").status.phase == "Running"
        cancel(farm, "first")
        wait_for("first Cancelled", lambda: farm.get_build("first").status.phase == "Cancelled")


def test_sigterm_hands_back_what_does_not_finish_in_the_grace_period(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    with agents.agent("mac", stop_grace_seconds=1) as agent:
        farm.build("b", source=archives.source("b", children=1, pid_file=str(pid_file), **LONG))
        assign(farm, "b", agent.worker)
        pids = running_with_pids(farm, "b", pid_file, 2)
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.log()

    status = farm.get_build("b").status
    assert (status.phase, status.worker_name, status.attempt, status.handbacks, status.reason) == (
        "Pending",
        "",
        1,
        1,
        "HandedBack",
    )
    assert all(gone(pid) for pid in pids)


def test_sigterm_lets_a_running_build_finish(agents: AgentFarm, farm: Farm, archives: ArchiveServer) -> None:
    with agents.agent("mac", stop_grace_seconds=60) as agent:
        farm.build("b", source=archives.source("b", seconds=2, lines=4))
        assign(farm, "b", agent.worker)
        wait_for("Running", lambda: farm.get_build("b").status.phase == "Running")
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0, agent.log()

    assert farm.get_build("b").status.phase == "Succeeded"


def signal_another_thread(agent: Agent, sig: signal.Signals) -> None:
    """Send `sig` to one of the agent's threads other than the main one, as the kernel may deliver a
    signal sent to the process (glibc's tgkill; a process-directed kill picks the thread itself)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "tgkill"):
        pytest.skip("needs glibc's tgkill to pick the thread a signal goes to")
    others = [t.id for t in psutil.Process(agent.proc.pid).threads() if t.id != agent.proc.pid]
    for thread in others:
        if libc.tgkill(agent.proc.pid, thread, sig) == 0:
            return
        if ctypes.get_errno() != errno.ESRCH:  # ESRCH: that thread has just ended; try the next
            raise OSError(ctypes.get_errno(), "tgkill failed")
    raise AssertionError(f"no thread of the agent besides the main one took the signal: {others}")


def test_sigterm_received_by_another_thread_stops_the_agent(agents: AgentFarm) -> None:
    # CI once saw an agent notice its SIGTERM only 30 s later, when a SIGQUIT woke its main thread.
    with agents.agent("mac") as agent:
        wait_for("the agent to run", lambda: "is running" in agent.log())
        signal_another_thread(agent, signal.SIGTERM)
        assert agent.wait() == 0, agent.log()

    assert "Received SIGTERM: taking no new builds" in agent.log()


def test_a_reassigned_build_is_killed_and_never_written_again(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, tmp_path: Path, api_client: ApiClient
) -> None:
    pid_file = tmp_path / "pids"
    with agents.agent("mac") as agent:
        farm.build("b", source=archives.source("b", children=1, pid_file=str(pid_file), **LONG))
        assign(farm, "b", agent.worker)
        pids = running_with_pids(farm, "b", pid_file, 2)
        seen_by_agent = farm.get_build("b")

        # The operator requeues the build (as for a lost worker) and gives it to another worker at the
        # next attempt; the second write is conditional, so any write of the agent in between fails it.
        requeued = patch_build(
            farm, "b", {"status": {"phase": "Pending", "workerName": "", "reason": "Requeued"}}, status=True
        )
        moved = patch_build(
            farm,
            "b",
            {
                "metadata": {"resourceVersion": requeued["metadata"]["resourceVersion"]},
                "status": {"phase": "Assigned", "workerName": "someone-else", "attempt": 2},
            },
            status=True,
        )
        wait_for("the agent to let go", lambda: "wrote nothing more" in agent.log())
        assert all(gone(pid) for pid in pids)
        # The run has ended; the build is exactly as the reassignment left it.
        assert farm.get_build("b").resource_version == moved["metadata"]["resourceVersion"]

        # What a late write of the old agent would meet: its version is stale (409) ...
        stale = {
            "metadata": {"resourceVersion": seen_by_agent.resource_version},
            "status": {"phase": "Succeeded", "reason": "Succeeded"},
        }
        with pytest.raises(ApiException) as conflict:
            patch_build(farm, "b", stale, status=True)
        assert conflict.value.status == 409
        # ... and even on the current version, its token is refused by the CEL rules (422).
        late = {
            "metadata": {"resourceVersion": moved["metadata"]["resourceVersion"]},
            "status": {"phase": "Succeeded", "workerName": agent.worker, "attempt": 1},
        }
        with pytest.raises(ApiException) as refused:
            patch_build(farm, "b", late, status=True)
        assert refused.value.status == 422
        assert "status.attempt cannot decrease" in str(refused.value.body)


def test_sigterm_hands_back_waiting_builds_at_once_and_sigquit_the_rest(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer
) -> None:
    with agents.agent("mac", capacity=1, stop_grace_seconds=600) as agent:
        farm.build("running", source=archives.source("running", **LONG))
        farm.build("waiting", source=archives.source("waiting", **LONG))
        assign(farm, "running", agent.worker)
        wait_for("running", lambda: farm.get_build("running").status.phase == "Running")
        assign(farm, "waiting", agent.worker)

        agent.signal(signal.SIGTERM)
        wait_for("the waiting build handed back", lambda: farm.get_build("waiting").status.phase == "Pending")
        assert farm.get_build("running").status.phase == "Running"  # within its grace period
        agent.signal(signal.SIGQUIT)
        assert agent.wait() == 0, agent.log()

    for name in ("running", "waiting"):
        status = farm.get_build(name).status
        assert (status.phase, status.reason, status.handbacks, status.worker_name) == (
            "Pending",
            "HandedBack",
            1,
            "",
        ), name
