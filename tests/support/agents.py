"""Real agent processes for tests: `buildfarm agent` as a subprocess with the fake eas build, source
archives served over http on 127.0.0.1, and builds assigned the way the operator assigns them."""

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from buildfarm import constants as c
from tests.support.farm import TIMEOUT, Farm, wait_for
from tests.support.operators import buildfarm_command

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_BUILD = REPO_ROOT / "examples" / "fake-eas-build.py"
FAKE_COMMAND = (
    f"{sys.executable} {FAKE_BUILD} build --local --non-interactive "
    "--platform {platform} --profile {profile} --output {artifact}"
)
STOP_TIMEOUT = 30


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Agent:
    worker: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    work_dir: Path

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # What the agent was doing is the only clue to why it did not stop.
            raise AssertionError(f"the agent did not exit in {timeout}s; its log:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class AgentFarm:
    """Starts agents for one test; each gets its own work dir and log, and is stopped at the end."""

    farm: Farm
    kubeconfig: str
    tmp_path: Path
    agents: list[Agent] = field(default_factory=list)

    def worker_name(self, short: str) -> str:
        return f"{self.farm.namespace}-{short}"

    def settings_env(self, short: str, **settings: Any) -> dict[str, str]:
        defaults: dict[str, Any] = {
            "worker_name": self.worker_name(short),
            "namespace": self.farm.namespace,  # the Lease lives in the test's namespace
            "work_dir": self.tmp_path / f"agent-{short}",
            "command": FAKE_COMMAND,
            "platforms": "ios,android",
            "lease_duration_seconds": 10,
            "renew_interval_seconds": 1,
            "relist_seconds": 5,
            "log_interval_seconds": 0.5,
            "kill_grace_seconds": 1,
            "stop_grace_seconds": 30,
            "capabilities_interval_seconds": 600,
            "metrics_port": 0,  # agents of parallel tests would share the default port
        }
        merged = defaults | settings
        return {f"BUILDFARM_AGENT_{k.upper()}": str(v) for k, v in merged.items() if v is not None}

    @contextmanager
    def agent(
        self,
        short: str = "mac",
        *args: str,
        path: str | None = None,
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> Iterator[Agent]:
        """Run `buildfarm agent` with BUILDFARM_AGENT_* from `settings`; `path` is the agent's PATH, `env`
        more variables (e.g. BUILDFARM_LOG_FORMAT)."""
        environ = {
            k: v for k, v in os.environ.items() if not k.upper().startswith(("BUILDFARM_", "KUBECONFIG"))
        }
        environ |= {"KUBECONFIG": self.kubeconfig, **self.settings_env(short, **settings), **(env or {})}
        env = environ
        if path is not None:
            env["PATH"] = path
        worker = self.worker_name(short)
        if worker not in self.farm.workers:
            self.farm.workers.append(worker)  # deleted by the farm's cleanup
        log_path = self.tmp_path / f"agent-{short}-{len(self.agents)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*buildfarm_command(), "agent", *args], stdout=log, stderr=subprocess.STDOUT, env=env
            )
        agent = Agent(worker, proc, log_path, Path(env["BUILDFARM_AGENT_WORK_DIR"]))
        self.agents.append(agent)
        try:
            yield agent
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)


def assign(farm: Farm, build: str, worker: str, attempt: int = 1) -> None:
    """Bind a build to a worker as the operator does (phase Assigned, workerName, attempt)."""
    status = {
        "phase": "Assigned",
        "workerName": worker,
        "attempt": attempt,
        "assignedAt": now_text(),
        "reason": "Assigned",
        "message": f"Assigned to worker {worker} by the test.",
    }
    farm.api.patch_namespaced_custom_object_status(
        c.GROUP,
        c.VERSION,
        farm.namespace,
        c.BUILD_PLURAL,
        build,
        {"status": status},
        _request_timeout=TIMEOUT,
    )


def patch_build(farm: Farm, name: str, body: dict[str, Any], *, status: bool = False) -> dict[str, Any]:
    patch = (
        farm.api.patch_namespaced_custom_object_status if status else farm.api.patch_namespaced_custom_object
    )
    result: dict[str, Any] = patch(
        c.GROUP, c.VERSION, farm.namespace, c.BUILD_PLURAL, name, body, _request_timeout=TIMEOUT
    )
    return result


def project_archive(**fake_build: Any) -> bytes:
    """A tar.gz of a tiny Expo project; `fake_build` becomes its fake-build.json."""
    files = {
        "app.json": json.dumps({"expo": {"name": "demo-app", "slug": "demo-app"}}),
        "package.json": json.dumps({"name": "demo-app", "version": "1.0.0"}),
        "fake-build.json": json.dumps(fake_build),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ArchiveServer:
    """Serves archives over http on 127.0.0.1 (the only http the API and the agent accept)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = _quiet_handler(str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "ArchiveServer":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, name: str, data: bytes) -> tuple[str, str]:
        (self.root / name).write_bytes(data)
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/{name}", hashlib.sha256(data).hexdigest()

    def source(self, name: str, **fake_build: Any) -> dict[str, Any]:
        """A Build spec.source for a project archive steering the fake build with `fake_build`."""
        url, sha = self.add(f"{name}.tar.gz", project_archive(**fake_build))
        return {"archive": {"url": url, "sha256": sha}}


def _quiet_handler(directory: str) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


# A fake build that runs until it is stopped.
LONG = {"seconds": 120, "lines": 120}


def running_with_pids(farm: Farm, name: str, pid_file: Path, count: int) -> list[int]:
    """The PIDs the fake build recorded (itself and its children) once it runs."""
    wait_for(f"{name} Running", lambda: farm.get_build(name).status.phase == "Running")

    def pids() -> list[int] | None:
        found = [int(line) for line in pid_file.read_text().split()] if pid_file.exists() else []
        return found if len(found) == count else None

    return wait_for("the build's pids", pids)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped by init
    except psutil.NoSuchProcess:
        return True
