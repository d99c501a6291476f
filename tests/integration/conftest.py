"""Every integration test file starts on a control plane with no Worker and no Build.

Workers are cluster-scoped and the operators under test serve every namespace, so a Worker or a Build one
file leaves behind (no controller-manager runs to collect them) would be work, or a free slot, for the
next file's operators. Files must not depend on the order they run in: pytest-xdist runs them in another
order on each of its processes, each with its own control plane.
"""

from typing import Any, cast

import pytest
from kubernetes import client

from buildfarm.constants import BUILD_PLURAL, GROUP, VERSION, WORKER_PLURAL
from buildfarm.dev.controlplane import ControlPlane

TIMEOUT = 30


@pytest.fixture(scope="module", autouse=True)
def clean_slate(control_plane: ControlPlane | None, custom_objects: client.CustomObjectsApi) -> None:
    if control_plane is not None:  # never on an existing cluster, even a test one: it may be shared
        remove_all_builds_and_workers(custom_objects)


def remove_all_builds_and_workers(api: client.CustomObjectsApi) -> None:
    listed = cast(
        dict[str, Any], api.list_cluster_custom_object(GROUP, VERSION, BUILD_PLURAL, _request_timeout=TIMEOUT)
    )
    namespaces = {item["metadata"]["namespace"] for item in listed.get("items", [])}
    for namespace in sorted(namespaces):
        api.delete_collection_namespaced_custom_object(
            GROUP, VERSION, namespace, BUILD_PLURAL, _request_timeout=TIMEOUT
        )
    api.delete_collection_cluster_custom_object(GROUP, VERSION, WORKER_PLURAL, _request_timeout=TIMEOUT)
