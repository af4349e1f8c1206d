"""The Kafka queue through Ray Serve: a small application beside the session's (its own route prefix) with
one asynchronous endpoint on `queue: kafka` whose workers scale from zero: requests accepted by the gateway
go to a fresh topic, the backlog policy reads the consumer group's lag and wakes a worker, which answers
every request (equal to onnxruntime) and commits; the lag returns to 0."""

from __future__ import annotations

import time
import uuid

import httpx
import numpy as np
import onnxruntime as ort
from kafka.admin import KafkaAdminClient
from ray import serve

from ferry.config import parse_config
from serving.asyncq.kafka import consumer_lag
from serving.deploy import build_app, deploy
from tests.integration.services import kafka_bootstrap  # noqa: F401 - fixture

APP = "ferry-kafka-queue"


def test_kafka_queue_through_ray_serve_from_zero_workers(ray_serve, demo_dir, tmp_path, kafka_bootstrap):  # noqa: F811
    topic = f"ferry.test.async-serve-{uuid.uuid4().hex[:8]}"
    (tmp_path / "in").mkdir()
    doc = {"server": {"http_port": ray_serve}, "kafka": {"bootstrap_servers": kafka_bootstrap},
           "models": [{"name": "credit-gbm", "path": str(demo_dir / "model.onnx")}],
           "endpoints": [{"name": "kq", "variants": [{"model": "credit-gbm"}], "async": {
               "output_path": str(tmp_path / "out"), "input_prefixes": [str(tmp_path / "in")], "queue": "kafka",
               "topic": topic, "scaling": {"min_instances": 0, "max_instances": 1, "idle_s": 2,
                                           "poll_interval_s": 0.25}}}]}
    cfg = parse_config(doc, base=tmp_path, environ={})
    rows = np.loadtxt(demo_dir / "test_features.csv", delimiter=",", max_rows=10).astype(np.float32)
    labels = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})[0].tolist()
    src = tmp_path / "in" / "rows.csv"
    src.write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    deploy(build_app(cfg.models, cfg.endpoints, cfg.server, kafka_bootstrap), timeout_s=180, app_name=APP,
           route_prefix="/kq")
    try:
        url = f"http://127.0.0.1:{ray_serve}/kq/endpoints/kq/async-invocations"
        sent = []
        for i in range(4):
            r = httpx.post(url, headers={"X-Amzn-SageMaker-InputLocation": str(src),
                                         "X-Amzn-SageMaker-Content-Type": "text/csv",
                                         "X-Amzn-SageMaker-Inference-Id": f"k{i}"}, timeout=60)
            assert r.status_code == 202, r.text
            sent.append(r.json())
        deadline = time.monotonic() + 120
        while {httpx.get(f"{url}/{s['InferenceId']}").json()["Status"] for s in sent} != {"Completed"}:
            assert time.monotonic() < deadline, [httpx.get(f"{url}/{s['InferenceId']}").json() for s in sent]
            time.sleep(0.25)
        for s in sent:
            assert [int(ln.split(",")[0]) for ln in open(s["OutputLocation"]).read().splitlines()] == labels
        while consumer_lag(kafka_bootstrap, topic, f"{topic}.workers") != 0:  # committed after the results
            assert time.monotonic() < deadline
            time.sleep(0.25)
    finally:
        serve.delete(APP)
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.delete_topics([topic])
        finally:
            admin.close()
