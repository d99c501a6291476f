"""The artifact service's part of the chart, rendered by the real helm: filesystem and S3 storage, the
generated or given serving certificate, and RBAC from its permission table."""

import base64
from typing import Any

import pytest
import yaml
from cryptography import x509

from buildfarm.kube.permissions import ARTIFACT_SERVICE_PERMISSIONS
from tests.support.chart import CHART, Helm, HelmFailed, find, kinds

S3 = {
    "artifacts.storage.backend": "s3",
    "artifacts.storage.s3.bucket": "builds",
    "artifacts.storage.s3.existingSecret": "s3-keys",
    "artifacts.replicas": 3,
}


def pod_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", "buildfarm-artifacts")["spec"]["template"]["spec"]


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_filesystem_backend_runs_one_pod_on_a_kept_claim(helm: Helm) -> None:
    objects = helm.template()
    deployment = find(objects, "Deployment", "buildfarm-artifacts")
    assert deployment["spec"]["replicas"] == 1  # one ReadWriteOnce volume
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = pod_of(objects)
    env = env_of(pod)
    assert env["BUILDFARM_ARTIFACTS_BACKEND"] == "filesystem"
    assert env["BUILDFARM_ARTIFACTS_ROOT"] == "/var/lib/buildfarm/artifacts"
    assert env["BUILDFARM_ARTIFACTS_FARM_NAMESPACE"] == "buildfarm-system"
    assert env["BUILDFARM_ARTIFACTS_SOURCE_LIMIT_BYTES"] == str(2 * 1024**3)
    claim = find(objects, "PersistentVolumeClaim", "buildfarm-artifacts")
    assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["storage"]["persistentVolumeClaim"] == {"claimName": "buildfarm-artifacts"}
    assert volumes["tls"]["secret"] == {"secretName": "buildfarm-artifacts-tls"}
    (container,) = pod["containers"]
    assert container["args"] == ["artifacts", "serve"]
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True

    given = helm.template({"artifacts.storage.filesystem.existingClaim": "mine"})
    assert "PersistentVolumeClaim" not in [o["kind"] for o in given]
    assert {v["name"]: v for v in pod_of(given)["volumes"]}["storage"]["persistentVolumeClaim"] == {
        "claimName": "mine"
    }


def test_s3_backend_takes_its_keys_from_a_secret_and_scales(helm: Helm) -> None:
    objects = helm.template(S3)
    assert "PersistentVolumeClaim" not in [o["kind"] for o in objects]
    deployment = find(objects, "Deployment", "buildfarm-artifacts")
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]
    env = env_of(pod_of(objects))
    assert env["BUILDFARM_ARTIFACTS_BACKEND"] == "s3"
    assert env["BUILDFARM_ARTIFACTS_S3_BUCKET"] == "builds"
    assert env["BUILDFARM_ARTIFACTS_S3_ENDPOINT"] == "https://s3.amazonaws.com"
    assert env["BUILDFARM_ARTIFACTS_S3_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "access-key-id"}
    }
    assert env["BUILDFARM_ARTIFACTS_S3_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-keys", "key": "secret-access-key"}
    }
    assert "BUILDFARM_ARTIFACTS_ROOT" not in env


def test_generated_certificate_names_the_service_and_base_url(helm: Helm) -> None:
    objects = helm.template({"artifacts.baseURL": "https://artifacts.example.com"})
    secret = find(objects, "Secret", "buildfarm-artifacts-tls")
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert "buildfarm-artifacts.buildfarm-system.svc" in names
    assert "artifacts.example.com" in names
    ca = find(objects, "ConfigMap", "buildfarm-artifacts-ca")["data"]["ca.crt"]
    assert ca == base64.b64decode(secret["data"]["ca.crt"]).decode()
    authority = x509.load_pem_x509_certificate(ca.encode())
    assert cert.issuer == authority.subject
    assert env_of(pod_of(objects))["BUILDFARM_ARTIFACTS_BASE_URL"] == "https://artifacts.example.com"


def test_a_given_certificate_is_used_and_none_generated(helm: Helm) -> None:
    objects = helm.template({"artifacts.tls.secretName": "from-cert-manager"})
    assert ("Secret", "buildfarm-artifacts-tls") not in kinds(objects)
    assert ("ConfigMap", "buildfarm-artifacts-ca") not in kinds(objects)
    volumes = {v["name"]: v for v in pod_of(objects)["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "from-cert-manager"}


def test_rbac_is_the_permission_table_and_the_ca_reader_role(helm: Helm) -> None:
    objects = helm.template()
    role = find(objects, "ClusterRole", "buildfarm-artifacts")
    expected = [
        {"apiGroups": [p.group], "resources": [p.resource], "verbs": list(p.verbs)}
        for p in ARTIFACT_SERVICE_PERMISSIONS
        if p.resource != "configmaps"  # kube-system only: the built-in reader Role below
    ]
    assert role["rules"] == expected
    binding = find(objects, "RoleBinding", "buildfarm-artifacts-authentication-reader")
    assert binding["metadata"]["namespace"] == "kube-system"
    assert binding["roleRef"]["name"] == "extension-apiserver-authentication-reader"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "buildfarm-artifacts", "namespace": "buildfarm-system"}
    ]


def test_disabled_renders_nothing_of_it(helm: Helm) -> None:
    objects = helm.template({"artifacts.enabled": False})
    assert not [name for _, name in kinds(objects) if name.startswith("buildfarm-artifacts")]


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param({"artifacts.storage.backend": "s3"}, "bucket", id="s3-without-bucket"),
        pytest.param(
            {"artifacts.storage.backend": "s3", "artifacts.storage.s3.bucket": "builds"},
            "existingSecret",
            id="s3-without-keys",
        ),
        pytest.param({"artifacts.storage.backend": "nfs"}, "backend", id="unknown-backend"),
        pytest.param({"artifacts.baseURL": "ftp://x"}, "baseURL", id="bad-base-url"),
        pytest.param({"artifacts.settings": {"root": "/tmp"}}, "root", id="chart-owned-setting"),
        pytest.param({"artifacts.limits": {"logBytes": 0}}, "logBytes", id="zero-limit"),
    ],
)
def test_schema_refuses_bad_artifact_values(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmFailed, match=complaint):
        helm.template(values)


def test_values_file_parses() -> None:
    assert yaml.safe_load((CHART / "values.yaml").read_text())["artifacts"]["enabled"] is True
