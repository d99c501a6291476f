"""The verb and resource of an API call are read from its method and URL, as the API server names them;
a failed call's code is its HTTP status, or timeout / connection."""

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from buildfarm.telemetry.kube import Request, error_code, request_of

API = "https://127.0.0.1:6443"


@pytest.mark.parametrize(
    ("method", "path", "want"),
    [
        ("GET", "/apis/buildfarm.dev/v1alpha1/namespaces/a/builds/b", Request("get", "builds")),
        ("GET", "/apis/buildfarm.dev/v1alpha1/builds?limit=500", Request("list", "builds")),
        ("GET", "/apis/buildfarm.dev/v1alpha1/namespaces/a/builds", Request("list", "builds")),
        ("GET", "/apis/buildfarm.dev/v1alpha1/builds?watch=true&fieldSelector=x", Request("watch", "builds")),
        ("GET", "/apis/buildfarm.dev/v1alpha1/workers?watch=1", Request("watch", "workers")),
        (
            "PATCH",
            "/apis/buildfarm.dev/v1alpha1/namespaces/a/builds/b/status",
            Request("patch", "builds/status"),
        ),
        ("PATCH", "/apis/buildfarm.dev/v1alpha1/workers/w/status", Request("patch", "workers/status")),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/f/leases/w", Request("update", "leases")),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/f/leases", Request("create", "leases")),
        ("POST", "/api/v1/namespaces/a/events", Request("create", "events")),
        ("GET", "/api/v1/namespaces/a/secrets/creds", Request("get", "secrets")),
        ("DELETE", "/apis/buildfarm.dev/v1alpha1/namespaces/a/builds/b", Request("delete", "builds")),
        ("DELETE", "/apis/buildfarm.dev/v1alpha1/namespaces/a/builds", Request("deletecollection", "builds")),
        ("GET", "/api/v1/namespaces/a", Request("get", "namespaces")),
        ("GET", "/api/v1/namespaces", Request("list", "namespaces")),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Request("create", "selfsubjectaccessreviews"),
        ),
        ("GET", "/apis/buildfarm.dev/v1alpha1", Request("get", "discovery")),
        ("GET", "/version", Request("get", "version")),
    ],
)
def test_request_of(method: str, path: str, want: Request) -> None:
    assert request_of(method, API + path) == want


@pytest.mark.parametrize(
    ("error", "want"),
    [
        (ApiException(status=409, reason="Conflict"), "409"),
        (ApiException(status=503), "503"),
        (ApiException(status=0, reason="SSLError"), "connection"),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), "timeout"),
        (urllib3.exceptions.ConnectTimeoutError("slow"), "timeout"),
        (urllib3.exceptions.NewConnectionError(None, "refused"), "connection"),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("reset"), "connection"),
        (TimeoutError("timed out"), "timeout"),
        (ConnectionResetError(), "connection"),
        (ValueError("a bug, not the API"), None),
    ],
)
def test_error_code(error: BaseException, want: str | None) -> None:
    assert error_code(error) == want
