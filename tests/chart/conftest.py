"""The chart's tests run the real helm (built from its Go module by hack/build-helm.sh, cached)."""

from pathlib import Path

import pytest

from buildfarm.dev import binaries
from tests.support.chart import Helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(binaries.helm())


@pytest.fixture(scope="session")
def chart_dir() -> Path:
    return binaries.repo_root() / "charts" / "buildfarm"
