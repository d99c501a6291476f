"""Fixtures for tests that run real operator processes against the test control plane."""

from collections.abc import Iterator

import pytest
from kubernetes.client import CustomObjectsApi

from tests.support.farm import Farm


@pytest.fixture
def farm(custom_objects: CustomObjectsApi, namespace: str) -> Iterator[Farm]:
    farm = Farm(custom_objects, namespace)
    yield farm
    farm.cleanup()
