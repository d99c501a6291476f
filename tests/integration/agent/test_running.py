"""A build assigned to the agent's worker runs to Succeeded with its artifact and log tail, or to Failed
with the exit code and the last lines, or to DeadlineExceeded; its environment holds none of the
agent's credentials."""

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from kubernetes.client import CoreV1Api

from tests.support.agents import AgentFarm, ArchiveServer, assign
from tests.support.farm import Farm, events_for, wait_for

FINAL = ("Succeeded", "Failed", "Cancelled")


def final(farm: Farm, name: str):  # type: ignore[no-untyped-def]
    return wait_for(f"{name} to finish", lambda: (b := farm.get_build(name)).status.phase in FINAL and b)


def registered(farm: Farm, worker: str) -> None:
    wait_for("the worker", lambda: worker in {w.name for w in _workers(farm)})


def _workers(farm: Farm):  # type: ignore[no-untyped-def]
    from buildfarm.api.workers import Worker

    body = farm.api.list_cluster_custom_object("buildfarm.dev", "v1alpha1", "workers", _request_timeout=10)
    return [Worker.model_validate(item) for item in body["items"]]


def test_a_build_runs_to_succeeded(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, core_v1: CoreV1Api
) -> None:
    with agents.agent("mac") as agent:
        registered(farm, agent.worker)
        farm.build("app", platform="android", source=archives.source("app", seconds=1, lines=5))
        assign(farm, "app", agent.worker)
        done = final(farm, "app")

    status = done.status
    assert (status.phase, status.reason, status.attempt, status.worker_name) == (
        "Succeeded",
        "Succeeded",
        1,
        agent.worker,
    )
    assert status.started_at is not None
    assert status.finished_at is not None
    assert "[fake-eas] step 5/5" in status.log_tail
    assert "KUBECONFIG=<unset>" in status.log_tail  # the agent's credentials do not leak into builds
    [artifact] = status.artifacts
    path = Path(urlsplit(artifact.location).path)
    assert artifact.name == "app.apk"
    assert path.name == "app.apk"
    data = path.read_bytes()
    assert (artifact.size, artifact.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    log_file = agent.work_dir / "logs" / farm.namespace / "app-1.log"
    assert "[fake-eas] Wrote app.apk" in log_file.read_text()
    assert list((agent.work_dir / "workspaces").iterdir()) == []  # the workspace is gone
    # The agent, which won the writes, tells the user about each phase it reached.
    events = [(kind, reason) for kind, reason, _ in events_for(core_v1, farm.namespace, "app")]
    assert events == [("Normal", "Started"), ("Normal", "Succeeded")]


def test_a_failing_build_reports_its_exit_code_and_last_lines(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer, core_v1: CoreV1Api
) -> None:
    with agents.agent("mac") as agent:
        registered(farm, agent.worker)
        farm.build("broken", source=archives.source("broken", seconds=0.5, lines=3, exit=3))
        assign(farm, "broken", agent.worker)
        done = final(farm, "broken")

    assert (done.status.phase, done.status.reason) == ("Failed", "BuildFailed")
    assert done.status.message.startswith("The build command exited with code 3. Last lines:\n")
    assert "[fake-eas] error: the build failed (exit 3)" in done.status.message
    assert done.status.artifacts == []
    assert ("Warning", "BuildFailed") in [(k, r) for k, r, _ in events_for(core_v1, farm.namespace, "broken")]


def test_a_build_past_its_deadline_is_stopped(agents: AgentFarm, farm: Farm, archives: ArchiveServer) -> None:
    with agents.agent("mac", max_build_seconds=2) as agent:
        registered(farm, agent.worker)
        farm.build("slow", source=archives.source("slow", seconds=120, lines=120))
        assign(farm, "slow", agent.worker)
        done = final(farm, "slow")

    assert (done.status.phase, done.status.reason) == ("Failed", "DeadlineExceeded")
    assert "did not finish within 2s" in done.status.message


def test_a_bad_archive_checksum_fails_the_build(
    agents: AgentFarm, farm: Farm, archives: ArchiveServer
) -> None:
    source = archives.source("tampered")
    source["archive"]["sha256"] = "0" * 64
    with agents.agent("mac") as agent:
        registered(farm, agent.worker)
        farm.build("tampered", source=source)
        assign(farm, "tampered", agent.worker)
        done = final(farm, "tampered")

    assert (done.status.phase, done.status.reason) == ("Failed", "SourceUnavailable")
    assert "sha256" in done.status.message
