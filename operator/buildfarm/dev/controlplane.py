"""A local Kubernetes control plane, etcd plus kube-apiserver on loopback, for tests and for development.

There are no nodes and no controller-manager: objects are stored and served, nothing reconciles them except
the operator under test (so, for instance, a deleted namespace stays Terminating).

Everything lives in one state directory: certificates, etcd data, process logs, the admin kubeconfig and
`state.json`, which records the processes so `down` can find them from another command.
"""

import base64
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import pydantic
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from buildfarm.dev import certs, crds
from buildfarm.dev.binaries import Binaries, find_all
from buildfarm.dev.processes import ProcessRecord, spawn, terminate

CONTEXT: Final = "buildfarm-dev"
DEFAULT_STATE_DIR: Final = Path(".buildfarm/controlplane")
DEFAULT_START_TIMEOUT_SECONDS: Final = 90.0
DEFAULT_STOP_TIMEOUT_SECONDS: Final = 5.0
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc"
SERVICE_CLUSTER_IP_RANGE: Final = "10.0.0.0/24"

_STATE_FILE: Final = "state.json"
_KUBECONFIG_FILE: Final = "kubeconfig"
_PKI_DIR: Final = "pki"
_ETCD_DATA_DIR: Final = "etcd-data"
_LOOPBACK: Final = "127.0.0.1"
# A port picked free can be taken by someone else before the server binds it; then start over.
_PORT_ATTEMPTS: Final = 3
_PROBE_TIMEOUT_SECONDS: Final = 2.0
_POLL_SECONDS: Final = 0.2
_LOG_TAIL_LINES: Final = 20


class ControlPlaneError(RuntimeError):
    """The control plane could not start or stop; the first line of the message says why."""


class _PortTakenError(Exception):
    pass


class State(pydantic.BaseModel):
    """What `state.json` holds, so another command can find and stop the processes."""

    server: str | None = None
    processes: list[ProcessRecord] = []


@dataclass(frozen=True)
class UpResult:
    kubeconfig: Path
    server: str
    already_running: bool


class ControlPlane:
    """etcd + kube-apiserver in `state_dir`; `with ControlPlane(dir) as cp:` starts it and always stops it.

    Attached (the default), the processes die with this Python process even if it is killed. Detached, they
    outlive it and `down(state_dir)` stops them.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        crd_dir: Path | None = None,
        detached: bool = False,
        binaries: Binaries | None = None,
        start_timeout_seconds: float = DEFAULT_START_TIMEOUT_SECONDS,
        stop_timeout_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.crd_dir = crd_dir
        self.detached = detached
        self._binaries = binaries
        self._start_timeout = start_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._children: list[tuple[subprocess.Popen[bytes], ProcessRecord]] = []
        self._server: str | None = None
        self._owns_state_dir = False

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / _KUBECONFIG_FILE

    @property
    def server(self) -> str:
        if self._server is None:
            raise ControlPlaneError("the control plane is not started: call start() first")
        return self._server

    @property
    def pids(self) -> list[int]:
        return [record.pid for _, record in self._children]

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._owns_state_dir:
            raise ControlPlaneError(f"the control plane in {self.state_dir} is already started")
        state = read_state(self.state_dir)
        if state is not None and any(record.process() is not None for record in state.processes):
            raise ControlPlaneError(
                f"a control plane is already running in {self.state_dir}: "
                f"stop it with `buildfarm dev controlplane down --state-dir {self.state_dir}`"
            )
        binaries = self._binaries or find_all()
        self._owns_state_dir = True
        deadline = time.monotonic() + self._start_timeout
        try:
            self._reset_state_dir()
            files = certs.write(certs.generate(), self.state_dir / _PKI_DIR)
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                try:
                    self._server = self._start_processes(binaries, files, deadline)
                    break
                except _PortTakenError:
                    self._stop_children()
                    if attempt == _PORT_ATTEMPTS:
                        raise ControlPlaneError(
                            f"loopback ports kept being taken while starting ({_PORT_ATTEMPTS} attempts): "
                            "retry when fewer servers are starting"
                        ) from None
            _write_kubeconfig(self.kubeconfig, self.server, files)
            self._install_crds()
            self._write_state()  # Now with the server: that tells `up` and `env` it is ready for use.
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops kube-apiserver, then etcd; safe to call any number of times."""
        if not self._owns_state_dir:
            return  # Never started, or already stopped: the state file may belong to another instance.
        self._stop_children()
        self._server = None
        (self.state_dir / _STATE_FILE).unlink(missing_ok=True)
        self._owns_state_dir = False

    def _start_processes(self, binaries: Binaries, files: certs.CertFiles, deadline: float) -> str:
        etcd_port, peer_port, apiserver_port = _free_ports(3)
        etcd_url = f"http://{_LOOPBACK}:{etcd_port}"
        peer_url = f"http://{_LOOPBACK}:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=buildfarm-dev",
                f"--data-dir={self.state_dir / _ETCD_DATA_DIR}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=buildfarm-dev={peer_url}",
                # Throwaway data: skipping fsync makes every write, and so every test, much faster.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait_ready(etcd, lambda: _etcd_healthy(etcd_url), deadline)
        server = f"https://{_LOOPBACK}:{apiserver_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={_LOOPBACK}",
                f"--advertise-address={_LOOPBACK}",
                f"--secure-port={apiserver_port}",
                f"--cert-dir={files.ca_cert.parent}",
                f"--tls-cert-file={files.serving_cert}",
                f"--tls-private-key-file={files.serving_key}",
                f"--client-ca-file={files.ca_cert}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={files.service_account_public}",
                f"--service-account-signing-key-file={files.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=RBAC",
                # No controller-manager creates the `default` ServiceAccount, so this plugin would reject
                # every pod.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                # The `kubernetes` Service would point at 127.0.0.1, which Endpoints reject; nothing here
                # reaches the API through that Service anyway.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        self._wait_ready(apiserver, lambda: _apiserver_ready(server, files), deadline)
        return server

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        child = spawn(name, args, self._log(name), cwd=self.state_dir, detached=self.detached)
        self._children.append(child)
        # Recorded as soon as it runs, so `down` can stop it even if this process dies mid-start.
        self._write_state()
        return child

    def _wait_ready(
        self, child: tuple[subprocess.Popen[bytes], ProcessRecord], probe: Callable[[], bool], deadline: float
    ) -> None:
        process, record = child
        log = self._log(record.name)
        while not probe():
            code = process.poll()
            if code is not None:
                tail = _tail(log)
                if "address already in use" in tail:
                    raise _PortTakenError
                raise ControlPlaneError(
                    f"{record.name} exited with code {code} while starting: "
                    f"see {log}, which ends with:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{record.name} was not ready within {self._start_timeout:g} s: "
                    f"see {log}, which ends with:\n{_tail(log)}"
                )
            time.sleep(_POLL_SECONDS)

    def _install_crds(self) -> None:
        if self.crd_dir is None or not self.crd_dir.is_dir():
            return
        definitions = crds.load(self.crd_dir)
        if not definitions:
            return
        with new_api_client(self.kubeconfig) as api_client:
            crds.install(api_client, definitions)

    def _stop_children(self) -> None:
        children = list(reversed(self._children))  # kube-apiserver before the etcd it writes to
        terminate([record for _, record in children], grace_seconds=self._stop_timeout)
        for process, _ in children:
            # Reaps the child (or records that terminate() already did), so no zombie is left behind.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=self._stop_timeout)
        self._children.clear()

    def _reset_state_dir(self) -> None:
        """Starts from a clean cluster; removes only what this class creates, never the directory itself."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.state_dir / _ETCD_DATA_DIR, ignore_errors=True)
        shutil.rmtree(self.state_dir / _PKI_DIR, ignore_errors=True)
        for name in (_STATE_FILE, _KUBECONFIG_FILE, "etcd.log", "kube-apiserver.log"):
            (self.state_dir / name).unlink(missing_ok=True)

    def _write_state(self) -> None:
        state = State(server=self._server, processes=[record for _, record in self._children])
        _write_atomic(self.state_dir / _STATE_FILE, state.model_dump_json(indent=2).encode())

    def _log(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"


def up(
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    crd_dir: Path | None = None,
    start_timeout_seconds: float = DEFAULT_START_TIMEOUT_SECONDS,
) -> UpResult:
    """Starts a detached control plane in `state_dir`, unless one is already running there."""
    state_dir = state_dir.resolve()
    server = running_server(state_dir)
    if server is not None:
        return UpResult(kubeconfig=state_dir / _KUBECONFIG_FILE, server=server, already_running=True)
    down(state_dir)  # Leftovers of a half-dead one (say, etcd without kube-apiserver).
    control_plane = ControlPlane(
        state_dir, crd_dir=crd_dir, detached=True, start_timeout_seconds=start_timeout_seconds
    )
    control_plane.start()
    return UpResult(kubeconfig=control_plane.kubeconfig, server=control_plane.server, already_running=False)


def down(state_dir: Path = DEFAULT_STATE_DIR, *, grace_seconds: float = DEFAULT_STOP_TIMEOUT_SECONDS) -> bool:
    """Stops the processes recorded in `state_dir`; returns whether any was still running."""
    state_dir = state_dir.resolve()
    state = read_state(state_dir)
    if state is None:
        return False
    alive = [record for record in state.processes if record.process() is not None]
    terminate(list(reversed(state.processes)), grace_seconds=grace_seconds)
    (state_dir / _STATE_FILE).unlink(missing_ok=True)
    return bool(alive)


def running_server(state_dir: Path = DEFAULT_STATE_DIR) -> str | None:
    """The URL of the control plane running in `state_dir`, or None if there is none (or it is not ready)."""
    state_dir = state_dir.resolve()
    state = read_state(state_dir)
    if state is None or state.server is None or not state.processes:
        return None
    if any(record.process() is None for record in state.processes):
        return None
    files = certs.CertFiles.in_directory(state_dir / _PKI_DIR)
    return state.server if _apiserver_ready(state.server, files) else None


def new_api_client(kubeconfig: Path, context: str | None = None) -> ApiClient:
    """A client for the cluster in `kubeconfig`; close it (or use `with`) when done."""
    api_client: ApiClient = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context=context, persist_config=False
    )
    return api_client


def kubeconfig_path(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    return state_dir.resolve() / _KUBECONFIG_FILE


def read_state(state_dir: Path) -> State | None:
    try:
        return State.model_validate_json((state_dir / _STATE_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except pydantic.ValidationError as error:
        raise ControlPlaneError(
            f"{state_dir / _STATE_FILE} is corrupt ({error.error_count()} errors): "
            "stop any etcd/kube-apiserver from it by hand and delete the file"
        ) from error


def _free_ports(count: int) -> list[int]:
    # All held open together so the kernel hands out `count` different ports.
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)
        ]
        for sock in sockets:
            sock.bind((_LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=_PROBE_TIMEOUT_SECONDS) as response:
            return bool(json.load(response).get("health") == "true")
    except (OSError, ValueError):
        return False


def _apiserver_ready(server: str, files: certs.CertFiles) -> bool:
    try:
        context = ssl.create_default_context(cafile=files.ca_cert)
        context.load_cert_chain(files.admin_cert, files.admin_key)
        with urllib.request.urlopen(
            f"{server}/readyz", timeout=_PROBE_TIMEOUT_SECONDS, context=context
        ) as response:
            return bool(response.read().strip() == b"ok")
    except (OSError, ValueError):  # Refused, timed out, 500 while starting, or the certs are gone.
        return False


def _write_kubeconfig(path: Path, server: str, files: certs.CertFiles) -> None:
    def data(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    # Certificates inline, so the file still works when copied elsewhere.
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": data(files.ca_cert)},
            }
        ],
        "users": [
            {
                "name": certs.ADMIN_USER,
                "user": {
                    "client-certificate-data": data(files.admin_cert),
                    "client-key-data": data(files.admin_key),
                },
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": certs.ADMIN_USER}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    _write_atomic(path, yaml.safe_dump(kubeconfig, sort_keys=False).encode(), private=True)


def _write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    certs.write_file(temporary, data, private=private)
    temporary.replace(path)


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(nothing: there is no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(nothing: the log is empty)"
