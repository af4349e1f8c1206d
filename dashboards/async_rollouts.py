"""Ferry async, serverless and rollouts: the asynchronous queue, serverless cold starts and throttling,
variant weights and rollout outcomes."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import RATE, datasource_variable, graph, label_variable

UID = "ferry-async-rollouts"
E = 'endpoint=~"$endpoint"'


def dashboard() -> db.Dashboard:
    return (
        db.Dashboard("Ferry async, serverless and rollouts").uid(UID).tags(["ferry"]).refresh("30s")
        .time("now-1h", "now")
        .description("Asynchronous endpoints' queues, serverless variants, traffic weights and rollouts")
        .with_variable(datasource_variable())
        .with_variable(label_variable("endpoint", "ferry_invocations_total", "endpoint", "Endpoint"))
        .with_row(db.Row("Asynchronous inference"))
        .with_panel(graph("Async backlog", "Requests accepted and not yet processed",
                          [(f"sum by (endpoint) (ferry_async_backlog_requests{{{E}}})", "{{endpoint}}")]))
        .with_panel(graph("Oldest queued request", "Age of the oldest request waiting in the queue (alert above "
                          "10 min)", [(f"max by (endpoint) (ferry_async_oldest_request_age_seconds{{{E}}})",
                                       "{{endpoint}}")], unit="s"))
        .with_panel(graph("Async outcomes per second", "Requests finished, by outcome",
                          [(f"sum by (endpoint, outcome) (rate(ferry_async_requests_total{{{E}}}[{RATE}]))",
                            "{{endpoint}} {{outcome}}")], unit="ops"))
        .with_panel(graph("Async processing time (p95)", "Time from dequeue to the result written",
                          [(f"histogram_quantile(0.95, sum by (le, endpoint) "
                            f"(rate(ferry_async_processing_seconds_bucket{{{E}}}[{RATE}])))", "{{endpoint}}")],
                          unit="s"))
        .with_row(db.Row("Serverless"))
        .with_panel(graph("Cold starts (p95)", "Time a request waited for a serverless replica to start",
                          [(f"histogram_quantile(0.95, sum by (le, endpoint, variant) "
                            f"(rate(ferry_serverless_cold_start_seconds_bucket{{{E}}}[{RATE}])))",
                            "{{endpoint}} / {{variant}}")], unit="s"))
        .with_panel(graph("Throttled requests per second", "429 ThrottlingException answers (max_concurrency "
                          "reached)", [(f'sum by (endpoint, variant) (rate(ferry_invocations_total{{{E},code="429"}}'
                                        f"[{RATE}]))", "{{endpoint}} / {{variant}}")], unit="reqps"))
        .with_row(db.Row("Traffic and rollouts"))
        .with_panel(graph("Variant weights", "Share of each endpoint's traffic routed to each variant",
                          [(f"max by (endpoint, variant) (ferry_variant_weight{{{E}}})", "{{endpoint}} / {{variant}}")], unit="percentunit"))
        .with_panel(graph("Rollouts", "Rollouts finished in the time range, by outcome",
                          [(f"sum by (endpoint, outcome) (increase(ferry_rollouts_total{{{E}}}[$__range]))",
                            "{{endpoint}} {{outcome}}")]))
    )
