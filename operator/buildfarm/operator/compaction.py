"""What the operator's cache keeps of each object, and how small. The cache holds every Build and Worker the
operator serves (10,000 builds is an ordinary farm), so each copy is trimmed before it is kept:

- metadata the operator never reads, but the API server sends with every object and that grows with each
  writer (managedFields, kubectl's copy of the whole applied object), is dropped;
- the status fields only the agent writes (AGENT_STATUS_FIELDS; a log tail alone can be 16 KiB) are dropped;
- what stays is shrunk in place, every value unchanged (`shrunk`).

None of this touches what is written back: status writes carry only the status, without the agent's fields.
"""

import sys
from typing import Any, TypeVar

from pydantic import BaseModel

from buildfarm.api.builds import AGENT_STATUS_FIELDS, Build
from buildfarm.api.meta import Resource

_HEAVY_METADATA = "managedFields"
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

R = TypeVar("R", bound=Resource)

# Per model class, the one set of field names all its cached instances share (see `shrunk`).
_FIELDS_SET: dict[type[BaseModel], set[str]] = {}


def compact(body: dict[str, Any]) -> dict[str, Any]:
    """A raw object without the metadata the operator never reads."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if _HEAVY_METADATA not in metadata and _LAST_APPLIED not in annotations:
        return body
    return {**body, "metadata": _compact_metadata(metadata)}


def without_agent_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A raw Build without the status fields only the agent writes."""
    status = body.get("status") or {}
    if not any(name in status for name in AGENT_STATUS_FIELDS):
        return body
    return {**body, "status": {k: v for k, v in status.items() if k not in AGENT_STATUS_FIELDS}}


def cached_build(build: Build) -> Build:
    """The copy of `build` the cache keeps (the build itself when there is nothing to drop), shrunk."""
    build = compacted(build)
    status = build.status
    if status.log_tail or status.artifacts:
        update = {"status": status.model_copy(update={"log_tail": "", "artifacts": []})}
        build = build.model_copy(update=update)
    return shrunk(build)


def cached(resource: R) -> R:
    """The copy of a Worker (or any resource) the cache keeps, shrunk."""
    return shrunk(compacted(resource))


def compacted(resource: R) -> R:
    metadata = resource.metadata
    if _HEAVY_METADATA not in metadata and _LAST_APPLIED not in (metadata.get("annotations") or {}):
        return resource
    return resource.model_copy(update={"metadata": _compact_metadata(metadata)})


def shrunk(model: R) -> R:
    """`model`, shrunk in place without changing any value, and returned.

    - pydantic keeps in every model the set of field names validation was given; at 5 to 10 models per
      object that was 40% of a cached Build. Nothing here reads it (no dump uses exclude_unset), so all
      models of a class share one set holding every field name: adding a name to it changes nothing, and
      model_copy copies it before it adds the names it updated.
    - Equal strings (reasons, messages, timestamps, namespaces, the keys of metadata) become one object.
    Values stay equal, so a caller that holds the same model (e.g. the answer to its own write) sees no
    change."""
    _shrink(model)
    return model


def _shrink(value: Any) -> Any:
    if isinstance(value, BaseModel):
        cls = type(value)
        shared = _FIELDS_SET.get(cls)
        if shared is None:
            shared = _FIELDS_SET.setdefault(cls, set(cls.model_fields))
        object.__setattr__(value, "__pydantic_fields_set__", shared)
        fields = value.__dict__
        for name, item in fields.items():
            fields[name] = _shrink(item)
        return value
    if type(value) is str:
        return sys.intern(value)
    if type(value) is list:
        for index, item in enumerate(value):
            value[index] = _shrink(item)
        return value
    if type(value) is dict:
        return {sys.intern(key) if type(key) is str else key: _shrink(item) for key, item in value.items()}
    return value


def _compact_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in metadata.items() if k != _HEAVY_METADATA}
    annotations = kept.get("annotations") or {}
    if _LAST_APPLIED in annotations:
        kept["annotations"] = {k: v for k, v in annotations.items() if k != _LAST_APPLIED}
    return kept
