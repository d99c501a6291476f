"""The operator's half of the build lifecycle: Worker Ready from heartbeat Leases, requeue of a lost
worker's builds (never during the startup grace), the backstop deadline, cancelling what a lost worker
cannot, TTL deletion, exact counters, and conditions `kubectl wait` can wait on. Lease and build ages are
written into the timestamps rather than waited for."""

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from buildfarm import constants as c
from buildfarm.dev.binaries import kubectl
from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operator_process, operators

TIMEOUT = 10
FAST = {
    "BUILDFARM_LEASE_GRACE_SECONDS": "8",
    "BUILDFARM_STARTUP_GRACE_SECONDS": "0",
    "BUILDFARM_DEADLINE_GRACE_SECONDS": "0",
    "BUILDFARM_RESYNC_SECONDS": "2",
}


KUBECTL_WAIT = (str(kubectl()), "wait", "--for=condition=Failed", "--timeout=60s")


def now() -> datetime:
    return datetime.now(UTC)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def operator(farm: Farm, kubeconfig: str, log: Path, **env: str) -> Iterator[None]:
    with operator_process(kubeconfig, log, "--namespace", farm.namespace, env={**FAST, **env}):
        yield


def set_status(farm: Farm, name: str, status: dict[str, object]) -> None:
    farm.api.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, name, {"status": status}, _request_timeout=TIMEOUT
    )


def ready(farm: Farm, worker: str) -> tuple[str, str]:
    condition = farm.get_worker(worker).condition("Ready")
    return (str(condition.status), condition.reason) if condition else ("", "")


def lose(farm: Farm, worker: str) -> None:
    """The worker's agent stopped renewing an hour ago."""
    farm.heartbeat(worker, renewed=now() - timedelta(hours=1), duration=40)


def test_ready_follows_the_heartbeat_lease(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac")
    with operator(farm, kubeconfig, tmp_path / "operator.log"):
        lose(farm, mac)
        wait_for("Ready Unknown", lambda: ready(farm, mac) == ("Unknown", "LeaseExpired"))
        farm.heartbeat(mac, renewed=now(), duration=40)
        wait_for("Ready again", lambda: ready(farm, mac) == ("True", "LeaseRenewed"))
        farm.heartbeat(mac, renewed=now(), duration=40, holder="")
        wait_for("Ready False", lambda: ready(farm, mac) == ("False", "AgentStopped"))


def test_a_lost_workers_build_is_requeued_and_runs_elsewhere(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    first = farm.worker("first", platforms=("ios",))
    with operator(farm, kubeconfig, tmp_path / "operator.log"):
        farm.build("b")
        wait_for("b on the first worker", lambda: farm.get_build("b").status.worker_name == first)
        set_status(farm, "b", {"phase": "Running", "logTail": "compiling\n"})  # what the first agent wrote
        second = farm.worker("second", platforms=("ios",))
        lose(farm, first)
        wait_for("b on the second worker", lambda: farm.get_build("b").status.worker_name == second)
    b = farm.get_build("b")
    assert (b.status.phase, b.status.attempt) == ("Assigned", 2)
    # The operator keeps no log tail in its cache, and its writes (the requeue, the new assignment)
    # leave the agent's fields as they are.
    assert b.status.log_tail == "compiling\n"
    assert ("Warning", "Requeued") in [(t, r) for t, r, _ in events_for(core_v1, farm.namespace, "b")]
    assert [r.name for r in farm.get_worker(first).status.reservations] == []


def test_no_build_is_requeued_during_the_startup_grace(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac")
    spare = farm.worker("spare", ready=False)
    farm.build("running")
    set_status(farm, "running", {"phase": "Pending", "reason": "Queued"})
    set_status(farm, "running", {"phase": "Assigned", "workerName": mac, "attempt": 1})
    lose(farm, mac)
    with operator(farm, kubeconfig, tmp_path / "operator-1.log", BUILDFARM_STARTUP_GRACE_SECONDS="3600"):
        farm.heartbeat(spare, renewed=now())
        # During the grace the monitor marks workers Ready, never lost: a pass has run once spare is Ready.
        wait_for("a heartbeat pass", lambda: ready(farm, spare) == ("True", "LeaseRenewed"))
        assert ready(farm, mac) == ("True", "AgentHeartbeat")  # its expired Lease is not judged yet
        assert farm.get_build("running").status.worker_name == mac
    with operator(farm, kubeconfig, tmp_path / "operator-2.log"):
        wait_for("requeued once the grace is over", lambda: farm.get_build("running").status.attempt == 2)


def test_the_operator_fails_a_build_past_its_deadline_and_kubectl_wait_sees_it(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac")
    farm.build("slow", timeoutSeconds=60)
    set_status(farm, "slow", {"phase": "Pending", "reason": "Queued"})
    set_status(farm, "slow", {"phase": "Assigned", "workerName": mac, "attempt": 1})
    set_status(farm, "slow", {"phase": "Running", "startedAt": stamp(now() - timedelta(hours=2))})
    with operator(farm, kubeconfig, tmp_path / "operator.log"):
        waited = subprocess.run(  # what a user would run
            [*KUBECTL_WAIT, "--kubeconfig", kubeconfig, "-n", farm.namespace, "build/slow"],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert waited.returncode == 0, waited.stderr
    slow = farm.get_build("slow")
    assert (slow.status.phase, slow.status.reason) == ("Failed", "DeadlineExceeded")


def test_a_lost_workers_cancelled_build_is_cancelled_by_the_operator(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac")
    farm.build("b")
    set_status(farm, "b", {"phase": "Pending", "reason": "Queued"})
    set_status(farm, "b", {"phase": "Assigned", "workerName": mac, "attempt": 1})
    set_status(farm, "b", {"phase": "Running", "startedAt": stamp(now())})
    farm.api.patch_namespaced_custom_object(
        c.GROUP,
        c.VERSION,
        farm.namespace,
        c.BUILD_PLURAL,
        "b",
        {"spec": {"cancel": True}},
        _request_timeout=10,
    )
    with operator(farm, kubeconfig, tmp_path / "operator.log"):
        farm.build("probe", workerSelector={"matchLabels": {"none": "x"}})
        wait_for("a scheduling cycle", lambda: farm.get_build("probe").status.reason == "NoMatchingWorker")
        assert farm.phases()["b"] == "Running"  # on a healthy worker, stopping it is its agent's job
        lose(farm, mac)
        wait_for("cancelled", lambda: farm.phases().get("b") == "Cancelled")


def test_a_finished_build_is_deleted_after_its_ttl(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac")
    for name, finished_ago in (("old", 120), ("recent", 0)):
        farm.build(name, ttlSecondsAfterFinished=60)
        set_status(farm, name, {"phase": "Pending", "reason": "Queued"})
        set_status(farm, name, {"phase": "Assigned", "workerName": mac, "attempt": 1})
        finished = stamp(now() - timedelta(seconds=finished_ago))
        set_status(farm, name, {"phase": "Succeeded", "reason": "Succeeded", "finishedAt": finished})
    with operator(farm, kubeconfig, tmp_path / "operator.log"):
        wait_for("the old build deleted", lambda: "old" not in farm.phases())
    assert list(farm.phases()) == ["recent"]


@pytest.mark.parametrize("operator_count", [1, 3])
def test_counters_are_exact_under_concurrent_completions(
    farm: Farm, kubeconfig: str, tmp_path: Path, operator_count: int
) -> None:
    mac = farm.worker("mac", capacity=12)
    with operators(operator_count, kubeconfig, tmp_path, ["--namespace", farm.namespace], env=FAST):
        names = [farm.build(f"b{i}") for i in range(12)]
        wait_for("all assigned", lambda: all(p == "Assigned" for p in farm.phases().values()))
        outcomes = {name: ("Succeeded" if i % 3 else "Failed") for i, name in enumerate(names)}
        threads = [
            threading.Thread(target=set_status, args=(farm, name, {"phase": phase, "reason": phase}))
            for name, phase in outcomes.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_for("every slot released", lambda: farm.get_worker(mac).status.reservations == [])
    status = farm.get_worker(mac).status
    assert (status.builds_succeeded, status.builds_failed, status.active_builds) == (8, 4, 0)
