"""What a PromQL expression of the rules or the dashboard refers to, checked against the metrics tables
of docs/metrics.md: each metric exists, histograms are read through their series
(_bucket, _count, _sum) and nothing else is, and every label matched or grouped by is one the metrics
carry. A reading of the text, not a parser: promtool checks the syntax."""

import re
from typing import Final

from tests.support.metric_names import HISTOGRAM, HISTOGRAM_SUFFIXES, SCRAPE_LABELS, documented_metrics

_METRIC: Final = re.compile(r"\b(buildfarm_[a-z0-9_]+)\b(?:\s*\{([^}]*)\})?")
_GROUPING: Final = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER: Final = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_of(series: str) -> tuple[str, str]:
    """(metric name, suffix): buildfarm_x_seconds_bucket -> (buildfarm_x_seconds, _bucket)."""
    for suffix in HISTOGRAM_SUFFIXES:
        base = series.removesuffix(suffix)
        if base != series and documented_metrics().get(base, ("", frozenset()))[0] == HISTOGRAM:
            return base, suffix
    return series, ""


def problems(expr: str) -> list[str]:
    """What in `expr` is not in the metrics table; empty if all is."""
    metrics = documented_metrics()
    found: list[str] = []
    allowed_anywhere: set[str] = set(SCRAPE_LABELS)
    for match in _METRIC.finditer(expr):
        series, matchers = match[1], match[2] or ""
        name, suffix = metric_of(series)
        if name not in metrics:
            found.append(f"{series} is not a buildfarm metric")
            continue
        kind, labels = metrics[name]
        if kind == HISTOGRAM and not suffix:
            found.append(f"{series} is a histogram: read {series}_bucket, _count or _sum")
        allowed = labels | SCRAPE_LABELS | ({"le"} if suffix == "_bucket" else set())
        allowed_anywhere |= allowed
        for label in _MATCHER.findall(matchers):
            if label not in allowed:
                found.append(f"{series} has no label {label}")
    if not _METRIC.search(expr):
        found.append(f"{expr!r} reads no buildfarm metric")
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in allowed_anywhere:
                found.append(f"no metric of {expr!r} has the label {label} it groups by")
    return found
