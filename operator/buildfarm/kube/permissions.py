"""What the operator may do in the cluster: the one table of the Kubernetes API rights it uses.

Everything else derives from PERMISSIONS: the startup check (`preflight`) asks the API server about each
row, its error message names the rows that are missing, and `cluster_role_rules` renders them as the
`rules:` of a ClusterRole (the Helm chart's RBAC is built from it). A new API call, here or in kopf's
configuration, needs a new row, or the operator starts and is then refused at run time.

Who calls what:
- the gateway (kube/gateway.py): reads and lists Builds and Workers, patches their status subresource
  (phase, reservations), reads a Secret's metadata, creates core/v1 Events (`kubectl describe` sorts by
  their lastTimestamp, which events.k8s.io/v1 does not take);
- kopf (operator/config.py, operator/handlers.py): watches Builds and Workers, patches its bookkeeping
  annotations onto Builds only while an admission is retried (`buildfarm.dev/admit`; no diff base, no
  finalizer: there is no deletion handler), watches CRDs and, serving only some namespaces, Namespaces;
  unless --standalone, it keeps a peering object. Kopf posts no Events here: it turns log lines into
  core/v1 Events only with `settings.posting.loggers` (off by default; `posting.level` alone does not),
  and no handler calls `kopf.event()`;
- the startup check (kube/preflight.py): lists CRDs, Builds, Workers and, for a warning only, Namespaces.

Not listed: discovery (/api, /apis), SelfSubjectAccessReviews and SelfSubjectReviews, which Kubernetes
grants every authenticated user (ClusterRoles system:discovery and system:basic-user).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from buildfarm import constants as c

Verb = Literal["get", "list", "watch", "create", "patch", "update", "delete"]

CORE: Final = ""
KOPF_GROUP: Final = "kopf.dev"


class When(Enum):
    """In which way of running the operator a permission is used."""

    ALWAYS = "always"
    SOME_NAMESPACES = "serving only some namespaces (-n)"
    PEERING_ALL_NAMESPACES = "peering (not --standalone), serving all namespaces"
    PEERING_SOME_NAMESPACES = "peering (not --standalone), serving only some namespaces"


@dataclass(frozen=True)
class Mode:
    """How the operator runs, as far as its rights are concerned."""

    standalone: bool = False
    namespaced: bool = False  # serves only the namespaces it was given (-n / BUILDFARM_NAMESPACES)

    def uses(self, when: When) -> bool:
        match when:
            case When.ALWAYS:
                return True
            case When.SOME_NAMESPACES:
                return self.namespaced
            case When.PEERING_ALL_NAMESPACES:
                return not self.standalone and not self.namespaced
            case When.PEERING_SOME_NAMESPACES:
                return not self.standalone and self.namespaced


@dataclass(frozen=True)
class Permission:
    """Some verbs on one resource (or subresource, `builds/status`) of one API group ("" is core)."""

    group: str
    resource: str
    verbs: tuple[Verb, ...]
    namespaced: bool  # the resource lives in namespaces: a Role in each served namespace can grant it
    why: str
    when: When = When.ALWAYS
    # The operator works without it, only less well, so the startup check does not demand it.
    optional: bool = False
    # Used only while this CRD is installed (kopf skips peering without it); the check then skips it too.
    only_with_crd: str | None = None
    # Used only in the farm namespace (BUILDFARM_FARM_NAMESPACE), whichever namespaces are served.
    in_farm_namespace: bool = False

    @property
    def base(self) -> str:
        """The resource without its subresource: `builds` for `builds/status`."""
        return self.resource.split("/", 1)[0]

    @property
    def subresource(self) -> str:
        return self.resource.split("/", 1)[1] if "/" in self.resource else ""

    @property
    def name(self) -> str:
        """As kubectl spells it: `builds.buildfarm.dev/status`, `secrets`, `events.events.k8s.io`."""
        qualified = f"{self.base}.{self.group}" if self.group else self.base
        return f"{qualified}/{self.subresource}" if self.subresource else qualified


PERMISSIONS: Final[tuple[Permission, ...]] = (
    Permission(
        c.GROUP,
        c.BUILD_PLURAL,
        ("get", "list", "watch", "patch", "delete"),
        namespaced=True,
        why="kopf watches Builds and patches its bookkeeping annotations onto them; "
        "the scheduler lists Builds, reads single ones back, and deletes those past "
        "ttlSecondsAfterFinished",
    ),
    Permission(
        c.GROUP,
        f"{c.BUILD_PLURAL}/status",
        ("patch",),
        namespaced=True,
        why="the operator writes a Build's phase, wait reason and assignment",
    ),
    Permission(
        c.GROUP,
        c.WORKER_PLURAL,
        ("get", "list", "watch"),
        namespaced=False,
        why="kopf watches Workers; the scheduler lists them and reads one back before reserving a slot",
    ),
    Permission(
        c.GROUP,
        f"{c.WORKER_PLURAL}/status",
        ("patch",),
        namespaced=False,
        why="the operator reserves and releases build slots in a Worker's status",
    ),
    Permission(
        "coordination.k8s.io",
        "leases",
        ("list",),
        namespaced=True,
        in_farm_namespace=True,
        why="the health monitor reads the worker agents' heartbeat Leases to set each Worker's Ready",
    ),
    Permission(
        CORE,
        "secrets",
        ("get",),
        namespaced=True,
        why="admission checks that a Build's credentials Secret exists (reads its metadata, never its data)",
    ),
    Permission(
        CORE,
        "events",
        ("create",),
        namespaced=True,
        why="the operator records Events about Builds (queued, waiting, assigned, failed)",
    ),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        namespaced=False,
        why="the startup check reads the buildfarm CRDs; kopf watches CRDs to notice changed resources",
    ),
    Permission(
        CORE,
        "namespaces",
        ("list", "watch"),
        namespaced=False,
        when=When.SOME_NAMESPACES,
        optional=True,
        why="kopf watches Namespaces to serve a listed one once it is created (without: it assumes they "
        "exist and logs a warning); the startup check warns about a listed one that does not exist",
    ),
    Permission(
        KOPF_GROUP,
        "clusterkopfpeerings",
        ("list", "watch", "patch"),
        namespaced=False,
        when=When.PEERING_ALL_NAMESPACES,
        only_with_crd=f"clusterkopfpeerings.{KOPF_GROUP}",
        why="kopf's peering: operator replicas see each other and all but one pause",
    ),
    Permission(
        KOPF_GROUP,
        "kopfpeerings",
        ("list", "watch", "patch"),
        namespaced=True,
        when=When.PEERING_SOME_NAMESPACES,
        only_with_crd=f"kopfpeerings.{KOPF_GROUP}",
        why="kopf's peering in each served namespace: operator replicas see each other and all but one pause",
    ),
)


# The artifact service (`buildfarm artifacts serve`, its own ServiceAccount): reads only. The chart renders
# these rows as the service's ClusterRole (files/artifacts-permissions.yaml); it never writes to the API
# (retention sweeps storage by uid instead of holding a finalizer, see artifacts/retention.py).
ARTIFACT_SERVICE_PERMISSIONS: Final[tuple[Permission, ...]] = (
    Permission(
        "authentication.k8s.io",
        "tokenreviews",
        ("create",),
        namespaced=False,
        why="the service asks the API server whose Bearer token a request carries",
    ),
    Permission(
        "authorization.k8s.io",
        "subjectaccessreviews",
        ("create",),
        namespaced=False,
        why="the service asks the API server whether a user may create builds, get builds/artifacts or "
        "get builds/log",
    ),
    Permission(
        c.GROUP,
        c.BUILD_PLURAL,
        ("get", "list"),
        namespaced=True,
        why="the service reads a Build's uid, worker, attempt and phase on each request, and lists all "
        "Builds to delete the files of deleted ones",
    ),
    Permission(
        CORE,
        "secrets",
        ("get",),
        namespaced=True,
        why="the service hands a Build's credentials Secret (spec.credentials.secretName) to its assigned "
        "agent, and stores or logs nothing of it",
    ),
    Permission(
        CORE,
        "configmaps",
        ("get",),
        namespaced=True,
        optional=True,
        why="in kube-system only: the service reads the client CA of extension-apiserver-authentication to "
        "accept client certificates (bind the built-in Role extension-apiserver-authentication-reader); "
        "without it only Bearer tokens are accepted",
    ),
)


def needed(mode: Mode, *, optional: bool = True) -> tuple[Permission, ...]:
    """The permissions the operator uses when it runs in `mode`; without `optional`, only those it needs."""
    return tuple(p for p in PERMISSIONS if mode.uses(p.when) and (optional or not p.optional))


def describe(permissions: Iterable[Permission]) -> str:
    """A short list, e.g. `get/list/watch/patch builds.buildfarm.dev, patch builds.buildfarm.dev/status`."""
    return ", ".join(
        f"{'/'.join(p.verbs)} {p.name}{' (if installed)' if p.only_with_crd else ''}"
        f"{' (in the farm namespace)' if p.in_farm_namespace else ''}"
        for p in permissions
    )


def hint(mode: Mode) -> str:
    """One line: every permission the operator needs in `mode`, for error messages."""
    return f"grant the operator {describe(needed(mode, optional=False))}"


def cluster_role_rules(mode: Mode, *, optional: bool = True) -> list[dict[str, list[str]]]:
    """The `rules:` of a ClusterRole with the permissions of `mode`, one rule per permission, in table order.

    With `optional` (the default), the rules the operator works without are included too.
    """
    return rules(needed(mode, optional=optional))


def rules(permissions: Iterable[Permission]) -> list[dict[str, list[str]]]:
    """Kubernetes PolicyRules (`apiGroups`, `resources`, `verbs`) granting exactly `permissions`."""
    return [{"apiGroups": [p.group], "resources": [p.resource], "verbs": list(p.verbs)} for p in permissions]
