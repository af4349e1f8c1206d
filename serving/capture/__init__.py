"""Data capture: SageMaker capture JSONL records and the sinks that store them off the request path.

    sink = make_sink(spec, endpoint, kafka_bootstrap)   # JSONL files, or Kafka for kafka://<topic>
    sink.put(build_record(spec, variant=..., input_data=..., input_content_type=..., ...))
    sink.close()
"""

from serving.capture.factory import make_sink
from serving.capture.record import build_record
from serving.capture.sink import CaptureSink

__all__ = ["CaptureSink", "build_record", "make_sink"]
