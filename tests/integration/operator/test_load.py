"""No build is silently dropped: a burst of builds created at once, against an operator with a short
request timeout (so some of its calls fail), ends with every build in a phase. And the periodic pass
admits a build that its admission handler dropped, by level rather than by edge.

BUILDFARM_TEST_BURST_BUILDS sets the burst (`make load` runs 5,000)."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes.client import ApiClient, CoreV1Api, V1ObjectMeta, V1Secret

from buildfarm.kube.gateway import Gateway
from buildfarm.operator.admission import Admissions
from buildfarm.operator.assignment import Assigner
from buildfarm.operator.outcomes import Reporter
from buildfarm.operator.scheduler import Scheduler
from buildfarm.operator.store import Store
from tests.support.farm import Farm, wait_for
from tests.support.operators import operator_process

BURST = int(os.environ.get("BUILDFARM_TEST_BURST_BUILDS", "1000"))
CREATORS = 8


def utcnow() -> datetime:
    return datetime.now(UTC)


def test_every_build_of_a_burst_reaches_a_phase(farm: Farm, kubeconfig: str, tmp_path: Path) -> None:
    farm.worker("mac", capacity=5)
    env = {
        "BUILDFARM_RESYNC_SECONDS": "5",
        "BUILDFARM_REQUEST_TIMEOUT": "1",
        "BUILDFARM_CONNECT_TIMEOUT": "1",
    }
    with operator_process(kubeconfig, tmp_path / "operator.log", "--namespace", farm.namespace, env=env):
        with ThreadPoolExecutor(CREATORS) as pool:
            list(pool.map(lambda i: farm.build(f"b{i:05d}"), range(BURST)))
        wait_for(
            f"all {BURST} builds in a phase (operator log: {tmp_path / 'operator.log'})",
            lambda: all(phase is not None for phase in farm.phases().values()),
            timeout=max(300, BURST / 5),
            interval=2,
        )
    phases = farm.phases()
    assert len(phases) == BURST
    assert sorted(set(phases.values())) == ["Assigned", "Pending"]
    assert sum(phase == "Assigned" for phase in phases.values()) == 5


def test_the_periodic_pass_admits_a_build_its_handler_dropped(
    farm: Farm, api_client: ApiClient, core_v1: CoreV1Api
) -> None:
    """No kopf here: the build's admission handler (which checks its credentials Secret) never ran, as
    when kopf gave up on it. The pass checks it, and the next cycle queues it with the reason it waits."""
    core_v1.create_namespaced_secret(
        farm.namespace, V1Secret(metadata=V1ObjectMeta(name="signing")), _request_timeout=10
    )
    farm.build("dropped", credentials={"secretName": "signing"})
    gateway = Gateway(api_client, (5.0, 10.0))
    reporter = Reporter(gateway, utcnow)

    async def cycles() -> list[bool]:
        admissions = Admissions(gateway, reporter, limit=2, timeout=30)
        scheduler = Scheduler(
            Store(frozenset({farm.namespace})),
            gateway,
            Assigner(gateway, utcnow),
            reporter,
            admissions,
            utcnow,
            call_timeout=30,
            resync_seconds=30,
            backoff_seconds=1,
        )
        scheduler.admission_grace = timedelta(0)  # as if the build had waited past the grace
        try:
            return [await scheduler.cycle(), await scheduler.cycle()]
        finally:
            scheduler.close()
            admissions.close()

    assert asyncio.run(cycles()) == [False, False]
    build = farm.get_build("dropped")
    assert (build.status.phase, build.status.reason) == ("Pending", "NoMatchingWorker")
