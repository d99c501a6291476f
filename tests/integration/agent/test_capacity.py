"""With capacity N, at most N builds run at once on the worker, even when more are assigned to it."""

import threading
from typing import Any

from kubernetes import watch

from tests.support.agents import AgentFarm, ArchiveServer, assign
from tests.support.farm import Farm, wait_for


class RunningCounter:
    """Follows the namespace's builds with a watch and records the most Running at any moment."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.phases: dict[str, str] = {}
        self.most = 0
        self.error: Exception | None = None
        self._stopped = False
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> "RunningCounter":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped = True
        self._watch.stop()

    def _follow(self) -> None:
        try:
            self._stream()
        except Exception as error:  # the connection ends when the test's namespace goes away
            if not self._stopped:
                self.error = error

    def _stream(self) -> None:
        for event in self._watch.stream(
            self.farm.api.list_namespaced_custom_object,
            "buildfarm.dev",
            "v1alpha1",
            self.farm.namespace,
            "builds",
            timeout_seconds=120,
        ):
            obj: dict[str, Any] = event["object"]
            self.phases[obj["metadata"]["name"]] = (obj.get("status") or {}).get("phase", "")
            self.most = max(self.most, sum(1 for p in self.phases.values() if p == "Running"))


def test_capacity_is_never_exceeded(agents: AgentFarm, farm: Farm, archives: ArchiveServer) -> None:
    names = [f"b{i}" for i in range(5)]
    with RunningCounter(farm) as counter, agents.agent("mac", capacity=2) as agent:
        for name in names:
            farm.build(name, source=archives.source(name, seconds=1, lines=2))
        for name in names:
            assign(farm, name, agent.worker)
        wait_for(
            "all Succeeded", lambda: all(counter.phases.get(n) == "Succeeded" for n in names), timeout=90
        )

    assert counter.error is None
    assert counter.most == 2  # both slots used, never a third
