"""The capture backends, one map from a destination's scheme (the backend's `type`) to its sink class.

A backend is one module: its typed config (a `Strict` model with `type: Literal["<scheme>"]` and
`from_destination`: the destination is checked against it when the deploy file is read, and
DataCaptureSpec.sink derives it from the destination), its sink class (`config_class`,
`from_config`, `write_batch`), and one line in SINKS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from serving.capture.files import FilesCaptureConfig, JsonlFileSink
from serving.capture.kafka import KafkaCaptureConfig, KafkaSink
from serving.capture.sink import CaptureSink

if TYPE_CHECKING:
    from serving.spec import DataCaptureSpec

SINKS: dict[str, type[JsonlFileSink] | type[KafkaSink]] = {"file": JsonlFileSink, "kafka": KafkaSink}

CaptureConfig = Union[FilesCaptureConfig, KafkaCaptureConfig]


def capture_config(destination: str) -> CaptureConfig:
    """The typed config a destination names: a folder (no scheme, or file://) or kafka://<topic>."""
    scheme, sep, _ = destination.partition("://")
    scheme = scheme if sep else "file"
    if scheme not in SINKS:
        raise ValueError(f"{destination!r} has scheme {scheme!r}; use a folder or one of "
                         f"{sorted(s + '://' for s in SINKS)}")
    return SINKS[scheme].config_class.from_destination(destination)


def make_sink(spec: DataCaptureSpec, endpoint: str, kafka_bootstrap: str | None = None, **options) -> CaptureSink:
    """The sink of an endpoint's data capture: JSONL files under a folder, or a Kafka topic."""
    config = spec.sink
    return SINKS[config.type].from_config(config, endpoint, kafka_bootstrap=kafka_bootstrap, **options)
