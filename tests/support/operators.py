"""Real operator processes for tests: `buildfarm operator` started as a subprocess, stopped afterwards."""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

STOP_GRACE_SECONDS = 10


def buildfarm_command() -> list[str]:
    found = shutil.which("buildfarm", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "buildfarm.cli.main"]


@contextmanager
def operator_process(
    kubeconfig: str | Path,
    log_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    standalone: bool = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run one operator until the block ends; its log goes to `log_path` (shown on failures). Without
    `standalone` it peers with other operators through kopf's peering object, as the chart's replicas do."""
    # No metrics endpoint unless a test asks for one: operators of parallel tests would share the default.
    environ = {**os.environ, "KUBECONFIG": str(kubeconfig), "BUILDFARM_METRICS_PORT": "0", **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*buildfarm_command(), "operator", *(["--standalone"] if standalone else []), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_GRACE_SECONDS)


@contextmanager
def operators(
    count: int,
    kubeconfig: str | Path,
    log_dir: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(operator_process(kubeconfig, log_dir / f"operator-{i}.log", *args, env=env))
            for i in range(count)
        ]
