"""Batch transform without Ray: the JSONPath subset, request packing, and a worker's chunk through the data
plane (filters, join, a rejected record named by its line). The Ray Data job is
tests/integration/test_transform.py."""

from __future__ import annotations

import asyncio

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from pydantic import ValidationError

from core.errors import FerryError
from ferry.demo import write_demo
from serving.spec import ModelSpec
from serving.transform import jsonpath
from serving.transform.spec import TransformJob
from serving.transform.worker import TransformWorker, batches, read_chunk, split_lines


def test_jsonpath_subset():
    assert jsonpath.parse("$").whole
    assert jsonpath.parse("$[1:]").columns(4) == [1, 2, 3]
    assert jsonpath.parse("$[0,5:]").columns(7) == [0, 5, 6]
    assert jsonpath.parse("$[0,-1]").columns(5) == [0, 4]
    assert jsonpath.parse("$.features").apply({"id": 1, "features": [1, 2]}) == [1, 2]
    assert jsonpath.parse("$.features[1:]").apply({"features": [1, 2, 3]}) == [2, 3]
    assert jsonpath.parse("$['id','SageMakerOutput']").apply({"id": 1, "x": 2, "SageMakerOutput": 3}) == {
        "id": 1, "SageMakerOutput": 3}
    for bad, why in (("features", "start with \\$"), ("$..a", "outside the supported subset"),
                     ("$[a]", "not an index"), ("$[" + "1," * 40 + "]", "longer than 63")):
        with pytest.raises(FerryError, match=why):
            jsonpath.parse(bad)
    with pytest.raises(FerryError, match="index 9 is outside a record of 3 fields"):
        jsonpath.parse("$[9]").columns(3)
    with pytest.raises(FerryError, match="no key 'features'"):
        jsonpath.parse("$.features").apply({"x": 1})


def test_batches_pack_records_within_the_payload():
    sizes = np.array([3, 3, 3, 10, 3])  # + a line end each
    assert batches(sizes, 8, single=False) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert batches(sizes, 100, single=False) == [(0, 5)]
    assert batches(sizes, 100, single=True) == [(i, i + 1) for i in range(5)]


def test_read_chunk_owns_the_lines_that_start_in_it(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"aa\nbbbb\ncc\ndddd\n")
    size = f.stat().st_size
    parts = [read_chunk(str(f), s, min(s + 4, size), False) for s in range(0, size, 4)]
    assert b"".join(parts) == f.read_bytes() and all(not p or p.endswith(b"\n") for p in parts)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    write_demo(d)
    rows = np.loadtxt(d / "test_features.csv", delimiter=",", max_rows=200)
    probs = ort.InferenceSession(str(d / "model.onnx")).run(None, {"input": rows.astype(np.float32)})
    return d, rows, probs


def _run(job: TransformJob, data: bytes, path):
    path.write_bytes(data)
    worker = TransformWorker(job.model_dump_json())
    return asyncio.run(worker.chunk(str(path), 0, len(data)))


def test_csv_filter_join_output_filter_and_a_rejected_record(demo, tmp_path):
    d, rows, (labels, probs) = demo
    lines = [f"id{i}," + ",".join(repr(float(v)) for v in r) for i, r in enumerate(rows)]
    lines[17] = "id17,1,2,3"  # three features where the model takes eight
    job = TransformJob(model=ModelSpec(name="m", path=str(d / "model.onnx")), input="x", output="y",
                       input_filter="$[1:]", join_source="Input", output_filter="$[0,-3,-1]", max_payload_mb=0.002)
    body, n, done, failures = _run(job, ("\n".join(lines) + "\n\n").encode(), tmp_path / "in.csv")
    assert (n, done) == (201, 199) and len(failures) == 1
    assert failures[0][0] == 17 and "8" in failures[0][1]  # line index in the chunk, the model's reason
    out = [ln.split(",") for ln in body.decode().splitlines()]
    keep = np.arange(200) != 17
    assert [o[0] for o in out] == [f"id{i}" for i in np.flatnonzero(keep)]
    assert [int(o[1]) for o in out] == labels[keep].tolist()
    # onnxruntime's trees may differ in the last float32 bit between batch sizes: labels exactly
    np.testing.assert_allclose(np.array([o[2] for o in out], dtype=np.float32), probs[keep, 1], rtol=0, atol=2.4e-7)


def test_jsonlines_features_join_and_output_filter(demo, tmp_path):
    d, rows, (labels, probs) = demo
    records = [{"id": i, "features": r.tolist()} for i, r in enumerate(rows[:20])]
    job = TransformJob(model=ModelSpec(name="m", path=str(d / "model.onnx")), input="x", output="y",
                       content_type="application/jsonlines", input_filter="$.features", join_source="Input",
                       output_filter="$['id','SageMakerOutput']", batch_strategy="SingleRecord")
    body, n, done, failures = _run(job, b"\n".join(map(orjson.dumps, records)), tmp_path / "in.jsonl")
    assert (n, done, failures) == (20, 20, [])
    out = [orjson.loads(ln) for ln in body.splitlines()]
    assert [o["id"] for o in out] == list(range(20))
    assert [o["SageMakerOutput"]["label"] for o in out] == labels[:20].tolist()
    np.testing.assert_allclose(np.array([o["SageMakerOutput"]["probabilities"] for o in out], dtype=np.float32),
                               probs[:20], rtol=0, atol=2.4e-7)


def test_split_none_sends_each_file_whole(demo, tmp_path):
    d, rows, (labels, _) = demo
    job = TransformJob(model=ModelSpec(name="m", path=str(d / "model.onnx")), input="x", output="y",
                       split_type="None")
    data = "\n".join(",".join(repr(float(v)) for v in r) for r in rows).encode()
    body, _, done, failures = _run(job, data, tmp_path / "whole.csv")
    assert done == 1 and not failures
    assert [int(ln.split(",")[0]) for ln in body.decode().splitlines()] == labels.tolist()
    small = job.model_copy(update={"max_payload_mb": 0.001})
    _, _, done, failures = _run(small, data, tmp_path / "whole.csv")
    assert done == 0 and failures[0][0] is None and "above MaxPayloadInMB" in failures[0][1]


def test_job_options_refused_with_the_reason():
    model = ModelSpec(name="m", path="m.onnx")
    for kwargs, why in (({"input_filter": "$.."}, "outside the supported subset"),
                        ({"split_type": "None", "join_source": "Input"}, "use SplitType Line"),
                        ({"join_source": "Input", "accept": "application/jsonlines"}, "accept must be text/csv"),
                        ({"content_type": "application/json"}, "SplitType None"),
                        ({"max_payload_mb": 500}, "less than or equal to 100")):
        with pytest.raises(ValidationError, match=why):
            TransformJob(model=model, input="x", output="y", **kwargs)


@pytest.mark.parametrize("data", [b"1,2\n3,4\n", b"1,2\n3,4", b"\n1,2\n\n3,4\n\n", b"1, 2\r\n \t\n3,4\r\n", b"",
                                  b"\r\n1\r2\n\x0b\n"])
def test_split_lines_as_line_by_line(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    got_lines, keep = split_lines(data)
    assert (got_lines, list(keep)) == (lines, [i for i, ln in enumerate(lines) if ln.strip()])
