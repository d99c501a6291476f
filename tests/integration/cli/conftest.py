"""Fixtures and helpers for running the user and admin commands as real processes against the test API
server. Builds are moved through their phases by writing their status directly, as an operator and an
agent would (no operator runs here, so nothing else writes)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes.client import CustomObjectsApi

from buildfarm import constants as c
from tests.support.farm import TIMEOUT, Farm

COMMAND_TIMEOUT: Final = 60


@pytest.fixture
def farm(custom_objects: CustomObjectsApi, namespace: str) -> Iterator[Farm]:
    farm = Farm(custom_objects, namespace)
    yield farm
    farm.cleanup()


def cli_env(home: Path) -> dict[str, str]:
    """No BUILDFARM_*, KUBECONFIG or in-cluster variables of this shell leak into the command."""
    dropped = ("BUILDFARM_", "KUBECONFIG", "KUBERNETES_SERVICE_")
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith(dropped)}
    return env | {"HOME": str(home)}


def command(kubeconfig: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "buildfarm.cli.main", *args, "--kubeconfig", kubeconfig]


def run_cli(kubeconfig: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(kubeconfig, *args),
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single line of stderr, without its `error: ` prefix; never a traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"want one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0].removeprefix("error: ")


def write_status(farm: Farm, name: str, **status: Any) -> None:
    """Patch the build's status as an operator or agent would (a merge patch of the fields given)."""
    farm.api.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, name, {"status": status}, _request_timeout=TIMEOUT
    )


def drive(farm: Farm, name: str, *steps: dict[str, Any]) -> None:
    for step in steps:
        write_status(farm, name, **step)


def pending() -> dict[str, Any]:
    return {"phase": "Pending"}


def assigned(worker: str, attempt: int) -> dict[str, Any]:
    return {"phase": "Assigned", "workerName": worker, "attempt": attempt}


def running() -> dict[str, Any]:
    return {"phase": "Running"}


def requeued() -> dict[str, Any]:
    return {"phase": "Pending", "workerName": ""}


def finished(phase: str = "Succeeded") -> dict[str, Any]:
    return {"phase": phase}
