"""The chart owning the CRDs: `helm upgrade` keeps Builds and Workers, and `helm uninstall` with crds.keep
leaves the CRDs and every Build in place.

The session's control plane installed the CRDs already (tests/conftest.py); the release adopts them the
way Helm adopts any existing object (its ownership label and annotations), as an administrator who
applied crds/ by hand before installing the chart would.
"""

import contextlib
import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.dev.binaries import helm as helm_binary
from tests.support.chart import CHART, Helm, values_args

TIMEOUT = 10
CRDS = (f"{c.BUILD_PLURAL}.{c.GROUP}", f"{c.WORKER_PLURAL}.{c.GROUP}")


def adopt_crds(api_client: client.ApiClient, release: str, namespace: str) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    for name in CRDS:
        extensions.patch_custom_resource_definition(
            name,
            {
                "metadata": {
                    "labels": {"app.kubernetes.io/managed-by": "Helm"},
                    "annotations": {
                        "meta.helm.sh/release-name": release,
                        "meta.helm.sh/release-namespace": namespace,
                    },
                }
            },
            _request_timeout=TIMEOUT,
        )


def test_upgrade_and_uninstall_keep_builds_workers_and_crds(
    kubeconfig: str, api_client: client.ApiClient, core_v1: client.CoreV1Api, namespace: str
) -> None:
    helm = Helm(helm_binary())
    suffix = uuid.uuid4().hex[:6]
    release, release_ns, fullname = f"bfl-{suffix}", f"bfl-{suffix}", f"bfl-{suffix}"
    farm = f"bfl-{suffix}-farm"
    values = {
        "fullnameOverride": fullname,
        "farmNamespace.name": farm,
        "operator.replicas": 1,  # the other release's ClusterKopfPeering `default` is not ours to own
        "crds.install": True,
        "crds.keep": True,
    }
    custom = client.CustomObjectsApi(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    worker = f"mac-{suffix}"
    adopt_crds(api_client, release, release_ns)
    helm.run(
        "install", release, str(CHART), "-n", release_ns, "--create-namespace", *values_args(values),
        kubeconfig=kubeconfig,
    )  # fmt: skip
    try:
        custom.create_cluster_custom_object(
            c.GROUP,
            c.VERSION,
            c.WORKER_PLURAL,
            {"apiVersion": c.API_VERSION, "kind": c.WORKER_KIND, "metadata": {"name": worker},
             "spec": {"platforms": ["ios"], "capacity": 1}},
        )  # fmt: skip
        custom.create_namespaced_custom_object(
            c.GROUP,
            c.VERSION,
            namespace,
            c.BUILD_PLURAL,
            {"apiVersion": c.API_VERSION, "kind": c.BUILD_KIND, "metadata": {"name": "kept"},
             "spec": {"platform": "ios", "source": {"git": {"url": "https://example.com/app.git"}}}},
        )  # fmt: skip

        tls = f"{fullname}-artifacts-tls"
        certificate = core_v1.read_namespaced_secret(tls, release_ns, _request_timeout=TIMEOUT).data
        helm.run(
            "upgrade", release, str(CHART), "-n", release_ns,
            *values_args({**values, "operator.verbose": True}), kubeconfig=kubeconfig,
        )  # fmt: skip
        deployment = client.AppsV1Api(api_client).read_namespaced_deployment(
            f"{fullname}-operator", release_ns
        )
        assert deployment.spec.template.spec.containers[0].args == ["operator", "--standalone", "--verbose"]
        custom.get_cluster_custom_object(c.GROUP, c.VERSION, c.WORKER_PLURAL, worker)
        custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, "kept")
        # The artifact service's generated certificate is kept: agents and users trust its CA.
        assert core_v1.read_namespaced_secret(tls, release_ns, _request_timeout=TIMEOUT).data == certificate

        out = helm.run("uninstall", release, "-n", release_ns, kubeconfig=kubeconfig)
        assert "kept due to the resource policy" in out
        extensions = client.ApiextensionsV1Api(api_client)
        for name in CRDS:
            crd = extensions.read_custom_resource_definition(name)
            assert crd.metadata.deletion_timestamp is None
        custom.get_cluster_custom_object(c.GROUP, c.VERSION, c.WORKER_PLURAL, worker)
        custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, "kept")
        # The rest of the release is gone.
        for role in (f"{fullname}-operator", f"{fullname}-agent"):
            with pytest.raises(ApiException) as gone:
                rbac.read_cluster_role(role)
            assert gone.value.status == 404, f"ClusterRole {role} outlived helm uninstall"
    finally:
        custom.delete_cluster_custom_object(c.GROUP, c.VERSION, c.WORKER_PLURAL, worker)
        for ns in (release_ns, farm):
            with contextlib.suppress(ApiException):  # the farm namespace was kept; the other may be gone
                core_v1.delete_namespace(ns, _request_timeout=TIMEOUT)
