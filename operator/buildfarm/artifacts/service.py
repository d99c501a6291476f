"""`buildfarm artifacts serve`: the artifact service's process. Connects to Kubernetes, loads the client
CA when serving TLS, starts the HTTP server and the retention sweep, and runs until SIGTERM/SIGINT."""

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
from buildfarm.artifacts.retention import Sweeper
from buildfarm.artifacts.server import Service, make_app
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.kube import client as kube_client
from buildfarm.kube.artifacts_gateway import ArtifactsGateway

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateway makes the calls

logger = logging.getLogger(__name__)

LINGER_SECONDS = 1.0


class ServeError(Exception):
    """The service cannot start; the message is one line saying what to do."""


def build_service(settings: ArtifactSettings, api_client: "ApiClient") -> Service:
    gateway = ArtifactsGateway(api_client, kube_client.request_timeout(settings))
    cache = TokenCache(settings.token_cache_seconds, settings.token_cache_size)
    return Service(settings, make_backend(settings), gateway, Authenticator(gateway, cache))


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
    settings: ArtifactSettings, api_client: "ApiClient", ready: Callable[[int], Awaitable[None]] | None = None
) -> None:
    """Serve until cancelled or signalled. `ready` is told the port (tests use port 0)."""
    service = build_service(settings, api_client)
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


def run(settings: ArtifactSettings, api_client: "ApiClient") -> None:
    asyncio.run(serve(settings, api_client))
