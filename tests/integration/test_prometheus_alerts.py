"""A real Prometheus server scraping a running Ferry and evaluating dashboards/alerts: Ferry's series exist
through Prometheus's query API with the counts sent, and FerryErrorBudgetBurnFast reaches firing after injected
model failures (424) on one endpoint, not on an endpoint that only answered well."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.prometheus_server import prometheus_server

ROOT = Path(__file__).resolve().parents[2]


def _fast_rules(tmp_path: Path) -> Path:
    """serving.yml as shipped but with `for:` of 1 s, so that an alert fires within the test's seconds."""
    text = (ROOT / "dashboards" / "alerts" / "serving.yml").read_text()
    out = tmp_path / "serving-fast.yml"
    out.write_text("\n".join(ln.split("for:")[0] + "for: 1s" if ln.strip().startswith("for:") else ln
                             for ln in text.splitlines()) + "\n")
    return out


def test_series_reach_prometheus_and_the_error_budget_alert_fires(ferry_url, tmp_path):
    target = ferry_url.removeprefix("http://")
    with prometheus_server(tmp_path / "prom", {"ferry": [target]}, [_fast_rules(tmp_path)]) as prom:
        prom.wait_for(lambda: prom.value('up{job="ferry"}') == 1.0, 30, "the ferry target up")
        before = prom.value('sum(ferry_invocations_total{endpoint="fragile"})') or 0.0
        good = prom.value('sum(ferry_invocations_total{endpoint="credit-risk"})') or 0.0
        with httpx.Client(timeout=30) as c:
            for _ in range(30):  # Reshape of 1 row to [3, -1] fails in onnxruntime: 424 ModelError
                r = c.post(f"{ferry_url}/endpoints/fragile/invocations", content=json.dumps({"instances": [[1, 2, 3, 4]]}),
                           headers={"content-type": "application/json"})
                assert r.status_code == 424, r.text
            for _ in range(20):
                r = c.post(f"{ferry_url}/endpoints/credit-risk/invocations", content="35,50000,0.3,60,3,10000,1,0",
                           headers={"content-type": "text/csv"})
                assert r.status_code == 200, r.text

        prom.wait_for(lambda: prom.value('sum(ferry_invocations_total{endpoint="fragile"})') == before + 30, 30,
                      "30 more fragile requests counted")
        assert prom.value('sum(ferry_invocations_total{endpoint="fragile",code="424"})') >= 30
        assert prom.value('sum(ferry_invocation_errors_total{endpoint="fragile",error_type="ModelError"})') >= 30
        prom.wait_for(lambda: prom.value('sum(ferry_invocations_total{endpoint="credit-risk"})') == good + 20, 30,
                      "20 more credit-risk requests counted")
        assert prom.query('ferry_request_latency_seconds_bucket{endpoint="fragile",le="+Inf"}')

        def firing():
            return [a for a in prom.alerts() if a["labels"]["alertname"] == "FerryErrorBudgetBurnFast"
                    and a["state"] == "firing"]

        alerts = prom.wait_for(firing, 60, "FerryErrorBudgetBurnFast firing")
        assert {a["labels"]["endpoint"] for a in alerts} == {"fragile"}, alerts
        assert "failed (5xx or 424)" in alerts[0]["annotations"]["description"]
