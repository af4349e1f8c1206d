"""core.metrics: a declaration that breaks Prometheus's conventions is refused, naming what is wrong; a valid one
makes the prometheus_client object and the empty family of the same name."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from core.metrics import MetricSet


@pytest.mark.parametrize("kind, name, kw, problem", [
    ("counter", "ferry_requests", {}, "end with _total"),
    ("gauge", "ferry_queue_total", {}, "end with _total"),
    ("gauge", "requests_waiting", {}, "start with ferry_"),
    ("histogram", "ferry_latency_seconds", {"unit": "seconds"}, "increasing buckets"),
    ("histogram", "ferry_latency_ms", {"buckets": (1, 2)}, "base units"),
    ("gauge", "ferry_age", {"unit": "seconds"}, "ends with _seconds"),
    ("gauge", "ferry_size_kilobytes", {}, "base units"),
    ("counter", "ferry_calls_total", {"labels": ["endpoint", "request_id"]}, "series per request"),
    ("counter", "ferry_calls_total", {"labels": ["replica"]}, "reserved"),
    ("counter", "ferry_calls_total", {"labels": ["Endpoint-Name"]}, "not a valid label name"),
])
def test_convention_breaks_are_refused(kind, name, kw, problem):
    with pytest.raises(ValueError, match=problem):
        getattr(MetricSet("t"), kind)(name, "help", **kw)


def test_a_name_is_declared_once_per_set():
    s = MetricSet("t")
    s.gauge("ferry_x", "x")
    with pytest.raises(ValueError, match="declared twice"):
        s.gauge("ferry_x", "x")


def test_client_and_family_expose_the_declared_name():
    s = MetricSet("t")
    c = s.counter("ferry_calls_total", "Calls", ["endpoint"])
    h = s.histogram("ferry_wait_seconds", "Wait", ["endpoint"], unit="seconds", buckets=(0.001, 0.01))
    reg = CollectorRegistry()
    c.client(reg).labels("a").inc(3)
    h.client(reg).labels("a").observe(0.005)
    text = generate_latest(reg).decode()
    assert 'ferry_calls_total{endpoint="a"} 3.0' in text
    assert 'ferry_wait_seconds_bucket{endpoint="a",le="0.01"} 1.0' in text
    fam = c.family()
    fam.add_metric(["b"], 2)
    assert [smp.name for smp in fam.samples] == ["ferry_calls_total"]
    assert [m.name for m in s] == ["ferry_calls_total", "ferry_wait_seconds"]


def test_serving_latency_buckets_resolve_sub_millisecond_requests():
    from serving.metrics import MODEL_LATENCY, REQUEST_LATENCY

    for m in (REQUEST_LATENCY, MODEL_LATENCY):
        assert len([b for b in m.buckets if b < 0.001]) >= 3, m.buckets  # an in-gateway model answers in ~50 us
