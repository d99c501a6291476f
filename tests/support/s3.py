"""A real S3-compatible server for tests and the benchmark: versitygw (Apache-2.0) over a temporary directory.

hack/build-s3-server.sh builds it from the Go module proxy once (`make setup` runs it) and caches it; set
BUILDFARM_TEST_S3_SERVER to use another versitygw binary. The server listens on loopback only, with its
own root credentials, and one bucket is created for the session.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import urllib3
from minio import Minio

from buildfarm.artifacts.backends.s3_settings import S3Settings
from buildfarm.dev import binaries

HOST: Final = "127.0.0.1"
REGION: Final = "us-east-1"
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    bucket: str
    root: Path  # the posix backend's directory: <root>/<bucket>/<key>
    log: Path
    pid: int  # also the process group: a test may kill the server to see the store fail

    def settings(self, **overrides: Any) -> S3Settings:
        """Backend settings for this server; `overrides` replace any field (e.g. bucket, prefix)."""
        values: dict[str, Any] = {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "region": REGION,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "path_style": True,
            "connect_timeout": 2.0,
            "read_timeout": 30.0,
            **overrides,
        }
        return S3Settings(**values)

    def client(self) -> Minio:
        """A plain S3 client, for tests to look at the bucket behind the backend's back."""
        return Minio(
            self.endpoint.removeprefix("http://"),
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=REGION,
            http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=30), retries=False),
        )

    def make_bucket(self, name: str) -> None:
        self.client().make_bucket(name)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One versitygw for the session; tests use their own bucket or key prefix. Import it into a conftest."""
    with running_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_s3_server(workdir: Path, bucket: str = "buildfarm-test") -> Iterator[S3Server]:
    """Start versitygw on a free loopback port over `workdir/data`, create `bucket`, stop it at exit."""
    binary = binaries.s3_server()
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "versitygw.log"
    access_key = "buildfarm-" + secrets.token_hex(4)
    secret_key = secrets.token_hex(20)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "ROOT_ACCESS_KEY": access_key,
        "ROOT_SECRET_KEY": secret_key,
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(binary), "--quiet", "--port", f"{HOST}:{port}", "--region", REGION, "posix", str(data)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # stopped as a group, never left behind by a dying test run
        )
    try:
        server = S3Server(
            endpoint=f"http://{HOST}:{port}",
            access_key=access_key,
            secret_key=secret_key,
            bucket=bucket,
            root=data,
            log=log,
            pid=process.pid,
        )
        _wait_until_serving(process, port, log)
        server.make_bucket(bucket)
        yield server
    finally:
        _stop(process)


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"versitygw exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"versitygw did not listen on {HOST}:{port} within {START_TIMEOUT} s: see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
