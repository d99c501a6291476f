"""Order and matching with a real operator: priorities, platforms, selectors, capacity 2, cordoned and
NotReady workers, and a freed slot taken by the next build in line (event-driven, no polling loop)."""

from pathlib import Path

from kubernetes.client import CoreV1Api

from tests.support.farm import Farm, events_for, wait_for
from tests.support.operators import operators


def test_priority_platform_selector_capacity(
    farm: Farm, core_v1: CoreV1Api, kubeconfig: str, tmp_path: Path
) -> None:
    # Every worker starts NotReady, so all builds queue first and one cycle sees the whole queue.
    mac = farm.worker("mac", platforms=("ios",), capacity=2, ready=False, labels={"xcode": "16"})
    linux = farm.worker("linux", platforms=("android",), capacity=2, ready=False)
    cordoned = farm.worker(
        "cordoned", platforms=("ios",), capacity=2, ready=True, cordoned=True, labels={"xcode": "15"}
    )
    down = farm.worker("down", platforms=("ios", "android"), capacity=2, ready=False)

    with operators(1, kubeconfig, tmp_path, ["--namespace", farm.namespace]):
        farm.build("ios-high", platform="ios", priority=5, workerSelector={"matchLabels": {"xcode": "16"}})
        farm.build("ios-low", platform="ios", priority=1)
        farm.build("ios-lowest", platform="ios", priority=0)
        for name in ("and-1", "and-2", "and-3"):
            farm.build(name, platform="android")
        farm.build("ios-xcode15", platform="ios", priority=9, workerSelector={"matchLabels": {"xcode": "15"}})
        farm.build("ios-xcode99", platform="ios", priority=9, workerSelector={"matchLabels": {"xcode": "99"}})
        wait_for("every build queued", lambda: set(farm.phases().values()) == {"Pending"})

        farm.set_ready(mac, True)
        farm.set_ready(linux, True)
        wait_for("four builds assigned", lambda: list(farm.phases().values()).count("Assigned") == 4)
        wait_for(
            "waiting reasons",
            lambda: (
                _reasons(farm)
                == {
                    "and-3": "WorkerBusy",
                    "ios-lowest": "WorkerBusy",
                    "ios-xcode15": "WorkerNotReady",
                    "ios-xcode99": "NoMatchingWorker",
                }
            ),
        )
        assert _placement(farm) == {"ios-high": mac, "ios-low": mac, "and-1": linux, "and-2": linux}
        for worker in (cordoned, down):
            assert farm.get_worker(worker).status.reservations == []

        # The agent reports ios-high done: its slot frees, and the next iOS build in line takes it.
        finished = farm.get_build("ios-high")
        farm.api.patch_namespaced_custom_object_status(
            "buildfarm.dev",
            "v1alpha1",
            farm.namespace,
            "builds",
            "ios-high",
            {"status": {"phase": "Succeeded", "reason": "Succeeded"}},
            _request_timeout=10,
        )
        wait_for("ios-lowest assigned to the freed slot", lambda: _placement(farm).get("ios-lowest") == mac)
        wait_for(
            "the finished build's reservation released",
            lambda: {r.name for r in farm.get_worker(mac).status.reservations} == {"ios-low", "ios-lowest"},
        )
        assert finished.status.attempt == 1

    describe = events_for(core_v1, farm.namespace, "ios-xcode99")
    assert ("Normal", "NoMatchingWorker") in [(t, r) for t, r, _ in describe]
    pending = farm.get_build("ios-xcode99")
    scheduled = next(c for c in pending.status.conditions if c.type == "Scheduled")
    assert (scheduled.status, scheduled.reason, scheduled.observed_generation) == (
        "False",
        "NoMatchingWorker",
        1,
    )
    assert "xcode=99" in scheduled.message


def _reasons(farm: Farm) -> dict[str, str]:
    return {b.name: b.status.reason for b in farm.builds() if b.status.phase == "Pending"}


def _placement(farm: Farm) -> dict[str, str]:
    return {b.name: b.status.worker_name for b in farm.builds() if b.status.phase == "Assigned"}
