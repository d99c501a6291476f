"""`buildfarm agent`, wired up: register, heartbeat, clean up after a dead predecessor, then run builds
until a signal. SIGTERM or SIGINT: graceful stop (running builds may finish for stop_grace_seconds, then
are handed back); a second SIGTERM/SIGINT, or SIGQUIT: hand everything back now. Then the Lease is
released, so the operator can mark the worker not Ready at once."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from buildfarm.agent import capabilities, leftovers, signals
from buildfarm.agent.executors.base import Executor
from buildfarm.agent.executors.shell import ShellExecutor
from buildfarm.agent.executors.tart import TartExecutor
from buildfarm.agent.heartbeat import Heartbeat
from buildfarm.agent.registration import register, report_capabilities
from buildfarm.agent.settings import AgentSettings
from buildfarm.agent.supervisor import Supervisor
from buildfarm.errors import BuildfarmError
from buildfarm.kube.agent_gateway import AgentGateway
from buildfarm.kube.client import request_timeout
from buildfarm.kube.credentials import http_credentials
from buildfarm.kube.gateway import Gateway
from buildfarm.kube.leases import Leases
from buildfarm.telemetry import agent as metrics
from buildfarm.transfer.client import ArtifactClient

if TYPE_CHECKING:
    from kubernetes.client import ApiClient  # a type only: the gateways make the calls

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_executor(settings: AgentSettings) -> Executor:
    return TartExecutor(settings) if settings.executor == "tart" else ShellExecutor(settings)


class Agent:
    def __init__(self, settings: AgentSettings, api_client: ApiClient, lease_client: ApiClient) -> None:
        timeout = request_timeout(settings)
        self.settings = settings
        self.gateway = Gateway(api_client, timeout, component="agent")
        self.agent_gateway = AgentGateway(api_client, timeout)
        self.executor = make_executor(settings)
        # Without an artifact service the agent keeps artifacts on this machine (file:// locations) and
        # the log only in its work dir, as before the service existed.
        self.transfer = (
            ArtifactClient(
                settings.artifacts_url,
                http_credentials(api_client),
                ca_file=settings.artifacts_ca,
                connect_timeout=settings.connect_timeout,
                read_timeout=max(60.0, settings.request_timeout),
            )
            if settings.artifacts_url
            else None
        )
        # Its own client: a slow build call never holds up a renewal.
        self.heartbeat = Heartbeat(
            Leases(lease_client, timeout),
            namespace=settings.namespace,
            name=settings.worker_name,
            duration_seconds=settings.lease_duration_seconds,
            interval_seconds=settings.renew_interval_seconds,
            clock=utcnow,
        )
        self.stop = threading.Event()
        self.hurry = threading.Event()

    def signal(self, signum: int) -> None:
        """A stop signal, as relayed by agent/signals.py (on its own thread, never in a signal handler)."""
        if signum == signal.SIGQUIT or self.stop.is_set():
            log.info("Received %s: handing back all builds now.", signal.Signals(signum).name)
            self.hurry.set()
        else:
            log.info(
                "Received %s: taking no new builds; running ones may finish for %gs.",
                signal.Signals(signum).name,
                self.settings.stop_grace_seconds,
            )
        self.stop.set()

    def run(self) -> None:
        settings = self.settings
        worker = register(self.agent_gateway, settings)
        self._report_capabilities()
        self.heartbeat.start()
        leftovers.clean(settings.workspaces)
        self.executor.prepare()
        for path in (settings.workspaces, settings.logs, settings.artifacts):
            path.mkdir(parents=True, exist_ok=True)
        supervisor = Supervisor(
            settings,
            self.gateway,
            self.agent_gateway,
            self.executor,
            utcnow,
            worker.spec.capacity,
            transfer=self.transfer,
        )
        metrics.watch_slots(lambda: len(supervisor.runs), lambda: supervisor.capacity)
        supervisor.start()
        log.info(
            "Agent of worker %s is running (%s executor, capacity %d).",
            settings.worker_name,
            settings.executor,
            worker.spec.capacity,
        )
        while not self.stop.wait(settings.capabilities_interval_seconds):
            self._report_capabilities()
        supervisor.drain(settings.stop_grace_seconds, self.hurry)
        self.heartbeat.stop(release=True)
        if self.transfer is not None:
            self.transfer.close()
        log.info("Agent of worker %s stopped.", settings.worker_name)

    def _report_capabilities(self) -> None:
        try:
            report_capabilities(
                self.agent_gateway,
                self.settings.worker_name,
                lambda: capabilities.probe(self.settings.work_dir.expanduser()),
            )
        except BuildfarmError as error:
            log.warning("Could not report capabilities (next round tries again): %s", error)


def run(settings: AgentSettings, api_client: ApiClient, lease_client: ApiClient) -> None:
    agent = Agent(settings, api_client, lease_client)
    signals.relay(STOP_SIGNALS, agent.signal)
    agent.run()
