"""One /metrics endpoint per process: served on the port asked, off at port 0, and a taken port is one
line saying what to do."""

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from buildfarm.telemetry import exporter
from buildfarm.telemetry.agent import BUILDS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_the_components_metrics() -> None:
    port = free_port()
    server = exporter.serve("agent", port, address="127.0.0.1")
    try:
        BUILDS.labels("Succeeded").inc()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        exporter.stop(server)
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "buildfarm_agent_builds",
        "buildfarm_kube_api_request_duration_seconds",
        "process_cpu_seconds",
    } <= names
    assert "buildfarm_builds" not in names  # the operator's


def test_port_0_serves_nothing() -> None:
    assert exporter.serve("operator", 0) is None


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(exporter.MetricsPortError) as error:
            exporter.serve("operator", port, address="127.0.0.1", setting="BUILDFARM_METRICS_PORT")
    assert str(error.value) == (
        f"cannot serve metrics on port {port}: Address already in use; "
        "pick a free port with BUILDFARM_METRICS_PORT (0 turns metrics off)"
    )
