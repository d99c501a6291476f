"""The Kubernetes calls of the artifact service: who is calling (TokenReview, the cluster's client CA),
what they may do (SubjectAccessReview), and the Builds and credentials Secrets it serves. Every call has an
explicit timeout; the calls are blocking and the service runs them off its event loop.

The service never writes to the API: retention works by sweeping storage for Builds that are gone
(docs/artifacts.md, "Retention"), so it needs no rights on Builds beyond reading them.
"""

from dataclasses import dataclass
from typing import Any, Final

from kubernetes import client as k8s

from buildfarm.api.builds import Build
from buildfarm.errors import NotFound
from buildfarm.kube.errors import classified
from buildfarm.kube.gateway import Gateway

Timeout = tuple[float, float]

AUTH_CONFIGMAP_NAMESPACE: Final = "kube-system"
AUTH_CONFIGMAP: Final = "extension-apiserver-authentication"
CLIENT_CA_KEY: Final = "client-ca-file"


@dataclass(frozen=True)
class User:
    """Who a request comes from, as the API server names them (TokenReview or a client certificate)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Access:
    """One SubjectAccessReview question: may the user `verb` the `resource`(/`subresource`) in `namespace`?"""

    verb: str
    group: str
    resource: str
    namespace: str
    subresource: str = ""
    name: str = ""


class ArtifactsGateway:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self.timeout = timeout
        self._builds = Gateway(api_client, timeout, component="artifacts")
        self._authn = k8s.AuthenticationV1Api(api_client)
        self._authz = k8s.AuthorizationV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)

    def review_token(self, token: str) -> User | None:
        """The user a bearer token belongs to, or None if the API server does not accept it."""
        with classified("review a token"):
            review = self._authn.create_token_review(
                k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token)), _request_timeout=self.timeout
            )
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return User(
            name=str(user.username or ""),
            groups=tuple(user.groups or ()),
            uid=str(user.uid or ""),
            extra=tuple(sorted((k, tuple(v or ())) for k, v in (user.extra or {}).items())),
        )

    def allowed(self, user: User, access: Access) -> bool:
        """What the API server's authorizer answers for `user` (RBAC, webhooks: whatever it runs)."""
        spec = k8s.V1SubjectAccessReviewSpec(
            user=user.name,
            groups=list(user.groups),
            uid=user.uid or None,
            extra={key: list(values) for key, values in user.extra} or None,
            resource_attributes=k8s.V1ResourceAttributes(
                verb=access.verb,
                group=access.group,
                resource=access.resource,
                subresource=access.subresource or None,
                namespace=access.namespace,
                name=access.name or None,
            ),
        )
        with classified(f"review access of {user.name}"):
            review = self._authz.create_subject_access_review(
                k8s.V1SubjectAccessReview(spec=spec), _request_timeout=self.timeout
            )
        return bool(review.status and review.status.allowed)

    def client_ca(self) -> str | None:
        """The PEM bundle the API server trusts for client certificates; None if it publishes none."""
        try:
            with classified(f"read configmap {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP}"):
                config_map = self._core.read_namespaced_config_map(
                    AUTH_CONFIGMAP, AUTH_CONFIGMAP_NAMESPACE, _request_timeout=self.timeout
                )
        except NotFound:
            return None
        data = config_map.data or {}
        return str(data[CLIENT_CA_KEY]) if data.get(CLIENT_CA_KEY) else None

    def get_build(self, namespace: str, name: str) -> Build:
        """The Build; NotFound if there is none."""
        return self._builds.get_build(namespace, name)

    def list_builds(self) -> list[Build]:
        """Every Build in every namespace (paged), for the retention sweep."""
        return self._builds.list_builds()

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, base64 as the API gives it; NotFound if there is none. Never logged."""
        with classified(f"read secret {namespace}/{name}"):
            secret: Any = self._core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        return {str(key): str(value) for key, value in (secret.data or {}).items()}
