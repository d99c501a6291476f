"""Checks, before the operator starts, that it can work at all: the API server answers, the CRDs are
installed, established and serve our version, and the credentials may read Builds and Workers.

Each failure is a PreflightError whose message is one line: what is wrong and how to fix it.
"""

import json
import re
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import urllib3.exceptions
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi, VersionApi
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c

Timeout = float | tuple[float, float]  # seconds, or (connect, read) seconds: what `_request_timeout` takes

CRD_NAMES: Final = (f"{c.BUILD_PLURAL}.{c.GROUP}", f"{c.WORKER_PLURAL}.{c.GROUP}")
INSTALL_HINT: Final = "run `kubectl apply -f crds/` from the buildfarm repository"
RBAC_HINT: Final = (
    "grant the operator get/list/watch/patch on "
    f"{c.BUILD_PLURAL} and {c.WORKER_PLURAL} in {c.GROUP}, list/watch on customresourcedefinitions"
)
_REASON_MAX: Final = 160
_USER_IN_MESSAGE: Final = re.compile(r'User "([^"]+)"')


_T = TypeVar("_T")


class PreflightError(Exception):
    """The operator cannot work in this cluster; the message is one line saying what to do."""


def preflight(api_client: ApiClient, timeout: Timeout, namespaces: Sequence[str] = ()) -> None:
    """Raises PreflightError unless the operator can serve `namespaces` (empty: all of them).

    At most 4 + max(1, len(namespaces)) calls, each bounded by `timeout`.
    """
    server = str(api_client.configuration.host)
    _Checks(api_client, timeout, server).run(namespaces)


class _Checks:
    def __init__(self, api_client: ApiClient, timeout: Timeout, server: str) -> None:
        self._timeout = timeout
        self._server = server
        self._version = VersionApi(api_client)
        self._crds = ApiextensionsV1Api(api_client)
        self._custom = CustomObjectsApi(api_client)

    def run(self, namespaces: Sequence[str]) -> None:
        self._call(
            "reading the server version",
            lambda: self._version.get_code(_request_timeout=self._timeout),
            not_found=f"{self._server} is not a Kubernetes API server (404 on /version): "
            "check the server URL in the kubeconfig",
        )
        for name in CRD_NAMES:
            self._check_crd(name)
        scopes: list[str | None] = [*namespaces] or [None]
        for namespace in scopes:
            self._check_listing(c.BUILD_PLURAL, namespace)
        self._check_listing(c.WORKER_PLURAL, None)

    def _check_crd(self, name: str) -> None:
        # Raw JSON (_preload_content=False): a CRD is read as the server wrote it, not as the client's models.
        response: Any = self._call(
            "listing customresourcedefinitions",
            lambda: self._crds.list_custom_resource_definition(
                field_selector=f"metadata.name={name}", _request_timeout=self._timeout, _preload_content=False
            ),
        )
        try:
            items = json.loads(response.data).get("items") or []
        except (ValueError, AttributeError, urllib3.exceptions.HTTPError):
            raise PreflightError(
                f"the Kubernetes API server at {self._server} sent an unreadable CRD list: "
                "check that the kubeconfig points at a Kubernetes API server"
            ) from None
        finally:
            response.release_conn()
        if not items:
            raise PreflightError(f"CRD {name} is not installed: {INSTALL_HINT}")
        crd: dict[str, Any] = items[0]
        established = next(
            (
                cond
                for cond in crd.get("status", {}).get("conditions") or []
                if cond.get("type") == "Established"
            ),
            None,
        )
        if established is None or established.get("status") != "True":
            why = (established or {}).get("message") or "no Established condition yet"
            raise PreflightError(
                f"CRD {name} is not Established ({_short(str(why))}): "
                f"wait a few seconds and retry, or see `kubectl describe crd {name}`"
            )
        served = [v.get("name") for v in crd.get("spec", {}).get("versions") or [] if v.get("served")]
        if c.VERSION not in served:
            serving = ", ".join(map(str, served)) or "none"
            raise PreflightError(
                f"CRD {name} does not serve {c.VERSION} (it serves: {serving}): "
                f"update the CRDs to this operator's version: {INSTALL_HINT}"
            )

    def _check_listing(self, plural: str, namespace: str | None) -> None:
        where = (
            f"in namespace {namespace}"
            if namespace
            else ("in all namespaces" if plural == c.BUILD_PLURAL else "at cluster scope")
        )
        if namespace:
            self._call(
                f"listing {plural}.{c.GROUP} {where}",
                lambda: self._custom.list_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, plural, limit=1, _request_timeout=self._timeout
                ),
            )
        else:
            self._call(
                f"listing {plural}.{c.GROUP} {where}",
                lambda: self._custom.list_cluster_custom_object(
                    c.GROUP, c.VERSION, plural, limit=1, _request_timeout=self._timeout
                ),
            )

    def _call(self, what: str, call: Callable[[], _T], not_found: str | None = None) -> _T:
        try:
            return call()
        except ApiException as error:
            if error.status == 404 and not_found is not None:
                raise PreflightError(not_found) from None
            raise PreflightError(self._api_problem(what, error)) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise PreflightError(
                f"cannot reach the Kubernetes API server at {self._server}: {self._transport_reason(error)}; "
                "check KUBECONFIG and that the cluster is running"
            ) from None

    def _api_problem(self, what: str, error: ApiException) -> str:
        status = int(error.status or 0)
        message = _status_message(error)
        if status == 0:  # The client's wrapping of a TLS failure.
            return (
                f"cannot reach the Kubernetes API server at {self._server}: "
                f"{_tls_reason(str(error.reason or ''))}; check KUBECONFIG and that the cluster is running"
            )
        if status == 401:
            return (
                f"the Kubernetes API server at {self._server} rejected the credentials (401 Unauthorized): "
                "renew the token or certificate in the kubeconfig, or pick another --context"
            )
        if status == 403:
            user = _USER_IN_MESSAGE.search(message)
            who = user.group(1) if user else "the operator's credentials"
            return f"{what} is forbidden for {who}: {RBAC_HINT}"
        if status == 404:
            return (
                f"{what} failed: the Kubernetes API server at {self._server} does not serve it (404): "
                f"{INSTALL_HINT}"
            )
        detail = f": {_short(message).rstrip('.')}" if message else ""
        hint = (
            "retry, or check the server's health (`kubectl get --raw /readyz`)"
            if status >= 500 or status == 429
            else "check the server URL and the credentials in the kubeconfig"
        )
        answer = " ".join(f"{status} {error.reason or ''}".split())
        return f"{what} failed: the Kubernetes API server at {self._server} answered {answer}{detail}; {hint}"

    def _transport_reason(self, error: BaseException) -> str:
        cause = _root_cause(error)
        connect, read = self._timeout if isinstance(self._timeout, tuple) else (self._timeout, self._timeout)
        if isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror):
            return "cannot resolve the host name"
        if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
            return f"timed out after {read:g}s"
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            cause, urllib3.exceptions.NewConnectionError
        ):
            return f"timed out connecting after {connect:g}s"
        if isinstance(cause, TimeoutError | socket.timeout):
            return f"timed out after {read:g}s"
        for errors, reason in (
            (ConnectionRefusedError, "connection refused"),
            (ConnectionResetError, "connection reset by the server"),
            (ConnectionAbortedError, "connection aborted"),
        ):
            if isinstance(cause, errors) or _caused_by(error, errors):
                return reason
        if isinstance(cause, ssl.SSLError | urllib3.exceptions.SSLError):
            return _tls_reason(str(cause))
        if isinstance(cause, urllib3.exceptions.ProtocolError):
            return "the connection broke"
        return _short(f"{type(cause).__name__}: {cause}")


def _root_cause(error: BaseException) -> BaseException:
    """The most specific error: urllib3 wraps the real one in MaxRetryError.reason or __context__."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        return _root_cause(error.reason)
    if (
        isinstance(error, urllib3.exceptions.ProtocolError)
        and error.args
        and isinstance(error.args[-1], BaseException)
    ):
        return _root_cause(error.args[-1])
    return error


def _caused_by(error: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _tls_reason(text: str) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "TLS certificate verification failed (is certificate-authority-data the cluster's CA?)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "TLS handshake failed (is the server https?)"
    return f"TLS error ({_short(text.replace('SSLError', '').strip())})"


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return str(error.body or "")
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_MAX else f"{line[: _REASON_MAX - 3]}..."
