"""Notifications of finished asynchronous requests (SageMaker's AsyncInferenceNotificationConfig): a JSON
message in the shape SageMaker publishes to SNS, sent to the endpoint's Kafka success or error topic and/or
POSTed to its webhook.

A notification is sent after the request is finished, from a task of its own: a slow or failing receiver
never holds a worker slot, and never changes or loses the result, which is already at its location. The
webhook gets bounded tries with doubling waits; a notification given up is counted
(ferry_async_notifications_total{outcome="failed"}) and logged.

Across a crash of a worker:
- Kafka topics, on the Kafka queue: exactly once for readers with isolation_level=read_committed. The
  notification and the queue's offset commit are one Kafka transaction (serving.asyncq.kafka.KafkaSource):
  a worker that dies before committing leaves an aborted transaction, and the record delivered again is
  notified again by the next owner (read_uncommitted readers may see both).
- Kafka topics, on the SQLite queue: at most once (the request is finished first; a notification pending
  when the worker dies is not sent again).
- Webhooks: at least once on the Kafka queue (a record delivered again is announced again), at most once on
  the SQLite queue. Receivers dedupe on `inferenceId`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import httpx
import orjson

from serving.spec import NotificationSpec

log = logging.getLogger(__name__)
MAX_INLINE_RESPONSE = 128 * 1024  # SageMaker includes a response of at most 128 KB
FIRST_WAIT_S = 0.5


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(endpoint: str, inference_id: str, doc: dict, state: str, reason: str | None, accepted_at: float,
            finished_at: float, body: bytes | None) -> dict:
    """The notification of one finished request; `body` (the result, or the error document) is included
    when given and at most 128 KB."""
    ok = state == "succeeded"
    msg = {
        "eventVersion": "1.0", "eventSource": "ferry", "eventName": "InferenceResult",
        "eventTime": _iso(finished_at), "receivedTime": _iso(accepted_at), "inferenceId": inference_id,
        "invocationStatus": "Completed" if ok else "Failed",
        "requestParameters": {"endpointName": endpoint, "contentType": doc["content_type"],
                              "inputLocation": doc["input"]},
        "responseParameters": ({"contentType": doc["accept"], "outputLocation": doc["output"]} if ok else
                               {"contentType": "application/json", "failureLocation": doc["failure"]}),
    }
    if not ok:
        msg["failureReason"] = reason if state != "expired" else f"ExpiredRequest: {reason}"
    if body is not None and len(body) <= MAX_INLINE_RESPONSE:
        try:
            msg["responseBody"] = {"content": body.decode("utf-8"), "encoding": "utf-8"}
        except UnicodeDecodeError:
            import base64

            msg["responseBody"] = {"content": base64.b64encode(body).decode(), "encoding": "base64"}
    return msg


class Notifier:
    """Sends one endpoint's notifications; `count(channel, outcome)` records each one's fate."""

    def __init__(self, endpoint: str, spec: NotificationSpec, kafka_bootstrap: str | None, count):
        self.endpoint, self.spec, self.count = endpoint, spec, count
        self.kafka_bootstrap = kafka_bootstrap
        self._producer = None
        self._client: httpx.AsyncClient | None = None
        self._pending: set[asyncio.Task] = set()

    @property
    def wants_body(self) -> bool:
        return self.spec.include_inference_response

    def kafka_topic(self, msg: dict) -> str | None:
        """The Kafka topic of `msg` (success or error), or None."""
        return self.spec.success_topic if msg["invocationStatus"] == "Completed" else self.spec.error_topic

    def send(self, msg: dict, kafka: bool = True) -> None:
        """Send `msg` in the background (returns at once); to the webhook only when not `kafka` (the Kafka
        queue's worker puts it in its offset commit's transaction)."""
        task = asyncio.get_running_loop().create_task(self._send(msg, kafka))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, msg: dict, kafka: bool = True) -> None:
        data = orjson.dumps(msg)
        topic = self.kafka_topic(msg)
        sends = []
        if topic and kafka:
            sends.append(self._channel("kafka", msg["inferenceId"], self._kafka(topic, msg["inferenceId"], data)))
        if self.spec.webhook_url:
            sends.append(self._channel("webhook", msg["inferenceId"], self._webhook(data)))
        await asyncio.gather(*sends)

    async def _channel(self, channel: str, inference_id: str, sending) -> None:
        try:
            await sending
            self.count(channel, "sent")
        except Exception as err:  # noqa: BLE001 - a notification never fails or loses the request
            self.count(channel, "failed")
            log.warning("async %s: %s notification of %s not delivered: %s", self.endpoint, channel, inference_id,
                        _reason(err))

    async def _kafka(self, topic: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._kafka_send, topic, key, data)

    def _kafka_send(self, topic: str, key: str, data: bytes) -> None:
        if self._producer is None:
            from kafka import KafkaProducer

            ms = int(self.spec.timeout_s * 1000)
            self._producer = KafkaProducer(bootstrap_servers=self.kafka_bootstrap.split(","), acks="all",
                                           client_id=f"ferry-async-{self.endpoint}", max_block_ms=ms,
                                           request_timeout_ms=ms, retries=3)
        self._producer.send(topic, key=key.encode(), value=data).get(timeout=self.spec.timeout_s)

    async def _webhook(self, data: bytes) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.spec.timeout_s)
        wait = FIRST_WAIT_S
        for attempt in range(1, self.spec.webhook_attempts + 1):
            try:
                r = await self._client.post(self.spec.webhook_url, content=data,
                                            headers={"content-type": "application/json"})
                if r.status_code < 300:
                    return
                if attempt == self.spec.webhook_attempts:
                    raise RuntimeError(f"HTTP {r.status_code}")
            except httpx.HTTPError:
                if attempt == self.spec.webhook_attempts:
                    raise
            await asyncio.sleep(wait)
            wait *= 2

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for the notifications still being sent."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)


def _reason(err: Exception) -> str:
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
