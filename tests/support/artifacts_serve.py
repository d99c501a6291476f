"""The real artifact service (`buildfarm artifacts serve`) as a subprocess on 127.0.0.1 for a test, with
the filesystem backend under the test's directory, and the identities that use it: an agent's
ServiceAccount (`worker-<name>` in the farm namespace, as the service recognises agents) and a user's."""

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.farm import wait_for
from tests.support.operators import buildfarm_command

STOP_TIMEOUT = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def artifact_service(kubeconfig: str, farm_namespace: str, tmp_path: Path) -> Iterator[str]:
    """Start the service; yields its base URL once /healthz answers."""
    root = tmp_path / "artifact-store"
    root.mkdir()
    port = free_port()
    log_path = tmp_path / "artifacts-serve.log"
    argv = [
        *buildfarm_command(),
        "artifacts",
        "serve",
        "--root",
        str(root),
        "--port",
        str(port),
        "--farm-namespace",
        farm_namespace,
        "--kubeconfig",
        kubeconfig,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the artifact service exited: {log_path.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("the artifact service to answer /healthz", healthy, timeout=60)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
