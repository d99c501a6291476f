"""Benchmark of the pure scheduler: one cycle over a large queue. Timing lives here, not in tests.

.venv/bin/python hack/bench_scheduler.py [--builds 5000] [--workers 200]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[1] / "operator")]

from tests.factories import T0, build, reservation, worker  # noqa: E402

from buildfarm.domain.scheduling import Snapshot, schedule  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--builds", type=int, default=5000, help="builds in the store (half pending)")
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    workers = []
    builds = []
    for i in range(args.workers):
        held = [reservation(f"run{i}", attempt=1)]
        builds.append(build(f"run{i}", phase="Running", worker=f"w{i}", attempt=1))
        platforms = ("ios",) if i % 2 else ("ios", "android")
        workers.append(worker(f"w{i}", platforms=platforms, capacity=2, reservations=held))
    for i in range(args.builds - args.workers):
        phase = "Pending" if i % 2 else "Succeeded"
        platform = ("ios", "android")[(i // 2) % 2]
        builds.append(build(f"b{i}", phase=phase, priority=i % 5, created=i, platform=platform))
    snapshot = Snapshot(builds, workers, now=T0)

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        plan = schedule(snapshot)
        times.append(time.perf_counter() - start)
    print(
        f"{len(builds)} builds, {len(workers)} workers: {len(plan.assignments)} assigned, "
        f"{len(plan.waiting)} waiting; cycle median {statistics.median(times) * 1000:.1f} ms "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"
    )


if __name__ == "__main__":
    main()
