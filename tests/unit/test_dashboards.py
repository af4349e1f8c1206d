"""Dashboards and alerts as code: the committed JSON and provisioning files are what the code builds (and the
chart's copies are current); every PromQL expression of the dashboards, the Prometheus rules and the Grafana
rules parses and names only declared metrics (or recorded series of the rule files); every dashboard and
Grafana rule group is accepted by grafana-foundation-sdk's schema types; the README's metrics table is current."""

import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RuleGroup
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import alerting, build
from ferry import metrics_catalog

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "dashboards" / "alerts").glob("*.yml"))


def _recorded() -> set[str]:
    return {r["record"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
            if "record" in r}


def _grafana_to_promql(expr: str) -> str:
    """Grafana's variables as Prometheus would see them after Grafana substitutes them."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def _names(expr: str) -> set[str]:
    found = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "dashboards" / "grafana").glob("*.json")):
        doc = json.loads(path.read_text())
        for p in doc["panels"]:
            out += [(f"{path.name}: {p['title']}", _grafana_to_promql(t["expr"])) for t in p.get("targets", [])]
        for v in doc["templating"]["list"]:
            if v["type"] == "query":  # label_values(<series selector>, label): the selector is PromQL
                inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", v["query"])
                assert inner, f"{path.name}: variable {v['name']}: {v['query']}"
                out.append((f"{path.name}: variable {v['name']}", _grafana_to_promql(inner.group(1))))
    return out


def _rule_queries() -> list[tuple[str, str]]:
    out = [(f"{f.name}: {r.get('alert') or r.get('record')}", r["expr"]) for f in RULE_FILES
           for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]
    out += [(f"grafana: {r['title']}", d["model"]["expr"]) for g in alerting.rule_groups() for r in g["rules"]
            for d in r["data"] if "expr" in d["model"]]
    return out


def test_committed_dashboards_and_provisioning_are_what_the_code_builds():
    assert build.stale() == [], "run `python -m dashboards.build` and commit the result"
    assert not alerting.stale(), "run `python -m dashboards.alerting` and commit the result"


def test_every_query_parses_and_names_only_declared_metrics():
    allowed = metrics_catalog.series_names() | _recorded()
    queries = _dashboard_queries() + _rule_queries()
    assert len(queries) > 60
    problems = []
    for where, expr in queries:
        try:
            names = _names(expr)
        except (ValueError, RuntimeError) as e:
            problems.append(f"{where}: does not parse: {e}")
            continue
        problems += [f"{where}: {n} is not declared" for n in sorted(names - allowed)]
    assert problems == []


def test_an_undeclared_metric_is_caught():
    assert _names('sum(rate(ferry_typo_total{a="b"}[5m])) / ferry_invocations_total') == {
        "ferry_typo_total", "ferry_invocations_total"}
    assert "ferry_typo_total" not in metrics_catalog.series_names()
    with pytest.raises(Exception):
        promql_parser.parse("sum(rate(ferry_invocations_total[5m])")


@pytest.mark.parametrize("uid", sorted(build.BOARDS))
def test_dashboards_fit_the_sdk_schema(uid):
    doc = build.dashboard_json(uid)
    back = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    assert back["uid"] == uid and back["title"] == doc["title"]
    assert [p["title"] for p in back["panels"]] == [p["title"] for p in doc["panels"]]
    assert all(p.get("targets") for p in doc["panels"] if p["type"] != "row"), "a panel without a query"
    assert {v["name"] for v in doc["templating"]["list"]} >= {"datasource"}


def test_grafana_rule_groups_fit_the_sdk_schema_and_cover_every_alert():
    groups = alerting.rule_groups()
    for g in groups:
        assert json.loads(json.dumps(RuleGroup.from_json(g), cls=JSONEncoder)) == g  # nothing unknown or lost
    titles = {r["title"] for g in groups for r in g["rules"]}
    alerts = {r["alert"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
              if "alert" in r}
    assert titles == alerts
    burn = next(r for g in groups for r in g["rules"] if r["title"] == "FerryErrorBudgetBurnFast")
    assert "ferry:" not in burn["data"][0]["model"]["expr"], "recording rules are inlined for Grafana"


def test_readme_metrics_table_is_current():
    text = (ROOT / "README.md").read_text()
    assert metrics_catalog.readme_with_table(text) == text, "run `python -m ferry.metrics_catalog`"
    assert len(metrics_catalog.all_metrics()) == text.count("\n| `ferry_")
