"""The artifact client and the agent's log shipper against a real HTTP server on 127.0.0.1 that breaks
the way networks do: answers lost after the bytes were stored, 503s, a service that lost the tail of a
log. The log arrives whole and in order, once. And credentials never leave the configured origin."""

import hashlib
import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buildfarm.agent.logs import BuildLog
from buildfarm.agent.logship import LogShipper
from buildfarm.kube.credentials import HttpCredentials
from buildfarm.transfer.client import ArtifactClient, ArtifactError, DigestMismatch

TOKEN = "Bearer secret-token"


class Service:
    """A log store with the contract's offset semantics, and faults chosen by the test."""

    def __init__(self) -> None:
        self.log = b""
        self.requests = 0
        self.lose_answer_every = 0  # store, then close the connection without answering
        self.fail_every = 0  # answer 503 without storing
        self.truncate_once_at = -1  # on this request, forget the last 5 bytes first
        self.auth_seen: list[str | None] = []
        self.files: dict[str, bytes] = {}
        self.redirect_to: str | None = None
        self.redirect_sha256: str | None = None
        self.lock = threading.Lock()


def handler(service: Service) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _answer(
            self, status: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
        ) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            service.auth_seen.append(self.headers.get("Authorization"))
            url = urllib.parse.urlsplit(self.path)
            offset = int(urllib.parse.parse_qs(url.query)["offset"][0])
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with service.lock:
                service.requests += 1
                n = service.requests
                if n == service.truncate_once_at:
                    service.log = service.log[:-5]
                if service.fail_every and n % service.fail_every == 0:
                    self._answer(503, {"error": "busy", "reason": "Unavailable"})
                    return
                if offset > len(service.log):
                    self._answer(409, {"error": "gap", "reason": "OffsetMismatch", "size": len(service.log)})
                    return
                service.log += body[len(service.log) - offset :]
                size = len(service.log)
            if service.lose_answer_every and n % service.lose_answer_every == 0:
                self.close_connection = True
                return
            self._answer(200, {"size": size})

        def do_GET(self) -> None:
            service.auth_seen.append(self.headers.get("Authorization"))
            name = self.path.rsplit("/", 1)[-1].split("?")[0]
            if service.redirect_to is not None and not self.path.startswith("/presigned"):
                # The service states the digest it recorded; the store (below) does not.
                stated = {"X-Buildfarm-Sha256": service.redirect_sha256} if service.redirect_sha256 else {}
                self._answer(307, b"", {"Location": service.redirect_to, **stated})
                return
            data = service.files.get(name)
            if data is None:
                self._answer(404, {"error": f"no {name}: upload it first", "reason": "NotFound"})
                return
            if self.path.startswith("/presigned"):
                self._answer(200, data)
                return
            self._answer(200, data, {"X-Buildfarm-Sha256": hashlib.sha256(data).hexdigest()})

    return Handler


@pytest.fixture
def servers() -> Iterator[tuple[Service, str, Service, str]]:
    """Two servers: the configured service, and another origin (e.g. an object store)."""
    made = []
    for _ in range(2):
        service = Service()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(service))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append((service, f"http://127.0.0.1:{server.server_address[1]}", server))
    yield made[0][0], made[0][1], made[1][0], made[1][1]
    for _, _, server in made:
        server.shutdown()
        server.server_close()


def client(url: str) -> ArtifactClient:
    return ArtifactClient(url, HttpCredentials(lambda: TOKEN), connect_timeout=2, read_timeout=5)


def ship(tmp_path: Path, service: Service, url: str, lines: int) -> tuple[bytes, LogShipper]:
    log = BuildLog(tmp_path / "b.log")
    with client(url) as c:
        # Small chunks so there are several requests, hence several faults; retried at once.
        shipper = LogShipper(c, "ns", "b", 1, log.path, first_backoff=0.01, chunk=512)
        log.on_write = shipper.poke
        shipper.start()
        for i in range(lines):
            log.write(f"line {i} {'x' * (i % 50)}\n".encode())
        assert shipper.finish(patience=60), shipper.gave_up
        log.close()
    return (tmp_path / "b.log").read_bytes(), shipper


@pytest.mark.parametrize(
    ("faults", "want_requests_at_least"),
    [
        pytest.param({}, 1, id="clean"),
        pytest.param({"lose_answer_every": 2}, 2, id="lost-answers"),
        pytest.param({"fail_every": 3}, 3, id="503s"),
        pytest.param({"truncate_once_at": 2, "lose_answer_every": 3}, 2, id="service-lost-a-tail"),
    ],
)
def test_the_log_arrives_whole_once(
    tmp_path: Path,
    servers: tuple[Service, str, Service, str],
    faults: dict[str, int],
    want_requests_at_least: int,
) -> None:
    service, url, _, _ = servers
    for key, value in faults.items():
        setattr(service, key, value)
    written, shipper = ship(tmp_path, service, url, 100)
    assert service.log == written
    assert shipper.sent == len(written)
    assert service.requests >= want_requests_at_least
    assert set(service.auth_seen) == {TOKEN}


def test_a_service_that_never_recovers_bounds_the_wait(
    tmp_path: Path, servers: tuple[Service, str, Service, str]
) -> None:
    service, url, _, _ = servers
    log = BuildLog(tmp_path / "b.log")
    log.write(b"one\n")
    with client(url) as c:
        shipper = LogShipper(c, "ns", "b", 1, log.path, first_backoff=0.01)
        service.fail_every = 1  # 503 forever: retried, never refused
        shipper.start()
        assert not shipper.finish(patience=0.5)
    log.close()
    assert service.requests >= 2  # it retried
    assert service.log == b""


def test_downloads_are_checked_and_credentials_stay_home(
    tmp_path: Path, servers: tuple[Service, str, Service, str]
) -> None:
    service, url, store, store_url = servers
    data = b"apk" * 1000
    service.files["app.apk"] = data
    with client(url) as c:
        got = c.download_artifact("ns", "b", "app.apk", tmp_path / "app.apk", sha256=None)
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert (tmp_path / "app.apk").read_bytes() == data
        with pytest.raises(DigestMismatch, match="nothing was kept"):
            c.download_artifact("ns", "b", "app.apk", tmp_path / "bad.apk", sha256="0" * 64)
        assert not (tmp_path / "bad.apk").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
        with pytest.raises(ArtifactError, match=r"no missing.apk: upload it first \(HTTP 404\)"):
            c.download_artifact("ns", "b", "missing.apk", tmp_path / "m", sha256=None)
        # A redirect to another origin (a presigned URL) is followed without the token.
        store.files["presigned"] = data
        service.redirect_to = f"{store_url}/presigned?sig=1"
        service.redirect_sha256 = hashlib.sha256(data).hexdigest()
        c.download_artifact("ns", "b", "app.apk", tmp_path / "via-store.apk", sha256=None)
        assert store.auth_seen == [None]
        assert (tmp_path / "via-store.apk").read_bytes() == data
        # The digest the service stated in its redirect is checked against what the store sent.
        store.files["presigned"] = b"tampered"
        with pytest.raises(DigestMismatch, match="nothing was kept"):
            c.download_artifact("ns", "b", "app.apk", tmp_path / "tampered.apk", sha256=None)
        assert not (tmp_path / "tampered.apk").exists()
        store.auth_seen.remove(None)
        # A source URL on another origin is never fetched with the agent's credentials.
        with pytest.raises(ArtifactError, match="is not on the artifact service"):
            c.download_source(
                f"{store_url}/v1/namespaces/ns/sources/x",
                tmp_path / "s",
                build="b",
                attempt=1,
                limit=10,
                sha256=None,
            )
        assert store.auth_seen == [None]
    assert set(service.auth_seen) == {TOKEN}


def test_unreachable_is_one_line() -> None:
    with client("http://127.0.0.1:9") as c, pytest.raises(ArtifactError) as caught:
        c.append_log("ns", "b", 1, 0, b"x")
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.retryable
    assert "BUILDFARM_ARTIFACTS_URL or --artifacts-url" in message


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("http://10.1.2.3:8443", "plain http to another machine"),
        ("ftp://x", r"not an http\(s\) URL"),
        ("https://x/?a=b", "must not carry a query"),
    ],
)
def test_bad_service_urls(url: str, want: str) -> None:
    with pytest.raises(ValueError, match=want):
        client(url)
