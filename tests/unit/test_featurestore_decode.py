"""Kafka message values -> records: both documented shapes, and every rejection names its reason."""

from __future__ import annotations

import orjson
import pytest

from featurestore.demo import applicant_feature_group
from featurestore.ingest import MAX_MESSAGE_BYTES, decode
from featurestore.records import RecordError, RecordParser

P = RecordParser(applicant_feature_group())


def test_flat_and_sagemaker_shapes_decode_alike():
    flat = decode(P, orjson.dumps({"applicant_id": 7, "event_time": 12.5, "income": 100.0, "housing": "own"}))
    sm = decode(P, orjson.dumps({"Record": [
        {"FeatureName": "applicant_id", "ValueAsString": "7"}, {"FeatureName": "event_time", "ValueAsString": "12.5"},
        {"FeatureName": "income", "ValueAsString": "100"}, {"FeatureName": "housing", "ValueAsString": "own"}]}))
    assert flat.record_id == sm.record_id == "7" and flat.event_time == sm.event_time == 12.5
    assert flat.values == sm.values


@pytest.mark.parametrize("value,field", [
    (None, "value"), (b"\xff\xfe", "value"), (b"{", "value"), (b"[1]", "Record"),
    (b" " * (MAX_MESSAGE_BYTES + 1), "value"),
    (orjson.dumps({"applicant_id": 1, "event_time": "soon"}), "event_time"),
    (orjson.dumps({"Record": [{"FeatureName": "applicant_id"}]}), "applicant_id"),
])
def test_rejections(value, field):
    with pytest.raises(RecordError) as e:
        decode(P, value)
    assert e.value.field == field
