"""Shared fixtures: a Kubernetes API for integration tests, and a fresh namespace per test.

By default the session starts a local control plane (etcd + kube-apiserver, see buildfarm.dev.controlplane).
To run against an existing test cluster instead, set BUILDFARM_TEST_KUBECONFIG to its kubeconfig and
BUILDFARM_TEST_USE_EXISTING_CLUSTER=1; its current context must look like a local test cluster.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import urllib3
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from buildfarm.constants import BUILD_PLURAL, GROUP, VERSION
from buildfarm.dev import crds
from buildfarm.dev.controlplane import ControlPlane, new_api_client

EXISTING_KUBECONFIG_ENV: Final = "BUILDFARM_TEST_KUBECONFIG"
USE_EXISTING_ENV: Final = "BUILDFARM_TEST_USE_EXISTING_CLUSTER"
# Contexts that name a throwaway cluster; anything else may be someone's real cluster.
TEST_CONTEXT_PREFIXES: Final = ("kind-", "k3d-", "minikube", "docker-desktop", "buildfarm-dev")
REQUEST_TIMEOUT_SECONDS: Final = 10
MANAGED_BY_LABEL: Final = {"app.kubernetes.io/managed-by": "buildfarm-tests"}

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CRD_DIR: Final = REPO_ROOT / "crds"
_INTEGRATION_DIR: Final = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


def _existing_kubeconfig() -> str | None:
    existing = os.environ.get(EXISTING_KUBECONFIG_ENV)
    return existing if existing and os.environ.get(USE_EXISTING_ENV) == "1" else None


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane | None]:
    """The local control plane of this session, or None when the tests target an existing cluster."""
    existing = _existing_kubeconfig()
    if existing is not None:
        _refuse_unless_test_cluster(existing)
        with new_api_client(Path(existing)) as api_client:
            crds.install(api_client, crds.load(CRD_DIR) if CRD_DIR.is_dir() else [])
        yield None
        return
    with ControlPlane(tmp_path_factory.mktemp("controlplane"), crd_dir=CRD_DIR) as local:
        yield local


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane | None) -> str:
    return str(control_plane.kubeconfig) if control_plane else os.environ[EXISTING_KUBECONFIG_ENV]


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[client.ApiClient]:
    with new_api_client(Path(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom_objects(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api, custom_objects: client.CustomObjectsApi) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards without waiting (nothing finalizes it locally).

    Its Builds are deleted first (they have no finalizers, so they go at once): the namespace itself stays
    Terminating without a controller-manager, and its builds would otherwise be work for the cluster-wide
    operators of later tests."""
    body = client.V1Namespace(metadata=client.V1ObjectMeta(generate_name="test-", labels=MANAGED_BY_LABEL))
    created = core_v1.create_namespace(body, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    name = created.metadata.name if created.metadata else None
    assert name, "the API server did not name the generated namespace"
    yield name
    with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
        custom_objects.delete_collection_namespaced_custom_object(
            GROUP, VERSION, name, BUILD_PLURAL, _request_timeout=REQUEST_TIMEOUT_SECONDS * 6
        )
    with contextlib.suppress(ApiException, urllib3.exceptions.HTTPError):
        core_v1.delete_namespace(name, _request_timeout=REQUEST_TIMEOUT_SECONDS)


def _refuse_unless_test_cluster(kubeconfig: str) -> None:
    """Ends the session unless the kubeconfig's current context names a throwaway test cluster."""
    try:
        _, current = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (OSError, kube_config.ConfigException) as error:
        pytest.exit(
            f"{EXISTING_KUBECONFIG_ENV}={kubeconfig} is not a usable kubeconfig: {error}", returncode=4
        )
    name = str(current.get("name", ""))
    if not (name.startswith(TEST_CONTEXT_PREFIXES) or "test" in name):
        pytest.exit(
            f"refusing to run tests against context {name!r} of {kubeconfig}: switch it to a test cluster "
            f"(kind-*, k3d-*, minikube, docker-desktop, buildfarm-dev, *test*) or unset {USE_EXISTING_ENV}",
            returncode=4,
        )
