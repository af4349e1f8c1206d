"""Data-capture sinks: SageMaker capture records (core.capture) stored off the request path.

    sink = make_sink(spec, endpoint, kafka_bootstrap)   # JSONL files, or Kafka for kafka://<topic>
    sink.put(record)                                     # never blocks, never raises; drops are counted
    sink.close()
"""

from serving.capture.factory import make_sink
from serving.capture.sink import CaptureSink

__all__ = ["CaptureSink", "make_sink"]
