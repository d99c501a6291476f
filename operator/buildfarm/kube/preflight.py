"""Checks, before the operator starts, that it can work at all: the API server answers, the credentials
have every permission the operator uses (kube/permissions.py), the CRDs are installed, established and
serve our version, and Builds and Workers can be listed.

Each failure is a PreflightError whose message is one line: what is wrong and how to fix it. What is
worth knowing but no reason to stop (a served namespace that does not exist yet) is returned as warnings.
"""

import json
import re
import socket
import ssl
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal, TypeVar

import urllib3.exceptions
from kubernetes.client import (
    ApiClient,
    ApiextensionsV1Api,
    AuthenticationV1Api,
    AuthorizationV1Api,
    CoreV1Api,
    CustomObjectsApi,
    V1ResourceAttributes,
    V1SelfSubjectAccessReview,
    V1SelfSubjectAccessReviewSpec,
    V1SelfSubjectReview,
    VersionApi,
)
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.kube import permissions
from buildfarm.kube.permissions import Mode, Permission
from buildfarm.settings import env_var

Timeout = float | tuple[float, float]  # seconds, or (connect, read) seconds: what `_request_timeout` takes

CRD_NAMES: Final = (f"{c.BUILD_PLURAL}.{c.GROUP}", f"{c.WORKER_PLURAL}.{c.GROUP}")
INSTALL_HINT: Final = "run `kubectl apply -f crds/` from the buildfarm repository"
# Permission checks (SelfSubjectAccessReviews) in flight at once: one per verb and namespace adds up.
_PARALLEL_CHECKS: Final = 8
METADATA_ONLY: Final = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_REASON_MAX: Final = 160
# The settings that bound (connecting, waiting for an answer), as messages name them by default.
TIMEOUT_NAMES: Final = (env_var("connect_timeout"), env_var("request_timeout"))
# Functions a timeout passes through while the connection is still being set up (TCP, then TLS): urllib3
# bounds that by the connect timeout but reports a TLS handshake that timed out as a ReadTimeoutError.
_CONNECTING_FUNCTIONS: Final = frozenset({"_new_conn", "_validate_conn", "do_handshake"})
_USER_IN_MESSAGE: Final = re.compile(r'User "([^"]+)"')


_T = TypeVar("_T")
_Check = tuple[Permission, str, str | None]  # a permission, one of its verbs, a namespace (None: all/cluster)


class PreflightError(Exception):
    """The operator cannot work in this cluster; the message is one line saying what to do."""


DEFAULT_FARM_NAMESPACE: Final = "buildfarm-system"


def preflight(
    api_client: ApiClient,
    timeout: Timeout,
    namespaces: Sequence[str] = (),
    *,
    standalone: bool = False,
    timeout_names: tuple[str, str] = TIMEOUT_NAMES,
    farm_namespace: str = DEFAULT_FARM_NAMESPACE,
) -> list[str]:
    """Raises PreflightError unless the operator can serve `namespaces` (empty: all of them); returns
    one-line warnings.

    `standalone`: the operator runs without kopf's peering, which needs permissions of its own.
    `timeout_names` are the settings (or flags) that set the (connect, read) parts of `timeout`, named
    when one of them fires. Every call is bounded by `timeout`: one per permission verb (per served
    namespace for namespaced resources; up to 8 at once), and at most 6 + max(1, len(namespaces)) others.
    """
    server = str(api_client.configuration.host)
    mode = Mode(standalone=standalone, namespaced=bool(namespaces))
    return _Checks(api_client, timeout, server, timeout_names, mode, farm_namespace).run(namespaces)


def preflight_agent(
    api_client: ApiClient, timeout: Timeout, *, timeout_names: tuple[str, str] = TIMEOUT_NAMES
) -> None:
    """The worker agent's startup check: the API server answers, the CRDs are installed and serve our
    version, and the agent may list Builds in all namespaces and Workers. Not the operator's permission
    table: an agent has rights of its own (docs/agent-protocol.md). Raises PreflightError."""
    server = str(api_client.configuration.host)
    checks = _Checks(api_client, timeout, server, timeout_names, Mode(), DEFAULT_FARM_NAMESPACE)
    checks.run_for_agent()


class _Checks:
    def __init__(
        self,
        api_client: ApiClient,
        timeout: Timeout,
        server: str,
        timeout_names: tuple[str, str],
        mode: Mode,
        farm_namespace: str,
    ) -> None:
        self._farm_namespace = farm_namespace
        self._timeout = timeout
        self._timeout_names = timeout_names
        self._server = server
        self._mode = mode
        self._version = VersionApi(api_client)
        self._crds = ApiextensionsV1Api(api_client)
        self._custom = CustomObjectsApi(api_client)
        self._core = CoreV1Api(api_client)
        self._authn = AuthenticationV1Api(api_client)
        self._authz = AuthorizationV1Api(api_client)

    def run(self, namespaces: Sequence[str]) -> list[str]:
        self._call(
            "reading the server version",
            lambda: self._version.get_code(_request_timeout=self._timeout),
            not_found=f"{self._server} is not a Kubernetes API server (404 on /version): "
            "check the server URL in the kubeconfig",
        )
        self._check_permissions(namespaces)
        for name in CRD_NAMES:
            self._check_crd(name)
        scopes: list[str | None] = [*namespaces] or [None]
        for namespace in scopes:
            self._check_listing(c.BUILD_PLURAL, namespace)
        self._check_listing(c.WORKER_PLURAL, None)
        return self._absent_namespaces(namespaces)

    def run_for_agent(self) -> None:
        self._call(
            "reading the server version",
            lambda: self._version.get_code(_request_timeout=self._timeout),
            not_found=f"{self._server} is not a Kubernetes API server (404 on /version): "
            "check the server URL in the kubeconfig",
        )
        for name in CRD_NAMES:
            self._check_crd(name)
        self._check_listing(c.BUILD_PLURAL, None)
        self._check_listing(c.WORKER_PLURAL, None)

    # Permissions

    def _check_permissions(self, namespaces: Sequence[str]) -> None:
        """Every permission the operator needs, asked of the API server, so that all missing ones are named
        at once, before the operator starts and is refused call by call at run time."""
        checks: list[_Check] = [
            (permission, verb, namespace)
            for permission in permissions.needed(self._mode, optional=False)
            for namespace in _where(permission, namespaces, self._farm_namespace)
            for verb in permission.verbs
        ]
        if not checks or not self._can_review(checks[0]):
            return  # The listings below still find a missing read permission.
        with ThreadPoolExecutor(max_workers=_PARALLEL_CHECKS, thread_name_prefix="preflight") as pool:
            allowed = list(pool.map(self._allowed, checks))
        missing = [check for check, ok in zip(checks, allowed, strict=True) if not ok]
        uninstalled = {
            crd
            for crd in {check[0].only_with_crd for check in missing}
            if crd is not None and not self._crd_installed(crd)
        }
        missing = [check for check in missing if check[0].only_with_crd not in uninstalled]
        if missing:
            raise PreflightError(
                f"{self._who()} may not {_describe_missing(missing)}: grant this to the operator's "
                "credentials (RBAC: a ClusterRole, or a Role per served namespace, and a binding)"
            )

    def _can_review(self, check: _Check) -> bool:
        """Whether the API server answers SelfSubjectAccessReviews (every user may ask, unless an admin
        took that away, or the server does not serve them)."""
        try:
            self._review(check)
        except ApiException as error:
            if error.status in {403, 404}:
                return False
            raise PreflightError(self._api_problem("checking the operator's permissions", error)) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise PreflightError(
                self._transport_problem("checking the operator's permissions", error)
            ) from None
        return True

    def _allowed(self, check: _Check) -> bool:
        return self._call("checking the operator's permissions", lambda: self._review(check))

    def _review(self, check: _Check) -> bool:
        permission, verb, namespace = check
        review = self._authz.create_self_subject_access_review(
            V1SelfSubjectAccessReview(
                spec=V1SelfSubjectAccessReviewSpec(
                    resource_attributes=V1ResourceAttributes(
                        group=permission.group,
                        resource=permission.base,
                        subresource=permission.subresource or None,
                        verb=verb,
                        namespace=namespace,
                    )
                )
            ),
            _request_timeout=self._timeout,
        )
        return bool(review.status is not None and review.status.allowed)

    def _who(self) -> str:
        """The user name of the credentials, if the API server tells (SelfSubjectReview, Kubernetes 1.28+)."""
        try:
            review = self._authn.create_self_subject_review(
                V1SelfSubjectReview(), _request_timeout=self._timeout
            )
            name = review.status.user_info.username if review.status and review.status.user_info else None
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            name = None
        return str(name) if name else "the operator's credentials"

    def _crd_installed(self, name: str) -> bool:
        """Whether CRD `name` is installed; False when that cannot be read: listing CRDs is then reported
        missing itself, and a permission that may not be needed is not worth claiming."""
        try:
            return self._read_crd(name) is not None
        except PreflightError:
            return False

    # CRDs and listings

    def _read_crd(self, name: str) -> dict[str, Any] | None:
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
        return dict(items[0]) if items else None

    def _check_crd(self, name: str) -> None:
        crd = self._read_crd(name)
        if crd is None:
            raise PreflightError(f"CRD {name} is not installed: {INSTALL_HINT}")
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

    # Warnings

    def _absent_namespaces(self, namespaces: Sequence[str]) -> list[str]:
        """A warning naming the served namespaces that do not exist (yet): likely a typo, but they may be
        created later, and the operator serves them then.

        It lists Namespaces, which kopf does anyway when serving some namespaces; if that is forbidden
        (an optional permission), or fails at all, there is no warning: this is no reason to stop.
        """
        if not namespaces:
            return []
        try:
            response: Any = self._core.list_namespace(
                _headers={"Accept": METADATA_ONLY}, _request_timeout=self._timeout, _preload_content=False
            )
            try:
                items = json.loads(response.data).get("items") or []
            finally:
                response.release_conn()
            existing = {item.get("metadata", {}).get("name") for item in items}
        except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError):
            return []
        absent = [namespace for namespace in namespaces if namespace not in existing]
        if not absent:
            return []
        which = f"namespace {absent[0]} does" if len(absent) == 1 else f"namespaces {', '.join(absent)} do"
        return [
            f"{which} not exist: the operator serves {'it' if len(absent) == 1 else 'them'} once created; "
            "check --namespace / BUILDFARM_NAMESPACES for a typo"
        ]

    def _call(self, what: str, call: Callable[[], _T], not_found: str | None = None) -> _T:
        try:
            return call()
        except ApiException as error:
            if error.status == 404 and not_found is not None:
                raise PreflightError(not_found) from None
            raise PreflightError(self._api_problem(what, error)) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise PreflightError(self._transport_problem(what, error)) from None

    def _transport_problem(self, what: str, error: BaseException) -> str:
        if _timed_out(error) == "reading":
            # Connected, asked, and no answer: the server is there but hung or overloaded.
            read, name = self._limits()[1], self._timeout_names[1]
            return (
                f"{what} failed: the Kubernetes API server at {self._server} gave no answer within "
                f"{read:g}s ({name}); check the server's health (`kubectl get --raw /readyz`) or raise {name}"
            )
        return (
            f"cannot reach the Kubernetes API server at {self._server}: {self._transport_reason(error)}; "
            "check KUBECONFIG and that the cluster is running"
        )

    def _limits(self) -> tuple[float, float]:
        return self._timeout if isinstance(self._timeout, tuple) else (self._timeout, self._timeout)

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
            return f"{what} is forbidden for {who}: {permissions.hint(self._mode)}"
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
        if isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror):
            return "cannot resolve the host name"
        if _timed_out(error) == "connecting":
            return f"timed out connecting after {self._limits()[0]:g}s ({self._timeout_names[0]})"
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


def _describe_missing(missing: Sequence[_Check]) -> str:
    """`patch builds.buildfarm.dev/status in all namespaces, create events in namespace a`: the missing
    verbs of each permission, where they are missing, in table order."""
    verbs_by_place: dict[Permission, dict[str | None, list[str]]] = {}
    for permission, verb, namespace in missing:
        verbs_by_place.setdefault(permission, {}).setdefault(namespace, []).append(verb)
    parts: list[str] = []
    for permission, places in verbs_by_place.items():
        namespaces_by_verbs: dict[tuple[str, ...], list[str | None]] = {}
        for namespace, verb_list in places.items():
            namespaces_by_verbs.setdefault(tuple(verb_list), []).append(namespace)
        for verbs, where in namespaces_by_verbs.items():
            parts.append(f"{'/'.join(verbs)} {permission.name}{_place(permission, where)}")
    return ", ".join(parts)


def _where(permission: Permission, namespaces: Sequence[str], farm_namespace: str) -> list[str | None]:
    """Where to ask for a permission: the farm namespace, each served namespace, or everywhere."""
    if permission.in_farm_namespace:
        return [farm_namespace]
    return [*namespaces] if permission.namespaced and namespaces else [None]


def _place(permission: Permission, namespaces: Sequence[str | None]) -> str:
    if not permission.namespaced:
        return ""
    named = [namespace for namespace in namespaces if namespace]
    if not named:
        return " in all namespaces"
    return f" in namespace {named[0]}" if len(named) == 1 else f" in namespaces {', '.join(named)}"


def _timed_out(error: BaseException) -> Literal["connecting", "reading"] | None:
    """Which limit a timeout hit: the connect timeout (TCP connect or TLS handshake) or the read timeout."""
    chain = list(_chain(error))
    if not any(
        isinstance(e, urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)  # a refusal, despite its base class
        for e in chain
    ):
        return None
    if any(
        isinstance(e, urllib3.exceptions.ConnectTimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    ):
        return "connecting"
    for e in chain:
        functions = {frame.f_code.co_name for frame, _ in traceback.walk_tb(e.__traceback__)}
        if functions & _CONNECTING_FUNCTIONS:
            return "connecting"
    return "reading"


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error behind it: causes, contexts and urllib3's MaxRetryError.reason."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        behind = [current.__cause__, current.__context__]
        if isinstance(current, urllib3.exceptions.MaxRetryError):
            behind.append(current.reason)
        pending.extend(e for e in behind if e is not None)


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
