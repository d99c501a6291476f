"""Fixtures for tests that run real agent processes against the test control plane."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import CustomObjectsApi

from tests.support.agents import AgentFarm, ArchiveServer
from tests.support.farm import Farm


@pytest.fixture
def farm(custom_objects: CustomObjectsApi, namespace: str) -> Iterator[Farm]:
    farm = Farm(custom_objects, namespace)
    yield farm
    farm.cleanup()


@pytest.fixture
def agents(farm: Farm, kubeconfig: str, tmp_path: Path) -> AgentFarm:
    return AgentFarm(farm, kubeconfig, tmp_path)


@pytest.fixture
def archives(tmp_path: Path) -> Iterator[ArchiveServer]:
    with ArchiveServer(tmp_path / "archives") as server:
        yield server
