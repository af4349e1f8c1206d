"""Kafka capture sink against real Apache Kafka: records arrive whole, and a broker restart loses none.

The restart test runs its own single-node KRaft broker (from the Kafka jars `.ci/services start`
resolved) on free loopback ports, so stopping it disturbs no other test using the shared broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from prometheus_client import REGISTRY

from core.capture import build_record
from serving.capture import make_sink
from serving.spec import DataCaptureSpec
from tests.integration.services import kafka_bootstrap  # noqa: F401 - fixture

LIBS = Path(os.environ.get("FERRY_SERVICES_DIR", Path.home() / ".cache/ferry-services")) / "kafka" / "libs"


def _consume(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[dict]:
    """Every message of the topic, read up to its end offsets."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             value_deserializer=lambda b: json.loads(b))
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        assert parts, f"topic {topic} does not exist"
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out, deadline = [], time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                out.extend(m.value for m in batch)
        return out
    finally:
        consumer.close()


def _records(spec, n, start=0):
    return [build_record(spec, variant="AllTraffic", input_data=f"{i},{i * 0.5}", input_content_type="text/csv",
                         output_data="1", output_content_type="text/csv", inference_id=f"inf-{i}")
            for i in range(start, start + n)]


def _metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_kafka_sink_delivers_every_record(kafka_bootstrap):  # noqa: F811
    topic = f"ferry.capture.test.{uuid.uuid4().hex[:8]}"
    spec = DataCaptureSpec(enabled=True, destination=f"kafka://{topic}")
    sink = make_sink(spec, "credit-shared", kafka_bootstrap)
    records = _records(spec, 300)
    for r in records:
        sink.put(r)
    sink.close()
    got = _consume(kafka_bootstrap, topic)
    assert sorted(r["eventMetadata"]["inferenceId"] for r in got) == sorted(f"inf-{i}" for i in range(300))  # no duplicates either
    assert got[0]["captureData"]["endpointInput"]["encoding"] == "CSV" and got[0]["eventVersion"] == "0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateBroker:
    """A throwaway KRaft broker on free ports, restartable on the same data folder."""

    def __init__(self, folder: Path):
        if not any(LIBS.glob("kafka_2.13-*.jar")):
            pytest.fail(f"Kafka jars not found in {LIBS}: run `.ci/services start` first", pytrace=False)
        self.folder, self.port, ctl = folder, _free_port(), _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.props = folder / "server.properties"
        self.props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1", f"controller.quorum.voters=1@127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}", "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={folder / 'data'}", "num.partitions=2", "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=2", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true", ""]))
        self.proc: subprocess.Popen | None = None
        subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={uuid.uuid4().hex[:22]}",
                                  "-c", str(self.props)), check=True, capture_output=True)

    def _java(self, *args: str) -> list[str]:
        return ["java", "-Xms128m", "-Xmx384m", "-cp", f"{LIBS}/*", *args]

    def start(self) -> None:
        log = open(self.folder / "kafka.log", "a")
        self.proc = subprocess.Popen(self._java("kafka.Kafka", str(self.props)), stdout=log, stderr=log)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"private Kafka exited: {(self.folder / 'kafka.log').read_text()[-2000:]}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail("private Kafka did not answer within 90 s", pytrace=False)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def private_broker(tmp_path):
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def test_broker_restart_loses_no_captured_record(private_broker):
    topic = "ferry.capture.restart"
    spec = DataCaptureSpec(enabled=True, destination=f"kafka://{topic}")
    ep = f"credit-restart-{uuid.uuid4().hex[:6]}"
    sink = make_sink(spec, ep, private_broker.bootstrap, retry_for_s=180, send_timeout_s=3)
    labels = {"endpoint": ep, "sink": "kafka"}
    before, during, after = _records(spec, 100), _records(spec, 100, 100), _records(spec, 100, 200)
    for r in before:
        sink.put(r)
    deadline = time.monotonic() + 60
    while _metric("ferry_capture_written_records_total", **labels) < 100 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metric("ferry_capture_written_records_total", **labels) == 100

    private_broker.stop()
    t = time.perf_counter()
    for r in during:
        sink.put(r)
    assert time.perf_counter() - t < 1.0, "put() must not block while the broker is down"
    time.sleep(3)
    private_broker.start()
    for r in after:
        sink.put(r)
    sink.close(timeout_s=150)

    got = _consume(private_broker.bootstrap, topic, timeout_s=90)
    ids = {r["eventMetadata"]["inferenceId"] for r in got}  # at-least-once: a retried batch may repeat
    assert ids == {f"inf-{i}" for i in range(300)}
    assert sum(_metric("ferry_capture_dropped_records_total", reason=x, **labels)
               for x in ("queue_full", "retries_exhausted", "closed", "error")) == 0


def test_archived_topic_reads_back_as_a_capture_folder(kafka_bootstrap, tmp_path):  # noqa: F811
    from monitor.capture_reader import read_capture
    from serving.capture.archive import archive_topic

    topic = f"ferry.capture.archive.{uuid.uuid4().hex[:8]}"
    spec = DataCaptureSpec(enabled=True, destination=f"kafka://{topic}")
    sink = make_sink(spec, "credit-archive", kafka_bootstrap)
    for r in _records(spec, 120):
        sink.put(r)
    sink.close()
    n = archive_topic(kafka_bootstrap, topic, tmp_path, "credit-archive", group_id=f"g-{uuid.uuid4().hex[:6]}",
                      idle_exit_s=3)
    assert n == 120
    df = read_capture(tmp_path / "credit-archive", input_columns=["i", "half"])
    assert sorted(df["i"]) == list(range(120)) and (df["half"] == df["i"] * 0.5).all()
    assert set(df["variant"]) == {"AllTraffic"}
