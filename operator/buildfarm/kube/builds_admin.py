"""The Kubernetes calls of the user and admin commands (`buildfarm retry|cancel|worker ...`).

Reads and guarded status writes go through the operator's Gateway, so they are timed out, classified and
conditional in exactly the same way; this module adds what only a person at a terminal does: create a
Build, patch metadata or spec, cordon, watch one worker's builds, and ask who the caller is.
A 403 here is the caller's missing permission, said with the `kubectl auth can-i` line that checks it.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from kubernetes import client as k8s
from kubernetes import config as kube_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from buildfarm import constants as c
from buildfarm.api.builds import Build, BuildStatus
from buildfarm.api.workers import Worker
from buildfarm.errors import BuildfarmError, Conflict, TransientError
from buildfarm.kube.client import DEFAULT_KUBECONFIG, IN_CLUSTER_ENV, ClientSettings
from buildfarm.kube.errors import classified
from buildfarm.kube.gateway import Gateway, Timeout

WORKER_FIELD: Final = c.BUILD_WORKER_FIELD
HTTP_GONE: Final = 410
DEFAULT_NAMESPACE: Final = "default"
POD_NAMESPACE_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Forbidden(BuildfarmError):
    """The caller's credentials may not make this call; the message says which permission is missing."""

    reason = "Forbidden"


class AlreadyExists(Conflict):
    """A create found an object of that name already there."""

    reason = "AlreadyExists"


class WatchExpired(TransientError):
    """The watch's resourceVersion is too old (410 Gone): list again, then watch from the new version."""

    reason = "Expired"


class AdminGateway:
    def __init__(self, api_client: k8s.ApiClient, timeout: Timeout) -> None:
        self.timeout = timeout
        self._gateway = Gateway(api_client, timeout)
        self._api_client = api_client
        self._custom = k8s.CustomObjectsApi(api_client)

    # Builds

    def get_build(self, namespace: str, name: str) -> Build:
        with _allowed("get", c.BUILD_PLURAL, namespace):
            return self._gateway.get_build(namespace, name)

    def list_builds(self, namespace: str | None) -> list[Build]:
        """The builds of `namespace` (None: of every namespace), for `buildfarm list`."""
        with _allowed("list", c.BUILD_PLURAL, namespace, all_namespaces=namespace is None):
            return self._gateway.list_builds(namespace)

    def create_build(self, namespace: str, body: dict[str, Any]) -> Build:
        """Create a Build; AlreadyExists if the name is taken (and only then: a 422 is not a name clash)."""
        name = body["metadata"]["name"]
        try:
            with (
                _allowed("create", c.BUILD_PLURAL, namespace),
                classified(f"create build {namespace}/{name}"),
            ):
                created = self._custom.create_namespaced_custom_object(
                    c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, body, _request_timeout=self.timeout
                )
        except Conflict as error:
            if isinstance(error.__cause__, ApiException) and error.__cause__.status == 409:
                raise AlreadyExists(f"build {namespace}/{name} already exists") from None
            raise
        return Build.model_validate(created)

    def annotate_build(self, build: Build, annotations: dict[str, str]) -> Build:
        """Merge `annotations` into the build's metadata, only if it is still the same object (its uid): a
        build deleted and created again under the same name is not annotated. Not conditional on the
        resourceVersion: setting one key wins over any concurrent change of other fields."""
        patch = {"metadata": {"uid": build.uid, "annotations": annotations}}
        return self._patch_build(build.namespace, build.name, patch, "annotate")

    def request_cancel(self, namespace: str, name: str) -> Build:
        """Set spec.cancel (the CRD lets it go from false to true only; true again is a no-op)."""
        return self._patch_build(namespace, name, {"spec": {"cancel": True}}, "cancel")

    def write_build_status(self, build: Build, status: BuildStatus) -> Build:
        """The status, if nobody changed the build since `build` was read (else Conflict)."""
        with _allowed("patch", c.BUILD_PLURAL, build.namespace, subresource="status"):
            return self._gateway.write_build_status(build, status)

    def list_worker_builds(self, worker: str) -> tuple[list[Build], str]:
        """The builds of every namespace whose status.workerName is `worker`, and the list's
        resourceVersion to watch from. One call: a worker holds at most a few dozen builds."""
        with (
            _allowed("list", c.BUILD_PLURAL, all_namespaces=True),
            classified(f"list builds of worker {worker}"),
        ):
            body: dict[str, Any] = self._custom.list_cluster_custom_object(  # type: ignore[assignment]
                c.GROUP,
                c.VERSION,
                c.BUILD_PLURAL,
                field_selector=f"{WORKER_FIELD}={worker}",
                _request_timeout=self.timeout,
            )
        items = [Build.model_validate(item) for item in body.get("items") or []]
        return items, str((body.get("metadata") or {}).get("resourceVersion", ""))

    def watch_worker_builds(
        self, worker: str, resource_version: str, seconds: int
    ) -> Iterator[tuple[str, Build]]:
        """(event type, build) for the builds of `worker` changed after `resource_version`, for at most
        `seconds`. A build that leaves the worker (requeued) comes as DELETED, as it no longer matches.
        WatchExpired when the version is too old: list again."""
        watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        connect, read = self.timeout
        try:
            with (
                _allowed("watch", c.BUILD_PLURAL, all_namespaces=True),
                classified(f"watch builds of worker {worker}"),
            ):
                for event in watcher.stream(  # type: ignore[no-untyped-call]
                    self._custom.list_cluster_custom_object,
                    c.GROUP,
                    c.VERSION,
                    c.BUILD_PLURAL,
                    field_selector=f"{WORKER_FIELD}={worker}",
                    resource_version=resource_version,
                    timeout_seconds=max(1, seconds),
                    # The server ends the watch after `seconds`; the read timeout only catches a dead one.
                    _request_timeout=(connect, max(1, seconds) + read),
                ):
                    kind = str(event["type"])
                    if kind in {"ADDED", "MODIFIED", "DELETED"}:
                        yield kind, Build.model_validate(event["raw_object"])
        except TransientError as error:
            cause = error.__cause__
            if isinstance(cause, ApiException) and cause.status == HTTP_GONE:
                raise WatchExpired(f"watch builds of worker {worker}: resourceVersion expired") from None
            raise
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]

    # Workers

    def get_worker(self, name: str) -> Worker:
        with _allowed("get", c.WORKER_PLURAL):
            return self._gateway.get_worker(name)

    def set_unschedulable(self, name: str, unschedulable: bool) -> Worker:
        """Cordon (true) or uncordon (false) a worker: a merge patch of spec.unschedulable."""
        verb = "cordon" if unschedulable else "uncordon"
        with _allowed("patch", c.WORKER_PLURAL), classified(f"{verb} worker {name}"):
            body = self._custom.patch_cluster_custom_object(
                c.GROUP,
                c.VERSION,
                c.WORKER_PLURAL,
                name,
                {"spec": {"unschedulable": unschedulable}},
                _request_timeout=self.timeout,
            )
        return Worker.model_validate(body)

    # Who is asking

    def whoami(self) -> str | None:
        """The user name the API server knows the caller by (`kubectl auth whoami`), or None if it
        cannot say (an older server, or no permission): it is only used to say who did something."""
        review = k8s.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        try:
            with classified("ask who the caller is"):
                answer = k8s.AuthenticationV1Api(self._api_client).create_self_subject_review(
                    review, _request_timeout=self.timeout
                )
        except BuildfarmError:
            return None
        user = answer.status.user_info if answer.status else None
        return str(user.username) if user and user.username else None

    def _patch_build(self, namespace: str, name: str, patch: dict[str, Any], verb: str) -> Build:
        with _allowed("patch", c.BUILD_PLURAL, namespace), classified(f"{verb} build {namespace}/{name}"):
            body = self._custom.patch_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.BUILD_PLURAL, name, patch, _request_timeout=self.timeout
            )
        return Build.model_validate(body)


def default_namespace(settings: ClientSettings) -> str:
    """The namespace of the kubeconfig context in use, as kubectl picks it (the pod's own namespace in a
    pod), else `default`. Call it after make_api_client, which reports an unusable kubeconfig."""
    if settings.kubeconfig is None and not os.environ.get("KUBECONFIG") and os.environ.get(IN_CLUSTER_ENV):
        try:
            return POD_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
        except OSError:
            return DEFAULT_NAMESPACE
    if settings.kubeconfig is not None:
        files = str(settings.kubeconfig.expanduser())
    else:
        files = os.environ.get("KUBECONFIG") or str(DEFAULT_KUBECONFIG.expanduser())
    try:
        contexts, current = kube_config.list_kube_config_contexts(config_file=files)  # type: ignore[no-untyped-call]
    except (kube_config.ConfigException, OSError, ValueError, KeyError, TypeError):
        return DEFAULT_NAMESPACE
    chosen = next((ctx for ctx in contexts if ctx.get("name") == settings.context), None) or current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else DEFAULT_NAMESPACE


@contextmanager
def _allowed(
    verb: str,
    resource: str,
    namespace: str | None = None,
    *,
    all_namespaces: bool = False,
    subresource: str | None = None,
) -> Iterator[None]:
    """A 403 becomes Forbidden with the one command that shows the missing permission.

    The shared classification calls a 403 transient (an operator waits for its RBAC to be fixed);
    a person at a terminal needs to be told instead. `namespace` None: a cluster-scoped resource."""
    try:
        yield
    except TransientError as error:
        if error.reason != "Forbidden":
            raise
        kind = f"{resource}.{c.GROUP}"
        what = f"{kind}/{subresource}" if subresource else kind
        if all_namespaces:
            what, where = f"{what} in all namespaces", " --all-namespaces"
        elif namespace:
            what, where = f"{what} in namespace {namespace}", f" -n {namespace}"
        else:
            where = ""
        check = f"kubectl auth can-i {verb} {kind}{where}"
        if subresource:
            check += f" --subresource={subresource}"
        raise Forbidden(
            f"your credentials may not {verb} {what}: ask an administrator for access (check with `{check}`)"
        ) from None
