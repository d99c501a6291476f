"""The artifact service on loopback for tests: run in a thread with its own event loop, as a
ServiceAccount holding exactly ARTIFACT_SERVICE_PERMISSIONS, and a small HTTP client that can stream,
stop halfway, and present tokens or client certificates."""

import asyncio
import contextlib
import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubernetes import client

from buildfarm.artifacts.service import serve
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.dev.controlplane import new_api_client

START_TIMEOUT = 30
TIMEOUT = 10


def token_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


class RunningService:
    """`serve()` in a thread; `url` once it listens; `stop()` cancels it and waits."""

    def __init__(self, settings: ArtifactSettings, kubeconfig: Path) -> None:
        self.settings = settings
        self._kubeconfig = kubeconfig
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="artifact-service", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_cert_file else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> "RunningService":
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            raise RuntimeError(f"the artifact service did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(TIMEOUT)

    def _run(self) -> None:
        async def ready(port: int) -> None:
            self.port = port
            self._ready.set()

        async def main() -> None:
            with new_api_client(self._kubeconfig) as api_client:
                await serve(self.settings, api_client, ready)

        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(main())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            self._loop.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Caller:
    """Someone calling the service: a bearer token, a client certificate, or nobody."""

    base: str
    token: str | None = None
    context: ssl.SSLContext | None = None
    name: str = "anonymous"
    extra_headers: dict[str, str] = field(default_factory=dict)

    def connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.base)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "", parts.port, context=self.context, timeout=30
            )
        return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers | (extra or {})

    def call(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request; an iterable body is sent chunked. A server that answers and closes before the
        body is all sent (a refused upload) still gives its answer."""
        connection = self.connection()
        try:
            if body is None or isinstance(body, bytes):
                connection.request(method, path, body=body, headers=self.headers(headers))
            else:
                connection.putrequest(method, path)
                chunked = {**(headers or {}), "Transfer-Encoding": "chunked"}
                for key, value in self.headers(chunked).items():
                    connection.putheader(key, value)
                connection.endheaders()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for chunk in body:
                        connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    connection.send(b"0\r\n\r\n")
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def stream(self, path: str) -> Iterator[bytes]:
        """A GET whose body is read as it arrives (a followed log)."""
        connection = self.connection()
        try:
            connection.request("GET", path, headers=self.headers())
            response = connection.getresponse()
            assert response.status == 200, response.read()
            while chunk := response.read1(65536):
                yield chunk
        finally:
            connection.close()


def wait_until(condition: Any, timeout: float = 20, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def files_under(root: Path) -> list[str]:
    """Every stored file (not temporary or bookkeeping ones), relative to the root."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.relative_to(root).parts[0].startswith(".")
    )


def bind(
    rbac: client.RbacAuthorizationV1Api,
    namespace: str,
    name: str,
    rules: list[dict[str, list[str]]],
    subject: client.RbacV1Subject,
) -> None:
    """A Role with `rules` in `namespace` bound to `subject`."""
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=name),
            rules=[
                client.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                for r in rules
            ],
        ),
        _request_timeout=TIMEOUT,
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[subject],
        ),
        _request_timeout=TIMEOUT,
    )
