"""The monitoring files' tests run the real promtool (built from its Go module by hack/build-promtool.sh,
cached like kube-apiserver and helm)."""

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from buildfarm.dev import binaries

MONITORING: Final = binaries.repo_root() / "charts" / "buildfarm" / "files" / "monitoring"
ALERTS: Final = MONITORING / "alerts.yaml"
DASHBOARD: Final = MONITORING / "dashboard.json"
ALERT_TESTS: Final = Path(__file__).parent / "alerts_test.yaml"
PROMTOOL_TIMEOUT: Final = 120


@dataclass(frozen=True)
class Promtool:
    binary: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=PROMTOOL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    return Promtool(binaries.promtool())
