"""The CRDs in crds/ are generated from the models, so models and schemas cannot drift apart."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from buildfarm.api.builds import PHASE_TRANSITIONS, BuildSpec, BuildStatus
from buildfarm.api.crds import rendered_crds
from buildfarm.api.workers import WorkerSpec, WorkerStatus

CRDS = Path(__file__).parents[2] / "crds"


@pytest.mark.parametrize("name", sorted(rendered_crds()))
def test_committed_crd_matches_the_models(name: str) -> None:
    committed = (CRDS / name).read_text()
    assert committed == rendered_crds()[name], "crds/ is stale: run `buildfarm dev crds`"


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += _walk(schema["items"], f"{path}[]")
    return found


def _schemas() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for text in rendered_crds().values():
        crd = yaml.safe_load(text)
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            out += _walk(root["properties"][part], f"{crd['spec']['names']['kind']}.{part}")
    return out


def test_every_field_has_a_description() -> None:
    missing = [path for path, schema in _schemas() if not schema.get("description") and "[]" not in path]
    assert missing == []


def test_schemas_are_structural() -> None:
    for path, schema in _schemas():
        assert "type" in schema, path
        assert not {"$ref", "anyOf", "title"} & schema.keys(), path


@pytest.mark.parametrize(
    ("kind", "part", "model"),
    [
        ("builds", "spec", BuildSpec),
        ("builds", "status", BuildStatus),
        ("workers", "spec", WorkerSpec),
        ("workers", "status", WorkerStatus),
    ],
)
def test_crd_fields_are_exactly_the_model_fields(kind: str, part: str, model: type[Any]) -> None:
    crd = yaml.safe_load(rendered_crds()[f"buildfarm.dev_{kind}.yaml"])
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][part]["properties"]
    aliases = {field.alias or name for name, field in model.model_fields.items()}
    assert set(props) == aliases


def _rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(schema.get("x-kubernetes-validations", []))
    for sub in schema.get("properties", {}).values():
        found += _rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _rules(schema[key])
    return found


def _root(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(rendered_crds()[f"buildfarm.dev_{kind}.yaml"])
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _unbounded(schema: dict[str, Any]) -> bool:
    match schema.get("type"):
        case "string":
            return not {"maxLength", "enum", "format"} & schema.keys()
        case "array":
            return "maxItems" not in schema
        case "object":
            return "additionalProperties" in schema and "maxProperties" not in schema
    return False


def test_every_string_list_and_map_is_bounded() -> None:
    """CEL cost is estimated from these bounds; an unbounded one makes the API server refuse the CRD."""
    unbounded = [path for path, schema in _schemas() if _unbounded(schema)]
    unbounded += [
        f"{path}{{}}"
        for path, schema in _schemas()
        if isinstance(schema.get("additionalProperties"), dict) and _unbounded(schema["additionalProperties"])
    ]
    assert unbounded == []


def test_the_phase_graph_is_generated_into_the_status_rules() -> None:
    rules = _root("builds")["properties"]["status"]["x-kubernetes-validations"]
    messages = [r["message"] for r in rules]
    for source, targets in PHASE_TRANSITIONS.items():
        if source is not None and targets:
            assert any(m.startswith(f"status.phase can go from {source.value} only to") for m in messages)
    assert "status.phase is final once Succeeded, Failed or Cancelled" in messages


def test_rules_on_objects_point_at_the_field_they_check() -> None:
    """A rule on an object reports at the object unless fieldPath says which field; the rules on strings
    are reported at the string itself."""
    root = _root("builds")
    for part in ("spec", "status"):
        for rule in root["properties"][part]["x-kubernetes-validations"]:
            assert rule.get("fieldPath"), rule["message"]
    for rule in root["x-kubernetes-validations"]:
        assert rule.get("fieldPath"), rule["message"]


def test_worker_crd_has_no_cel_rules() -> None:
    """Any CEL rule in a CRD makes the API server add '<nil>: ... some validation rules were not checked'
    to every enum, required or too-long error; the Worker needs none, so it uses patterns."""
    assert _rules(_root("workers")) == []
