"""Ferry overview: traffic, errors, latency percentiles, replicas and capture, per endpoint and variant."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import RATE, datasource_variable, graph, label_variable, single

UID = "ferry-overview"
S = 'endpoint=~"$endpoint",variant=~"$variant"'
BY = "endpoint, variant"


def _rate(metric: str, selector: str = S, by: str = BY) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RATE}]))"


def _quantile(q: float, metric: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{S}}}[{RATE}])))"


def dashboard() -> db.Dashboard:
    failed = _rate("ferry_invocations_total", S + ',code=~"5..|424"')
    everything = _rate("ferry_invocations_total")
    return (
        db.Dashboard("Ferry overview").uid(UID).tags(["ferry"]).refresh("30s").time("now-1h", "now")
        .description("Traffic, errors, latency, replicas and capture of Ferry's endpoints")
        .with_variable(datasource_variable())
        .with_variable(label_variable("endpoint", "ferry_invocations_total", "endpoint", "Endpoint"))
        .with_variable(label_variable("variant", 'ferry_invocations_total{endpoint=~"$endpoint"}', "variant",
                                      "Variant"))
        .with_row(db.Row("Traffic and errors"))
        .with_panel(graph("Requests per second", "Inference requests answered, per endpoint and variant",
                          [(everything, "{{endpoint}} / {{variant}}")], unit="reqps"))
        .with_panel(graph("Requests per second by protocol and status", "Every answer, by protocol and HTTP status",
                          [(_rate("ferry_invocations_total", by="protocol, code"), "{{protocol}} {{code}}")],
                          unit="reqps"))
        .with_panel(graph("Failed share (5xx and 424)", "Share of requests the server failed: what the error SLO "
                          "counts (4xx are the caller's)",
                          [(f"({failed} or 0 * {everything}) / {everything}", "{{endpoint}} / {{variant}}")],
                          unit="percentunit"))
        .with_panel(graph("Errors per second by type", "Failed requests by error type and status (4xx included)",
                          [(_rate("ferry_invocation_errors_total", by="error_type, code"), "{{error_type}} {{code}}")],
                          unit="reqps"))
        .with_panel(single("Error budget burn rate (1 h)", "Failed share over the last hour divided by the 0.1 % "
                           "budget: 1 spends the budget in 30 days, 14.4 pages",
                           [(f"ferry:invocation_errors:ratio_rate1h{{{S}}} / 0.001", "{{endpoint}} / {{variant}}")],
                           width=12))
        .with_panel(single("Latency budget burn rate (1 h)", "Share of requests slower than 100 ms over the last "
                           "hour divided by the 1 % budget",
                           [(f"ferry:request_latency_slow:ratio_rate1h{{{S}}} / 0.01", "{{endpoint}} / {{variant}}")],
                           width=12))
        .with_row(db.Row("Latency"))
        .with_panel(graph("Request latency percentiles", "Gateway-to-response time of the selected endpoints",
                          [(_quantile(q, "ferry_request_latency_seconds", "endpoint"), f"p{round(q * 100)} {{{{endpoint}}}}")
                           for q in (0.5, 0.95, 0.99)], unit="s"))
        .with_panel(graph("p99 latency per variant", "99th percentile of request latency per endpoint and variant",
                          [(_quantile(0.99, "ferry_request_latency_seconds", BY), "{{endpoint}} / {{variant}}")],
                          unit="s"))
        .with_panel(graph("Model latency (p50, p99)", "onnxruntime time per call",
                          [(_quantile(q, "ferry_model_latency_seconds", BY), f"p{round(q * 100)} {{{{endpoint}}}} / {{{{variant}}}}")
                           for q in (0.5, 0.99)], unit="s"))
        .with_panel(graph("Mean batch size", "Requests per onnxruntime call (dynamic batching)",
                          [(f"{_rate('ferry_batch_size_sum')} / {_rate('ferry_batch_size_count')}",
                            "{{endpoint}} / {{variant}}")]))
        .with_row(db.Row("Replicas and capture"))
        .with_panel(graph("Replicas by deployment and state", "Ray Serve replicas of the ferry application",
                          [('sum by (deployment, state) (ferry_serve_replicas{state="RUNNING"}) '
                            "or sum by (deployment, state) (ferry_serve_replicas) > 0", "{{deployment}} {{state}}")]))
        .with_panel(graph("Capture records per second", "Records written by each endpoint's capture sink, and "
                          "those dropped (by reason)",
                          [(_rate("ferry_capture_written_records_total", 'endpoint=~"$endpoint"', "endpoint, sink"),
                            "written {{endpoint}} ({{sink}})"),
                           (_rate("ferry_capture_dropped_records_total", 'endpoint=~"$endpoint"', "endpoint, reason"),
                            "dropped {{endpoint}} ({{reason}})")], unit="ops"))
    )
