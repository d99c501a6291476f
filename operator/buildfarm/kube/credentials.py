"""The kubeconfig's own credentials, handed to the artifact service's client.

The artifact service authenticates callers the way an aggregated API server does (TokenReview, or a client
certificate signed by the cluster's client CA), so the CLI and the agent present exactly what their
Kubernetes client presents: no second login. Only this layer reads the kubernetes client's configuration.
"""

from collections.abc import Callable
from dataclasses import dataclass

from kubernetes.client import ApiClient


@dataclass(frozen=True)
class HttpCredentials:
    """`authorization` gives the Authorization header's value (or None), read on each call because a
    token may rotate (exec plugins, projected ServiceAccount tokens); `cert_file`/`key_file` are the client
    certificate the kubeconfig names (the kubernetes client writes inline data to private temp files)."""

    authorization: Callable[[], str | None]
    cert_file: str | None = None
    key_file: str | None = None

    def __repr__(self) -> str:  # never a token in a log line or a traceback
        return f"HttpCredentials(cert_file={self.cert_file!r}, key_file={self.key_file!r})"


def http_credentials(api_client: ApiClient) -> HttpCredentials:
    configuration = api_client.configuration

    def authorization() -> str | None:
        value = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return str(value) if value else None

    return HttpCredentials(authorization, configuration.cert_file or None, configuration.key_file or None)


NO_CREDENTIALS = HttpCredentials(lambda: None)
