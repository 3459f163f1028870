"""k8s/components/monitoring: every alert and dashboard query names metrics that exist, and
every alert has its runbook section."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deploy.deployfiles import ROOT, hookstream_metrics, of_kind, with_components

RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_PREFIX = "https://hookstream.invalid/docs/runbook.md#"

#: Metrics the queries may use that hookstream does not define, by who exports them.
EXTERNAL_METRICS = {
    # kafka_exporter (Strimzi's Kafka Exporter): consumer group lag per partition.
    "kafka_consumergroup_lag",
    # kube-state-metrics: restarts, why a container last stopped, its resource limits.
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_last_terminated_reason",
    "kube_pod_container_resource_limits",
    # cAdvisor, in the kubelet: a container's memory.
    "container_memory_working_set_bytes",
}

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, labels, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end() :].lstrip()
        if after.startswith("(") or match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def _known() -> set[str]:
    known = set(EXTERNAL_METRICS)
    for name, kind in hookstream_metrics().items():
        known.add(name)
        if kind == "histogram":
            known |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return known


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m]))) / on (pod) '
        "group_left sum(b) > 0"
    )
    assert metric_names(expr) == {"a_bucket", "b"}


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return with_components(tmp_path_factory.mktemp("monitoring"), "monitoring")


def _rules(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (rule,) = of_kind(objects, "PrometheusRule").values()
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config_map = of_kind(objects, "ConfigMap")["hookstream-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard: dict[str, Any] = json.loads(config_map["data"]["hookstream.json"])
    return dashboard


def test_every_query_reads_metrics_that_exist(monitoring: list[dict[str, Any]]) -> None:
    known = _known()
    exprs = [rule["expr"] for rule in _rules(monitoring)]
    exprs += [t["expr"] for panel in _dashboard(monitoring)["panels"] for t in panel["targets"]]
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, (expr, names - known)
        used |= names
    # The dashboard shows every metric hookstream defines.
    assert set(hookstream_metrics()) <= {re.sub(r"_bucket$", "", name) for name in used}


def test_the_alerts_cover_what_the_issue_asks(monitoring: list[dict[str, Any]]) -> None:
    exprs = " ".join(rule["expr"] for rule in _rules(monitoring))
    for metric in (
        "kafka_consumergroup_lag",
        "hookstream_deliveries_total",
        "hookstream_deactivations_total",
        "hookstream_dead_letters_total",
        "hookstream_unreadable_batches_total",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_status_last_terminated_reason",
    ):
        assert metric in exprs, metric


def _anchors(markdown: str) -> dict[str, str]:
    """Section heading -> its anchor, as GitHub and most renderers make them."""
    anchors = {}
    for heading in re.findall(r"^## (.+)$", markdown, re.M):
        anchors[heading] = re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
    return anchors


def test_every_alert_has_a_runbook_section_and_links_it(monitoring: list[dict[str, Any]]) -> None:
    anchors = _anchors(RUNBOOK.read_text())
    sections = re.split(r"^## ", RUNBOOK.read_text(), flags=re.M)
    alerts = [rule["alert"] for rule in _rules(monitoring)]
    assert len(alerts) == len(set(alerts))
    for rule in _rules(monitoring):
        name = rule["alert"]
        assert name in anchors, f"docs/runbook.md has no section `## {name}`"
        assert rule["annotations"]["runbook_url"] == RUNBOOK_PREFIX + anchors[name]
        (section,) = [s for s in sections if s.startswith(name + "\n")]
        for part in ("**What it means.**", "**What to check.**", "**What to do.**"):
            assert part in section, (name, part)
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    # No section for an alert that does not exist.
    assert set(anchors) == set(alerts)


def test_runbook_links_point_at_sections() -> None:
    text = RUNBOOK.read_text()
    anchors = set(_anchors(text).values())
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, target
    for document, anchor in re.findall(r"\]\(([\w.]+\.md)#([^)]+)\)", text):
        assert anchor in _anchors((RUNBOOK.parent / document).read_text()).values(), anchor
    for path in re.findall(r"`((?:k8s|docs)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path


def test_the_dashboard_is_valid_grafana_json(monitoring: list[dict[str, Any]]) -> None:
    dashboard = _dashboard(monitoring)
    assert dashboard["uid"] == "hookstream"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and panel["title"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
    assert Path(ROOT / "k8s/components/monitoring/dashboard.json").read_text().endswith("\n")
