"""`buildfarm artifacts serve`: the artifact service's process. Checks its storage is usable, loads the
client CA when serving TLS, starts the HTTP server and the retention sweep, and runs until SIGTERM/SIGINT;
then closes the storage backend's connections."""

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from buildfarm.artifacts.auth import Authenticator, TokenCache
from buildfarm.artifacts.backends import make_backend
from buildfarm.artifacts.backends.base import Backend, StorageError
from buildfarm.artifacts.retention import Sweeper
from buildfarm.artifacts.server import Service, make_app
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.kube import client as kube_client
from buildfarm.kube.artifacts_gateway import ArtifactsGateway
from buildfarm.settings import SettingsError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateway makes the calls

    from buildfarm.artifacts.backends.s3_settings import S3Settings

logger = logging.getLogger(__name__)

LINGER_SECONDS = 1.0


class ServeError(Exception):
    """The service cannot start; the message is one line saying what to do."""


def build_service(
    settings: ArtifactSettings, api_client: "ApiClient", s3: "S3Settings | None" = None
) -> Service:
    gateway = ArtifactsGateway(api_client, kube_client.request_timeout(settings))
    cache = TokenCache(settings.token_cache_seconds, settings.token_cache_size)
    try:
        backend = make_backend(settings, s3)
    except SettingsError as error:
        raise ServeError(str(error)) from None
    return Service(settings, backend, gateway, Authenticator(gateway, cache))


async def checked(backend: Backend) -> None:
    """Refuse to start on a store that cannot be used (unreachable, bucket missing, keys refused): found
    now, it is one line at start instead of a 503 on every request."""
    try:
        await backend.check()
    except StorageError as error:
        raise ServeError(f"the {backend.name} storage is unusable: {error}") from None


def ssl_context(settings: ArtifactSettings, client_ca: str | None) -> ssl.SSLContext | None:
    """TLS with the serving cert; client certs are requested (not required) and verified against the
    cluster's client CA, so users with certificate kubeconfigs (kind) can authenticate with them."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (ssl.SSLError, OSError) as error:
        raise ServeError(f"cannot use the serving certificate {settings.tls_cert_file}: {error}") from None
    if client_ca:
        context.load_verify_locations(cadata=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def serve(
    settings: ArtifactSettings,
    api_client: "ApiClient",
    ready: Callable[[int], Awaitable[None]] | None = None,
    *,
    s3: "S3Settings | None" = None,
) -> None:
    """Serve until cancelled or signalled. `ready` is told the port (tests use port 0); `s3` are the S3
    backend's settings (None: read from BUILDFARM_ARTIFACTS_S3_* when the backend is s3)."""
    service = build_service(settings, api_client, s3)
    try:
        await checked(service.backend)
        await _serve(settings, service, ready)
    finally:
        service.backend.close()


async def _serve(
    settings: ArtifactSettings, service: Service, ready: Callable[[int], Awaitable[None]] | None
) -> None:
    client_ca = None
    if settings.tls_cert_file is not None:
        client_ca = await asyncio.to_thread(service.gateway.client_ca)
        if client_ca is None:
            logger.warning("The cluster publishes no client CA: only Bearer tokens will be accepted")
    context = ssl_context(settings, client_ca)
    # After refusing an upload, read (and drop) what the client still sends for a moment only, so its
    # client sees the answer instead of a reset, but a refused 4 GB body is not swallowed to the end.
    runner = web.AppRunner(make_app(service), access_log=None, lingering_time=LINGER_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {settings.host}:{settings.port}: {error.strerror}") from None
    port = runner.addresses[0][1]
    logger.info(
        "Serving artifacts on %s://%s:%d from %s storage",
        "https" if context else "http",
        settings.host,
        port,
        service.backend.name,
    )
    sweeper = asyncio.create_task(
        Sweeper(service.backend, service.gateway).forever(settings.sweep_interval_seconds)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Not in the main thread (tests) this fails: cancellation stops the service there.
        with contextlib.suppress(RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if ready is not None:
            await ready(port)
        await stop.wait()
    finally:
        sweeper.cancel()
        await runner.cleanup()


def run(settings: ArtifactSettings, api_client: "ApiClient", s3: "S3Settings | None" = None) -> None:
    asyncio.run(serve(settings, api_client, s3=s3))
