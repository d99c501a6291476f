"""The alert rules: promtool accepts them, every alert has a unit test that fires it and one that does
not, and they read only the documented metrics and labels."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from buildfarm.dev.binaries import repo_root
from tests.monitoring.conftest import ALERT_TESTS, ALERTS, Promtool
from tests.monitoring.promql import problems

SEVERITIES = {"critical", "warning"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def alert_names() -> list[str]:
    return [rule["alert"] for rule in rules() if "alert" in rule]


def test_promtool_checks_the_rules(promtool: Promtool) -> None:
    result = promtool.run("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: Promtool) -> None:
    result = promtool.run("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails(promtool: Promtool, tmp_path: Path) -> None:
    """The unit tests can fail: an alert expected where the rules raise none is reported."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    tests["rule_files"] = [str(ALERTS)]
    case = tests["tests"][0]
    case["alert_rule_test"] = [
        {
            "eval_time": "35m",
            "alertname": "BuildfarmQueueStuck",
            "exp_alerts": [{"exp_labels": {"severity": "critical", "platform": "ios"}}],
        }
    ]
    tests["tests"] = [case]
    wrong = tmp_path / "wrong_test.yaml"
    wrong.write_text(yaml.safe_dump(tests))
    result = promtool.run("test", "rules", str(wrong))
    assert result.returncode != 0
    assert "BuildfarmQueueStuck" in result.stdout + result.stderr


def test_promtool_refuses_a_broken_rule(promtool: Promtool, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum by (platform"}]}]})
    )
    result = promtool.run("check", "rules", str(broken))
    assert result.returncode != 0


@pytest.mark.parametrize("alert", alert_names())
def test_each_alert_is_tested_firing_and_not_firing(alert: str) -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case.get("exp_alerts") for case in cases), f"no test where {alert} fires"
    assert any(not case.get("exp_alerts") for case in cases), f"no test where {alert} stays quiet"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule.get("alert") or rule.get("record"))
def test_each_alert_says_how_bad_what_and_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook"}
    anchor = f"docs/monitoring.md#{rule['alert'].lower()}"
    assert anchor in annotations["runbook"]
    docs = (repo_root() / "docs" / "monitoring.md").read_text()
    assert f"### {rule['alert']}\n" in docs, f"docs/monitoring.md has no section {rule['alert']}"


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule.get("alert") or rule.get("record"))
def test_rules_read_only_documented_metrics(rule: dict[str, Any]) -> None:
    assert problems(rule["expr"]) == []


def test_the_reference_check_catches_mistakes() -> None:
    assert problems("sum by (platform) (buildfarm_pending_builds)") == []
    assert problems("buildfarm_pending_build") == ["buildfarm_pending_build is not a buildfarm metric"]
    assert problems('buildfarm_workers{phase="x"}') == ["buildfarm_workers has no label phase"]
    assert problems("rate(buildfarm_build_queue_wait_seconds[5m])") == [
        "buildfarm_build_queue_wait_seconds is a histogram: read buildfarm_build_queue_wait_seconds_bucket, "
        "_count or _sum"
    ]
    assert problems("sum by (build) (buildfarm_workers)") == [
        "no metric of 'sum by (build) (buildfarm_workers)' has the label build it groups by"
    ]
