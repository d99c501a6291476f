"""Exactly-once assignment with real operator processes racing on a real API server.

These are the old controller's failures (two workers getting one build) turned into invariants: every
build is assigned exactly once (attempt 1, one Assigned Event), no worker holds more than its capacity,
and each worker's reservations are exactly the builds bound to it. BUILDFARM_TEST_ROUNDS sets how often
each scenario runs (hack/stress.sh runs them 100 times).
"""

import os
from collections import Counter
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operators

ROUNDS = int(os.environ.get("BUILDFARM_TEST_ROUNDS", "3"))


@pytest.mark.parametrize("round_", range(ROUNDS), ids=lambda r: f"round{r}")
@pytest.mark.parametrize("operator_count", [1, 3], ids=lambda n: f"{n}-operators")
@pytest.mark.parametrize(
    ("worker_count", "build_count"), [(20, 10), (10, 1)], ids=["20-workers-10-builds", "10-workers-1-build"]
)
def test_each_build_is_assigned_exactly_once(
    farm: Farm,
    core_v1: CoreV1Api,
    kubeconfig: str,
    tmp_path: Path,
    worker_count: int,
    build_count: int,
    operator_count: int,
    round_: int,
) -> None:
    workers = [farm.worker(f"w{i}") for i in range(worker_count)]
    with operators(operator_count, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        names = [farm.build(f"b{i}") for i in range(build_count)]
        wait_for(
            f"{build_count} builds assigned (operator logs in {tmp_path})",
            lambda: all(phase == "Assigned" for phase in farm.phases().values()),
        )
        # Let any losing operator finish releasing the slot it reserved.
        wait_for(
            "reservations to match assignments",
            lambda: _reservations_match(farm, workers),
        )

    builds = farm.builds()
    assert sorted(b.name for b in builds) == sorted(names)
    assert all(b.status.attempt == 1 for b in builds), [(b.name, b.status.attempt) for b in builds]
    per_worker = Counter(b.status.worker_name for b in builds)
    assert set(per_worker) <= set(workers)
    assert max(per_worker.values()) == 1, per_worker
    assert len(per_worker) == build_count
    for name in names:
        assigned_events = [e for e in events_for(core_v1, farm.namespace, name) if e[1] == "Assigned"]
        assert len(assigned_events) == 1, (name, assigned_events)


def _reservations_match(farm: Farm, workers: list[str]) -> bool:
    bound = {(b.name, b.status.attempt): b.status.worker_name for b in farm.builds()}
    for worker in workers:
        held = {(r.name, r.attempt) for r in farm.get_worker(worker).status.reservations}
        if held != {key for key, on in bound.items() if on == worker}:
            return False
    return True
