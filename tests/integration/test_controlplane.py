"""The local control plane: it serves the API, kubectl can use it, and it never leaves processes behind."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest
from kubernetes import client

from buildfarm.dev import binaries, controlplane, crds
from buildfarm.dev.controlplane import ControlPlane

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10
# Generous: only a broken control plane or machine gets near them, and no assertion is about time.
START_TIMEOUT = 120
EXIT_TIMEOUT = 30


def local_only(control_plane: ControlPlane | None) -> ControlPlane:
    if control_plane is None:
        pytest.skip("checks the local control plane, not an existing cluster")
    return control_plane


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pids: Iterable[int]) -> list[int]:
    """The pids still running once they have all exited or EXIT_TIMEOUT has passed."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_version_is_the_kube_apiserver_pinned_in_go_mod(
    control_plane: ControlPlane | None, api_client: client.ApiClient
) -> None:
    local_only(control_plane)
    go_mod = (REPO_ROOT / "hack" / "kube-apiserver" / "go.mod").read_text()
    pinned = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v(\d+)\.(\d+)\.\d+)", go_mod, re.MULTILINE)
    assert pinned is not None, "hack/kube-apiserver/go.mod does not pin k8s.io/kubernetes"

    version = client.VersionApi(api_client).get_code(_request_timeout=TIMEOUT)

    assert (version.git_version, version.major, version.minor) == pinned.groups()


def test_namespaces_can_be_created(core_v1: client.CoreV1Api, namespace: str) -> None:
    metadata = core_v1.read_namespace(namespace, _request_timeout=TIMEOUT).metadata

    assert metadata is not None
    assert (metadata.labels or {}).get("app.kubernetes.io/managed-by") == "buildfarm-tests"


def test_kubectl_reaches_the_cluster(kubeconfig: str, namespace: str) -> None:
    done = subprocess.run(
        [str(binaries.kubectl()), "--kubeconfig", kubeconfig, "get", "namespace", namespace, "-o", "name"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"namespace/{namespace}"


def test_every_crd_in_the_repo_is_established(api_client: client.ApiClient) -> None:
    names = [d["metadata"]["name"] for d in crds.load(REPO_ROOT / "crds")]
    if not names:
        pytest.skip("crds/ holds no CRDs yet")
    api = client.ApiextensionsV1Api(api_client)

    def is_established(name: str) -> bool:
        status = api.read_custom_resource_definition(name, _request_timeout=TIMEOUT).status
        conditions = (status.conditions if status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    assert {name: is_established(name) for name in names} == dict.fromkeys(names, True)


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    control_plane = ControlPlane(tmp_path / "cp", start_timeout_seconds=START_TIMEOUT)
    with control_plane:
        pids = control_plane.pids
        assert len(pids) == 2
        assert all(alive(pid) for pid in pids)

    assert [pid for pid in pids if alive(pid)] == []
    control_plane.stop()  # A second stop is harmless.
    assert not (tmp_path / "cp" / "state.json").exists()


def test_processes_die_with_a_killed_parent(tmp_path: Path) -> None:
    """A test run that crashes (or is SIGKILLed) must not leave etcd or kube-apiserver running."""
    pid_file = tmp_path / "pids"
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from buildfarm.dev.controlplane import ControlPlane
        cp = ControlPlane(pathlib.Path({str(tmp_path / "cp")!r}), start_timeout_seconds={START_TIMEOUT})
        cp.start()
        pathlib.Path({str(pid_file)!r}).write_text(" ".join(map(str, cp.pids)))
        time.sleep({START_TIMEOUT})
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env=_env_with_package())
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not pid_file.exists() and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), f"the control plane in the child did not start (exit code {parent.poll()})"
        pids = [int(pid) for pid in pid_file.read_text().split()]
        assert all(alive(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=EXIT_TIMEOUT)

    assert wait_until_gone(pids) == []


def test_cli_up_env_down(tmp_path: Path) -> None:
    """The README's way: `up` detaches (its processes outlive it), `env` finds it, `down` stops it."""
    state_dir = tmp_path / "state"
    no_crds = tmp_path / "no-crds"
    no_crds.mkdir()
    try:
        first = _cli("up", "--state-dir", str(state_dir), "--crds", str(no_crds))
        again = _cli("up", "--state-dir", str(state_dir), "--crds", str(no_crds))
        env = _cli("env", "--state-dir", str(state_dir))

        export = f"export KUBECONFIG={state_dir / 'kubeconfig'}"
        assert (first.stdout.strip(), again.stdout.strip(), env.stdout.strip()) == (export, export, export)
        assert "already running" in again.stderr
        assert controlplane.running_server(state_dir) is not None  # It outlived the `up` that started it.
        pids = _recorded_pids(state_dir)

        down = _cli("down", "--state-dir", str(state_dir))

        assert "stopped" in down.stderr
        assert wait_until_gone(pids) == []
        assert _cli("env", "--state-dir", str(state_dir), check=False).returncode == 1
    finally:
        controlplane.down(state_dir)


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", "from buildfarm.cli.main import main; main()", "dev", "controlplane", *args],
        capture_output=True,
        text=True,
        env=_env_with_package(),
        timeout=START_TIMEOUT,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _recorded_pids(state_dir: Path) -> list[int]:
    state = controlplane.read_state(state_dir)
    assert state is not None
    return [record.pid for record in state.processes]


def _env_with_package() -> dict[str, str]:
    """The environment for a child Python that imports buildfarm from this checkout."""
    source = str(REPO_ROOT / "operator")
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": f"{source}{os.pathsep}{path}" if path else source}
