"""Metrics and logs after a scripted scenario on the real API server, with a real operator and agent:
a build succeeds, one fails in its build command, one cannot fetch its source, and one is requeued when
its agent is killed. Each /metrics is scraped, parsed with Prometheus' own text parser and checked for
exact values; both processes log json, every line parses, lines about a build carry its fields, and the
build's credentials Secret never appears in any log."""

import base64
import json
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes.client import CoreV1Api, V1ObjectMeta, V1Secret
from prometheus_client.parser import text_string_to_metric_families

from tests.support.agents import LONG, AgentFarm, ArchiveServer
from tests.support.farm import FARM_NAMESPACE, TIMEOUT, Farm, ensure_namespace, wait_for
from tests.support.operators import operators

SECRET_VALUES = {"password": "p4ss-must-never-be-logged", "p12": "cert-body-must-never-be-logged"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log, each parsed as one JSON object (a line that is not one fails the test)."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line!r}") from None
    return lines


def test_metrics_and_logs_after_a_scenario(
    agents: AgentFarm,
    farm: Farm,
    archives: ArchiveServer,
    kubeconfig: str,
    tmp_path: Path,
    core_v1: CoreV1Api,
) -> None:
    ensure_namespace(core_v1, FARM_NAMESPACE)
    core_v1.create_namespaced_secret(
        farm.namespace,
        V1Secret(metadata=V1ObjectMeta(name="signing"), string_data=SECRET_VALUES),
        _request_timeout=TIMEOUT,
    )
    # The worker is Ready before the operator starts, so its only Ready transition is the one the kill
    # causes; the agent adopts it.
    worker = farm.worker("mac", platforms=("android",), capacity=1)
    operator_port, agent_port = free_port(), free_port()
    env = {
        "BUILDFARM_STARTUP_GRACE_SECONDS": "0",
        "BUILDFARM_LEASE_GRACE_SECONDS": "5",
        "BUILDFARM_METRICS_PORT": str(operator_port),
        "BUILDFARM_LOG_FORMAT": "json",
    }
    android = {"platform": "android", "credentials": {"secretName": "signing"}}
    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace], env=env):
        with agents.agent(
            "mac",
            namespace=FARM_NAMESPACE,
            platforms="android",
            metrics_port=agent_port,
            env={"BUILDFARM_LOG_FORMAT": "json"},
        ) as agent:
            farm.build("ok", source=archives.source("ok", seconds=0.5, lines=2), **android)
            wait_for("ok Succeeded", lambda: farm.get_build("ok").status.phase == "Succeeded")
            farm.build("bad", source=archives.source("bad", seconds=0.2, lines=1, exit=3), **android)
            url, _ = archives.add("nosource.tar.gz", b"not what the digest says")
            farm.build("nosource", source={"archive": {"url": url, "sha256": "0" * 64}}, **android)
            wait_for(
                "bad and nosource Failed",
                lambda: (
                    {farm.get_build(n).status.reason for n in ("bad", "nosource")}
                    == {"BuildFailed", "SourceUnavailable"}
                ),
            )
            on_agent = scrape(agent_port)
            farm.build("lost", source=archives.source("lost", **LONG), **android)
            wait_for("lost Running", lambda: farm.get_build("lost").status.phase == "Running")
            agent.signal(signal.SIGKILL)
            agent.wait()
        wait_for(
            "lost requeued, waiting for its worker",
            lambda: (
                (b := farm.get_build("lost")).status.phase == "Pending"
                and b.status.reason == "WorkerNotReady"
            ),
        )
        # The operator's cache catches up with what the API server already says.
        on_operator = wait_for(
            "the operator's gauges to show the requeue",
            lambda: (
                (s := scrape(operator_port))
                and value(s, "buildfarm_pending_builds", platform="android", reason="WorkerNotReady") == 1
                and value(s, "buildfarm_worker_busy_slots", worker=worker) == 0
                and s
            ),
        )
        workers = _all_workers(farm)

    # The agent: two failures and a success it ran; one of them its executor could not run.
    assert value(on_agent, "buildfarm_agent_builds_total", result="Succeeded") == 1
    assert value(on_agent, "buildfarm_agent_builds_total", result="Failed") == 2
    assert value(on_agent, "buildfarm_agent_builds_total", result="Cancelled") is None
    assert value(on_agent, "buildfarm_agent_executor_failures_total", reason="SourceUnavailable") == 1
    assert value(on_agent, "buildfarm_agent_executor_failures_total", reason="AgentError") is None
    assert value(on_agent, "buildfarm_agent_busy_slots") == 0
    assert value(on_agent, "buildfarm_agent_capacity_slots") == 1
    assert value(on_agent, "buildfarm_agent_lease_renew_failures_total") == 0
    assert (value(on_agent, "buildfarm_agent_lease_renew_duration_seconds_count") or 0) >= 1
    assert (
        value(
            on_agent,
            "buildfarm_kube_api_request_duration_seconds_count",
            verb="patch",
            resource="builds/status",
        )
        or 0
    ) >= 6
    assert (
        value(on_agent, "buildfarm_kube_api_request_duration_seconds_count", verb="patch", resource="leases")
        or 0
    ) >= 1

    # The operator: four assignments, three finished builds, one requeue; the levels now.
    got = on_operator
    assert value(got, "buildfarm_assignments_total", platform="android") == 4
    assert value(got, "buildfarm_assignments_total", platform="ios") is None
    assert value(got, "buildfarm_build_queue_wait_seconds_count", platform="android") == 4
    finished = {
        (labels["result"], labels["reason"]): count
        for (name, pairs), count in got.items()
        if name == "buildfarm_builds_finished_total" and (labels := dict(pairs))["platform"] == "android"
    }
    assert finished == {
        ("Succeeded", "Succeeded"): 1,
        ("Failed", "BuildFailed"): 1,
        ("Failed", "SourceUnavailable"): 1,
    }
    assert value(got, "buildfarm_build_duration_seconds_count", platform="android", result="Succeeded") == 1
    assert value(got, "buildfarm_build_duration_seconds_count", platform="android", result="Failed") == 2
    assert value(got, "buildfarm_requeues_total", reason="WorkerLost") == 1
    phases = {
        dict(pairs)["phase"]: count
        for (name, pairs), count in got.items()
        if name == "buildfarm_builds" and dict(pairs)["platform"] == "android"
    }
    assert phases == {
        "New": 0,
        "Pending": 1,
        "Assigned": 0,
        "Running": 0,
        "Succeeded": 1,
        "Failed": 2,
        "Cancelled": 0,
    }
    assert (
        sum(c for (n, p), c in got.items() if n == "buildfarm_builds" and dict(p)["platform"] == "ios") == 0
    )
    assert value(got, "buildfarm_pending_builds", platform="android", reason="WorkerNotReady") == 1
    assert (value(got, "buildfarm_oldest_pending_build_age_seconds", platform="android") or 0) > 0
    assert value(got, "buildfarm_oldest_pending_build_age_seconds", platform="ios") == 0
    assert value(got, "buildfarm_worker_ready", worker=worker) == 0
    assert value(got, "buildfarm_worker_ready_transitions_total", worker=worker) == 1
    assert value(got, "buildfarm_worker_capacity_slots", worker=worker, platform="android") == 1
    assert value(got, "buildfarm_worker_capacity_slots", worker=worker, platform="ios") is None
    assert value(got, "buildfarm_worker_busy_slots", worker=worker) == 0
    for state in ("Ready", "NotReady", "Cordoned"):
        assert value(got, "buildfarm_workers", state=state) == workers.count(state), state
    assert value(got, "buildfarm_ready_capacity_slots", platform="android") == 0
    assert (value(got, "buildfarm_scheduling_cycle_duration_seconds_count") or 0) >= 1
    assert (
        value(
            got, "buildfarm_kube_api_request_duration_seconds_count", verb="patch", resource="builds/status"
        )
        or 0
    ) >= 4

    # The logs: every line of both is one JSON object; lines about builds carry their fields.
    operator_lines = json_lines(tmp_path / "operator-0.log")
    agent_lines = json_lines(agent.log_path)
    for line in operator_lines + agent_lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    assigned = [line for line in operator_lines if line["message"].startswith("Assigned build")]
    assert {(line["namespace"], line["name"], line["attempt"]) for line in assigned} == {
        (farm.namespace, name, 1) for name in ("ok", "bad", "nosource", "lost")
    }
    lost = [
        line for line in operator_lines if line["message"].startswith(f"Build {farm.namespace}/lost lost")
    ]
    assert [(line["name"], line["attempt"], line["worker"]) for line in lost] == [("lost", 1, worker)]
    assert all(line["worker"] == worker for line in agent_lines)
    started = [line for line in agent_lines if line["message"].startswith("Started ")]
    assert {(line["namespace"], line["name"], line["attempt"]) for line in started} == {
        (farm.namespace, name, 1) for name in ("ok", "bad", "nosource", "lost")
    }

    # No credential in any log, plain or base64 (as a Secret's data holds it).
    logs = [(tmp_path / "operator-0.log").read_text(), agent.log(), *_build_logs(agent.work_dir)]
    for secret in SECRET_VALUES.values():
        for form in (secret, base64.b64encode(secret.encode()).decode()):
            assert not any(form in text for text in logs), "a credential was logged"


def _all_workers(farm: Farm) -> list[str]:
    """The state of every Worker as the operator's gauge counts it."""
    body = farm.api.list_cluster_custom_object(
        "buildfarm.dev", "v1alpha1", "workers", _request_timeout=TIMEOUT
    )
    states = []
    for item in body["items"]:
        conditions = {c["type"]: c["status"] for c in (item.get("status") or {}).get("conditions") or []}
        if item["spec"].get("unschedulable"):
            states.append("Cordoned")
        else:
            states.append("Ready" if conditions.get("Ready") == "True" else "NotReady")
    return states


def _build_logs(work_dir: Path) -> list[str]:
    return [path.read_text(errors="replace") for path in (work_dir / "logs").rglob("*.log")]
