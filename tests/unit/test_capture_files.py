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
