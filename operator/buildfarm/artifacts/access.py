"""Who may do what to a build's files: the pure part of authorization (no I/O).

Users are authorized by the API server (SubjectAccessReview, see `user_access`); agents by the Build
itself: the agent of the Worker in status.workerName, at status.attempt, while the build is Assigned or
Running (fencing reaches storage: a requeued build's old agent is refused here too).
"""

from buildfarm import constants as c
from buildfarm.api.builds import ACTIVE_PHASES, Build
from buildfarm.artifacts import errors
from buildfarm.kube.artifacts_gateway import Access
from buildfarm.kube.worker_access import AGENT_PREFIX


def agent_worker(username: str, farm_namespace: str) -> str | None:
    """The Worker whose agent `username` is (`system:serviceaccount:<farm>:worker-<name>`), else None."""
    prefix = f"system:serviceaccount:{farm_namespace}:{AGENT_PREFIX}"
    if not username.startswith(prefix):
        return None
    worker = username.removeprefix(prefix)
    return worker or None


def check_agent(build: Build, worker: str, attempt: int) -> None:
    """Raise the refusal of agent `worker` acting on `build` at `attempt`, if it may not."""
    where = f"build {build.namespace}/{build.name}"
    if build.status.worker_name != worker:
        raise errors.forbidden(f"{where} is not assigned to worker {worker}: only its own agent may use it")
    if attempt != build.status.attempt:
        raise errors.stale_attempt(
            f"{where} is at attempt {build.status.attempt}, not {attempt}: this attempt was superseded; "
            "stop working on it"
        )
    if build.status.phase not in ACTIVE_PHASES:
        raise errors.stale_attempt(
            f"{where} is {build.status.phase or 'not started'}, not Assigned or Running: "
            "nothing more can be stored for it"
        )


def uses_source(build: Build, namespace: str, sha256: str) -> bool:
    """Whether `build`'s spec names the source `sha256` of `namespace` as its archive."""
    archive = build.spec.source.archive
    if archive is None or build.namespace != namespace:
        return False
    return archive.url.split("?", 1)[0].endswith(f"/v1/namespaces/{namespace}/sources/{sha256}")


def source_upload(namespace: str) -> Access:
    return Access("create", c.GROUP, c.BUILD_PLURAL, namespace)


def artifact_read(namespace: str, name: str) -> Access:
    return Access("get", c.GROUP, c.BUILD_PLURAL, namespace, subresource="artifacts", name=name)


def log_read(namespace: str, name: str) -> Access:
    return Access("get", c.GROUP, c.BUILD_PLURAL, namespace, subresource="log", name=name)
