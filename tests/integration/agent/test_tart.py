"""The tart executor against stand-in `tart` and `ssh` executables: every build runs in a fresh VM that
is always deleted, after success, failure and cancel; a dead agent's VMs are deleted on the next start."""

import os
from pathlib import Path

import pytest

from tests.support import tart
from tests.support.agents import AgentFarm, ArchiveServer, assign, patch_build
from tests.support.farm import Farm, wait_for

IMAGE = "ghcr.io/cirruslabs/macos-sequoia-xcode:latest"


@pytest.fixture
def stand_ins(tmp_path: Path) -> tuple[str, Path]:
    """(PATH with the stand-ins first, their state directory)."""
    bin_dir, state = tmp_path / "bin", tmp_path / "tart-state"
    tart.install(bin_dir, state)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}", state


def tart_agent(agents: AgentFarm, path: str):  # type: ignore[no-untyped-def]
    return agents.agent("mac", executor="tart", tart_image=IMAGE, build_path=path, path=path)


def finished(farm: Farm, name: str):  # type: ignore[no-untyped-def]
    return wait_for(
        f"{name} final",
        lambda: (b := farm.get_build(name)).status.phase in ("Succeeded", "Failed", "Cancelled") and b,
    )


def test_a_build_runs_in_a_fresh_vm_that_is_deleted(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, stand_ins: tuple[str, Path]
) -> None:
    path, state = stand_ins
    prefix = f"buildfarm-{agents.worker_name('mac')}-"
    tart.fake_vm(state, f"{prefix}deadbeef-1")  # left by a crashed agent of this worker
    tart.fake_vm(state, "someone-elses-vm")
    with tart_agent(agents, path) as agent:
        wait_for("the stale VM deleted", lambda: tart.vms(state) == ["someone-elses-vm"])
        farm.build("ok", source=archives.source("ok", seconds=0.5, lines=2))
        assign(farm, "ok", agent.worker)
        done = finished(farm, "ok")

    assert (done.status.phase, [a.name for a in done.status.artifacts]) == ("Succeeded", ["ok.ipa"])
    assert "[fake-eas] Wrote ok.ipa" in done.status.log_tail
    assert tart.vms(state) == ["someone-elses-vm"]
    verbs = [call[:2] for call in tart.calls(state) if call[0] == "tart"]
    vm = next(call[3] for call in tart.calls(state) if call[:2] == ["tart", "clone"])
    assert vm.startswith(prefix)
    assert ["tart", "clone"] in verbs
    assert ["tart", "clone", IMAGE, vm] in tart.calls(state)
    assert ["tart", "run", "--no-graphics", vm] in tart.calls(state)
    assert ["tart", "delete", vm] in tart.calls(state)
    assert any(call[0] == "ssh" and "exec env" in call[-1] for call in tart.calls(state))


def test_the_vm_is_deleted_after_a_failure(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, stand_ins: tuple[str, Path]
) -> None:
    path, state = stand_ins
    with tart_agent(agents, path) as agent:
        farm.build("broken", source=archives.source("broken", seconds=0.2, lines=1, exit=2))
        assign(farm, "broken", agent.worker)
        done = finished(farm, "broken")

    assert (done.status.phase, done.status.reason) == ("Failed", "BuildFailed")
    assert "code 2" in done.status.message
    assert tart.vms(state) == []


def test_the_vm_is_deleted_after_a_cancel(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, stand_ins: tuple[str, Path]
) -> None:
    path, state = stand_ins
    with tart_agent(agents, path) as agent:
        farm.build("long", source=archives.source("long", seconds=120, lines=120))
        assign(farm, "long", agent.worker)
        wait_for(
            "the build running in its VM", lambda: "step 1/120" in farm.get_build("long").status.log_tail
        )
        assert len(tart.vms(state)) == 1
        patch_build(farm, "long", {"spec": {"cancel": True}})
        done = finished(farm, "long")

    assert done.status.phase == "Cancelled"
    assert tart.vms(state) == []
