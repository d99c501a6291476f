"""ServiceAccounts with exactly the RBAC rules a test grants, and kubeconfigs to act as them.

The test control plane authorizes with RBAC (--authorization-mode=RBAC), so what such an identity may do
is what the API server decides, not what a test assumes.
"""

import base64
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from buildfarm.dev.controlplane import new_api_client

TIMEOUT = 10
TOKEN_SECONDS = 3600


def write_kubeconfig(path: Path, server: str, user: dict[str, Any], ca_data: str | None = None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca_data is not None:
        cluster["certificate-authority-data"] = ca_data
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Identity:
    """A ServiceAccount, its kubeconfig (a bound token) and, once granted, its ClusterRole and binding."""

    name: str
    namespace: str
    kubeconfig: Path
    rbac: client.RbacAuthorizationV1Api
    roles: list[str] = field(default_factory=list)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def role_name(self) -> str:
        return f"{self.namespace}-{self.name}"  # unique: the namespace is the test's own

    def grant(self, rules: list[dict[str, list[str]]]) -> None:
        """Bind a ClusterRole with exactly `rules` cluster-wide, replacing what was granted before."""
        role = client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=self.role_name),
            rules=[
                client.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                for r in rules
            ],
        )
        if self.role_name in self.roles:
            self.rbac.replace_cluster_role(self.role_name, role, _request_timeout=TIMEOUT)
            return
        self.rbac.create_cluster_role(role, _request_timeout=TIMEOUT)
        self.roles.append(self.role_name)
        self.rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=self.role_name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=self.role_name
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name=self.name, namespace=self.namespace)
                ],
            ),
            _request_timeout=TIMEOUT,
        )

    def may(self, verb: str, group: str, resource: str, namespace: str | None = None) -> bool:
        """What the API server answers this identity for `verb` on `resource` (`builds/status` style)."""
        base, _, subresource = resource.partition("/")
        with new_api_client(self.kubeconfig) as api_client:
            review = client.AuthorizationV1Api(api_client).create_self_subject_access_review(
                client.V1SelfSubjectAccessReview(
                    spec=client.V1SelfSubjectAccessReviewSpec(
                        resource_attributes=client.V1ResourceAttributes(
                            group=group,
                            resource=base,
                            subresource=subresource or None,
                            verb=verb,
                            namespace=namespace,
                        )
                    )
                ),
                _request_timeout=TIMEOUT,
            )
        return bool(review.status and review.status.allowed)

    def holds(self, rules: list[dict[str, list[str]]]) -> bool:
        """Whether every verb of `rules` is allowed yet (RBAC changes reach the authorizer shortly after)."""
        return all(
            self.may(verb, group, resource)
            for rule in rules
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        )

    def cleanup(self) -> None:
        for name in self.roles:
            with contextlib.suppress(ApiException):
                self.rbac.delete_cluster_role_binding(name, _request_timeout=TIMEOUT)
            with contextlib.suppress(ApiException):
                self.rbac.delete_cluster_role(name, _request_timeout=TIMEOUT)
        self.roles.clear()


def service_account(
    api_client: client.ApiClient, admin_kubeconfig: Path, namespace: str, name: str, out_dir: Path
) -> Identity:
    """A new ServiceAccount that may do nothing yet, with a kubeconfig holding a token for it."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)), _request_timeout=TIMEOUT
    )
    token = core.create_namespaced_service_account_token(
        name,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
        ),
        _request_timeout=TIMEOUT,
    )
    assert token.status is not None, "the API server issued no token"
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    ca_data = (
        cluster.get("certificate-authority-data")
        or base64.b64encode(Path(cluster["certificate-authority"]).read_bytes()).decode()
    )
    kubeconfig = write_kubeconfig(
        out_dir / f"{name}.kubeconfig", cluster["server"], {"token": token.status.token}, ca_data
    )
    return Identity(name, namespace, kubeconfig, client.RbacAuthorizationV1Api(api_client))
