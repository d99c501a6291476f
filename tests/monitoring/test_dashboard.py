"""The Grafana dashboard: its queries read only documented metrics and labels, promtool parses each
one, and it has the panels and variables docs/monitoring.md describes."""

import json
import re
from pathlib import Path
from typing import Any, Final

import yaml

from buildfarm.dev.binaries import repo_root
from tests.monitoring.conftest import DASHBOARD, Promtool
from tests.monitoring.promql import problems

# What Grafana puts in place of its variables before it sends a query.
GRAFANA_VARIABLES: Final = {
    "$__rate_interval": "2m",
    "$__interval": "1m",
    "$__range": "6h",
    "$platform": ".*",
    "$worker": ".*",
}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    found = [(f"panel {p['title']!r} {t['refId']}", t["expr"]) for p in panels() for t in p["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            (inner,) = re.fullmatch(r"label_values\((.+), *\w+\)", query).groups()  # type: ignore[union-attr]
            found.append((f"variable {variable['name']}", inner))
    return found


def substituted(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_queries_read_only_documented_metrics() -> None:
    found = {where: problems(expr) for where, expr in queries()}
    assert {where: p for where, p in found.items() if p} == {}


def test_promtool_parses_every_query(promtool: Promtool, tmp_path: Path) -> None:
    """Each query, its Grafana variables filled in as Grafana would, as a recording rule: promtool
    parses the PromQL (a typo or a wrong function fails here)."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substituted(expr)} for i, (_, expr) in enumerate(queries())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool.run("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_variables_and_panels() -> None:
    board = dashboard()
    assert board["uid"] == "buildfarm"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"datasource", "platform", "worker"}
    assert variables["worker"]["query"]["query"] == "label_values(buildfarm_worker_ready, worker)"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels()}
    assert "buildfarm_pending_builds" in exprs["Queue depth by wait reason"]
    assert exprs["Queue wait time percentiles"].count("histogram_quantile(") == 3
    assert "buildfarm_build_queue_wait_seconds_bucket" in exprs["Queue wait time percentiles"]
    assert "buildfarm_worker_busy_slots" in exprs["Farm utilisation"]
    assert "buildfarm_worker_capacity_slots" in exprs["Farm utilisation"]
    assert 'result="Failed"' in exprs["Failures by reason"]
    assert "sum by (reason)" in exprs["Failures by reason"]
    per_worker = [title for title, expr in exprs.items() if '{worker=~"$worker"}' in expr]
    assert len(per_worker) >= 3, per_worker


def test_docs_describe_every_panel() -> None:
    docs = (repo_root() / "docs" / "monitoring.md").read_text()
    missing = [p["title"] for p in panels() if f"**{p['title']}**" not in docs]
    assert missing == []
