"""`buildfarm worker drain` cordons a worker, waits for its builds until a deadline, then requeues the rest
without spending their attempt; it reports one line per build and a summary."""

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from kubernetes import client
from kubernetes.client import CoreV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from tests.conftest import MANAGED_BY_LABEL
from tests.integration.cli.conftest import (
    assigned,
    cli_env,
    command,
    drive,
    finished,
    one_error,
    pending,
    requeued,
    run_cli,
    running,
    write_status,
)
from tests.support.farm import TIMEOUT, Farm


@pytest.fixture
def other(core_v1: CoreV1Api, custom_objects: CustomObjectsApi) -> Iterator[Farm]:
    """Builds in a second namespace: a worker's builds come from any namespace."""
    body = client.V1Namespace(metadata=client.V1ObjectMeta(generate_name="test-", labels=MANAGED_BY_LABEL))
    name = core_v1.create_namespace(body, _request_timeout=TIMEOUT).metadata.name
    yield Farm(custom_objects, name)
    with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
        core_v1.delete_namespace(name, _request_timeout=TIMEOUT)


def test_drain_with_deadline_0_requeues_assigned_and_running_builds(
    farm: Farm, other: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac")
    farm.build("a")
    drive(farm, "a", pending(), assigned(mac, 1))
    other.build("b")
    drive(other, "b", pending(), assigned(mac, 1), requeued(), assigned(mac, 2), running())
    farm.build("done")
    drive(farm, "done", pending(), assigned(mac, 1), finished("Succeeded"))
    farm.build("elsewhere")
    drive(farm, "elsewhere", pending(), assigned("another-mac", 1), running())

    result = run_cli(kubeconfig, tmp_path, "worker", "drain", mac, "--deadline", "0")

    assert result.returncode == 0, result.stderr
    *lines, summary = result.stdout.splitlines()
    assert sorted(lines) == sorted(
        [
            f"requeued {farm.namespace}/a (was Assigned, attempt 1)",
            f"requeued {other.namespace}/b (was Running, attempt 2)",
        ]
    )
    assert summary == f"drained worker {mac}: 2 requeued, 0 finished or left while waiting"
    assert result.stderr == f"worker {mac} cordoned\n"
    assert farm.get_worker(mac).spec.unschedulable is True

    for build, attempt in [(farm.get_build("a"), 1), (other.get_build("b"), 2)]:
        status = build.status
        assert (status.phase, status.worker_name, status.attempt, status.handbacks, status.reason) == (
            "Pending",
            "",
            attempt,
            1,
            "Drained",
        )
        assert status.message.startswith(f"Worker {mac} was drained by ")
    assert farm.phases() == {"a": "Pending", "done": "Succeeded", "elsewhere": "Running"}
    assert farm.get_build("elsewhere").status.worker_name == "another-mac"


def test_drain_waits_for_a_build_that_finishes_before_the_deadline(
    farm: Farm, kubeconfig: str, tmp_path: Path
) -> None:
    mac = farm.worker("mac")
    farm.build("r")
    drive(farm, "r", pending(), assigned(mac, 1), running())

    drain = subprocess.Popen(
        command(kubeconfig, "worker", "drain", mac, "--deadline", "5m"),
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert drain.stderr is not None
        progress = [drain.stderr.readline(), drain.stderr.readline()]
        assert progress == [
            f"worker {mac} cordoned\n",
            f"waiting up to 5m for 1 build(s): {farm.namespace}/r (Running)\n",
        ]
        write_status(farm, "r", **finished("Succeeded"))
        stdout, stderr = drain.communicate(timeout=60)
    finally:
        drain.kill()
        drain.wait()

    assert drain.returncode == 0, stderr
    assert stdout.splitlines() == [
        f"{farm.namespace}/r finished (Succeeded)",
        f"drained worker {mac}: 0 requeued, 1 finished or left while waiting",
    ]
    build = farm.get_build("r")
    assert (build.status.phase, build.status.worker_name, build.status.handbacks) == ("Succeeded", mac, 0)


def test_drain_an_idle_worker_reports_json(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    mac = farm.worker("mac")
    result = run_cli(kubeconfig, tmp_path, "worker", "drain", mac, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"worker": mac, "requeued": [], "left": []}


def test_drain_a_missing_worker(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "worker", "drain", f"{farm.namespace}-nope")
    assert result.returncode == 3
    assert one_error(result) == f"worker {farm.namespace}-nope not found (`kubectl get workers` lists them)"


def test_drain_refuses_a_bad_deadline(kubeconfig: str, tmp_path: Path) -> None:
    result = run_cli(kubeconfig, tmp_path, "worker", "drain", "mac", "--deadline", "10")
    assert result.returncode == 2
    assert one_error(result) == (
        "--deadline: '10' is not a duration (a unit is needed: 10s or 10m?): use e.g. 90s, 30m, 1h30m, or 0"
    )
