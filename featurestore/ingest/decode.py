"""One Kafka message value -> a validated Record (flat JSON object or SageMaker's Record list)."""

from __future__ import annotations

import orjson

from featurestore.records import Record, RecordError, RecordParser

MAX_MESSAGE_BYTES = 350 * 1024


def decode(parser: RecordParser, value: bytes | None) -> Record:
    """Validate one message value; RecordError (naming the field) on anything wrong."""
    if value is None:
        raise RecordError("value", "empty message (tombstones are not records)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise RecordError("value", f"record larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise RecordError("value", f"not UTF-8 JSON: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("Record"), list) and len(obj) == 1:
        return parser.parse_sagemaker(obj["Record"])
    return parser.parse(obj)
