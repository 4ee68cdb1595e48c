"""The shipped monitoring (deploy/): Prometheus config and alert rules pass promtool and their
unit tests; the Grafana dashboard and the rules only use metrics the platform exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from tests.servers import ROOT

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "apigw-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "apigw-alerts.test.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "apigw-overview.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package 'prometheus'; `make system-deps` installs it)"
)
_METRIC = re.compile(r"\b(?:apigw|django)_[a-z0-9_]+\b")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=ROOT)


@needs_promtool
def test_the_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def alerts() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_the_alerts_the_operators_asked_for_exist_and_are_tested() -> None:
    asked = {
        "ApigwHigh5xxRatio",
        "ApigwP99LatencyHigh",
        "ApigwRedisUnreachable",
        "ApigwUpstreamAllTargetsDown",
        "ApigwPartnerNearMonthlyQuota",
        "ApigwInstanceNotScraped",
    }
    assert asked <= set(alerts())
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    assert tested == set(alerts()), "every alert has a test case in which it fires"


def exposed_metric_names() -> set[str]:
    """Every sample name /metrics can carry: the gateway's metrics and django-prometheus's."""
    import django_prometheus.middleware  # noqa: F401 - registers the Django-side metrics

    import proxy.gateway.metrics  # noqa: F401

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def test_the_rules_only_use_exposed_metrics() -> None:
    exposed = exposed_metric_names()
    for name, rule in alerts().items():
        assert set(_METRIC.findall(rule["expr"])) <= exposed, name


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_only_uses_exposed_metrics() -> None:
    exposed = exposed_metric_names()
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", ()):
            unknown = set(_METRIC.findall(target["expr"])) - exposed
            assert not unknown, f"panel {panel['title']!r} uses {unknown}"


def test_the_dashboard_shows_what_the_operators_watch() -> None:
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    assert {
        "Requests/s by route",
        "Error ratio",
        "Latency p50 / p95 / p99 by route",
        "Gateway overhead",
        "Rate-limited requests/s by partner",
        "Quota-exhausted requests/s by partner",
        "Target health (1 up, 0 down)",
        "Open WebSockets",
        "Redis errors/s by operation",
        "Config snapshot age by instance",
    } <= titles
    latency = next(p for p in panels if p["title"] == "Latency p50 / p95 / p99 by route")
    assert [t["expr"].split(",")[0] for t in latency["targets"]] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "apigw.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert sources[0]["type"] == "prometheus"
    assert yaml.safe_load(CONFIG.read_text())["rule_files"] == ["rules/*.yml"]
