"""make_sink: the capture backend a DataCaptureSpec's destination names, looked up by URI scheme.

Each backend class builds itself from the destination (`from_destination`); adding one is a module and a
line in SINKS.
"""

from __future__ import annotations

from importlib import import_module

from serving.capture.sink import CaptureSink
from serving.spec import DataCaptureSpec

SINKS = {  # destination scheme -> "module:class"
    "file": "serving.capture.files:JsonlFileSink",
    "kafka": "serving.capture.kafka:KafkaSink",
}


def make_sink(spec: DataCaptureSpec, endpoint: str, kafka_bootstrap: str | None = None, **options) -> CaptureSink:
    """JSONL files under a folder (no scheme, or file://), or a Kafka topic for kafka://<topic>."""
    scheme, sep, _ = spec.destination.partition("://")
    scheme = scheme if sep else "file"
    if scheme not in SINKS:
        raise ValueError(f"data_capture.destination: {spec.destination!r} has scheme {scheme!r}; "
                         f"use a folder or one of {sorted(s + '://' for s in SINKS)}")
    module, _, name = SINKS[scheme].partition(":")
    return getattr(import_module(module), name).from_destination(spec.destination, endpoint,
                                                                 kafka_bootstrap=kafka_bootstrap, **options)
