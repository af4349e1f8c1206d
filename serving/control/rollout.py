"""Guarded blue/green rollouts: the traffic steps of each strategy and the alarms judged in each bake window.

SageMaker's deployment guardrails, and more: traffic moves from blue to green by the strategy
(all-at-once; canary: a share, then all; linear: equal steps), each step baked for `wait_interval_s` while
the alarms are watched; any alarm rolls traffic back to blue and says why. The alarms are built-in ones on
Ferry's own counts of the green variants (5xx/424 rate, 4xx rate above blue's, p99 latency), named alerts
read from a Prometheus server, and the monitor's own findings on green's captured traffic: data-quality
drift of its inputs, bias drift of its predictions, each against a baseline. The driving loop lives in serving.control.deployment.Control.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from serving.control.report import _quantile
from serving.control.state import Alarms
from serving.metrics import REQUEST_LATENCY

log = logging.getLogger(__name__)
PREDICTION_BIAS_METRICS = ("DPPL", "DI")  # Clarify's post-training metrics of predicted labels alone


def shares(strategy: str, canary_percent: float, linear_step: float) -> list[float]:
    """Green's traffic share at each step of a strategy (the last is 1.0); the defaults are RolloutRequest's."""
    if strategy == "all-at-once":
        return [1.0]
    if strategy == "canary":
        return [canary_percent / 100.0, 1.0]
    if strategy == "linear":
        n = max(1, int(round(100.0 / linear_step)))
        return [min(1.0, (i + 1) * linear_step / 100.0) for i in range(n - 1)] + [1.0]
    raise ValueError(f"unknown strategy {strategy!r}")


def weights_at(blue: dict[str, float], green: dict[str, float], share: float) -> dict[str, float]:
    """Blue keeps its ratios on (1 - share) of the traffic, green its ratios on `share`."""
    tb, tg = sum(blue.values()) or 1.0, sum(green.values()) or 1.0
    return {**{n: (1.0 - share) * w / tb for n, w in blue.items()}, **{n: share * w / tg for n, w in green.items()}}


def window(before: dict[str, dict], after: dict[str, dict], endpoint: str, variants) -> dict:
    """Requests, 5xx/424 errors, 4xx and latency counts of `variants` between two variant_totals."""
    out = {"requests": 0, "errors": 0, "client_errors": 0, "latency_counts": [0] * (len(REQUEST_LATENCY.buckets) + 1)}
    for v in variants:
        a, b = after.get(f"{endpoint}/{v}"), before.get(f"{endpoint}/{v}", {})
        if not a:
            continue
        for code, n in a["codes"].items():
            d = n - b.get("codes", {}).get(code, 0)
            out["requests"] += d
            if code.startswith("5") or code == "424":
                out["errors"] += d
            elif code.startswith("4"):
                out["client_errors"] += d
        old = b.get("latency_counts") or [0] * len(a["latency_counts"])
        out["latency_counts"] = [x + y - z for x, y, z in zip(out["latency_counts"], a["latency_counts"], old)]
    return out


def built_in_alarm(alarms: Alarms, green: dict, blue: dict) -> str | None:
    """The reason green's window breaks a built-in alarm, or None."""
    n = green["requests"]
    if n < alarms.min_requests:
        return None
    rate = green["errors"] / n
    if rate > alarms.max_error_rate:
        return f"green's error rate {rate:.1%} (5xx and ModelError) is over {alarms.max_error_rate:.1%}"
    blue_4xx = blue["client_errors"] / blue["requests"] if blue["requests"] else 0.0
    if green["client_errors"] / n - blue_4xx > alarms.max_client_error_increase:
        return (f"green's 4xx rate {green['client_errors'] / n:.1%} is more than "
                f"{alarms.max_client_error_increase:.1%} above blue's {blue_4xx:.1%}")
    if alarms.max_p99_s is not None:
        p99 = _quantile(REQUEST_LATENCY.buckets, green["latency_counts"], 0.99)
        if p99 is not None and p99 > alarms.max_p99_s:
            return f"green's p99 latency (<= {p99:g} s bucket) is over {alarms.max_p99_s:g} s"
    return None


def prometheus_alarm(alarms: Alarms, endpoint: str, green: list[str]) -> str | None:
    """A named alert firing on Prometheus for this endpoint (and a green variant, when the alert says which)."""
    if not (alarms.prometheus_url and alarms.prometheus_alerts):
        return None
    import httpx

    try:
        doc = httpx.get(f"{alarms.prometheus_url.rstrip('/')}/api/v1/alerts", timeout=5).json()
    except (httpx.HTTPError, ValueError) as err:
        log.warning("rollout of %s: Prometheus at %s not readable: %s", endpoint, alarms.prometheus_url, err)
        return None
    for alert in doc.get("data", {}).get("alerts", []):
        labels = alert.get("labels", {})
        if (alert.get("state") == "firing" and labels.get("alertname") in alarms.prometheus_alerts
                and labels.get("endpoint", endpoint) == endpoint and labels.get("variant", green[0]) in green):
            return f"Prometheus alert {labels['alertname']} is firing ({alarms.prometheus_url})"
    return None


def monitor_alarm(alarms: Alarms, endpoint: str, green: list[str], capture_dir: str | None, since: float,
                  out_dir: Path) -> str | None:
    """The monitor's findings on green's traffic captured since `since`: a data-quality violation of its inputs
    against `drift_baseline`, bias drift of its predictions against `bias_baseline`."""
    if not (alarms.drift_baseline or alarms.bias_baseline):
        return None
    if not capture_dir or "://" in capture_dir:
        return None  # checked when the rollout starts: these alarms need the endpoint's file capture
    from monitor.capture_reader import name_inputs, read_capture

    df = read_capture(Path(capture_dir) / endpoint, start=datetime.fromtimestamp(since, timezone.utc))
    df = df[df["variant"].isin(green)] if "variant" in df else df
    if len(df) < alarms.min_requests:
        return None
    df = name_inputs(df, alarms.input_columns)
    return _data_quality(alarms, df, out_dir) or _bias(alarms, df, out_dir / "bias")


def _data_quality(alarms: Alarms, df, out_dir: Path) -> str | None:
    from monitor import jobs
    from monitor.capture_reader import feature_frame

    if not alarms.drift_baseline:
        return None
    result = jobs.data_quality(feature_frame(df), alarms.drift_baseline, out_dir, min_window_rows=alarms.min_requests)
    if result.violations:
        features = sorted({v.get("feature_name", "?") for v in result.violations})
        return f"the monitor found data-quality violations on green's traffic: {', '.join(features)}"
    return None


def _bias(alarms: Alarms, df, out_dir: Path) -> str | None:
    """The bias metrics of green's predicted labels (its first output) by facet, against the baseline's: the
    metrics that need no ground truth, which rarely arrives within a bake window."""
    from monitor import jobs
    from monitor.capture_reader import feature_frame
    from monitor.spec import facets

    outputs = [c for c in df.columns if isinstance(c, str) and c.startswith("prediction")]
    if not alarms.bias_baseline or not outputs:
        return None
    window = feature_frame(df).assign(prediction=df[outputs[0]])
    result = jobs.bias(window, alarms.bias_baseline, out_dir, label="prediction", predicted_label="prediction",
                       positive_label_values=alarms.bias_positive_label_values,
                       facets=facets(alarms.bias_facets),
                       methods=list(PREDICTION_BIAS_METRICS), stage="post")
    if result.violations:
        found = sorted({f"{v['metric_name']} of {v['facet']} {v['facet_value']}" for v in result.violations})
        return (f"the monitor found bias drift in green's predictions (farther from the ideal than the baseline): "
                f"{', '.join(found)}")
    return None
