"""The CRDs in crds/ are generated from the models, so models and schemas cannot drift apart."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from buildfarm.api.builds import BuildSpec, BuildStatus
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
