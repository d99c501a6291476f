"""A Mac's access to the farm: its Worker, its identity (ServiceAccount `worker-<name>` in the farm
namespace, bound to the agent roles the Helm chart installs) and a kubeconfig holding a token of bounded
lifetime from the TokenRequest API. `buildfarm worker add|rotate|remove` call this.

The identity's name is what the chart's admission policy reads to confine the agent to its own Worker,
Lease and builds, so it is spelled in one place: `agent_service_account`.
"""

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.api.workers import WorkerSpec
from buildfarm.errors import BuildfarmError, NotFound

Timeout = tuple[float, float]

AGENT_PREFIX: Final = "worker-"
DEFAULT_AGENT_ROLE: Final = "buildfarm-agent"
WORKER_LABEL: Final = f"{c.GROUP}/worker"
RBAC_GROUP: Final = "rbac.authorization.k8s.io"


class AccessError(BuildfarmError):
    """The cluster refused or the state does not allow it; the message says what to do."""

    reason = "AccessError"


class AlreadyExists(AccessError):
    reason = "AlreadyExists"


def agent_service_account(worker: str) -> str:
    return f"{AGENT_PREFIX}{worker}"


def agent_user(worker: str, farm_namespace: str) -> str:
    """The user name the API server gives the agent's token (what the admission policy matches)."""
    return f"system:serviceaccount:{farm_namespace}:{agent_service_account(worker)}"


@dataclass(frozen=True)
class Credentials:
    """What an agent's kubeconfig holds: where the API server is, how to trust it, and its token."""

    server: str
    certificate_authority_data: str | None  # base64 PEM; None: the system's trust store
    insecure_skip_tls_verify: bool
    token: str
    expires: datetime
    user: str

    def kubeconfig(self, worker: str) -> str:
        cluster: dict[str, Any] = {"server": self.server}
        if self.certificate_authority_data:
            cluster["certificate-authority-data"] = self.certificate_authority_data
        if self.insecure_skip_tls_verify:
            cluster["insecure-skip-tls-verify"] = True
        name = f"buildfarm-{worker}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "buildfarm", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": self.token}}],
            "contexts": [{"name": name, "context": {"cluster": "buildfarm", "user": name}}],
            "current-context": name,
        }
        header = (
            f"# The identity of worker {worker}'s agent ({self.user}); the token expires "
            f"{self.expires.strftime('%Y-%m-%dT%H:%M:%SZ')}.\n"
            f"# Renew it with `buildfarm worker rotate {worker}`; "
            f"revoke it with `buildfarm worker remove {worker}`.\n"
        )
        return header + yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class Target:
    """Where the agent roles and identities live (the Helm release's names)."""

    farm_namespace: str
    agent_role: str = DEFAULT_AGENT_ROLE


class WorkerAccess:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self._api_client = api_client
        self._timeout = timeout
        self._core = k8s.CoreV1Api(api_client)
        self._rbac = k8s.RbacAuthorizationV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)
        self._leases = k8s.CoordinationV1Api(api_client)

    def add(
        self,
        name: str,
        spec: WorkerSpec,
        labels: dict[str, str],
        target: Target,
        token_seconds: int,
    ) -> Credentials:
        """Create the Worker, the agent's ServiceAccount and bindings, and issue a token."""
        self._check_roles(target)
        body = {
            "apiVersion": c.API_VERSION,
            "kind": c.WORKER_KIND,
            "metadata": {"name": name, "labels": labels},
            "spec": spec.to_api(),
        }
        try:
            with _calling(f"create Worker {name}"):
                self._custom.create_cluster_custom_object(
                    c.GROUP, c.VERSION, c.WORKER_PLURAL, body, _request_timeout=self._timeout
                )
        except AlreadyExists:
            if self._service_account_exists(name, target):
                raise AlreadyExists(
                    f"worker {name} exists and has an agent identity: `buildfarm worker rotate {name}` "
                    "writes a new kubeconfig for it"
                ) from None
            # A Worker its agent registered by itself, or an earlier `add` that stopped half-way: adopt it.
        self._ensure_identity(name, target)
        return self._issue(name, target, token_seconds)

    def rotate(self, name: str, target: Target, token_seconds: int, *, revoke: bool) -> Credentials:
        """A new token for worker `name`'s agent. With `revoke`, every earlier token stops working at
        once (the ServiceAccount is re-created: tokens are bound to its uid); without, they run out."""
        if not self._service_account_exists(name, target):
            raise NotFound(
                f"worker {name} has no agent identity in namespace {target.farm_namespace}: "
                f"`buildfarm worker add {name}` creates one"
            )
        if revoke:
            self._delete_service_account(name, target)
            self._ensure_identity(name, target)
        return self._issue(name, target, token_seconds)

    def remove(self, name: str, target: Target, *, keep_worker: bool) -> list[str]:
        """Revoke the agent's access (its tokens stop working at once) and, unless `keep_worker`, delete
        the Worker and its Lease: the operator requeues the builds it had. Returns what was deleted."""
        binding = _binding_name(target, name)
        gone: list[str] = []
        if self._delete(
            lambda: self._rbac.delete_cluster_role_binding(binding, _request_timeout=self._timeout),
            f"ClusterRoleBinding {binding}",
        ):
            gone.append(f"ClusterRoleBinding {binding}")
        if self._delete(
            lambda: self._rbac.delete_namespaced_role_binding(
                binding, target.farm_namespace, _request_timeout=self._timeout
            ),
            f"RoleBinding {target.farm_namespace}/{binding}",
        ):
            gone.append(f"RoleBinding {target.farm_namespace}/{binding}")
        if self._delete_service_account(name, target):
            gone.append(f"ServiceAccount {target.farm_namespace}/{agent_service_account(name)}")
        if not keep_worker:
            if self._delete(
                lambda: self._custom.delete_cluster_custom_object(
                    c.GROUP, c.VERSION, c.WORKER_PLURAL, name, _request_timeout=self._timeout
                ),
                f"Worker {name}",
            ):
                gone.append(f"Worker {name}")
            if self._delete(
                lambda: self._leases.delete_namespaced_lease(
                    name, target.farm_namespace, _request_timeout=self._timeout
                ),
                f"Lease {target.farm_namespace}/{name}",
            ):
                gone.append(f"Lease {target.farm_namespace}/{name}")
        if not gone:
            raise NotFound(f"worker {name} has neither an agent identity nor a Worker: nothing to remove")
        return gone

    # Steps

    def _check_roles(self, target: Target) -> None:
        with _calling(f"read ClusterRole {target.agent_role}"):
            try:
                self._rbac.read_cluster_role(target.agent_role, _request_timeout=self._timeout)
            except ApiException as error:
                if error.status == 404:
                    raise NotFound(
                        f"ClusterRole {target.agent_role} does not exist: install the Helm chart "
                        "(charts/buildfarm) first, or pass --agent-role with the name it created "
                        "(<release>-agent)"
                    ) from None
                raise
        with _calling(f"read namespace {target.farm_namespace}"):
            try:
                self._core.read_namespace(target.farm_namespace, _request_timeout=self._timeout)
            except ApiException as error:
                if error.status == 404:
                    raise NotFound(
                        f"the farm namespace {target.farm_namespace} does not exist: pass --farm-namespace "
                        "with the chart's farmNamespace.name"
                    ) from None
                raise

    def _ensure_identity(self, name: str, target: Target) -> None:
        account = agent_service_account(name)
        # Existing objects are kept (a re-run after a half-finished add).
        labels = {
            "app.kubernetes.io/part-of": "buildfarm",
            "app.kubernetes.io/component": "agent",
            WORKER_LABEL: name,
        }
        meta = k8s.V1ObjectMeta(name=account, namespace=target.farm_namespace, labels=labels)
        subject = k8s.RbacV1Subject(kind="ServiceAccount", name=account, namespace=target.farm_namespace)
        binding = _binding_name(target, name)
        where = target.farm_namespace
        with contextlib.suppress(AlreadyExists), _calling(f"create ServiceAccount {where}/{account}"):
            self._core.create_namespaced_service_account(
                target.farm_namespace,
                # The agent runs outside the cluster: no pod should ever mount this identity's token.
                k8s.V1ServiceAccount(metadata=meta, automount_service_account_token=False),
                _request_timeout=self._timeout,
            )
        with contextlib.suppress(AlreadyExists), _calling(f"create ClusterRoleBinding {binding}"):
            self._rbac.create_cluster_role_binding(
                k8s.V1ClusterRoleBinding(
                    metadata=k8s.V1ObjectMeta(name=binding, labels=labels),
                    role_ref=k8s.V1RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=target.agent_role),
                    subjects=[subject],
                ),
                _request_timeout=self._timeout,
            )
        with contextlib.suppress(AlreadyExists), _calling(f"create RoleBinding {where}/{binding}"):
            self._rbac.create_namespaced_role_binding(
                target.farm_namespace,
                k8s.V1RoleBinding(
                    metadata=k8s.V1ObjectMeta(name=binding, labels=labels),
                    role_ref=k8s.V1RoleRef(api_group=RBAC_GROUP, kind="Role", name=target.agent_role),
                    subjects=[subject],
                ),
                _request_timeout=self._timeout,
            )

    def _issue(self, name: str, target: Target, token_seconds: int) -> Credentials:
        account = agent_service_account(name)
        with _calling(f"request a token for ServiceAccount {target.farm_namespace}/{account}"):
            response = self._core.create_namespaced_service_account_token(
                account,
                target.farm_namespace,
                k8s.AuthenticationV1TokenRequest(
                    spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=token_seconds)
                ),
                _request_timeout=self._timeout,
            )
        status = response.status
        if status is None or not status.token:
            raise AccessError(f"the API server issued no token for {account}: check its TokenRequest API")
        expires = status.expiration_timestamp or datetime.now(UTC)
        configuration = self._api_client.configuration
        return Credentials(
            server=str(configuration.host),
            certificate_authority_data=_ca_data(configuration.ssl_ca_cert),
            insecure_skip_tls_verify=not configuration.verify_ssl,
            token=status.token,
            expires=expires.astimezone(UTC),
            user=agent_user(name, target.farm_namespace),
        )

    def _service_account_exists(self, name: str, target: Target) -> bool:
        account = agent_service_account(name)
        with _calling(f"read ServiceAccount {target.farm_namespace}/{account}"):
            try:
                self._core.read_namespaced_service_account(
                    account, target.farm_namespace, _request_timeout=self._timeout
                )
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
        return True

    def _delete_service_account(self, name: str, target: Target) -> bool:
        account = agent_service_account(name)
        return self._delete(
            lambda: self._core.delete_namespaced_service_account(
                account, target.farm_namespace, _request_timeout=self._timeout
            ),
            f"ServiceAccount {target.farm_namespace}/{account}",
        )

    @staticmethod
    def _delete(call: Any, what: str) -> bool:
        with _calling(f"delete {what}"):
            try:
                call()
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
        return True


def _binding_name(target: Target, worker: str) -> str:
    # Both bindings carry the role's name, so two releases (two agent roles) never share one.
    return f"{target.agent_role}:{worker}"


def _ca_data(path: str | None) -> str | None:
    if not path:
        return None
    return base64.b64encode(Path(path).read_bytes()).decode()


@contextlib.contextmanager
def _calling(what: str) -> Iterator[None]:
    """API errors as one line: what was refused and how to go on."""
    try:
        yield
    except ApiException as error:
        if error.status == 409:
            raise AlreadyExists(f"could not {what}: it exists already") from None
        if error.status == 404:
            raise NotFound(f"could not {what}: not found") from None
        if error.status in (401, 403):
            raise AccessError(
                f"could not {what}: the cluster refused ({error.status} {error.reason}); "
                "run this as the farm's administrator"
            ) from None
        raise AccessError(f"could not {what}: {error.status} {error.reason}") from None
    except (OSError, urllib3.exceptions.HTTPError) as error:
        raise AccessError(f"could not {what}: {error}") from None
