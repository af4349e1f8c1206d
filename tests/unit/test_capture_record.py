"""The capture record builder: SageMaker's JSONL shape and encodings."""

import base64
import json
from datetime import datetime, timezone

from core.capture import build_record
from serving.spec import DataCaptureSpec


def test_csv_input_json_output_record_shape():
    spec = DataCaptureSpec(enabled=True)
    r = build_record(spec, variant="AllTraffic", input_data=b"1,2,3", input_content_type="text/csv",
                     output_data='{"predictions": [1]}', output_content_type="application/json; charset=utf-8",
                     inference_id="req-7", event_id="e-1",
                     inference_time=datetime(2022, 2, 14, 17, 25, 49, 123000, tzinfo=timezone.utc))
    assert r == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "application/json; charset=utf-8", "mode": "OUTPUT",
                               "data": '{"predictions": [1]}', "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e-1", "inferenceId": "req-7", "inferenceTime": "2022-02-14T17:25:49.123Z"},
        "eventVersion": "0", "variant": "AllTraffic"}
    json.dumps(r)


def test_unknown_content_type_and_non_utf8_are_base64():
    spec = DataCaptureSpec(enabled=True)
    r = build_record(spec, variant="v", input_data=b"\x89PNG", input_content_type="image/png",
                     output_data=b"\xff\xfe", output_content_type="text/csv")
    assert r["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(r["captureData"]["endpointInput"]["data"]) == b"\x89PNG"
    assert r["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert "inferenceId" not in r["eventMetadata"]
    assert len(r["eventMetadata"]["eventId"]) == 36


def test_capture_options_and_custom_content_type_lists():
    spec = DataCaptureSpec(enabled=True, capture=["input"], csv_content_types=["text/x-csv"],
                           json_content_types=["application/jsonlines"])
    r = build_record(spec, variant="v", input_data="a,b", input_content_type="text/x-csv",
                     output_data="1", output_content_type="text/csv")
    assert set(r["captureData"]) == {"endpointInput"}
    assert r["captureData"]["endpointInput"]["encoding"] == "CSV"
    r = build_record(spec, variant="v", input_data="a,b", input_content_type="text/csv")
    assert r["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_event_ids_are_distinct_version_4_uuids_as_uuid4_writes_them():
    import uuid

    from core.capture import new_event_id

    ids = [new_event_id() for _ in range(1000)]  # several pools
    assert len(set(ids)) == len(ids)
    for i in ids[:300]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
