"""Prometheus metrics of the data plane, recorded at the gateway and served on GET /metrics."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


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

    def observe(self, endpoint: str, variant: str, protocol: str, code: int, seconds: float,
                error_type: str | None = None, batch_size: int | None = None, model_seconds: float | None = None):
        self.requests.labels(endpoint, variant, protocol, str(code)).inc()
        self.latency.labels(endpoint, variant, protocol).observe(seconds)
        if error_type:
            self.errors.labels(endpoint, variant, protocol, error_type, str(code)).inc()
        if batch_size:
            self.batch_size.labels(endpoint, variant).observe(batch_size)
        if model_seconds:
            self.model_latency.labels(endpoint, variant).observe(model_seconds)

    def exposition(self) -> bytes:
        """This gateway's metrics, plus the process-wide registry (capture sinks count drops there)."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
