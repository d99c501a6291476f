"""The stall proxy forwards, freezes and resumes a TCP stream; checked against a tiny local echo server."""

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.stallproxy import StallProxy

# Long enough that a forwarding proxy answers within it, short enough to keep the tests quick.
STALL_PROBE_SECONDS = 0.3
IO_TIMEOUT_SECONDS = 5.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


@pytest.fixture
def echo_port() -> Iterator[int]:
    with _EchoServer(("127.0.0.1", 0), _Echo) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(timeout=IO_TIMEOUT_SECONDS)


@pytest.fixture
def proxy(echo_port: int) -> Iterator[StallProxy]:
    with StallProxy("127.0.0.1", echo_port) as proxy:
        yield proxy


def connect(proxy: StallProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=IO_TIMEOUT_SECONDS)
    sock.settimeout(IO_TIMEOUT_SECONDS)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def assert_stalled(sock: socket.socket) -> None:
    sock.settimeout(STALL_PROBE_SECONDS)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(IO_TIMEOUT_SECONDS)


def test_forwards_both_ways(proxy: StallProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"


def test_stall_holds_bytes_on_an_open_connection_until_resume(proxy: StallProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"before")
        assert recv_exactly(sock, 6) == b"before"

        proxy.stall()
        sock.sendall(b"during")
        assert_stalled(sock)

        proxy.resume()
        assert recv_exactly(sock, 6) == b"during"
        sock.sendall(b"after")
        assert recv_exactly(sock, 5) == b"after"


def test_stall_accepts_but_holds_new_connections(proxy: StallProxy) -> None:
    proxy.stall()
    with connect(proxy) as sock:  # The connect itself succeeds: the listener still accepts.
        sock.sendall(b"held")
        assert_stalled(sock)

        proxy.resume()
        assert recv_exactly(sock, 4) == b"held"


def test_stop_closes_open_connections(echo_port: int) -> None:
    proxy = StallProxy("127.0.0.1", echo_port)
    proxy.start()
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.stop()
        with contextlib.suppress(ConnectionResetError):  # A reset is a close too.
            assert sock.recv(1) == b""
    proxy.stop()  # Stopping twice is harmless.


@pytest.mark.parametrize(
    ("host", "want_allowed"),
    [
        pytest.param("127.0.0.1", True, id="ipv4-loopback"),
        pytest.param("::1", True, id="ipv6-loopback"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("10.0.0.1", False, id="private-address"),
        pytest.param("example.com", False, id="host-name"),
    ],
)
def test_only_forwards_to_loopback(host: str, want_allowed: bool) -> None:
    if want_allowed:
        StallProxy(host, 1)
    else:
        with pytest.raises(ValueError, match="only to loopback"):
            StallProxy(host, 1)


def test_port_needs_start() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = StallProxy("127.0.0.1", 1).port
