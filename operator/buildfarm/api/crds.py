"""The CustomResourceDefinitions of buildfarm, generated from the API models (the one source).

`buildfarm dev crds` writes them to crds/; a test fails when the committed files drift from the models.
"""

from typing import Any

import yaml
from pydantic import BaseModel

from buildfarm import constants as c
from buildfarm.api.builds import BUILD_RULES, BUILD_SPEC_RULES, BUILD_STATUS_RULES, BuildSpec, BuildStatus
from buildfarm.api.schema import structural_schema
from buildfarm.api.workers import WorkerSpec, WorkerStatus

HEADER = "# Generated from operator/buildfarm/api by `buildfarm dev crds`; do not edit by hand.\n"


def _root_schema(
    description: str, spec: type[BaseModel], status: type[BaseModel], rules: list[dict[str, Any]]
) -> dict[str, Any]:
    spec_schema = structural_schema(spec)
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The versioned schema of this object."},
            "kind": {"type": "string", "description": "The REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": structural_schema(status),
        },
        **({"x-kubernetes-validations": rules} if rules else {}),
    }


def _crd(
    *,
    kind: str,
    plural: str,
    scope: str,
    short_names: tuple[str, ...],
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    selectable_fields: list[str],
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": c.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
        "additionalPrinterColumns": columns,
    }
    if selectable_fields:
        version["selectableFields"] = [{"jsonPath": path} for path in selectable_fields]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{c.GROUP}",
            "labels": {"app.kubernetes.io/name": "buildfarm", "app.kubernetes.io/part-of": "buildfarm"},
        },
        "spec": {
            "group": c.GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(short_names),
                "categories": [c.CATEGORY],
            },
            "versions": [version],
        },
    }


def build_crd() -> dict[str, Any]:
    schema = _root_schema(
        "A Build is one build of an Expo / React Native app for one platform, queued by the operator "
        "and run by a worker agent.",
        BuildSpec,
        BuildStatus,
        BUILD_RULES,
    )
    schema["properties"]["spec"]["x-kubernetes-validations"] = BUILD_SPEC_RULES
    schema["properties"]["status"]["x-kubernetes-validations"] = BUILD_STATUS_RULES
    return _crd(
        kind=c.BUILD_KIND,
        plural=c.BUILD_PLURAL,
        scope="Namespaced",
        short_names=c.BUILD_SHORT_NAMES,
        schema=schema,
        columns=[
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Platform", "type": "string", "jsonPath": ".spec.platform"},
            {"name": "Worker", "type": "string", "jsonPath": ".status.workerName"},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt"},
            {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority", "priority": 1},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        selectable_fields=[f".{c.BUILD_WORKER_FIELD}", ".spec.platform"],
    )


def worker_crd() -> dict[str, Any]:
    schema = _root_schema(
        "A Worker is a build machine (usually a Mac outside the cluster) whose agent runs Builds.",
        WorkerSpec,
        WorkerStatus,
        [],
    )
    return _crd(
        kind=c.WORKER_KIND,
        plural=c.WORKER_PLURAL,
        scope="Cluster",
        short_names=c.WORKER_SHORT_NAMES,
        schema=schema,
        columns=[
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Platforms", "type": "string", "jsonPath": ".spec.platforms"},
            {"name": "Capacity", "type": "integer", "jsonPath": ".spec.capacity"},
            {"name": "Active", "type": "integer", "jsonPath": ".status.activeBuilds"},
            {"name": "Cordoned", "type": "boolean", "jsonPath": ".spec.unschedulable"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        selectable_fields=[],
    )


def rendered_crds() -> dict[str, str]:
    """File name in crds/ -> YAML text."""
    return {
        f"{c.GROUP}_{crd['spec']['names']['plural']}.yaml": HEADER + yaml.safe_dump(crd, sort_keys=False)
        for crd in (build_crd(), worker_crd())
    }
