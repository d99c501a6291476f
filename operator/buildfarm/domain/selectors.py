"""Kubernetes label-selector semantics, for matching Builds to Workers."""

from collections.abc import Mapping

from buildfarm.api.meta import LabelSelector, LabelSelectorRequirement


def matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """True when the labels satisfy the selector; an empty or absent selector matches everything."""
    if selector is None:
        return True
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    return all(_requirement_holds(req, labels) for req in selector.match_expressions)


def _requirement_holds(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    match req.operator:
        case "In":
            return labels.get(req.key) in req.values
        case "NotIn":
            return labels.get(req.key) not in req.values
        case "Exists":
            return req.key in labels
        case "DoesNotExist":
            return req.key not in labels


def describe(selector: LabelSelector | None) -> str:
    """A selector as kubectl would print it, for messages."""
    if selector is None:
        return ""
    parts = [f"{k}={v}" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        if req.operator in ("In", "NotIn"):
            parts.append(f"{req.key} {req.operator.lower()} ({','.join(req.values)})")
        else:
            parts.append(req.key if req.operator == "Exists" else f"!{req.key}")
    return ",".join(parts)
