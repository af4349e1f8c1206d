"""Prometheus gauges the monitor sets after each execution (declared here, on prometheus_client's default
registry).

Names follow Model Monitor's CloudWatch metrics with a ferry_monitor_ prefix and labels for endpoint
and schedule; +-inf bias values are published as +-2.348543e108 like the service.
"""

from __future__ import annotations

import math

from core.metrics import MetricSet
from monitor import distance
from monitor.bias_drift import metric_value_for_export
from monitor.spec import SCHEDULE_TYPES

METRICS = MetricSet("monitor")
_L = ["endpoint", "schedule"]
BASELINE_DRIFT = METRICS.gauge("ferry_monitor_feature_baseline_drift", "Drift distance of a feature from the "
                               "baseline (feature_baseline_drift_<f>)", _L + ["feature"]).client()
DRIFT_METRIC = METRICS.gauge("ferry_monitor_feature_drift_metric", "Every registered drift test's value for a "
                             f"feature ({', '.join(distance.names())})", _L + ["feature", "metric"]).client()
NON_NULL = METRICS.gauge("ferry_monitor_feature_non_null", "Completeness (non-null fraction) of a feature in the "
                         "window", _L + ["feature"]).client()
VIOLATIONS = METRICS.gauge("ferry_monitor_violations", "Violations found by the last execution, by check type",
                           _L + ["monitor_type", "check_type"]).client()
MODEL_QUALITY = METRICS.gauge("ferry_monitor_model_quality", "Model-quality metric of the last window",
                              _L + ["metric"]).client()
BIAS = METRICS.gauge("ferry_monitor_bias_metric", "Clarify bias metric of the last window (bias_metric_<X>)",
                     _L + ["facet", "facet_value", "metric"]).client()
NDCG = METRICS.gauge("ferry_monitor_attribution_ndcg", "NDCG of the live feature-attribution ranking vs the "
                     "baseline", _L + ["label"]).client()
ATTRIBUTION = METRICS.gauge("ferry_monitor_feature_attribution", "Global SHAP value of a feature in the last "
                            "window", _L + ["label", "feature"]).client()
STATUS = METRICS.gauge("ferry_monitor_execution_status", "1 for the status of the last execution, 0 for the "
                       "others", _L + ["status"]).client()
LAST_RUN = METRICS.gauge("ferry_monitor_last_execution_timestamp_seconds", "When the last execution finished "
                         "(Unix time)", _L, unit="seconds").client()
NEXT_RUN = METRICS.gauge("ferry_monitor_next_execution_timestamp_seconds", "When the schedule's next execution is "
                         "due (Unix time); past it, the monitor is late or stuck", _L, unit="seconds").client()

STATUSES = ("Completed", "CompletedWithViolations", "Failed")


def _finite(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def publish(endpoint: str, schedule: str, monitor_type: str, status: str, finished_at: float,
            violations: list[dict], gauges: dict) -> None:
    """Set every gauge of one execution; `gauges` is the job's metrics dict (see monitor.jobs)."""
    lab = {"endpoint": endpoint, "schedule": schedule}
    for s in STATUSES:
        STATUS.labels(status=s, **lab).set(1.0 if s == status else 0.0)
    LAST_RUN.labels(**lab).set(finished_at)
    if status == "Failed":
        return
    for check in SCHEDULE_TYPES[monitor_type].check_types:
        n = sum(1 for v in violations if v.get("constraint_check_type") == check)
        VIOLATIONS.labels(monitor_type=monitor_type, check_type=check, **lab).set(n)
    for feature, d in gauges.get("drift", {}).items():
        if (v := _finite(d.get("distance"))) is not None:
            BASELINE_DRIFT.labels(feature=feature, **lab).set(v)
        for m in distance.names():
            if (v := _finite(d.get(m))) is not None:
                DRIFT_METRIC.labels(feature=feature, metric=m, **lab).set(v)
    for feature, c in gauges.get("completeness", {}).items():
        NON_NULL.labels(feature=feature, **lab).set(c)
    for name, m in gauges.get("model_quality", {}).items():
        if isinstance(m, dict) and (v := _finite(m.get("value"))) is not None:
            MODEL_QUALITY.labels(metric=name, **lab).set(v)
    for (facet, value, name), v in gauges.get("bias", {}).items():
        if not math.isnan(v):
            BIAS.labels(facet=facet, facet_value=value, metric=name, **lab).set(metric_value_for_export(v))
    for label, score in gauges.get("ndcg", {}).items():
        NDCG.labels(label=label, **lab).set(score)
    for label, values in gauges.get("attribution", {}).items():
        for feature, v in values.items():
            ATTRIBUTION.labels(label=label, feature=feature, **lab).set(v)
