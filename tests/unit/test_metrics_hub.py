"""The hub's merge of replica snapshots (without Ray): one family per name, each replica's series labelled with
its replica, counts and histograms kept as each replica counted them; a replica that stops pushing drops out."""

from prometheus_client.parser import text_string_to_metric_families

from serving import metrics_hub
from serving.dataplane import ModelResult
from serving.metrics import ServingMetrics


def _replica(requests: int) -> list:
    m = ServingMetrics()
    for _ in range(requests):
        m.succeeded("ep", "v1", "sagemaker", 0.0004, ModelResult("v1", model_seconds=0.0002))
    return list(m.registry.collect())


def _samples(text: bytes) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples}


def test_each_replica_keeps_its_series_under_its_replica_label():
    hub = metrics_hub.Snapshots()
    hub.push("r1", _replica(3))
    samples = _samples(hub.exposition("r2", _replica(5)))
    key = {"endpoint": "ep", "variant": "v1", "protocol": "sagemaker", "code": "200"}
    assert samples[("ferry_invocations_total", tuple(sorted({**key, "replica": "r1"}.items())))] == 3
    assert samples[("ferry_invocations_total", tuple(sorted({**key, "replica": "r2"}.items())))] == 5
    counts = [v for (name, _), v in samples.items() if name == "ferry_request_latency_seconds_count"]
    assert sorted(counts) == [3, 5]
    fine = {"endpoint": "ep", "variant": "v1", "protocol": "sagemaker", "le": "0.0005"}
    assert samples[("ferry_request_latency_seconds_bucket", tuple(sorted({**fine, "replica": "r2"}.items())))] == 5
    text = hub.exposition().decode()
    assert text.count("# TYPE ferry_invocations_total counter") == 1  # one family, not one per replica


def test_a_replica_that_stops_pushing_drops_out(monkeypatch):
    hub = metrics_hub.Snapshots()
    now = [1000.0]
    monkeypatch.setattr(metrics_hub.time, "monotonic", lambda: now[0])
    hub.push("gone", _replica(2))
    now[0] += metrics_hub.STALE_S / 2
    hub.push("alive", _replica(1))
    assert 'replica="gone"' in hub.exposition().decode()
    now[0] += metrics_hub.STALE_S / 2 + 1
    text = hub.exposition().decode()
    assert 'replica="gone"' not in text and 'replica="alive"' in text


def test_outside_a_serve_replica_there_is_no_reporter():
    assert metrics_hub.reporter_for(ServingMetrics().registry) is None


def test_the_control_planes_counts_ride_the_same_push_and_never_go_down(monkeypatch):
    """Counts (ServingMetrics.snapshot) pushed with the families; a stale replica's are folded into the retired
    total, so that the control plane's sums over replicas keep growing; `fresh_s` gives the live replicas only."""
    from serving.control.report import variant_totals

    hub = metrics_hub.Snapshots()
    now = [1000.0]
    monkeypatch.setattr(metrics_hub.time, "monotonic", lambda: now[0])

    def counts(requests: int) -> dict:
        m = ServingMetrics()
        for _ in range(requests):
            m.succeeded("ep", "v1", "sagemaker", 0.0004, ModelResult("v1", model_seconds=0.0002))
        return m.snapshot()

    hub.push("gone", _replica(2), counts(2))
    now[0] += metrics_hub.STALE_S / 2
    hub.push("alive", _replica(3), counts(3))
    hub.exposition("alive", _replica(3))  # a scrape's push keeps the counts of the last periodic push
    assert set(hub.counts(fresh_s=5)) == {"alive"}
    assert variant_totals(list(hub.counts().values()))["ep/v1"]["codes"]["200"] == 5
    now[0] += metrics_hub.STALE_S / 2 + 1
    hub.push("alive", _replica(4), counts(4))
    assert set(hub.counts()) == {"alive", metrics_hub.RETIRED} and "gone" not in hub.exposition().decode()
    assert variant_totals(list(hub.counts().values()))["ep/v1"]["codes"]["200"] == 6
    assert set(hub.counts(fresh_s=5)) == {"alive"}


def test_successes_are_counted_as_if_each_were_observed_on_its_own(monkeypatch):
    """The request path only appends a success's timings; folded at a read or every FOLD_AT, the histograms are
    those of one observation each (a value on a bucket's bound counts in that bucket)."""
    from bisect import bisect_left

    from serving import metrics

    monkeypatch.setattr(metrics, "FOLD_AT", 7)
    m = ServingMetrics()
    bounds = metrics.LATENCY_BUCKETS
    seconds = [bounds[i % len(bounds)] * (1.0, 0.5, 1.5)[i % 3] for i in range(40)]  # bounds, and between them
    expected, model_expected, batches = [0] * (len(bounds) + 1), [0] * (len(bounds) + 1), 0
    for i, s in enumerate(seconds):
        ran = i % 4 != 0  # no model time: no model latency or batch size observed
        m.succeeded("ep", "v1", "sagemaker", s, ModelResult("v1", model_seconds=s / 2 if ran else 0.0,
                                                               batch_size=1 + i % 3))
        expected[bisect_left(bounds, s)] += 1
        if ran:
            model_expected[bisect_left(bounds, s / 2)] += 1
            batches += 1
        if i == 20:
            assert m.snapshot()["variants"]["ep/v1"]["codes"]["200"] == 21  # a read folds what is pending
    snap = m.snapshot()["variants"]["ep/v1"]
    assert snap["codes"]["200"] == 40 and snap["latency_counts"] == expected
    assert abs(snap["latency_sum"] - sum(seconds)) < 1e-12
    samples = _samples(m.exposition())
    key = (("endpoint", "ep"), ("variant", "v1"))
    assert samples[("ferry_model_latency_seconds_count", key)] == batches
    assert samples[("ferry_batch_size_count", key)] == batches
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                     if name == "ferry_model_latency_seconds_bucket")
    assert [v for _, v in buckets] == [sum(model_expected[:i + 1]) for i in range(len(bounds) + 1)]
