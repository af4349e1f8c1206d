"""Ferry feature store: ingest rate, lag, freshness, dead letters, pauses and online read latency."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import RATE, datasource_variable, graph, label_variable

UID = "ferry-feature-store"
G = 'group=~"$group"'


def dashboard() -> db.Dashboard:
    return (
        db.Dashboard("Ferry feature store").uid(UID).tags(["ferry"]).refresh("30s").time("now-1h", "now")
        .description("Ingestion from Kafka into the online and offline stores, and online reads")
        .with_variable(datasource_variable())
        .with_variable(label_variable("group", "ferry_features_ingest_records_total", "group", "Feature group"))
        .with_row(db.Row("Ingestion"))
        .with_panel(graph("Ingest rate by outcome", "Records consumed per second: applied online, stale (older "
                          "event time), dlq",
                          [(f"sum by (group, outcome) (rate(ferry_features_ingest_records_total{{{G}}}[{RATE}]))",
                            "{{group}} {{outcome}}")], unit="ops"))
        .with_panel(graph("Consumer lag", "Records between each group's committed position and the topics' end",
                          [(f"sum by (group) (ferry_features_ingest_lag{{{G}}})", "{{group}}")]))
        .with_panel(graph("Freshness", "Write time minus event time of the newest record of the last batch",
                          [(f"ferry_features_ingest_freshness_seconds{{{G}}}", "{{group}}")], unit="s"))
        .with_panel(graph("Dead letters per second", "Records sent to the dead-letter topic",
                          [(f"sum by (group) (rate(ferry_features_ingest_dlq_total{{{G}}}[{RATE}]))", "{{group}}")],
                          unit="ops"))
        .with_panel(graph("Paused and stalled", "1 while a group's partitions are paused (a store failing); "
                          "seconds a consumer group's commits have not moved",
                          [(f"max by (group) (ferry_features_ingest_paused{{{G}}})", "paused {{group}}"),
                           ("max by (consumer_group) (ferry_features_ingest_stalled_seconds)",
                            "stalled s {{consumer_group}}")]))
        .with_row(db.Row("Online reads"))
        .with_panel(graph("Online read latency (p50, p99)", "Online-store time per read call",
                          [(f"histogram_quantile({q}, sum by (le, group, operation) "
                            f"(rate(ferry_features_read_latency_seconds_bucket{{{G}}}[{RATE}])))",
                            f"p{round(q * 100)} {{{{group}}}} {{{{operation}}}}") for q in (0.5, 0.99)], unit="s"))
        .with_panel(graph("Online reads per second", "Read calls per group and operation",
                          [(f"sum by (group, operation) (rate(ferry_features_read_latency_seconds_count{{{G}}}"
                            f"[{RATE}]))", "{{group}} {{operation}}")], unit="ops"))
    )
