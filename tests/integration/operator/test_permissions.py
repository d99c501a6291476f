"""The permission table (buildfarm/kube/permissions.py) is complete and the startup check holds to it.

A real operator runs as a ServiceAccount granted exactly the table's ClusterRole, on an API server that
authorizes with RBAC: if the operator used anything the table lacks, a call would be refused ("forbidden"
in its log) or a build would not get through. And each needed row taken away is named by the startup check.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from buildfarm import constants as c
from buildfarm.kube import permissions
from buildfarm.kube.client import make_api_client, request_timeout
from buildfarm.kube.permissions import Mode, Permission
from buildfarm.kube.preflight import PreflightError, preflight
from buildfarm.settings import load_settings
from tests.support.farm import Farm, wait_for
from tests.support.identities import Identity, service_account
from tests.support.operators import operator_process

TIMEOUT = 10
FIX = (
    "grant this to the operator's credentials "
    "(RBAC: a ClusterRole, or a Role per served namespace, and a binding)"
)
# What a refused call or a degraded kopf writes into the operator's log.
REFUSALS = ("forbidden", "not enough permissions")


@pytest.fixture
def identity(
    api_client: client.ApiClient, kubeconfig: str, namespace: str, tmp_path: Path
) -> Iterator[Identity]:
    made = service_account(api_client, Path(kubeconfig), namespace, "operator", tmp_path)
    yield made
    made.cleanup()


def run_preflight(identity: Identity, namespaces: list[str], *, standalone: bool = True) -> list[str]:
    settings = load_settings(kubeconfig=identity.kubeconfig)
    with make_api_client(settings) as api_client:
        return preflight(api_client, request_timeout(settings), namespaces, standalone=standalone)


def preflight_error(identity: Identity, namespaces: list[str]) -> str | None:
    try:
        run_preflight(identity, namespaces)
    except PreflightError as error:
        return str(error)
    return None


def assigned(farm: Farm, build: str) -> str | None:
    status = farm.get_build(build).status
    return status.worker_name if status.phase is not None and status.phase.value == "Assigned" else None


def events_by(core: client.CoreV1Api, namespace: str, build: str) -> set[str]:
    """Who reported Events about `build` (reporting controller, or the source of a core/v1 Event)."""
    listed = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={build}", _request_timeout=TIMEOUT
    )
    return {(e.reporting_component or (e.source.component if e.source else None) or "") for e in listed.items}


@pytest.mark.parametrize("namespaced", [False, True], ids=["all-namespaces", "one-namespace"])
def test_the_table_is_all_the_operator_needs(
    identity: Identity,
    farm: Farm,
    core_v1: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
    namespaced: bool,
) -> None:
    rules = permissions.cluster_role_rules(Mode(standalone=True, namespaced=namespaced))
    identity.grant(rules)
    wait_for("the ClusterRole to take effect", lambda: identity.holds(rules))
    core_v1.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="signing"), string_data={"key": "x"}),
        _request_timeout=TIMEOUT,
    )
    worker = farm.worker("mac")
    args = ["-n", namespace] if namespaced else []
    log = tmp_path / "operator.log"

    with operator_process(identity.kubeconfig, log, *args) as proc:
        # Only this test's worker: serving all namespaces, the operator sees other tests' leftovers too.
        mine = {"matchLabels": {"buildfarm.dev/test": namespace}}
        signed = farm.build("signed", credentials={"secretName": "signing"}, workerSelector=mine)
        unsigned = farm.build("no-secret", credentials={"secretName": "missing"}, workerSelector=mine)
        wait_for("the signed build to be assigned", lambda: assigned(farm, signed) == worker, timeout=60)
        wait_for(
            "the build without its Secret to fail",
            lambda: (farm.get_build(unsigned).status.reason or "") == "CredentialsNotFound",
            timeout=60,
        )
        # The operator's Events got through (kopf posts none: settings.posting.loggers is off).
        wait_for(
            "an Event from the operator",
            lambda: f"{c.GROUP}/operator" in events_by(core_v1, namespace, unsigned),
            timeout=60,
        )
        assert proc.poll() is None, log.read_text()
    text = log.read_text()
    refused = [line for line in text.splitlines() if any(word in line.lower() for word in REFUSALS)]
    assert not refused, "\n".join(refused)
    assert farm.get_worker(worker).status.active_builds == 1


def needed_rows(mode: Mode) -> list[Permission]:
    return list(permissions.needed(mode, optional=False))


@pytest.mark.parametrize(
    "removed",
    needed_rows(Mode(standalone=True)),
    ids=[p.name for p in needed_rows(Mode(standalone=True))],
)
def test_preflight_names_the_one_missing_permission(identity: Identity, removed: Permission) -> None:
    mode = Mode(standalone=True)
    identity.grant(permissions.rules(p for p in permissions.needed(mode) if p != removed))
    where = (
        " in namespace buildfarm-system"
        if removed.in_farm_namespace
        else (" in all namespaces" if removed.namespaced else "")
    )
    want = f"{identity.user} may not {'/'.join(removed.verbs)} {removed.name}{where}: {FIX}"
    wait_for("preflight to name the missing permission", lambda: preflight_error(identity, []) == want)


def test_preflight_names_missing_permissions_per_namespace(
    identity: Identity, namespace: str, core_v1: client.CoreV1Api
) -> None:
    """Serving some namespaces, a Role in one of them is not enough: the other is named."""
    other = core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(generate_name="test-other-")),
        _request_timeout=TIMEOUT,
    ).metadata.name
    try:
        mode = Mode(standalone=True, namespaced=True)
        # Cluster-wide: what is not namespaced, and the Lease reads in the farm namespace (not served here).
        cluster_scoped = [p for p in permissions.needed(mode) if not p.namespaced or p.in_farm_namespace]
        identity.grant(permissions.rules(cluster_scoped))
        rbac = identity.rbac
        role = client.V1Role(
            metadata=client.V1ObjectMeta(name="operator"),
            rules=[
                client.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                for r in permissions.rules(p for p in permissions.needed(mode) if p not in cluster_scoped)
            ],
        )
        rbac.create_namespaced_role(namespace, role, _request_timeout=TIMEOUT)
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="operator"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="operator"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name=identity.name, namespace=namespace)
                ],
            ),
            _request_timeout=TIMEOUT,
        )
        missing = ", ".join(
            f"{'/'.join(p.verbs)} {p.name} in namespace {other}"
            for p in permissions.needed(mode, optional=False)
            if p.namespaced and not p.in_farm_namespace
        )
        want = f"{identity.user} may not {missing}: {FIX}"
        wait_for(
            "preflight to name the namespace without a Role",
            lambda: preflight_error(identity, [namespace, other]) == want,
        )
        wait_for(
            "preflight to pass in the namespace with a Role",
            lambda: preflight_error(identity, [namespace]) is None,
        )
    finally:
        core_v1.delete_namespace(other, _request_timeout=TIMEOUT)


def test_peering_permissions_are_demanded_only_with_kopfs_crds(
    identity: Identity, api_client: client.ApiClient
) -> None:
    """Without --standalone kopf peers, but only where its peering CRDs are installed. Whether they are
    depends on what ran before in this session (the chart's tests install them), so both cases are checked
    as they come."""
    mode = Mode(standalone=True)
    identity.grant(permissions.cluster_role_rules(mode))
    wait_for("the ClusterRole to take effect", lambda: identity.holds(permissions.cluster_role_rules(mode)))
    crds = client.ApiextensionsV1Api(api_client).list_custom_resource_definition(
        field_selector="metadata.name=clusterkopfpeerings.kopf.dev", _request_timeout=TIMEOUT
    )
    if not crds.items:
        assert run_preflight(identity, [], standalone=False) == []
    else:
        with pytest.raises(PreflightError, match=r"may not list/watch/patch clusterkopfpeerings\.kopf\.dev"):
            run_preflight(identity, [], standalone=False)


def test_absent_namespace_is_a_warning_only_when_namespaces_may_be_listed(
    identity: Identity, namespace: str
) -> None:
    mode = Mode(standalone=True, namespaced=True)
    absent = f"{namespace}-absent"
    identity.grant(permissions.cluster_role_rules(mode, optional=False))
    wait_for(
        "the ClusterRole to take effect",
        lambda: identity.holds(permissions.cluster_role_rules(mode, optional=False)),
    )
    # Listing namespaces is optional: without it the check is skipped, without a word.
    assert run_preflight(identity, [namespace, absent]) == []

    identity.grant(permissions.cluster_role_rules(mode))
    wait_for("the ClusterRole to take effect", lambda: identity.holds(permissions.cluster_role_rules(mode)))
    assert run_preflight(identity, [namespace, absent]) == [
        f"namespace {absent} does not exist: the operator serves it once created; "
        "check --namespace / BUILDFARM_NAMESPACES for a typo"
    ]
