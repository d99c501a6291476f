"""helm lint and helm template over the main combinations of values, and what each renders."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildfarm.api.workers import WorkerStatus
from buildfarm.dev.chart import documented_values, rendered_files, with_values_table
from buildfarm.kube.permissions import Mode, cluster_role_rules, needed, rules
from buildfarm.settings import OperatorSettings
from tests.support.chart import CHART, Helm, HelmFailed, find, kinds

CRD_DIR = CHART.parent.parent / "crds"


def operator_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator")
    ]
    return deployment


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = operator_deployment(objects)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def test_lint_is_clean(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_generated_files_match_their_sources() -> None:
    """The chart's copy of the CRDs and of the permission table is what `buildfarm dev crds` writes."""
    for relative, text in rendered_files(CHART).items():
        assert (CHART / relative).read_text() == text, f"{relative} drifted: run `buildfarm dev crds`"
    for crd in CRD_DIR.glob("*.yaml"):
        assert (CHART / "files" / "crds" / crd.name).read_text() == crd.read_text()


def test_defaults_render_every_part(helm: Helm) -> None:
    objects = helm.template()
    assert kinds(objects) == [
        ("ClusterKopfPeering", "buildfarm"),
        ("ClusterRole", "buildfarm-agent"),
        ("ClusterRole", "buildfarm-artifacts"),
        ("ClusterRole", "buildfarm-edit"),
        ("ClusterRole", "buildfarm-operator"),
        ("ClusterRole", "buildfarm-view"),
        ("ClusterRoleBinding", "buildfarm-artifacts"),
        ("ClusterRoleBinding", "buildfarm-operator"),
        ("ConfigMap", "buildfarm-artifacts-ca"),
        ("CustomResourceDefinition", "builds.buildfarm.dev"),
        ("CustomResourceDefinition", "clusterkopfpeerings.kopf.dev"),
        ("CustomResourceDefinition", "kopfpeerings.kopf.dev"),
        ("CustomResourceDefinition", "workers.buildfarm.dev"),
        ("Deployment", "buildfarm-artifacts"),
        ("Deployment", "buildfarm-operator"),
        ("PersistentVolumeClaim", "buildfarm-artifacts"),
        ("Role", "buildfarm-agent"),
        ("Role", "buildfarm-operator"),
        ("RoleBinding", "buildfarm-artifacts-authentication-reader"),
        ("RoleBinding", "buildfarm-operator"),
        ("Secret", "buildfarm-artifacts-tls"),
        ("Service", "buildfarm-artifacts"),
        ("ServiceAccount", "buildfarm-artifacts"),
        ("ServiceAccount", "buildfarm-operator"),
        ("ValidatingAdmissionPolicy", "buildfarm-agents"),
        ("ValidatingAdmissionPolicyBinding", "buildfarm-agents"),
    ]
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            labels = obj["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "buildfarm", obj["kind"]
            assert labels["app.kubernetes.io/instance"] == "buildfarm"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/version"] == "0.1.0"


def test_operator_pod_is_locked_down(helm: Helm) -> None:
    objects = helm.template()
    pod = operator_deployment(objects)["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is True
    assert all(o["automountServiceAccountToken"] is False for o in objects if o["kind"] == "ServiceAccount")
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert env(container)["BUILDFARM_LIVENESS_ENDPOINT"] == "http://0.0.0.0:8080/healthz"
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]


def farm_rows(mode: Mode, in_farm: bool) -> list[dict[str, list[str]]]:
    return rules(p for p in needed(mode) if p.in_farm_namespace == in_farm)


@pytest.mark.parametrize(
    ("values", "mode"),
    [
        pytest.param({}, Mode(), id="2-replicas-all-namespaces"),
        pytest.param({"operator.replicas": 1}, Mode(standalone=True), id="1-replica"),
        pytest.param(
            {"operator.namespaces": ["team-a", "team-b"]}, Mode(namespaced=True), id="2-replicas-some"
        ),
        pytest.param(
            {"operator.replicas": 1, "operator.namespaces": ["team-a"]},
            Mode(standalone=True, namespaced=True),
            id="1-replica-some",
        ),
    ],
)
def test_operator_rbac_is_the_permission_table(helm: Helm, values: dict[str, Any], mode: Mode) -> None:
    """The ClusterRole and the farm namespace's Role together grant exactly cluster_role_rules(mode)."""
    objects = helm.template(values)
    cluster_role = find(objects, "ClusterRole", "buildfarm-operator")
    role = find(objects, "Role", "buildfarm-operator")
    assert cluster_role["rules"] == farm_rows(mode, in_farm=False)
    assert role["rules"] == farm_rows(mode, in_farm=True)
    assert role["metadata"]["namespace"] == "buildfarm-system"
    # Together: the whole table for this mode, nothing more.
    together = cluster_role["rules"] + role["rules"]
    assert sorted(map(json.dumps, together)) == sorted(map(json.dumps, cluster_role_rules(mode)))
    args = operator_container(objects)["args"]
    assert ("--standalone" in args) is mode.standalone
    peerings = [o for o in objects if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    if mode.standalone:
        assert peerings == []
    elif mode.namespaced:
        assert sorted((o["kind"], o["metadata"]["namespace"]) for o in peerings) == [
            ("KopfPeering", "team-a"),
            ("KopfPeering", "team-b"),
        ]
        assert env(operator_container(objects))["BUILDFARM_NAMESPACES"] == "team-a,team-b"
    else:
        assert [o["kind"] for o in peerings] == ["ClusterKopfPeering"]


def test_no_wildcards_anywhere_in_rbac(helm: Helm) -> None:
    for obj in helm.template({"operator.namespaces": ["a"]}) + helm.template():
        for rule in obj.get("rules", []) if obj["kind"] in ("ClusterRole", "Role") else []:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (obj["metadata"]["name"], rule)


def test_user_roles_never_write_status(helm: Helm) -> None:
    objects = helm.template()
    view, edit = (
        find(objects, "ClusterRole", "buildfarm-view"),
        find(objects, "ClusterRole", "buildfarm-edit"),
    )
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert {v for r in view["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    assert [r["resources"] for r in edit["rules"]] == [["builds"], ["builds/log", "builds/artifacts"]]
    assert edit["rules"][1]["verbs"] == ["get"]
    assert {"create", "patch"} <= set(edit["rules"][0]["verbs"])
    off = helm.template({"rbac.aggregateToDefaultRoles": False})
    assert not any(
        k.startswith("rbac.authorization")
        for k in find(off, "ClusterRole", "buildfarm-edit")["metadata"]["labels"]
    )
    assert ("ClusterRole", "buildfarm-edit") not in kinds(helm.template({"rbac.userRoles": False}))


def crds_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "buildfarm.dev"
    }


@pytest.mark.parametrize(("install", "keep"), [(True, True), (True, False), (False, True)])
def test_crd_switches(helm: Helm, install: bool, keep: bool) -> None:
    crds = crds_of(helm.template({"crds.install": install, "crds.keep": keep}))
    if not install:
        assert crds == {}
        return
    sources = {
        d["metadata"]["name"]: d for p in CRD_DIR.glob("*.yaml") for d in yaml.safe_load_all(p.read_text())
    }
    assert set(crds) == set(sources)
    for name, crd in crds.items():
        annotations = crd["metadata"].pop("annotations", {})
        assert crd == sources[name], f"the chart's {name} differs from crds/"
        assert annotations == ({"helm.sh/resource-policy": "keep"} if keep else {})


def test_custom_names(helm: Helm) -> None:
    objects = helm.template(
        {"fullnameOverride": "farm", "farmNamespace.name": "macs", "operator.serviceAccount.name": "op"},
        release="rel",
        namespace="ops",
    )
    names = kinds(objects)
    for expected in [
        ("ClusterRole", "farm-operator"),
        ("ClusterRole", "farm-agent"),
        ("ClusterRole", "farm-view"),
        ("ValidatingAdmissionPolicy", "farm-agents"),
        ("Deployment", "farm-operator"),
        ("ServiceAccount", "op"),
        ("Namespace", "macs"),
    ]:
        assert expected in names
    policy = find(objects, "ValidatingAdmissionPolicy")
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        "request.userInfo.username.startsWith('system:serviceaccount:macs:worker-')"
    )
    assert find(objects, "Role", "farm-agent")["metadata"]["namespace"] == "macs"
    assert find(objects, "ClusterRoleBinding", "farm-operator")["subjects"] == [
        {"kind": "ServiceAccount", "name": "op", "namespace": "ops"}
    ]
    assert env(operator_container(objects))["BUILDFARM_FARM_NAMESPACE"] == "macs"


def test_farm_namespace_is_not_created_when_it_is_the_release_namespace(helm: Helm) -> None:
    assert "Namespace" not in [o["kind"] for o in helm.template()]
    assert "Namespace" in [o["kind"] for o in helm.template(namespace="ops")]
    assert "Namespace" not in [
        o["kind"] for o in helm.template({"farmNamespace.create": False}, namespace="ops")
    ]


def test_settings_become_environment_variables(helm: Helm) -> None:
    container = operator_container(
        helm.template({"operator.settings": {"resync_seconds": 15, "request_timeout": "20"}})
    )
    assert env(container)["BUILDFARM_RESYNC_SECONDS"] == "15"
    assert env(container)["BUILDFARM_REQUEST_TIMEOUT"] == "20"


def test_settings_keys_are_the_operator_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = schema["properties"]["operator"]["properties"]["settings"]["propertyNames"]["enum"]
    chart_owned = {
        "kubeconfig",
        "context",
        "namespaces",
        "standalone",
        "farm_namespace",
        "liveness_endpoint",
        "peering_name",
    }
    chart_owned |= {"metrics_port"}  # the chart's metrics Service and ServiceMonitor must agree with it
    secret = {"artifact_signing_key"}  # never a plain value: it will come from a Secret
    # One value for every replica would tie them, and kopf pauses every replica of a tie.
    per_replica = {"peering_priority"}
    assert sorted(allowed) == sorted(set(OperatorSettings.model_fields) - chart_owned - secret - per_replica)


def test_policy_guards_every_operator_field_of_worker_status() -> None:
    text = (CHART / "templates" / "agent-policy.yaml").read_text()
    (listed,) = re.findall(r'range \$field, \$absent := dict ((?:"[\w\[\]]+" ?)+)', text)
    fields = {f.alias or name for name, f in WorkerStatus.model_fields.items()}
    pairs = dict(re.findall(r'"(\w+)" "([^"]*)"', listed))
    assert sorted(pairs) == sorted(fields - {"capabilities"})


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param({"operator.replicas": 0}, "replicas", id="zero-replicas"),
        pytest.param({"operator.replicas": "2"}, "replicas", id="replicas-as-string"),
        pytest.param({"operator.replcas": 2}, "replcas", id="misspelt-key"),
        pytest.param({"crds.install": "yes"}, "install", id="not-a-boolean"),
        pytest.param({"image.pullPolicy": "Sometimes"}, "pullPolicy", id="bad-pull-policy"),
        pytest.param({"image.digest": "sha256:abc"}, "digest", id="short-digest"),
        pytest.param({"farmNamespace.name": "Build_Farm"}, "name", id="bad-namespace"),
        pytest.param({"operator.namespaces": ["ok", "NOT OK"]}, "namespaces", id="bad-served-namespace"),
        pytest.param({"operator.settings": {"resync_secs": 5}}, "resync_secs", id="unknown-setting"),
        pytest.param({"operator.settings": {"standalone": True}}, "standalone", id="chart-owned-setting"),
        pytest.param(
            {"operator.serviceAccount.name": "worker-op"}, "name", id="operator-named-like-an-agent"
        ),
        pytest.param({"operator.resources": {"requests": {"cpu": "lots"}}}, "cpu", id="bad-quantity"),
        pytest.param({"operator.healthPort": 80}, "healthPort", id="privileged-port"),
        pytest.param({"agentPolicy": {"enabled": True, "mode": "audit"}}, "mode", id="unknown-nested-key"),
    ],
)
def test_schema_refuses_bad_values(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmFailed) as refused:
        helm.template(values)
    assert "values don't meet the specifications of the schema" in refused.value.stderr
    assert complaint in refused.value.stderr


def test_notes_say_how_to_add_the_first_mac(helm: Helm, tmp_path: Path) -> None:
    notes = helm.notes(tmp_path)
    assert "buildfarm worker add mac-mini-1" in notes
    assert "--farm-namespace buildfarm-system --agent-role buildfarm-agent" in notes
    assert "BUILDFARM_ARTIFACTS_URL=https://buildfarm-artifacts.buildfarm-system.svc:8443" in notes
    assert "buildfarm submit" in notes
    assert "WARNING" in helm.notes(tmp_path, {"agentPolicy.enabled": False})


def test_readme_table_is_generated_from_values() -> None:
    readme = (CHART / "README.md").read_text()
    values = (CHART / "values.yaml").read_text()
    assert with_values_table(readme, values) == readme, "README.md is stale: run `buildfarm dev crds`"


def test_every_value_is_documented_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = {key for key, _, _ in documented_values(text)}

    def leaves(tree: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, value in tree.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value and path not in documented:
                out |= leaves(value, f"{path}.")
            else:
                out.add(path)
        return out

    assert leaves(yaml.safe_load(text)) <= documented

    def schema_paths(node: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for key, sub in node.get("properties", {}).items():
            out.add(f"{prefix}{key}")
            out |= schema_paths(sub, f"{prefix}{key}.")
        return out

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert documented <= schema_paths(schema)
