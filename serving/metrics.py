"""Prometheus metrics of the data plane, recorded by serving.dataplane and served on GET /metrics.

Every metric serving exports is declared once below (core.metrics); the gateway's own are recorded
through label children bound once per (endpoint, variant, protocol).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from core.errors import InferenceError
from core.metrics import MetricSet

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
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
COLD_START = METRICS.histogram("ferry_serverless_cold_start_seconds", "Time a request waited for a serverless "
                               "replica to start", ["endpoint", "variant"], unit="seconds", buckets=SLOW_BUCKETS)



class _Bound:
    """The label children of one (endpoint, variant, protocol)."""

    __slots__ = ("ok", "latency", "model_latency", "batch_size")

    def __init__(self, m: "ServingMetrics", endpoint: str, variant: str, protocol: str):
        self.ok = m.requests.labels(endpoint, variant, protocol, "200")
        self.latency = m.latency.labels(endpoint, variant, protocol)
        self.model_latency = m.model_latency.labels(endpoint, variant)
        self.batch_size = m.batch_size.labels(endpoint, variant)


class ServingMetrics:
    """Requests, errors by code, latency per endpoint and variant, batch sizes."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("ferry_invocations", "Inference requests by endpoint, variant, protocol and status code",
                                ["endpoint", "variant", "protocol", "code"], registry=r)
        self.errors = Counter("ferry_invocation_errors", "Failed inference requests by error type",
                              ["endpoint", "variant", "protocol", "error_type", "code"], registry=r)
        self.latency = Histogram("ferry_request_latency_seconds", "Gateway-to-response latency",
                                 ["endpoint", "variant", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_latency = Histogram("ferry_model_latency_seconds", "onnxruntime time per call",
                                       ["endpoint", "variant"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("ferry_batch_size", "Requests per onnxruntime call (dynamic batching)",
                                    ["endpoint", "variant"], buckets=BATCH_BUCKETS, registry=r)
        self._bound: dict[tuple[str, str, str], _Bound] = {}

    def _children(self, endpoint: str, variant: str, protocol: str) -> _Bound:
        key = (endpoint, variant, protocol)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = _Bound(self, endpoint, variant, protocol)
        return bound

    def succeeded(self, endpoint: str, variant: str, protocol: str, seconds: float, result) -> None:
        b = self._children(endpoint, variant, protocol)
        b.ok.inc()
        b.latency.observe(seconds)
        if result.model_seconds:
            b.model_latency.observe(result.model_seconds)
            b.batch_size.observe(result.batch_size)

    def failed(self, endpoint: str, variant: str, protocol: str, error: InferenceError, seconds: float) -> None:
        """A failed request; `endpoint` is "" when the request named no known endpoint (bounded labels)."""
        code = str(error.status)
        self.requests.labels(endpoint, variant, protocol, code).inc()
        self.errors.labels(endpoint, variant, protocol, error.error_type, code).inc()
        self.latency.labels(endpoint, variant, protocol).observe(seconds)

    def exposition(self) -> bytes:
        """This gateway's metrics, plus the process-wide registry (capture sinks count drops there)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
