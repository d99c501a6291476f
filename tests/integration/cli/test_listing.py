"""`buildfarm queue` and `buildfarm workers` against the real API server: the queue in the scheduler's
order with each build's wait reason, the workers with their load and heartbeats, `--watch` redrawing
until Ctrl-C, and a caller who may list builds in one namespace only."""

import contextlib
import json
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.integration.cli.conftest import cli_env, command, drive, one_error, run_cli, write_status
from tests.support.farm import Farm, wait_for
from tests.support.identities import Identity, service_account

WATCH_TIMEOUT = 60


def scheduled(reason: str, message: str) -> dict[str, Any]:
    """A waiting build's status as the operator writes it (transitions.waiting)."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"type": "Scheduled", "status": "False", "reason": reason, "message": message}
    return {
        "phase": "Pending",
        "reason": reason,
        "message": message,
        "conditions": [condition | {"lastTransitionTime": at}],
    }


def listing(kubeconfig: str, home: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli(kubeconfig, home, *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["items"])


def test_queue_in_scheduler_order_with_reasons(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    ns = farm.namespace
    farm.build("first")
    farm.build("urgent", priority=5)
    farm.build("droid", platform="android")
    farm.build("unadmitted")
    farm.build("cancelling", cancel=True)
    farm.build("running")
    write_status(farm, "first", **scheduled("WorkerBusy", "All 1 Ready Worker(s) for platform ios are busy."))
    write_status(
        farm, "urgent", **scheduled("WorkerBusy", "All 1 Ready Worker(s) for platform ios are busy.")
    )
    write_status(farm, "droid", **scheduled("NoMatchingWorker", "No Worker serves platform android."))
    write_status(farm, "cancelling", **scheduled("WorkerBusy", "busy"))
    drive(farm, "running", {"phase": "Pending"}, {"phase": "Assigned", "workerName": "m", "attempt": 1})

    items = listing(kubeconfig, tmp_path, "queue", "-n", ns)
    # Priority first, then creation order (created a second apart or in the same second: the names'
    # order then, which is also creation order here only by luck, so compare as the scheduler does).
    assert items[0]["name"] == "urgent"
    assert sorted(i["name"] for i in items) == ["droid", "first", "unadmitted", "urgent"]
    by_name = {i["name"]: i for i in items}
    assert (by_name["urgent"]["priority"], by_name["urgent"]["reason"]) == (5, "WorkerBusy")
    assert by_name["droid"]["reason"] == "NoMatchingWorker"
    assert by_name["droid"]["message"] == "No Worker serves platform android."
    assert (by_name["unadmitted"]["reason"], by_name["unadmitted"]["phase"]) == ("NotAdmitted", None)
    positions = [i["position"] for i in items]
    assert positions == sorted(set(positions))
    assert positions[0] >= 1
    assert all(i["ageSeconds"] >= 0 and i["namespace"] == ns for i in items)

    # --platform keeps each build's place in the farm's queue.
    (droid,) = listing(kubeconfig, tmp_path, "queue", "-n", ns, "--platform", "android")
    assert droid["position"] == by_name["droid"]["position"]

    table = run_cli(kubeconfig, tmp_path, "queue", "-n", ns)
    assert (table.returncode, table.stderr) == (0, "")
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "POSITION",
        "NAMESPACE",
        "NAME",
        "PLATFORM",
        "PRIORITY",
        "AGE",
        "REASON",
        "MESSAGE",
    ]
    assert [row.split()[2] for row in rows] == [i["name"] for i in items]
    assert "No Worker serves platform android." in table.stdout


def test_empty_queue_says_so(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "queue", "-n", farm.namespace)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no builds are waiting\n")
    assert listing(kubeconfig, tmp_path, "queue", "-n", farm.namespace) == []


def test_workers(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac", platforms=("ios",), capacity=2)
    pc = farm.worker("pc", platforms=("android",), ready=False, cordoned=True)
    farm.build("app")
    drive(farm, "app", {"phase": "Pending"}, {"phase": "Assigned", "workerName": mac, "attempt": 1})
    selector = f"buildfarm.dev/test={farm.namespace}"

    items = listing(kubeconfig, tmp_path, "workers", "-l", selector)
    assert [i["name"] for i in items] == sorted([mac, pc])
    by_name = {i["name"]: i for i in items}
    assert by_name[mac] | {"heartbeatAgeSeconds": 0} == {
        "name": mac,
        "ready": True,
        "readyReason": "AgentHeartbeat",
        "cordoned": False,
        "platforms": ["ios"],
        "busy": 1,
        "capacity": 2,
        "builds": [f"{farm.namespace}/app"],
        "heartbeatAgeSeconds": 0,
        "heartbeatReleased": False,
    }
    assert 0 <= by_name[mac]["heartbeatAgeSeconds"] < 600
    assert (by_name[pc]["ready"], by_name[pc]["cordoned"]) == (False, True)
    assert by_name[pc]["heartbeatAgeSeconds"] >= 7200  # Farm.set_ready(False) renews it 2 hours back

    assert [
        i["name"] for i in listing(kubeconfig, tmp_path, "workers", "-l", selector, "--platform", "ios")
    ] == [mac]

    table = run_cli(kubeconfig, tmp_path, "workers", "-l", selector)
    assert (table.returncode, table.stderr) == (0, "")
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "PLATFORMS", "BUSY", "BUILDS", "HEARTBEAT"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells[mac][1:5] == ["Ready", "ios", "1/2", f"{farm.namespace}/app"]
    assert cells[pc][1:5] == ["NotReady,Cordoned", "android", "0/1", "-"]

    # A farm namespace without Leases: no heartbeat ever.
    (never,) = listing(
        kubeconfig,
        tmp_path,
        "workers",
        "-l",
        selector,
        "--platform",
        "ios",
        "--farm-namespace",
        farm.namespace,
    )
    assert never["heartbeatAgeSeconds"] is None


def test_bad_selector_is_a_usage_error(kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "workers", "-l", "site!=berlin")
    assert result.returncode == 2
    assert one_error(result) == "--selector: 'site!=berlin' is not KEY=VALUE (e.g. -l xcode=16.2,site=berlin)"


@contextlib.contextmanager
def watching(kubeconfig: str, home: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        command(kubeconfig, *args),
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # closes the pipes
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=WATCH_TIMEOUT)


def next_document(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], WATCH_TIMEOUT)
    assert ready, "the watch printed nothing"
    line = proc.stdout.readline()
    assert line, f"the watch ended: {proc.stderr.read() if proc.stderr else ''}"
    return dict(json.loads(line))


def test_watch_redraws_until_interrupted(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.build("one")
    with watching(
        kubeconfig, tmp_path, "queue", "-n", farm.namespace, "--watch", "--interval", "1s", "-o", "json"
    ) as proc:
        first = next_document(proc)
        assert [i["name"] for i in first["items"]] == ["one"]
        assert "time" in first
        farm.build("two")
        deadline = time.monotonic() + WATCH_TIMEOUT
        while time.monotonic() < deadline:
            if sorted(i["name"] for i in next_document(proc)["items"]) == ["one", "two"]:
                break
        else:
            pytest.fail("the watch never showed the second build")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WATCH_TIMEOUT) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_watch_needs_an_interval_of_a_second(kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "workers", "--watch", "--interval", "0")
    assert result.returncode == 2
    assert one_error(result) == "--interval: must be at least 1s with --watch, not 0s"


@pytest.fixture
def team_member(
    api_client: client.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[Identity]:
    """May list builds in the test's namespace only (a RoleBinding), as a team's developer."""
    made = service_account(api_client, Path(kubeconfig), namespace, "dev", tmp_path)
    rbac = client.RbacAuthorizationV1Api(api_client)
    role = f"{namespace}-list-builds"
    rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=role),
            rules=[client.V1PolicyRule(api_groups=["buildfarm.dev"], resources=["builds"], verbs=["list"])],
        ),
        _request_timeout=10,
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="list-builds"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="dev", namespace=namespace)],
        ),
        _request_timeout=10,
    )
    made.roles.append(role)  # cleanup deletes the ClusterRole (the RoleBinding goes with the namespace)
    yield made
    made.cleanup()


def test_one_namespace_without_farm_wide_rights(farm: Farm, tmp_path: Path, team_member: Identity) -> None:
    wait_for(
        "the grant to reach the authorizer",
        lambda: team_member.may("list", "buildfarm.dev", "builds", farm.namespace),
    )
    farm.build("mine")
    config = str(team_member.kubeconfig)
    result = run_cli(config, tmp_path, "queue", "-n", farm.namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [(i["name"], i["position"]) for i in json.loads(result.stdout)["items"]] == [("mine", None)]
    assert result.stderr == (
        f"warning: you may list builds only in namespace {farm.namespace}: "
        "positions in the farm's queue unknown\n"
    )
    everywhere = run_cli(config, tmp_path, "queue")
    assert everywhere.returncode == 1
    assert one_error(everywhere) == (
        "your credentials may not list builds.buildfarm.dev in all namespaces: ask an administrator for "
        "access (check with `kubectl auth can-i list builds.buildfarm.dev --all-namespaces`)"
    )
