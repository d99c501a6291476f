"""End to end under chaos: real agents (capacities 1 to 3) and two racing operators, each killed with
SIGKILL at random moments and restarted, while 30 builds run. Every build must end in a final phase, none
is lost, no attempt ever has two workers, and no worker ever holds more active builds than its capacity,
checked continuously from a watch.

BUILDFARM_TEST_CHAOS_BUILDS and BUILDFARM_TEST_CHAOS_SEED change the run; `make chaos` runs a long one.
"""

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import CustomObjectsApi

from tests.support.agents import AgentFarm, ArchiveServer
from tests.support.farm import Farm, wait_for
from tests.support.invariants import watching_active_builds
from tests.support.operators import buildfarm_command

BUILDS = int(os.environ.get("BUILDFARM_TEST_CHAOS_BUILDS", "30"))
SEED = int(os.environ.get("BUILDFARM_TEST_CHAOS_SEED", str(random.randrange(1_000_000))))
CAPACITIES = {"a1": 1, "a2": 2, "a3": 3}
FINAL = {"Succeeded", "Failed", "Cancelled"}


@dataclass
class Process:
    """One restartable process: killed with SIGKILL, started again with the same arguments."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    def start(self) -> None:
        self.starts += 1
        with (self.log_dir / f"{self.name}-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.kills += 1
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT if "agent" in self.argv else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


@dataclass
class Cluster:
    processes: list[Process] = field(default_factory=list)

    def __enter__(self) -> "Cluster":
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            process.stop()


def test_builds_survive_killed_agents_and_operators(
    farm: Farm,
    agents: AgentFarm,
    archives: ArchiveServer,
    custom_objects: CustomObjectsApi,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(("BUILDFARM_", "KUBECONFIG"))}
    base["KUBECONFIG"] = kubeconfig
    operator_env = base | {
        "BUILDFARM_FARM_NAMESPACE": farm.namespace,
        "BUILDFARM_LEASE_GRACE_SECONDS": "5",
        "BUILDFARM_RESYNC_SECONDS": "2",
        "BUILDFARM_METRICS_PORT": "0",
    }
    operator_argv = [*buildfarm_command(), "operator", "--standalone", "--namespace", farm.namespace]
    cluster = Cluster(
        [Process(f"operator-{i}", operator_argv, operator_env, tmp_path) for i in range(2)]
        + [
            Process(
                f"agent-{short}",
                [*buildfarm_command(), "agent"],
                base | agents.settings_env(short, capacity=capacity, stop_grace_seconds=5),
                tmp_path,
            )
            for short, capacity in CAPACITIES.items()
        ]
    )
    workers = {agents.worker_name(short): capacity for short, capacity in CAPACITIES.items()}
    farm.workers.extend(workers)  # deleted by the farm's cleanup
    sources = [archives.source(f"p{i}", seconds=0.5 + i % 3) for i in range(3)]

    with watching_active_builds(custom_objects, [farm.namespace], workers) as active, cluster:
        names = [
            farm.build(f"b{i:02d}", platform="android", source=sources[i % 3], maxAttempts=10)
            for i in range(BUILDS)
        ]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not all(p in FINAL for p in farm.phases().values()):
            time.sleep(rng.uniform(0.5, 3.0))
            victim = rng.choice(cluster.processes)
            victim.kill()
            time.sleep(rng.uniform(0.2, 2.0))
            victim.start()
        wait_for(
            f"every build final (seed {SEED}, logs in {tmp_path})",
            lambda: all(p in FINAL for p in farm.phases().values()),
            timeout=180,
            interval=1,
        )
        wait_for("the watch to see every build finish", lambda: not active.now, timeout=30)

    builds = farm.builds()
    kills = {p.name: p.kills for p in cluster.processes}
    assert sorted(b.name for b in builds) == names, f"a build was lost (seed {SEED})"
    assert active.over == [], f"over capacity (seed {SEED}, kills {kills}): {active.over}"
    doubled = {key: on for key, on in active.attempts_per_worker.items() if len(on) > 1}
    assert doubled == {}, f"an attempt had two workers (seed {SEED}): {doubled}"
    assert all(b.status.phase is not None and b.status.phase.value in FINAL for b in builds)
    succeeded = [b for b in builds if b.status.phase is not None and b.status.phase.value == "Succeeded"]
    assert all(len(b.status.artifacts) == 1 for b in succeeded)
    print(f"seed {SEED}: kills {kills}; {len(succeeded)}/{BUILDS} succeeded; peaks {dict(active.peak)}")
