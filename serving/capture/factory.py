"""make_sink: the capture backend a DataCaptureSpec asks for."""

from __future__ import annotations

from serving.capture.sink import CaptureSink
from serving.spec import DataCaptureSpec

KAFKA_SCHEME = "kafka://"


def make_sink(spec: DataCaptureSpec, endpoint: str, kafka_bootstrap: str | None = None, **options) -> CaptureSink:
    """JSONL files under spec.destination, or a Kafka topic for destination kafka://<topic>."""
    if spec.destination.startswith(KAFKA_SCHEME):
        topic = spec.destination[len(KAFKA_SCHEME):].strip("/")
        if not topic:
            raise ValueError(f"data_capture.destination: {spec.destination!r} names no topic (kafka://<topic>)")
        if not kafka_bootstrap:
            raise ValueError(f"data_capture.destination: {spec.destination!r} needs kafka.bootstrap_servers "
                             "in the deploy file")
        from serving.capture.kafka import KafkaSink
        return KafkaSink(kafka_bootstrap, topic, endpoint, **options)
    from serving.capture.files import JsonlFileSink
    return JsonlFileSink(spec.destination, endpoint, **options)
