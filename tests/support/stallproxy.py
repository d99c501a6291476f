"""A TCP proxy for tests that can freeze a connection on demand, to make a server look hung.

    with StallProxy("127.0.0.1", server_port) as proxy:
        ...connect to 127.0.0.1:proxy.port...
        proxy.stall()   # bytes stop flowing both ways; new connections are accepted but held
        proxy.resume()  # everything held is forwarded, and new connections reach the target

It runs an asyncio loop in a background thread, so synchronous tests can use it. It only forwards to a
loopback target. Stalled bytes are held, not dropped: after resume() the peers see an unbroken stream.
"""

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Final, Self

_CHUNK: Final = 65536
_CONTROL_TIMEOUT: Final = 5.0


class StallProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        if not _is_loopback(target_host):
            raise ValueError(f"StallProxy forwards only to loopback, not to {target_host!r}")
        self.target_host = target_host
        self.target_port = target_port
        self.host = "127.0.0.1"
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started: call start() first")
        return self._port

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="stallproxy", daemon=True)
        self._thread.start()
        self._control(self._listen())

    def stop(self) -> None:
        """Closes the listener and every connection; safe to call any number of times."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._control(self._shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_CONTROL_TIMEOUT)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def stall(self) -> None:
        """From now on, no byte is forwarded and new connections wait, until resume()."""
        self._control(self._set_flowing(flowing=False))

    def resume(self) -> None:
        self._control(self._set_flowing(flowing=True))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Everything below runs in the proxy's event loop.

    def _control(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Runs `coroutine` in the proxy's loop and waits for it, so its effect holds when this returns."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the proxy is not started: call start() first")
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=_CONTROL_TIMEOUT)

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _set_flowing(self, *, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for writer in list(self._writers):
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            pass  # stop() cancels; asyncio's streams would log a cancelled connection task as an error.
        finally:
            client_writer.close()
            self._writers.discard(client_writer)
            self._tasks.discard(task)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        await self._flowing.wait()  # A connection accepted during a stall is held here.
        try:
            target_reader, target_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            return  # The target is down: the client sees its connection closed.
        self._writers.add(target_writer)
        try:
            await asyncio.gather(
                self._pump(client_reader, target_writer), self._pump(target_reader, client_writer)
            )
        finally:
            target_writer.close()
            self._writers.discard(target_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()  # Returns at once, without yielding, while flowing.
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
