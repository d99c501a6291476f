"""Runs `buildfarm ARGS...` under tracemalloc, for `hack/bench_api.py --profile-memory`.

On SIGUSR1 it writes where the live memory was allocated to $BENCH_TRACE_OUT: each traced block is
charged to the innermost frame in buildfarm's or kopf's code (the caller that owns it; a pydantic or
json frame alone says little), and the lines are sorted by size. Development only: tracing doubles the
memory and slows everything down.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

FRAMES = 20
OWNERS = ("/buildfarm/", "/kopf/")
TOP = 25


def owner(trace: tracemalloc.Traceback) -> str:
    for frame in reversed(trace):  # the traceback runs from the oldest call to the most recent
        for part in OWNERS:
            if part in frame.filename:
                return f"{frame.filename[frame.filename.rfind(part) + 1 :]}:{frame.lineno}"
    frame = trace[-1]
    return f"(outside buildfarm and kopf) {Path(frame.filename).name}:{frame.lineno}"


def dump(_signum: int, _frame: FrameType | None) -> None:
    snapshot = tracemalloc.take_snapshot()
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for stat in snapshot.statistics("traceback"):
        key = owner(stat.traceback)
        sizes[key] += stat.size
        counts[key] += stat.count
    total = sum(sizes.values())
    lines = [f"traced {total / 2**20:.1f} MiB in {sum(counts.values())} blocks"]
    for key, size in sizes.most_common(TOP):
        lines.append(f"{size / 2**20:8.2f} MiB {counts[key]:9d} blocks  {key}")
    out = Path(os.environ["BENCH_TRACE_OUT"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)


def main() -> None:
    # Imported before tracing starts: traced, the imports alone took minutes, and they are not the
    # objects' memory. The kubernetes client imports its API classes lazily, so each is touched once.
    import kubernetes.client

    from buildfarm.cli.main import main as buildfarm

    for name in dir(kubernetes.client):
        if name.endswith("Api"):
            getattr(kubernetes.client, name)
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, dump)

    sys.argv = ["buildfarm", *sys.argv[1:]]
    sys.exit(buildfarm())


if __name__ == "__main__":
    main()
