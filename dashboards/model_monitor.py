"""Ferry model monitor: drift per feature, completeness, model quality, bias metrics, attribution NDCG,
violations and the schedules' executions."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import datasource_variable, graph, label_variable, single

UID = "ferry-model-monitor"
S = 'endpoint=~"$endpoint",schedule=~"$schedule"'


def dashboard() -> db.Dashboard:
    return (
        db.Dashboard("Ferry model monitor").uid(UID).tags(["ferry"]).refresh("1m").time("now-6h", "now")
        .description("What the monitoring schedules found in each window of captured traffic")
        .with_variable(datasource_variable())
        .with_variable(label_variable("endpoint", "ferry_monitor_execution_status", "endpoint", "Endpoint"))
        .with_variable(label_variable("schedule", 'ferry_monitor_execution_status{endpoint=~"$endpoint"}',
                                      "schedule", "Schedule"))
        .with_row(db.Row("Data quality"))
        .with_panel(graph("Feature drift from the baseline", "Drift distance of each feature's live distribution "
                          "(alert above 0.1)",
                          [(f"ferry_monitor_feature_baseline_drift{{{S}}}", "{{schedule}}: {{feature}}")]))
        .with_panel(graph("Completeness", "Non-null share of each feature in the window",
                          [(f"ferry_monitor_feature_non_null{{{S}}}", "{{schedule}}: {{feature}}")], unit="percentunit"))
        .with_row(db.Row("Model quality and bias"))
        .with_panel(graph("Model quality", "Metrics of the live predictions against ground truth",
                          [(f"ferry_monitor_model_quality{{{S}}}", "{{schedule}}: {{metric}}")]))
        .with_panel(graph("Bias metrics", "Clarify bias metrics of each facet value in the window",
                          [(f"ferry_monitor_bias_metric{{{S}}}", "{{metric}} {{facet}}={{facet_value}}")]))
        .with_row(db.Row("Attribution"))
        .with_panel(graph("Attribution NDCG", "Agreement of the live SHAP ranking with the baseline's (alert below "
                          "0.9)", [(f"ferry_monitor_attribution_ndcg{{{S}}}", "{{schedule}} {{label}}")]))
        .with_panel(graph("Feature attribution", "Global SHAP value of each feature in the window",
                          [(f"ferry_monitor_feature_attribution{{{S}}}", "{{feature}}")]))
        .with_row(db.Row("Executions"))
        .with_panel(graph("Violations by check", "Violations the last execution of each schedule found",
                          [(f"sum by (schedule, check_type) (ferry_monitor_violations{{{S}}})",
                            "{{schedule}} {{check_type}}")]))
        .with_panel(single("Last execution", "Status of each schedule's last execution",
                           [(f"ferry_monitor_execution_status{{{S}}} == 1", "{{schedule}}: {{status}}")]))
        .with_panel(single("Since the last execution", "Time since each schedule's last execution finished",
                           [(f"time() - ferry_monitor_last_execution_timestamp_seconds{{{S}}}", "{{schedule}}")],
                           unit="s"))
    )
