"""Notifications of finished asynchronous requests, sent by the async worker's code (without Ray) to the real
Kafka broker (success and error topics, read back with kafka-python) and to a webhook served by this test,
which refuses the first tries (retried with backoff). A webhook that never answers costs a counted
failure, never the result."""

from __future__ import annotations

import asyncio
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic

from serving.asyncq.sqlite import SqliteQueue
from tests.integration.conftest import free_port
from tests.integration.services import kafka_bootstrap  # noqa: F401 - fixture
from tests.unit.test_async_worker import put, worker


class Webhook:
    """A local HTTP receiver that answers 503 to its first `refuse` POSTs, then 200, keeping each body."""

    def __init__(self, refuse: int):
        self.bodies: list[dict] = []
        self.tries = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                hook.tries += 1
                ok = hook.tries > refuse
                if ok:
                    hook.bodies.append(orjson.loads(body))
                self.send_response(200 if ok else 503)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def topics(kafka_bootstrap):  # noqa: F811
    names = [f"ferry.test.async-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("ok", "err")]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(n, 1, 1) for n in names])
    yield names
    try:
        admin.delete_topics(names)
    finally:
        admin.close()


def read_topic(bootstrap: str, topic: str, n: int) -> list[dict]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, value_deserializer=orjson.loads)
    out = []
    for record in consumer:
        out.append(record.value)
        if len(out) == n:
            break
    consumer.close()
    return out


def drain(w, queue) -> None:
    async def run():
        while (claimed := queue.claim("ep", 60)) is not None:
            await w.leased("ep", queue, claimed, 60)
        for notifier in w.notifiers.values():
            await notifier.drain(30)

    asyncio.run(run())


def sent(w, channel: str, outcome: str) -> float:
    return w.registry.get_sample_value("ferry_async_notifications_total",
                                       {"endpoint": "ep", "channel": channel, "outcome": outcome}) or 0


def test_success_and_error_notifications_on_kafka_and_a_retried_webhook(demo_dir, tmp_path, kafka_bootstrap,  # noqa: F811
                                                                        topics):
    hook = Webhook(refuse=2)
    try:
        w = worker(demo_dir, {"success_topic": topics[0], "error_topic": topics[1], "webhook_url": hook.url,
                              "include_inference_response": True, "webhook_attempts": 4}, kafka_bootstrap)
        queue = SqliteQueue(tmp_path / "q.db")
        ok = put(queue, tmp_path, "ok", b"1,2,3,4,5,6,7,8\n2,3,4,5,6,7,8,9\n")
        bad = put(queue, tmp_path, "bad", b"1,2,3\n")
        drain(w, queue)
    finally:
        hook.close()
    [success] = read_topic(kafka_bootstrap, topics[0], 1)
    [error] = read_topic(kafka_bootstrap, topics[1], 1)
    assert success["inferenceId"] == "ok" and success["invocationStatus"] == "Completed"
    assert success["responseParameters"]["outputLocation"] == ok["output"]
    assert success["requestParameters"] == {"endpointName": "ep", "contentType": "text/csv", "inputLocation": ok["input"]}
    assert success["responseBody"]["content"] == open(ok["output"]).read()
    assert error["inferenceId"] == "bad" and error["invocationStatus"] == "Failed"
    assert error["responseParameters"]["failureLocation"] == bad["failure"] and "8" in error["failureReason"]
    assert orjson.loads(error["responseBody"]["content"])["ErrorCode"] == "ValidationError"
    assert hook.tries == 4 and sorted(b["inferenceId"] for b in hook.bodies) == ["bad", "ok"]  # 2 refused, retried
    assert sent(w, "kafka", "sent") == 2 and sent(w, "webhook", "sent") == 2 and sent(w, "webhook", "failed") == 0


def test_a_webhook_that_never_answers_is_counted_and_the_result_kept(demo_dir, tmp_path):
    w = worker(demo_dir, {"webhook_url": f"http://127.0.0.1:{free_port()}/nobody", "webhook_attempts": 2,
                          "timeout_s": 1})
    queue = SqliteQueue(tmp_path / "q.db")
    ok = put(queue, tmp_path, "ok", b"1,2,3,4,5,6,7,8\n")
    drain(w, queue)
    assert queue.status("ok")["state"] == "succeeded" and open(ok["output"]).read().strip()
    assert sent(w, "webhook", "failed") == 1 and sent(w, "webhook", "sent") == 0
