"""The Tiltfile, evaluated by a real Starlark interpreter (starlark-rust, through starlark-pyo3) with
recorded stand-ins for Tilt's built-ins: Tilt, Docker and kind cannot run here. `helm()` renders the chart
with the real helm, as Tilt does, so what the Tiltfile would deploy is the chart's real output.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import starlark as sl
import yaml

from tests.support.chart import Helm

ROOT = Path(__file__).resolve().parents[2]
TILTFILE = ROOT / "Tiltfile"


@dataclass
class Tilt:
    """What the Tiltfile asked Tilt to do."""

    helm: Helm
    context: str
    allowed: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    helm_calls: list[dict[str, Any]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    local: dict[str, dict[str, Any]] = field(default_factory=dict)

    # Stand-ins, named and shaped as Tilt's (https://docs.tilt.dev/api.html)

    def k8s_context(self) -> str:
        return self.context

    def allow_k8s_contexts(self, contexts: Any) -> None:
        self.allowed += [contexts] if isinstance(contexts, str) else list(contexts)

    def docker_build_with_restart(self, ref: str, context: str, **kwargs: Any) -> None:
        self.images.append({"ref": ref, "context": context, **kwargs})

    def sync(self, local_path: str, remote_path: str) -> dict[str, str]:
        return {"sync": local_path, "to": remote_path}

    def fall_back_on(self, files: list[str]) -> dict[str, list[str]]:
        return {"fall_back_on": list(files)}

    def namespace_create(self, name: str) -> None:
        self.namespaces.append(name)

    def helm_(self, chart: str, name: str = "", namespace: str = "", set: Any = ()) -> str:
        self.helm_calls.append({"chart": chart, "name": name, "namespace": namespace, "set": list(set)})
        # What Tilt runs: helm template --include-crds with the --set values.
        args = ["template", name, str(ROOT / chart), "--namespace", namespace, "--include-crds"]
        for value in set:
            args += ["--set", value]
        return self.helm.run(*args)

    def k8s_yaml(self, source: Any) -> None:
        text = source if "\n" in source else (ROOT / source).read_text()
        self.objects += [doc for doc in yaml.safe_load_all(text) if doc]

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        objects: Any = (),
        resource_deps: Any = (),
        labels: Any = (),
        port_forwards: Any = (),
    ) -> None:
        name = new_name or workload
        assert name not in self.resources, f"resource {name} declared twice"
        self.resources[name] = {
            "workload": workload,
            "objects": list(objects),
            "deps": list(resource_deps),
            "labels": list(labels),
            "port_forwards": list(port_forwards),
        }

    def local_resource(
        self,
        name: str,
        cmd: Any = None,
        serve_cmd: Any = None,
        deps: Any = (),
        resource_deps: Any = (),
        labels: Any = (),
        serve_env: Any = None,
    ) -> None:
        assert name not in self.local, f"local_resource {name} declared twice"
        self.local[name] = {
            "cmd": cmd,
            "serve_cmd": serve_cmd,
            "serve_env": dict(serve_env or {}),
            "deps": list(resource_deps),
            "labels": list(labels),
        }


def evaluate(helm: Helm, context: str = "kind-buildfarm") -> Tilt:
    tilt = Tilt(helm, context)
    module = sl.Module()
    for builtin in (
        "k8s_context",
        "allow_k8s_contexts",
        "sync",
        "fall_back_on",
        "namespace_create",
        "k8s_yaml",
        "k8s_resource",
        "local_resource",
    ):
        module.add_callable(builtin, getattr(tilt, builtin))
    module.add_callable("helm", tilt.helm_)

    def load(name: str) -> sl.FrozenModule:
        assert name == "ext://restart_process", f"the Tiltfile loads {name}, which has no stand-in"
        extension = sl.Module()
        extension.add_callable("docker_build_with_restart", tilt.docker_build_with_restart)
        return extension.freeze()

    ast = sl.parse("Tiltfile", TILTFILE.read_text(), sl.Dialect.extended())
    sl.eval(module, ast, sl.Globals.standard(), sl.FileLoader(load))
    return tilt


@pytest.fixture(scope="module")
def tilt(helm: Helm) -> Tilt:
    return evaluate(helm)


def selector(obj: dict[str, Any]) -> str:
    return f"{obj['metadata']['name']}:{obj['kind'].lower()}"


def test_only_kind_contexts_are_allowed(tilt: Tilt, helm: Helm) -> None:
    assert tilt.allowed == ["kind-buildfarm"]
    with pytest.raises(sl.StarlarkError, match="not a kind cluster"):
        evaluate(helm, context="gke_prod_europe-west1_main")


def test_image_is_built_from_the_dockerfile_with_live_update(tilt: Tilt) -> None:
    (image,) = tilt.images
    assert (image["ref"], image["context"], image["dockerfile"]) == ("buildfarm-operator", ".", "Dockerfile")
    assert (ROOT / image["dockerfile"]).is_file()
    for path in image["only"]:
        assert (ROOT / path).exists(), path
    assert image["entrypoint"] == ["buildfarm"]
    assert image["build_args"] == {"APP_OWNER": "10001"}  # the pod's user may write the synced code
    syncs = [step for step in image["live_update"] if "sync" in step]
    assert syncs == [
        {"sync": "operator/buildfarm", "to": "/opt/buildfarm/lib/python3.11/site-packages/buildfarm"}
    ]
    # The site-packages path is the base image's Python.
    assert "ARG PYTHON_IMAGE=python:3.11." in (ROOT / "Dockerfile").read_text()
    fallbacks = [step for step in image["live_update"] if "fall_back_on" in step]
    assert fallbacks == [{"fall_back_on": ["pyproject.toml", "hack/docker/requirements.txt"]}]


def test_deploys_the_chart_itself(tilt: Tilt) -> None:
    (call,) = tilt.helm_calls
    assert call["chart"] == "charts/buildfarm"
    assert (ROOT / call["chart"] / "Chart.yaml").is_file()
    assert tilt.namespaces == [call["namespace"]] == ["buildfarm-system"]
    (deployment,) = [
        o for o in tilt.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "buildfarm-operator"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "buildfarm-operator:dev"  # Tilt swaps in the image it built
    assert container["args"] == ["operator", "--standalone", "--verbose"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    kinds = {o["kind"] for o in tilt.objects}
    assert {"CustomResourceDefinition", "ValidatingAdmissionPolicy", "ClusterRole", "Build"} <= kinds


def services_of(objects: list[dict[str, Any]], workload: str) -> list[dict[str, Any]]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == workload]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return [o for o in objects if o["kind"] == "Service" and o["spec"]["selector"].items() <= labels.items()]


def test_every_object_belongs_to_one_resource(tilt: Tilt) -> None:
    """No object is left to Tilt's `uncategorized`, and every selector names an object deployed."""
    deployed = {selector(o) for o in tilt.objects}
    claimed: list[str] = []
    for name, resource in tilt.resources.items():
        if resource["workload"]:
            assert f"{resource['workload']}:deployment" in deployed, name
            claimed.append(f"{resource['workload']}:deployment")
            # Tilt groups a Service with the workload whose pods it selects.
            claimed += [selector(o) for o in services_of(tilt.objects, resource["workload"])]
        for wanted in resource["objects"]:
            assert wanted in deployed, f"{name} claims {wanted}, which is not deployed"
        claimed += resource["objects"]
    assert sorted(claimed) == sorted(deployed)


def test_dependencies_name_known_resources_without_cycles(tilt: Tilt) -> None:
    graph = {name: r["deps"] for name, r in {**tilt.resources, **tilt.local}.items()}
    for name, deps in graph.items():
        for dep in deps:
            assert dep in graph, f"{name} depends on unknown {dep}"
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
    assert graph["buildfarm-operator"] == ["buildfarm-crds", "buildfarm-rbac"]


def test_two_local_agents_with_their_own_identities(tilt: Tilt) -> None:
    from buildfarm.cli.agent import agent_command

    known = {opt for param in agent_command.params for opt in param.opts}
    agents = {name: r for name, r in tilt.local.items() if name.startswith("agent-")}
    assert len(agents) == 2
    for name, agent in agents.items():
        worker = name.removeprefix("agent-")
        command = agent["serve_cmd"]
        flags = dict(zip(command[2::2], command[3::2], strict=True))
        assert set(flags) <= known, f"not flags of `buildfarm agent`: {set(flags) - known}"
        assert command[:2] == [".venv/bin/buildfarm", "agent"]
        assert flags["--executor"] == "shell"
        assert flags["--worker-name"] == worker
        assert flags["--namespace"] == "buildfarm-system"
        identity = tilt.local[f"identity-{worker}"]
        assert f"worker add {worker} " in identity["cmd"]
        assert f"--output-kubeconfig {flags['--kubeconfig']}" in identity["cmd"]
        assert "--context kind-buildfarm" in identity["cmd"]
        assert agent["deps"] == [f"identity-{worker}", "buildfarm-operator", "artifacts-ca"]
        assert agent["serve_env"] == {
            "BUILDFARM_ARTIFACTS_URL": "https://localhost:8443",
            "BUILDFARM_ARTIFACTS_CA": ".tilt/artifacts-ca.crt",
        }
        assert (ROOT / flags["--command"].split()[1]).is_file(), "the fake eas build the agents run"


def test_sample_builds_are_valid_and_built_offline(tilt: Tilt) -> None:
    from buildfarm.api.builds import BuildSpec

    builds = [o for o in tilt.objects if o["kind"] == "Build"]
    assert {b["spec"]["platform"] for b in builds} == {"ios", "android"}
    for build in builds:
        spec = BuildSpec.model_validate(build["spec"])
        assert spec.source.archive is not None
        assert spec.source.archive.url.startswith("http://127.0.0.1:8765/")
    source = tilt.local["sample-source"]
    assert "--bind 127.0.0.1" in source["serve_cmd"]
    assert "8765" in source["serve_cmd"]
    assert "examples/sample-app" in source["cmd"]
    assert (ROOT / "examples" / "sample-app").is_dir()
