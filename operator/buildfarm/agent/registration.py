"""Registration: the agent creates its Worker, or adopts the one that exists, and reports its
capabilities. The agent never changes a Worker's spec (the farm's administrators own it), nor its
conditions or reservations (the operator owns them): only status.capabilities."""

import logging
from collections.abc import Callable

from buildfarm.agent.settings import AgentSettings
from buildfarm.api.workers import Worker, WorkerCapabilities, WorkerSpec
from buildfarm.errors import Conflict, NotFound
from buildfarm.kube.agent_gateway import AgentGateway

log = logging.getLogger(__name__)

MAX_CONFLICTS = 5


def register(gateway: AgentGateway, settings: AgentSettings) -> Worker:
    """The agent's Worker, created from the settings if absent."""
    name = settings.worker_name
    try:
        worker = gateway.get_worker(name)
        log.info("Adopted worker %s (its spec is left as the administrators set it).", name)
        return worker
    except NotFound:
        pass
    spec = WorkerSpec(platforms=list(settings.platforms), capacity=settings.capacity)
    try:
        worker = gateway.create_worker(name, spec, dict(settings.labels))
        log.info(
            "Created worker %s: platforms %s, capacity %d.", name, ",".join(spec.platforms), spec.capacity
        )
        return worker
    except Conflict:
        return gateway.get_worker(name)  # created meanwhile by someone else: adopt it


def report_capabilities(gateway: AgentGateway, name: str, probe: Callable[[], WorkerCapabilities]) -> Worker:
    """Write status.capabilities, guarded by the Worker's resourceVersion; on a conflict read again
    (the operator writes reservations often) and write again: the field is the agent's alone."""
    capabilities = probe()
    for _ in range(MAX_CONFLICTS):
        worker = gateway.get_worker(name)
        if worker.status.capabilities == capabilities:
            return worker
        try:
            return gateway.write_capabilities(worker, capabilities)
        except Conflict:
            continue
    raise Conflict(f"worker {name} kept changing; capabilities are written on the next round")
