"""read_capture on payload shapes a real endpoint produces; multi-row requests joined to ground truth."""

import json

from monitor import ground_truth
from monitor.capture_reader import read_capture
from core.capture import build_record
from serving.spec import DataCaptureSpec

SPEC = DataCaptureSpec(enabled=True)


def _write(tmp_path, records):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_batched_csv_and_v2_json_rows(tmp_path):
    v2_in = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
    v2_out = {"outputs": [{"name": "label", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}
    _write(tmp_path, [
        build_record(SPEC, variant="A", input_data="7,8,9\n10,11,12", input_content_type="text/csv",
                     output_data="1\n0", output_content_type="text/csv", inference_id="batch"),
        build_record(SPEC, variant="B", input_data=json.dumps(v2_in), input_content_type="application/json",
                     output_data=json.dumps(v2_out), output_content_type="application/json", event_id="v2"),
        build_record(SPEC, variant="B", input_data=b"1,1,1", input_content_type="text/x-unknown",
                     output_data=b"0", output_content_type="text/plain", event_id="b64"),
    ])
    df = read_capture(tmp_path, input_columns=["a", "b", "c"])
    assert df[["a", "b", "c", "prediction"]].values.tolist() == [[7, 8, 9, 1], [10, 11, 12, 0],
                                                                  [1, 2, 3, 0], [4, 5, 6, 1]]
    assert df["inferenceId"].tolist()[:2] == ["batch", "batch"]

    gt = ground_truth.parse([ground_truth.record("batch", "0\n1"), ground_truth.record("v2", "1\n1")])
    merged = ground_truth.merge(df, gt)
    assert merged[["a", "prediction", "groundTruth"]].values.tolist() == [[7, 1, 0], [10, 0, 1], [1, 0, 1], [4, 1, 1]]


def test_incomplete_last_line_is_left_for_later_and_duplicates_dropped(tmp_path):
    r = build_record(SPEC, variant="A", input_data="1,2", input_content_type="text/csv", event_id="e1")
    (tmp_path / "a.jsonl").write_text(json.dumps(r) + "\n" + json.dumps(r) + "\n" + json.dumps(r)[:20])
    df = read_capture(tmp_path)
    assert df[["_c0", "_c1", "eventId"]].values.tolist() == [[1, 2, "e1"]]


def test_chunks_read_the_same_rows_as_one_pass(tmp_path, monkeypatch):
    """Records read a few at a time (mixed codecs, multi-row payloads, a repeat of an earlier chunk's record, an
    unreadable line) give the frame of one pass over them all."""
    from monitor import capture_reader

    v2_in = {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    records = []
    for i in range(7):
        if i % 3 == 0:
            records.append(build_record(SPEC, variant="A", input_data=f"{i},{i}\n{i},{-i}", input_content_type="text/csv",
                                        output_data="1\n0", output_content_type="text/csv", event_id=f"e{i}"))
        else:
            records.append(build_record(SPEC, variant="B", input_data=json.dumps(v2_in),
                                        input_content_type="application/json", output_data=f"{i}",
                                        output_content_type="text/csv", event_id=f"e{i}"))
    lines = [json.dumps(r) for r in records]
    lines.insert(5, lines[1])  # an at-least-once repeat, in a later chunk
    lines.insert(3, "not json")
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    whole = read_capture(tmp_path)
    monkeypatch.setattr(capture_reader, "CHUNK_RECORDS", 2)
    chunked = read_capture(tmp_path)
    assert chunked.equals(whole) and chunked.attrs == whole.attrs
    assert whole["eventId"].tolist() == [e for i in range(7) for e in [f"e{i}"] * 2]
    assert whole.attrs["skipped"] == {"not a JSON capture record": 1}
