"""Benchmark of the artifact service's streaming: a 1 GB source upload, artifact upload and artifact
download through `buildfarm artifacts serve` (filesystem backend, TLS, real Kubernetes auth), against a
plain file copy on the same disk. Reports the service process's RSS growth (peak minus idle) and
throughput. Timing and memory live here, not in tests.

.venv/bin/python hack/bench_artifacts.py [--size-mb 1024] [--dir /tmp]
"""

import argparse
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from kubernetes import client

sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[1] / "operator")]

from buildfarm.dev import certs  # noqa: E402
from buildfarm.dev.controlplane import ControlPlane, new_api_client  # noqa: E402

CHUNK = 1024 * 1024
TIMEOUT = 10
REPO = Path(__file__).resolve().parents[1]


class Peak:
    """Samples a process's RSS every 10 ms in a thread; `growth` is the peak over the baseline."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> "Peak":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / CHUNK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    port: int, context: ssl.SSLContext, method: str, path: str, token: str | None, body: Path | None = None
) -> tuple[int, int]:
    """One request streaming `body` from a file, reading the answer in chunks; (status, bytes read)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Length"] = str(body.stat().st_size)
    connection.putrequest(method, path)
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    if body is not None:
        with body.open("rb") as file:
            while block := file.read(CHUNK):
                connection.send(block)
    response = connection.getresponse()
    received = 0
    while block := response.read(CHUNK):
        received += len(block)
    connection.close()
    return response.status, received


def measured(what: str, size: int, pid: int, action: Callable[[], object]) -> str:
    with Peak(pid) as peak:
        start = time.monotonic()
        action()
        seconds = time.monotonic() - start
    return f"| {what} | {size / CHUNK / seconds:.0f} MB/s | {peak.growth_mb:.1f} MB |"


def copy_in_subprocess(source: Path, target: Path) -> str:
    """The copy runs in a fresh interpreter that waits for a go, so its idle RSS is measured first."""
    code = (
        "import shutil,sys; print(flush=True); sys.stdin.readline(); "
        "shutil.copyfile(sys.argv[1], sys.argv[2])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(source), str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdout.readline()
    size = source.stat().st_size
    with Peak(proc.pid) as peak:
        start = time.monotonic()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        proc.wait()
        seconds = time.monotonic() - start
    return (
        f"| plain file copy (shutil.copyfile) | {size / CHUNK / seconds:.0f} MB/s | {peak.growth_mb:.1f} MB |"
    )


def random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    with path.open("wb") as file:
        for i in range(size // CHUNK):
            chunk = block[i % 256 :] + block[: i % 256]  # differs per chunk, cheap to make
            digest.update(chunk)
            file.write(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    size = args.size_mb * CHUNK
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-artifacts-") as scratch:
        work = Path(scratch)
        data = work / "data.bin"
        sha = random_file(data, size)
        with ControlPlane(work / "controlplane", crd_dir=REPO / "crds") as plane:
            rows = run_service(plane, work, data, sha, size)
        rows.append(copy_in_subprocess(data, work / "copy.bin"))
    print(f"{args.size_mb} MB, python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| transfer | throughput | service RSS growth (peak - idle) |\n|---|---|---|")
    print("\n".join(rows))


def run_service(plane: ControlPlane, work: Path, data: Path, sha: str, size: int) -> list[str]:
    files = certs.CertFiles.in_directory(plane.state_dir / "pki")
    ca = certs.KeyPair(files.ca_cert.read_bytes(), files.ca_key.read_bytes())
    admin_cert = certs.client_cert(ca, "bench-admin", ["system:masters"])
    serving = certs.generate(("127.0.0.1",))
    for name, pem in {
        "serving.crt": serving.serving.cert_pem,
        "serving.key": serving.serving.key_pem,
        "admin.crt": admin_cert.cert_pem,
        "admin.key": admin_cert.key_pem,
    }.items():
        certs.write_file(work / name, pem, private=name.endswith(".key"))
    context = ssl.create_default_context(cadata=serving.ca.cert_pem.decode())
    context.load_cert_chain(work / "admin.crt", work / "admin.key")
    with new_api_client(plane.kubeconfig) as api_client:
        token = agent_token(api_client)
        ns = "bench"
        create_assigned_build(api_client, ns)
    (work / "storage").mkdir()
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(plane.kubeconfig),
        "BUILDFARM_ARTIFACTS_ROOT": str(work / "storage"),
        "BUILDFARM_ARTIFACTS_PORT": str(port),
        "BUILDFARM_ARTIFACTS_TLS_CERT_FILE": str(work / "serving.crt"),
        "BUILDFARM_ARTIFACTS_TLS_KEY_FILE": str(work / "serving.key"),
        "BUILDFARM_ARTIFACTS_SOURCE_LIMIT_BYTES": str(size * 2),
        "BUILDFARM_ARTIFACTS_FARM_NAMESPACE": "default",
    }
    service = subprocess.Popen(
        [str(Path(sys.executable).parent / "buildfarm"), "artifacts", "serve"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port)
        request(port, context, "GET", "/healthz", None)
        build = f"/v1/namespaces/{ns}/builds/bench"
        return [
            measured(
                "source upload (user, client cert)",
                size,
                service.pid,
                lambda: expect(
                    request(port, context, "PUT", f"/v1/namespaces/{ns}/sources/{sha}", None, data), 201
                ),
            ),
            measured(
                "artifact upload (agent, token)",
                size,
                service.pid,
                lambda: expect(
                    request(port, context, "PUT", f"{build}/attempts/1/artifacts/app.apk", token, data), 201
                ),
            ),
            measured(
                "artifact download (user, client cert)",
                size,
                service.pid,
                lambda: expect(request(port, context, "GET", f"{build}/artifacts/app.apk", None), 200, size),
            ),
        ]
    finally:
        service.terminate()
        service.wait(30)


def expect(result: tuple[int, int], status: int, size: int | None = None) -> None:
    if result[0] != status or (size is not None and result[1] != size):
        raise SystemExit(f"unexpected answer {result}, wanted status {status}")


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit("the artifact service did not start")


def agent_token(api_client: client.ApiClient) -> str:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        "default",
        client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="worker-bench")),
        _request_timeout=TIMEOUT,
    )
    answer = core.create_namespaced_service_account_token(
        "worker-bench",
        "default",
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        _request_timeout=TIMEOUT,
    )
    return str(answer.status.token)


def create_assigned_build(api_client: client.ApiClient, ns: str) -> None:
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)), _request_timeout=TIMEOUT
    )
    custom = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": "buildfarm.dev/v1alpha1",
        "kind": "Build",
        "metadata": {"name": "bench"},
        "spec": {"platform": "android", "source": {"git": {"url": "https://example.com/a.git"}}},
    }
    custom.create_namespaced_custom_object(
        "buildfarm.dev", "v1alpha1", ns, "builds", body, _request_timeout=TIMEOUT
    )
    status = {"status": {"phase": "Assigned", "workerName": "bench", "attempt": 1}}
    custom.patch_namespaced_custom_object_status(
        "buildfarm.dev", "v1alpha1", ns, "builds", "bench", status, _request_timeout=TIMEOUT
    )


if __name__ == "__main__":
    main()
