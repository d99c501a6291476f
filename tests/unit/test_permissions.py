"""The permission table: which rows each way of running uses, and how they render for people and for RBAC."""

from typing import get_args

import pytest

from buildfarm.kube import permissions
from buildfarm.kube.permissions import PERMISSIONS, Mode, Verb

ALWAYS = [
    "builds.buildfarm.dev",
    "builds.buildfarm.dev/status",
    "workers.buildfarm.dev",
    "workers.buildfarm.dev/status",
    "leases.coordination.k8s.io",
    "secrets",
    "events",
    "customresourcedefinitions.apiextensions.k8s.io",
]


@pytest.mark.parametrize(
    ("mode", "want_needed", "want_optional"),
    [
        pytest.param(Mode(standalone=True), ALWAYS, [], id="standalone-all-namespaces"),
        pytest.param(Mode(standalone=True, namespaced=True), ALWAYS, ["namespaces"], id="standalone-some"),
        pytest.param(Mode(), [*ALWAYS, "clusterkopfpeerings.kopf.dev"], [], id="peering-all-namespaces"),
        pytest.param(
            Mode(namespaced=True), [*ALWAYS, "kopfpeerings.kopf.dev"], ["namespaces"], id="peering-some"
        ),
    ],
)
def test_rows_used_in_each_mode(mode: Mode, want_needed: list[str], want_optional: list[str]) -> None:
    assert [p.name for p in permissions.needed(mode, optional=False)] == want_needed
    assert [p.name for p in permissions.needed(mode) if p.optional] == want_optional


def test_hint_lists_every_needed_permission_on_one_line() -> None:
    assert permissions.hint(Mode(standalone=True)) == (
        "grant the operator get/list/watch/patch/delete builds.buildfarm.dev, "
        "patch builds.buildfarm.dev/status, "
        "get/list/watch workers.buildfarm.dev, patch workers.buildfarm.dev/status, "
        "list leases.coordination.k8s.io (in the farm namespace), get secrets, "
        "create events, "
        "list/watch customresourcedefinitions.apiextensions.k8s.io"
    )
    assert permissions.hint(Mode()).endswith(", list/watch/patch clusterkopfpeerings.kopf.dev (if installed)")


def test_cluster_role_rules_are_kubernetes_policy_rules() -> None:
    rules = permissions.cluster_role_rules(Mode(standalone=True, namespaced=True))
    assert rules[:2] == [
        {
            "apiGroups": ["buildfarm.dev"],
            "resources": ["builds"],
            "verbs": ["get", "list", "watch", "patch", "delete"],
        },
        {"apiGroups": ["buildfarm.dev"], "resources": ["builds/status"], "verbs": ["patch"]},
    ]
    assert rules[-1] == {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
    assert (
        permissions.cluster_role_rules(Mode(standalone=True, namespaced=True), optional=False) == rules[:-1]
    )


def test_table_is_well_formed() -> None:
    keys = [(p.group, p.resource) for p in PERMISSIONS]
    assert len(keys) == len(set(keys)), "one row per resource: merge the verbs"
    for p in PERMISSIONS:
        assert p.verbs, p
        assert set(p.verbs) <= set(get_args(Verb)), p
        assert len(set(p.verbs)) == len(p.verbs), p
        assert p.why, p
        assert p.resource == p.resource.lower(), p
        assert p.resource.count("/") <= 1, p
