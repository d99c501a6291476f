"""The chart's monitoring parts: the operator's metrics port and Service, and the optional
ServiceMonitor, PrometheusRule and Grafana dashboard ConfigMap, each on and off."""

import json
from typing import Any

import pytest
import yaml

from tests.chart.test_template import env, operator_container
from tests.support.chart import CHART, Helm, HelmFailed, find, kinds

MONITORING = CHART / "files" / "monitoring"
OPTIONAL = [
    ("ServiceMonitor", "buildfarm-operator"),
    ("PrometheusRule", "buildfarm"),
    ("ConfigMap", "buildfarm-dashboard"),
]


def test_metrics_are_served_by_default(helm: Helm) -> None:
    objects = helm.template()
    container = operator_container(objects)
    assert env(container)["BUILDFARM_METRICS_PORT"] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    service = find(objects, "Service", "buildfarm-operator-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    # The Service selects the operator pods, and nothing else.
    pod_labels = find(objects, "Deployment", "buildfarm-operator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    # The optional parts are off unless asked for.
    assert not set(OPTIONAL) & set(kinds(objects))


def test_metrics_off(helm: Helm) -> None:
    objects = helm.template({"metrics.enabled": False, "metrics.serviceMonitor.enabled": True})
    container = operator_container(objects)
    assert env(container)["BUILDFARM_METRICS_PORT"] == "0"
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert ("Service", "buildfarm-operator-metrics") not in kinds(objects)
    assert "ServiceMonitor" not in [o["kind"] for o in objects]  # nothing to scrape


def test_metrics_port(helm: Helm) -> None:
    objects = helm.template(
        {"metrics.port": 9300, "metrics.service.annotations": {"prometheus.io/scrape": "true"}}
    )
    assert env(operator_container(objects))["BUILDFARM_METRICS_PORT"] == "9300"
    service = find(objects, "Service", "buildfarm-operator-metrics")
    assert service["spec"]["ports"][0]["port"] == 9300
    assert service["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    with pytest.raises(HelmFailed) as clash:
        helm.template({"metrics.port": 8080})
    assert "metrics.port and operator.healthPort are both 8080" in clash.value.stderr


def test_service_monitor(helm: Helm) -> None:
    objects = helm.template(
        {
            "metrics.serviceMonitor.enabled": True,
            "metrics.serviceMonitor.labels": {"release": "kube-prometheus-stack"},
            "metrics.serviceMonitor.interval": "15s",
            "metrics.serviceMonitor.scrapeTimeout": "10s",
        },
        namespace="ops",
    )
    monitor = find(objects, "ServiceMonitor", "buildfarm-operator")
    service = find(objects, "Service", "buildfarm-operator-metrics")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "ops"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ops"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    # Only one Service carries the labels it selects.
    selected = [
        o
        for o in objects
        if o["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()
    ]
    assert selected == [service]


def test_prometheus_rule_ships_the_alerts_as_they_are(helm: Helm) -> None:
    objects = helm.template(
        {"metrics.prometheusRule.enabled": True, "metrics.prometheusRule.labels": {"release": "kps"}}
    )
    rule = find(objects, "PrometheusRule", "buildfarm")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["labels"]["app.kubernetes.io/name"] == "buildfarm"
    # Exactly the groups of alerts.yaml, with their {{ $labels.x }} templates untouched by helm.
    assert rule["spec"] == {"groups": yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"]}
    summaries = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels.platform }}" in s for s in summaries)


def test_dashboard_config_map(helm: Helm) -> None:
    objects = helm.template({"metrics.dashboard.enabled": True})
    config_map = find(objects, "ConfigMap", "buildfarm-dashboard")
    assert config_map["metadata"]["namespace"] == "buildfarm-system"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["buildfarm.json"]) == json.loads(
        (MONITORING / "dashboard.json").read_text()
    )

    elsewhere = helm.template(
        {
            "metrics.dashboard.enabled": True,
            "metrics.dashboard.namespace": "monitoring",
            "metrics.dashboard.labels": {"dashboards": "buildfarm"},
            "metrics.dashboard.annotations": {"grafana_folder": "CI"},
        }
    )
    config_map = find(elsewhere, "ConfigMap", "buildfarm-dashboard")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["dashboards"] == "buildfarm"
    # Helm merges maps with the defaults: the sidecar's default label stays unless set to null.
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "CI"}


def test_everything_on_lints(helm: Helm, tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "metrics": {
                    "serviceMonitor": {"enabled": True},
                    "prometheusRule": {"enabled": True},
                    "dashboard": {"enabled": True},
                }
            }
        )
    )
    out = helm.run("lint", "--strict", str(CHART), "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert set(OPTIONAL) <= set(
        kinds(
            helm.template(
                {
                    "metrics.serviceMonitor.enabled": True,
                    "metrics.prometheusRule.enabled": True,
                    "metrics.dashboard.enabled": True,
                }
            )
        )
    )


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param({"metrics.port": 80}, "port", id="privileged-port"),
        pytest.param({"metrics.enabled": "yes"}, "enabled", id="not-a-boolean"),
        pytest.param({"metrics.serviceMonitor.interval": "soon"}, "interval", id="bad-interval"),
        pytest.param({"metrics.serviceMonitor.enable": True}, "enable", id="misspelt-key"),
        pytest.param({"metrics.prometheusRule.labels": {"release": 1}}, "release", id="label-not-a-string"),
        pytest.param({"metrics.dashboard.namespace": "Monitoring"}, "namespace", id="bad-namespace"),
    ],
)
def test_schema_refuses_bad_metrics_values(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmFailed) as refused:
        helm.template(values)
    assert "values don't meet the specifications of the schema" in refused.value.stderr
    assert complaint in refused.value.stderr
