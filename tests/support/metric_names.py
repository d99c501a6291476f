"""The metrics the buildfarm exports, read from the tables of docs/metrics.md (the contract the
operator, the agent and the artifact service implement, held to the code by tests/unit/test_metrics.py):
each name's type and label names. The alert rules and the dashboard may use only these (tests/monitoring)."""

import re
from functools import cache
from typing import Final

from buildfarm.dev.binaries import repo_root

DOCS: Final = repo_root() / "docs" / "metrics.md"
HISTOGRAM: Final = "histogram"
TYPES: Final = frozenset({"counter", "gauge", HISTOGRAM})
# Labels Prometheus adds to every scraped series (`le` of histogram buckets is handled apart).
SCRAPE_LABELS: Final = frozenset({"instance", "job", "namespace", "pod", "service", "container", "endpoint"})
HISTOGRAM_SUFFIXES: Final = ("_bucket", "_count", "_sum")

_ROW: Final = re.compile(r"^\| `?(buildfarm_\w+)`? \| (\w+) \| ([^|]*) \|", re.MULTILINE)


@cache
def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names), from every table row of docs/metrics.md naming a metric."""
    metrics: dict[str, tuple[str, frozenset[str]]] = {}
    for name, kind, labels in _ROW.findall(DOCS.read_text()):
        assert kind in TYPES, f"docs/metrics.md: {name} has the unknown type {kind}"
        assert name not in metrics, f"docs/metrics.md lists {name} twice"
        names = frozenset(re.findall(r"[a-z_]+", labels))
        metrics[name] = (kind, names)
    assert metrics, "docs/metrics.md lists no metric"
    return metrics
