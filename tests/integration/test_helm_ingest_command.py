"""The chart's ingest Deployment, run here against the real Kafka and Redis: its rendered command, environment
(Kafka address, and the Redis URL from the chart's Secret) and mounted ferry.yaml consume a feature group's
topic into the online store; its exec probe answers while it runs; SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import orjson
import redis
import yaml
from kafka import KafkaProducer

from featurestore.store import FeatureStore
from ferry.config import load_config
from tests.helm import materialize, one, template
from tests.integration.services import kafka_bootstrap, kafka_topic, redis_url  # noqa: F401  (fixtures)

N = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ingest_deployment_command_consumes_the_topic_into_redis(tmp_path, kafka_bootstrap, kafka_topic, redis_url):
    group = f"helm_{uuid.uuid4().hex[:8]}"
    values = {
        "ferry": {
            "models": [{"name": "m", "path": "s3://models/m.onnx"}],
            "endpoints": [{"name": "e", "variants": [{"model": "m"}]}],
            "feature_groups": [{"name": group, "record_identifier": "applicant_id", "event_time": "event_time",
                                "topic": kafka_topic,
                                "features": [{"FeatureName": "applicant_id", "FeatureType": "Integral"},
                                             {"FeatureName": "event_time", "FeatureType": "Fractional"},
                                             {"FeatureName": "income", "FeatureType": "Fractional"}]}],
        },
        "storage": {"enabled": True},
        "kafka": {"bootstrapServers": kafka_bootstrap},
        "redis": {"url": redis_url},
        "ingest": {"enabled": True, "metricsPort": _free_port(), "consumerGroup": f"ferry-{group}"},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    base = tmp_path / "srv"
    docs = template(tmp_path / "values.yaml", sets=(f"baseDir={base}",))
    command, env = materialize(docs, "Deployment", "ferry-ingest", pod_name="ferry-ingest-7d9f-abcde")
    assert env["FERRY_REDIS__URL"] == redis_url and "--instance-id=ferry-ingest-7d9f-abcde" in command
    pod = one(docs, "Deployment", "ferry-ingest")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    probe = container["livenessProbe"]["exec"]["command"]

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    now = time.time()
    for i in range(N):
        producer.send(kafka_topic, orjson.dumps({"applicant_id": i, "event_time": now + i, "income": 1000.0 * i}))
    producer.flush()
    producer.close()

    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    cfg = load_config(base / "ferry.yaml", environ=env)  # what the worker reads: the chart's Redis URL
    store = FeatureStore(cfg.feature_store_settings(base), cfg.feature_groups)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "ingest.log").read_text()[-3000:]
            got = {i: store.get_record(group, str(i)) for i in range(N)}
            if all(got.values()):
                break
            assert time.monotonic() < deadline, (tmp_path / "ingest.log").read_text()[-3000:]
            time.sleep(0.5)
        for i, rec in got.items():
            fields = {f["FeatureName"]: f["ValueAsString"] for f in rec["Record"]}
            assert float(fields["income"]) == 1000.0 * i and int(fields["applicant_id"]) == i
        in_redis = list(redis.Redis.from_url(redis_url).scan_iter(match=f"fs:{group}:*", count=1000))
        assert len(in_redis) == N, "the records are not in the chart's Redis"
        assert subprocess.run(probe, env={**os.environ, **env}, timeout=10).returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=pod["terminationGracePeriodSeconds"]) == 0, \
            (tmp_path / "ingest.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        r = redis.Redis.from_url(redis_url)
        keys = list(r.scan_iter(match=f"fs:{group}:*", count=1000))
        if keys:
            r.delete(*keys)
