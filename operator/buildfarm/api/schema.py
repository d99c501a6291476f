"""Turns a pydantic model's JSON Schema into a Kubernetes structural OpenAPI v3 schema.

Structural schemas allow no $ref, no anyOf-with-null and no titles, so references are inlined,
optionals become plain optional properties, and a field's own description wins over its type's docstring.
"""

from typing import Any

from pydantic import BaseModel

_DROPPED_KEYS = frozenset({"title", "$defs"})


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True)
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline $ref and collapse `anyOf: [X, null]` into X, keeping the field's own keys on top."""
    while True:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            own = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **own}
        elif "anyOf" in node:
            branches = [b for b in node["anyOf"] if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"cannot express anyOf with {len(branches)} non-null branches structurally")
            own = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**branches[0], **own}
        else:
            return node
