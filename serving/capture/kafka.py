"""Kafka capture sink (kafka-python): one JSON message per record, keyed by eventId, acks=all.

The producer is created in the worker thread, so a broker that is down at start-up delays writing
(with retries) instead of failing the endpoint. Each batch is sent, flushed, and every send's result
checked; records whose send failed are retried by CaptureSink.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import orjson
from pydantic import Field

from core.schema import Strict
from serving.capture.sink import CaptureSink

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = logging.getLogger(__name__)


class KafkaCaptureConfig(Strict):
    """One JSON message per record on a Kafka topic: kafka://<topic> (the brokers are the deploy file's kafka
    section)."""

    type: Literal["kafka"] = "kafka"
    topic: str = Field(min_length=1, description="the capture topic")

    @classmethod
    def from_destination(cls, destination: str) -> "KafkaCaptureConfig":
        topic = destination.removeprefix("kafka://").strip("/")
        if not topic:
            raise ValueError(f"{destination!r} names no topic (kafka://<topic>)")
        return cls(topic=topic)


class KafkaSink(CaptureSink):
    kind = "kafka"
    config_class = KafkaCaptureConfig

    @classmethod
    def from_config(cls, config: KafkaCaptureConfig, endpoint: str, kafka_bootstrap: str | None = None, **options):
        if not kafka_bootstrap:
            raise ValueError(f"data_capture.destination: kafka://{config.topic} needs kafka.bootstrap_servers in the "
                             "deploy file")
        return cls(kafka_bootstrap, config.topic, endpoint, **options)

    def __init__(self, bootstrap_servers: str, topic: str, endpoint: str, send_timeout_s: float = 10.0, **kw):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.send_timeout_s = send_timeout_s
        self._producer: KafkaProducer | None = None
        super().__init__(endpoint, **kw)

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            from kafka import KafkaProducer  # here, not at import: the config above is read with the deploy file

            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers.split(","),
                client_id=f"ferry-capture-{self.endpoint}",
                acks="all",
                enable_idempotence=True,
                retries=5,
                linger_ms=20,
                max_block_ms=int(self.send_timeout_s * 1000),
                request_timeout_ms=int(self.send_timeout_s * 1000),
                reconnect_backoff_max_ms=2000,
                value_serializer=orjson.dumps,
                key_serializer=lambda k: k.encode("utf-8") if k else None,
            )
        return self._producer

    def write_batch(self, records: list[dict]) -> list[dict]:
        producer = self._connect()
        futures = []
        failed = []
        for r in records:
            try:
                futures.append((r, producer.send(self.topic, value=r, key=r["eventMetadata"].get("eventId"))))
            except Exception as err:  # noqa: BLE001 - metadata timeout while the broker is away
                log.debug("capture send failed: %s", err)
                failed.append(r)
        producer.flush(timeout=self.send_timeout_s)
        for r, fut in futures:
            try:
                fut.get(timeout=self.send_timeout_s)
            except Exception:  # noqa: BLE001 - counted and retried by the caller
                failed.append(r)
        return failed

    def close_backend(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
