"""Prometheus metrics of the data plane, recorded by serving.dataplane and served on GET /metrics.

Every metric serving exports is declared once below (core.metrics). The request path only adds to plain
Python numbers held per (endpoint, variant, protocol): no label lookup, no lock (the gateway's event loop
is the only writer); a success only appends its timings, added to the histograms in one vectorised pass
when they are read (or every FOLD_AT successes); `collect` fills the declared families when /metrics is
scraped.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from core.errors import InferenceError
from core.metrics import MetricSet

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SLOW_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

METRICS = MetricSet("serving")
_EVP = ["endpoint", "variant", "protocol"]
INVOCATIONS = METRICS.counter("ferry_invocations_total", "Inference requests by endpoint, variant, protocol and "
                              "status code", _EVP + ["code"])
INVOCATION_ERRORS = METRICS.counter("ferry_invocation_errors_total", "Failed inference requests by error type",
                                    _EVP + ["error_type", "code"])
REQUEST_LATENCY = METRICS.histogram("ferry_request_latency_seconds", "Gateway-to-response latency", _EVP,
                                    unit="seconds", buckets=LATENCY_BUCKETS)
MODEL_LATENCY = METRICS.histogram("ferry_model_latency_seconds", "onnxruntime time per call",
                                  ["endpoint", "variant"], unit="seconds", buckets=LATENCY_BUCKETS)
BATCH_SIZE = METRICS.histogram("ferry_batch_size", "Requests per onnxruntime call (dynamic batching)",
                               ["endpoint", "variant"], buckets=BATCH_BUCKETS)
_ES = ["endpoint", "sink"]
CAPTURE_DROPPED = METRICS.counter("ferry_capture_dropped_records_total", "Capture records dropped (queue full, "
                                  "retries exhausted, error, or left at close)", _ES + ["reason"])
CAPTURE_WRITTEN = METRICS.counter("ferry_capture_written_records_total", "Capture records written by a sink", _ES)
CAPTURE_RETRIES = METRICS.counter("ferry_capture_write_retries_total", "Failed capture batch writes that were "
                                  "retried", _ES)
CAPTURE_QUEUED = METRICS.gauge("ferry_capture_queue_depth", "Capture records waiting in a sink's queue", _ES)
SERVE_REPLICAS = METRICS.gauge("ferry_serve_replicas", "Replicas of each Ray Serve deployment of the ferry "
                               "application, by state (read from Serve at scrape time)", ["deployment", "state"])
SERVE_STATUS = METRICS.gauge("ferry_serve_deployment_status", "1 for each deployment's current Ray Serve status, "
                             "0 for the others", ["deployment", "status"])
# Endpoint kinds (asynchronous, serverless) and traffic control (weights, rollouts): recorded by their code.
VARIANT_WEIGHT = METRICS.gauge("ferry_variant_weight", "Share of an endpoint's traffic routed to a variant",
                               ["endpoint", "variant"])
ROLLOUTS = METRICS.counter("ferry_rollouts_total", "Rollouts finished, by outcome (completed, rolled_back)",
                           ["endpoint", "outcome"])
ASYNC_BACKLOG = METRICS.gauge("ferry_async_backlog_requests", "Asynchronous requests accepted and not yet "
                              "processed", ["endpoint"])
ASYNC_OLDEST = METRICS.gauge("ferry_async_oldest_request_age_seconds", "Age of the oldest request waiting in an "
                             "asynchronous endpoint's queue", ["endpoint"], unit="seconds")
ASYNC_REQUESTS = METRICS.counter("ferry_async_requests_total", "Asynchronous requests finished, by outcome "
                                 "(succeeded, failed, expired)", ["endpoint", "outcome"])
ASYNC_PROCESSING = METRICS.histogram("ferry_async_processing_seconds", "Time from dequeue to the result written",
                                     ["endpoint"], unit="seconds", buckets=SLOW_BUCKETS)
ASYNC_IN_FLIGHT = METRICS.gauge("ferry_async_in_flight_requests", "Asynchronous requests an async worker replica "
                                "is running now", ["endpoint"])
ASYNC_NOTIFICATIONS = METRICS.counter("ferry_async_notifications_total", "Notifications of finished asynchronous "
                                      "requests, by channel (kafka, webhook) and outcome (sent, failed: given up "
                                      "after its tries)", ["endpoint", "channel", "outcome"])
_SHADOW = ["endpoint", "shadow"]
SHADOW_REQUESTS = METRICS.counter("ferry_shadow_requests_total", "Copies of live requests for a shadow variant, by "
                                  "outcome (ok, error, dropped: its queue was full)", _SHADOW + ["outcome"])
SHADOW_LATENCY = METRICS.histogram("ferry_shadow_latency_seconds", "A shadow variant's model time per copy", _SHADOW,
                                   unit="seconds", buckets=LATENCY_BUCKETS)
SHADOW_ROWS = METRICS.counter("ferry_shadow_compared_rows_total", "Rows a shadow answered, compared with production",
                              _SHADOW)
SHADOW_AGREED = METRICS.counter("ferry_shadow_agreed_rows_total", "Compared rows whose label (the first integer, "
                                "boolean or string output) equals production's", _SHADOW)
SHADOW_ABS_DIFF = METRICS.counter("ferry_shadow_abs_difference_total", "Sum of |shadow - production| over the "
                                  "values of the first floating-point output (regression)", _SHADOW)
SHADOW_VALUES = METRICS.counter("ferry_shadow_compared_values_total", "Values summed in "
                                "ferry_shadow_abs_difference_total", _SHADOW)
COLD_START = METRICS.histogram("ferry_serverless_cold_start_seconds", "Time a request waited for a serverless "
                               "replica to start", ["endpoint", "variant"], unit="seconds", buckets=SLOW_BUCKETS)



class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_all(self, values: np.ndarray) -> None:
        """`observe` of each value, in one pass."""
        hits = np.bincount(np.searchsorted(self.bounds, values), minlength=len(self.counts)).tolist()
        self.counts = [a + b for a, b in zip(self.counts, hits)]
        self.sum += float(values.sum())

    def buckets(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts):
            total += n
            out.append((bound, total))
        return out


# Exported at 0 from the start, so that rate() sees the first failures of a series (a series that appears
# with its first increment starts from that value: Prometheus cannot tell it rose).
INITIAL_CODES = ("200", "424", "429", "500", "503")  # at 0 from the start: a first failure is an increase
FOLD_AT = 4096  # successes a series holds before adding them up, if nothing reads it sooner


class _Series:
    """Everything counted for one (endpoint, variant, protocol)."""

    __slots__ = ("codes", "errors", "latency", "model_latency", "batch_size", "done")

    def __init__(self):
        self.codes: dict[str, int] = dict.fromkeys(INITIAL_CODES, 0)
        self.errors: dict[tuple[str, str], int] = {}
        self.latency = _Histogram(REQUEST_LATENCY.buckets)
        self.model_latency = _Histogram(MODEL_LATENCY.buckets)
        self.batch_size = _Histogram(BATCH_SIZE.buckets)
        self.done: list[tuple[float, float, int]] = []  # successes not added yet: (seconds, model seconds, batch)

    def fold(self) -> None:
        """Add the successes recorded since the last fold to the counts."""
        if self.done:
            done, self.done = np.array(self.done), []
            self.codes["200"] += len(done)
            self.latency.observe_all(done[:, 0])
            ran = done[done[:, 1] != 0]  # model time and batch size where a model run was timed
            if len(ran):
                self.model_latency.observe_all(ran[:, 1])
                self.batch_size.observe_all(ran[:, 2])


class ShadowStats:
    """What one shadow variant did (counters only grow)."""

    __slots__ = ("ok", "errors", "dropped", "latency", "rows", "agreed", "abs_diff", "values")

    def __init__(self):
        self.ok = self.errors = self.dropped = self.rows = self.agreed = self.values = 0
        self.abs_diff = 0.0
        self.latency = _Histogram(SHADOW_LATENCY.buckets)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "errors": self.errors, "dropped": self.dropped, "rows": self.rows,
                "agreed": self.agreed, "abs_diff": self.abs_diff, "values": self.values,
                "latency_counts": self.latency.counts, "latency_sum": self.latency.sum}


class ServingMetrics:
    """Requests by status code, errors by type, latency per endpoint and variant, model time, batch sizes."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self._series: dict[tuple[str, str, str], _Series] = {}
        self.shadows: dict[tuple[str, str], ShadowStats] = {}
        self.registry.register(self)

    def shadow(self, endpoint: str, shadow: str) -> ShadowStats:
        return self.shadows.setdefault((endpoint, shadow), ShadowStats())

    def snapshot(self) -> dict:
        """This replica's cumulative counts per variant and shadow, for the control plane to add up."""
        variants: dict[str, dict] = {}
        for (endpoint, variant, _), s in list(self._series.items()):
            if not variant:
                continue
            s.fold()
            v = variants.setdefault(f"{endpoint}/{variant}", {"codes": {}, "latency_counts": [0] * len(s.latency.counts),
                                                              "latency_sum": 0.0})
            for code, n in s.codes.items():
                v["codes"][code] = v["codes"].get(code, 0) + n
            v["latency_counts"] = [a + b for a, b in zip(v["latency_counts"], s.latency.counts)]
            v["latency_sum"] += s.latency.sum
        return {"variants": variants, "shadows": {f"{e}/{n}": st.as_dict() for (e, n), st in list(self.shadows.items())}}

    def declare(self, endpoint: str, variant: str, protocols) -> None:
        """Export a variant's series before its first request (at 0)."""
        for protocol in protocols:
            self._get(endpoint, variant, protocol)

    def _get(self, endpoint: str, variant: str, protocol: str) -> _Series:
        key = (endpoint, variant, protocol)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series()
        return s

    def succeeded(self, endpoint: str, variant: str, protocol: str, seconds: float, result) -> None:
        s = self._series.get((endpoint, variant, protocol)) or self._get(endpoint, variant, protocol)
        s.done.append((seconds, result.model_seconds, result.batch_size))
        if len(s.done) >= FOLD_AT:
            s.fold()

    def failed(self, endpoint: str, variant: str, protocol: str, error: InferenceError, seconds: float) -> None:
        """A failed request; `endpoint` is "" when the request named no known endpoint (bounded labels)."""
        s = self._get(endpoint, variant, protocol)
        code = str(error.status)
        s.codes[code] = s.codes.get(code, 0) + 1
        key = (error.error_type, code)
        s.errors[key] = s.errors.get(key, 0) + 1
        s.latency.observe(seconds)

    def collect(self):
        requests, errors, latency = INVOCATIONS.family(), INVOCATION_ERRORS.family(), REQUEST_LATENCY.family()
        model, batch = MODEL_LATENCY.family(), BATCH_SIZE.family()
        per_variant: dict[tuple[str, str], list[_Series]] = {}
        for (endpoint, variant, protocol), s in list(self._series.items()):
            s.fold()
            for code, n in s.codes.items():
                requests.add_metric([endpoint, variant, protocol, code], n)
            for (etype, code), n in s.errors.items():
                errors.add_metric([endpoint, variant, protocol, etype, code], n)
            latency.add_metric([endpoint, variant, protocol], s.latency.buckets(), s.latency.sum)
            per_variant.setdefault((endpoint, variant), []).append(s)
        for (endpoint, variant), series in per_variant.items():
            for family, attr in ((model, "model_latency"), (batch, "batch_size")):
                merged = _Histogram(getattr(series[0], attr).bounds)
                for s in series:
                    h = getattr(s, attr)
                    merged.counts = [a + b for a, b in zip(merged.counts, h.counts)]
                    merged.sum += h.sum
                if sum(merged.counts):
                    family.add_metric([endpoint, variant], merged.buckets(), merged.sum)
        return [requests, errors, latency, model, batch, *self._shadow_families()]

    def _shadow_families(self):
        requests, latency, rows = SHADOW_REQUESTS.family(), SHADOW_LATENCY.family(), SHADOW_ROWS.family()
        agreed, diff, values = SHADOW_AGREED.family(), SHADOW_ABS_DIFF.family(), SHADOW_VALUES.family()
        for (endpoint, shadow), st in list(self.shadows.items()):
            labels = [endpoint, shadow]
            for outcome, n in (("ok", st.ok), ("error", st.errors), ("dropped", st.dropped)):
                requests.add_metric(labels + [outcome], n)
            latency.add_metric(labels, st.latency.buckets(), st.latency.sum)
            rows.add_metric(labels, st.rows)
            agreed.add_metric(labels, st.agreed)
            diff.add_metric(labels, st.abs_diff)
            values.add_metric(labels, st.values)
        return [requests, latency, rows, agreed, diff, values]

    def exposition(self) -> bytes:
        """This gateway's metrics, plus the process-wide registry (capture sinks count drops there)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
