"""JSONL file sink: folder layout, batching off the caller's thread, drops counted; read back by the monitor."""

import json
import threading
import time
from datetime import datetime, timedelta, timezone

from prometheus_client import REGISTRY

from monitor.capture_reader import read_capture
from core.capture import build_record
from serving.capture import CaptureSink, make_sink
from serving.spec import DataCaptureSpec

T0 = datetime(2026, 3, 1, 10, 59, 58, tzinfo=timezone.utc)


def _dropped(endpoint, sink, reason):
    return REGISTRY.get_sample_value("ferry_capture_dropped_records_total",
                                     {"endpoint": endpoint, "sink": sink, "reason": reason}) or 0.0


def test_files_land_in_hour_folders_and_read_back(tmp_path):
    spec = DataCaptureSpec(enabled=True, destination=str(tmp_path))
    sink = make_sink(spec, "credit", None)
    for i in range(10):
        sink.put(build_record(spec, variant="AllTraffic", input_data=f"{i},{i * 1.5},x{i % 2}",
                              input_content_type="text/csv", output_data=str(i % 2), output_content_type="text/csv",
                              inference_id=f"id-{i}", inference_time=T0 + timedelta(seconds=i)))
    sink.close()
    files = sorted(p.relative_to(tmp_path).parent.as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert set(files) == {"credit/AllTraffic/2026/03/01/10", "credit/AllTraffic/2026/03/01/11"}
    lines = [json.loads(line) for p in tmp_path.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert sorted(r["eventMetadata"]["inferenceId"] for r in lines) == sorted(f"id-{i}" for i in range(10))
    df = read_capture(tmp_path, input_columns=["a", "b", "c"])
    assert list(df.columns) == ["a", "b", "c", "prediction", "eventId", "inferenceId", "inferenceTime", "variant"]
    df = df.sort_values("a").reset_index(drop=True)
    assert df["a"].tolist() == list(range(10))
    assert df["b"].tolist() == [i * 1.5 for i in range(10)]
    assert df["prediction"].tolist() == [i % 2 for i in range(10)]
    later = read_capture(tmp_path, start=datetime(2026, 3, 1, 11, tzinfo=timezone.utc))
    assert len(later) == 8


def test_put_never_blocks_and_full_queue_drops_are_counted(tmp_path):
    release = threading.Event()

    class Stuck(CaptureSink):
        kind = "stuck-test"

        def write_batch(self, records):
            release.wait(10)
            return []

    sink = Stuck("ep-full", max_queue=5, batch_size=1, flush_interval_s=0.01)
    before = _dropped("ep-full", "stuck-test", "queue_full")
    t = time.perf_counter()
    for i in range(50):
        sink.put({"i": i})
    assert time.perf_counter() - t < 0.5
    assert _dropped("ep-full", "stuck-test", "queue_full") - before >= 40
    release.set()
    sink.close()


def test_failed_batches_are_retried_then_dropped_and_counted():
    attempts = []

    class Flaky(CaptureSink):
        kind = "flaky-test"

        def write_batch(self, records):
            attempts.append(len(records))
            if len(attempts) < 3:
                raise ConnectionError("sink down")
            return []

    sink = Flaky("ep-retry", flush_interval_s=0.05, retry_for_s=10)
    for i in range(7):
        sink.put({"i": i})
    sink.close()
    assert attempts[:3] == [7, 7, 7]

    class Dead(CaptureSink):
        kind = "dead-test"

        def write_batch(self, records):
            raise ConnectionError("sink down")

    before = _dropped("ep-retry", "dead-test", "retries_exhausted")
    sink = Dead("ep-retry", flush_interval_s=0.05, retry_for_s=0.3)
    for i in range(4):
        sink.put({"i": i})
    sink.close()
    assert _dropped("ep-retry", "dead-test", "retries_exhausted") - before == 4


def test_json_and_base64_payloads_read_back(tmp_path):
    spec = DataCaptureSpec(enabled=True, destination=str(tmp_path))
    sink = make_sink(spec, "ep", None)
    sink.put(build_record(spec, variant="v1", input_data='{"instances": [[1, 2], [3, 4]]}',
                          input_content_type="application/json", output_data='{"predictions": [0, 1]}',
                          output_content_type="application/json", event_id="e1", inference_time=T0))
    sink.put(build_record(spec, variant="v1", input_data=b"5,6", input_content_type="text/csv",
                          output_data="1", output_content_type="text/csv", event_id="e2", inference_time=T0))
    sink.close()
    df = read_capture(tmp_path, input_columns=["x", "y"]).sort_values("x").reset_index(drop=True)
    assert df[["x", "y", "prediction"]].to_numpy().tolist() == [[1, 2, 0], [3, 4, 1], [5, 6, 1]]
    assert df["eventId"].tolist() == ["e1", "e1", "e2"]
    assert (df["variant"] == "v1").all()


def test_kafka_destination_needs_bootstrap():
    import pytest
    with pytest.raises(ValueError, match="kafka.bootstrap_servers"):
        make_sink(DataCaptureSpec(destination="kafka://captures"), "ep", None)


def test_capture_backends_are_typed_configs_in_one_map(tmp_path):
    """A destination is read once into its backend's typed config (serving.capture.factory: one map from type to
    sink class); the deploy file resolves a folder, also written file://, beside itself; a Kafka sink needs
    brokers when it is made (the chart gives them as FERRY_KAFKA__BOOTSTRAP_SERVERS, not in the file)."""
    import pytest

    from ferry.config import ConfigError, parse_config
    from ferry.demo import demo_config
    from serving.capture.factory import SINKS
    from serving.capture.files import FilesCaptureConfig, JsonlFileSink
    from serving.capture.kafka import KafkaCaptureConfig, KafkaSink

    assert {t: cls.config_class.model_fields["type"].default for t, cls in SINKS.items()} == {"file": "file",
                                                                                             "kafka": "kafka"}
    assert DataCaptureSpec(destination="cap").sink == FilesCaptureConfig(folder="cap")
    assert DataCaptureSpec(destination="file:///x/cap").sink == FilesCaptureConfig(folder="/x/cap")
    assert DataCaptureSpec(destination="kafka://t/").sink == KafkaCaptureConfig(topic="t")
    for bad in ("s3://b/c", "kafka://", "file://"):
        with pytest.raises(ValueError):
            DataCaptureSpec(destination=bad)
    with pytest.raises(ValueError, match="needs kafka.bootstrap_servers"):
        make_sink(DataCaptureSpec(enabled=True, destination="kafka://t"), "ep", None)
    sink = make_sink(DataCaptureSpec(enabled=True, destination="kafka://t"), "ep", "127.0.0.1:1")
    try:
        assert isinstance(sink, KafkaSink) and (sink.topic, sink.bootstrap_servers) == ("t", "127.0.0.1:1")
    finally:
        sink.close()

    doc = demo_config()
    doc["endpoints"][0]["data_capture"]["destination"] = "file://relative/cap"
    cfg = parse_config(doc, base=tmp_path, environ={})
    assert cfg.endpoints[0].data_capture.sink == FilesCaptureConfig(folder=str(tmp_path / "relative" / "cap"))
    sink = make_sink(cfg.endpoints[0].data_capture, "ep", None)
    try:
        assert isinstance(sink, JsonlFileSink) and sink.writer.root == tmp_path / "relative" / "cap" / "ep"
    finally:
        sink.close()
    doc["endpoints"][0]["data_capture"]["destination"] = "kafka://cap"  # brokers may come with the environment
    assert parse_config(doc, base=tmp_path, environ={}).endpoints[0].data_capture.sink.topic == "cap"
    with pytest.raises(ConfigError):
        doc["endpoints"][0]["data_capture"]["destination"] = "s3://b/c"
        parse_config(doc, base=tmp_path, environ={})
