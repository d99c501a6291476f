"""One registry and one /metrics endpoint per process, holding its own component's metrics, the
Kubernetes API client's, and the process's own (CPU, memory, file descriptors, garbage collection)."""

import threading
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, start_http_server
from prometheus_client.registry import CollectorRegistry

# Imported for their definitions: every component's metrics are in the catalogue once these ran.
from buildfarm.telemetry import agent, artifacts, kube, operator  # noqa: F401
from buildfarm.telemetry.catalog import OBJECTS, Component

ALL_INTERFACES: Final = "0.0.0.0"  # scraped from elsewhere: a Prometheus in the cluster


class MetricsPortError(Exception):
    """The endpoint could not listen; the message is one line saying what to do."""


def registry_for(component: Component) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for metric in [*OBJECTS[component], *OBJECTS["kube"]]:
        registry.register(metric)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def serve(
    component: Component, port: int, *, address: str = ALL_INTERFACES, setting: str = "--metrics-port"
) -> WSGIServer | None:
    """Serve the component's metrics at http://address:port/metrics on a daemon thread; None when port is
    0 (disabled). `setting` names what sets the port, for the error message."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, address, registry=registry_for(component))
    except OSError as error:
        raise MetricsPortError(
            f"cannot serve metrics on port {port}: {error.strerror or error}; "
            f"pick a free port with {setting} (0 turns metrics off)"
        ) from None
    return server


def stop(server: WSGIServer | None) -> None:
    if server is not None:
        threading.Thread(target=server.shutdown, daemon=True).start()
        server.server_close()
