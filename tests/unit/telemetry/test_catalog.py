"""Every metric the code defines is in the tables of docs/metrics.md with the same type and labels, and
every row of those tables is defined: the contract the dashboard and alert rules are written against."""

import re
from pathlib import Path

from buildfarm.telemetry.catalog import DEFINED
from buildfarm.telemetry.exporter import registry_for

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
ROW = re.compile(r"^\| (buildfarm_\w+) \| (counter|gauge|histogram) \| ([^|]+) \|")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in DOCS.read_text().splitlines():
        if match := ROW.match(line):
            name, type_, labels = match.groups()
            listed = tuple(part.strip() for part in labels.split(",") if part.strip() not in ("", "-"))
            assert name not in rows or rows[name] == (type_, listed), (
                f"{name} is documented twice, differently"
            )
            rows[name] = (type_, listed)
    return rows


def test_the_code_defines_exactly_the_documented_metrics() -> None:
    defined = {d.name: (d.type, d.labels) for d in DEFINED}
    assert defined == documented()


def test_names_follow_prometheus_conventions() -> None:
    for d in DEFINED:
        assert d.name.startswith("buildfarm_"), d.name
        assert d.name.endswith("_total") == (d.type == "counter"), d.name
        if d.type == "histogram":
            assert d.name.endswith("_seconds"), d.name
        assert "name" not in d.labels, f"{d.name}: a build name is no label (unbounded)"
        assert d.help.strip(), f"{d.name} has no help text"


def test_each_process_exposes_its_own_metrics_and_the_api_clients() -> None:
    for component in ("operator", "agent", "artifacts"):
        exposed = {
            family.name + ("_total" if family.type == "counter" else "")
            for family in registry_for(component).collect()
            if family.name.startswith("buildfarm_")
        }
        want = {d.name for d in DEFINED if d.component in (component, "kube")}
        assert exposed == want, component
