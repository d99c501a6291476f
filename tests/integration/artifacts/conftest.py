"""The artifact service on loopback (TLS, filesystem storage) against the session's API server, with
real identities: the service's own ServiceAccount holding exactly ARTIFACT_SERVICE_PERMISSIONS, two
worker agents, an editor and a viewer of builds, and client certificates of the cluster's CA."""

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.artifacts.settings import ArtifactSettings
from buildfarm.dev import certs
from buildfarm.dev.controlplane import ControlPlane
from buildfarm.kube import permissions
from tests.conftest import MANAGED_BY_LABEL, discard_namespace
from tests.support.artifacts import Caller, RunningService, bind, token_of, wait_until
from tests.support.identities import Identity, service_account

TIMEOUT = 10
SOURCE_LIMIT = 4 * 1024 * 1024
ARTIFACT_LIMIT = 4 * 1024 * 1024
LOG_LIMIT = 64 * 1024
EDIT_RULES = [
    {"apiGroups": [c.GROUP], "resources": ["builds"], "verbs": ["create", "get", "list"]},
    {"apiGroups": [c.GROUP], "resources": ["builds/artifacts", "builds/log"], "verbs": ["get"]},
]
VIEW_RULES = [{"apiGroups": [c.GROUP], "resources": ["builds"], "verbs": ["get", "list"]}]


@dataclass
class Setup:
    """What every artifact test gets: the running service and its callers."""

    service: RunningService
    root: Path
    farm_namespace: str
    serving_ca: bytes
    cluster_ca: certs.KeyPair | None
    editor: Identity
    viewer: Identity
    agents: dict[str, Identity]
    rbac: client.RbacAuthorizationV1Api

    def context(self, cert: certs.KeyPair | None = None, tmp: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.serving_ca.decode())
        if cert is not None and tmp is not None:
            (tmp / "client.crt").write_bytes(cert.cert_pem)
            (tmp / "client.key").write_bytes(cert.key_pem)
            context.load_cert_chain(tmp / "client.crt", tmp / "client.key")
        return context

    def caller(self, identity: Identity | None) -> Caller:
        token = token_of(identity.kubeconfig) if identity else None
        return Caller(self.service.url, token, self.context(), identity.name if identity else "anonymous")

    def agent(self, worker: str) -> Caller:
        return self.caller(self.agents[worker])


def _namespace(core: client.CoreV1Api) -> str:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(generate_name="farm-", labels=MANAGED_BY_LABEL))
    created = core.create_namespace(body, _request_timeout=TIMEOUT)
    return str(created.metadata.name)


@pytest.fixture(scope="module")
def setup(
    api_client: client.ApiClient,
    kubeconfig: str,
    control_plane: ControlPlane | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Setup]:
    core = client.CoreV1Api(api_client)
    farm = _namespace(core)
    tmp = tmp_path_factory.mktemp("artifacts")
    admin = Path(kubeconfig)
    identities: list[Identity] = []

    def identity(name: str) -> Identity:
        made = service_account(api_client, admin, farm, name, tmp)
        identities.append(made)
        return made

    try:
        own = identity("artifacts")
        own_rules = permissions.rules(permissions.ARTIFACT_SERVICE_PERMISSIONS)
        own.grant(own_rules)
        wait_until(lambda: own.holds(own_rules), what="the service's RBAC to take effect")
        serving = certs.generate(("127.0.0.1",))
        certs.write_file(tmp / "serving.crt", serving.serving.cert_pem)
        certs.write_file(tmp / "serving.key", serving.serving.key_pem, private=True)
        root = tmp / "storage"
        root.mkdir()
        settings = ArtifactSettings(
            root=root,
            port=0,
            tls_cert_file=tmp / "serving.crt",
            tls_key_file=tmp / "serving.key",
            farm_namespace=farm,
            source_limit_bytes=SOURCE_LIMIT,
            artifact_limit_bytes=ARTIFACT_LIMIT,
            log_limit_bytes=LOG_LIMIT,
            follow_poll_seconds=0.05,
            sweep_interval_seconds=3600,
        )
        cluster_ca = None
        if control_plane is not None:
            files = certs.CertFiles.in_directory(control_plane.state_dir / "pki")
            cluster_ca = certs.KeyPair(files.ca_cert.read_bytes(), files.ca_key.read_bytes())
        service = RunningService(settings, own.kubeconfig).start()
        try:
            yield Setup(
                service=service,
                root=root,
                farm_namespace=farm,
                serving_ca=serving.ca.cert_pem,
                cluster_ca=cluster_ca,
                editor=identity("editor"),
                viewer=identity("viewer"),
                agents={"a": identity("worker-a"), "b": identity("worker-b")},
                rbac=client.RbacAuthorizationV1Api(api_client),
            )
        finally:
            service.stop()
    finally:
        for made in identities:
            made.cleanup()
        discard_namespace(core, client.CustomObjectsApi(api_client), farm)


@pytest.fixture
def users(setup: Setup, namespace: str) -> Setup:
    """The editor and viewer may act in this test's namespace (and nowhere else)."""
    for who, rules in ((setup.editor, EDIT_RULES), (setup.viewer, VIEW_RULES)):
        subject = client.RbacV1Subject(kind="ServiceAccount", name=who.name, namespace=who.namespace)
        bind(setup.rbac, namespace, who.name, rules, subject)
    wait_until(
        lambda: (
            setup.editor.may("get", c.GROUP, "builds/log", namespace)
            and setup.viewer.may("get", c.GROUP, "builds", namespace)
        ),
        what="the users' RoleBindings to take effect",
    )
    return setup


@dataclass
class Builds:
    api: client.CustomObjectsApi
    namespace: str

    def create(self, name: str, source_url: str | None = None, secret: str | None = None) -> dict[str, Any]:
        source: dict[str, Any] = (
            {"archive": {"url": source_url}} if source_url else {"git": {"url": "https://example.com/a.git"}}
        )
        spec: dict[str, Any] = {"platform": "android", "source": source}
        if secret:
            spec["credentials"] = {"secretName": secret}
        body = {"apiVersion": c.API_VERSION, "kind": "Build", "metadata": {"name": name}, "spec": spec}
        created: dict[str, Any] = self.api.create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, body, _request_timeout=TIMEOUT
        )
        return created

    def status(self, name: str, **status: Any) -> dict[str, Any]:
        patched: dict[str, Any] = self.api.patch_namespaced_custom_object_status(
            c.GROUP,
            c.VERSION,
            self.namespace,
            c.BUILD_PLURAL,
            name,
            {"status": status},
            _request_timeout=TIMEOUT,
        )
        return patched

    def assign(self, name: str, worker: str, attempt: int, phase: str = "Assigned") -> None:
        self.status(name, phase=phase, workerName=f"{worker}", attempt=attempt)

    def delete(self, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.api.delete_namespaced_custom_object(
                c.GROUP, c.VERSION, self.namespace, c.BUILD_PLURAL, name, _request_timeout=TIMEOUT
            )


@pytest.fixture
def builds(custom_objects: client.CustomObjectsApi, namespace: str) -> Builds:
    return Builds(custom_objects, namespace)
