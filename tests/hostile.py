"""Hostile requests, as issue 11's attack sent them: bodies, headers and gRPC messages that once gave 5xx
answers, hangs, huge allocations or unbounded echoes. Shared by the in-process test (no Ray) and the one on a
real Ray Serve, so both see the same list.

`http_cases(endpoint, feature_group)` gives (name, method, path, headers, body) tuples; `grpc_cases(model)`
gives (name, ModelInferRequest bytes) pairs. Every case must get a 4xx (gRPC: a non-INTERNAL,
non-UNKNOWN status) whose message is bounded.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np

from core.errors import MAX_MESSAGE  # no error message is longer

LONG = "x" * 20_000  # a client string far longer than any message may quote
DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJ = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
BIG_INT = b"1" + b"0" * 400


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npy_header(header: str, data: bytes = b"") -> bytes:
    head = header.encode("latin-1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


def npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.ones((2, 8)))
    return buf.getvalue()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", npy(np.ones(8)))
    return buf.getvalue()


def v2(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def tensor(**fields) -> dict:
    return {"name": "input", "datatype": "FP32", "shape": [1, 8], "data": [0.0] * 8, **fields}


def v2_binary(head: dict, data: bytes) -> tuple[dict[str, str], bytes]:
    h = json.dumps(head).encode()
    return {"inference-header-content-length": str(len(h))}, h + data


def http_cases(endpoint: str, group: str) -> list[tuple[str, str, str, dict[str, str | bytes], bytes]]:
    sm = f"/endpoints/{endpoint}/invocations"
    infer = f"/v2/models/{endpoint}/infer"
    csv_h, json_h, npy_h = {"content-type": "text/csv"}, {"content-type": "application/json"}, \
        {"content-type": "application/x-npy"}
    huge_shape = [2 ** 40, 2 ** 40, 2 ** 40]
    bin_h, bin_body = v2_binary({"inputs": [{"name": "input", "datatype": "FP32", "shape": huge_shape,
                                             "parameters": {"binary_data_size": 4}}]}, b"\0" * 4)
    bytes_h, bytes_body = v2_binary({"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1],
                                                 "parameters": {"binary_data_size": 8}}]},
                                    struct.pack("<I", 2 ** 31) + b"abcd")
    cases = [
        # CSV
        ("csv unicode whitespace", "POST", sm, csv_h, "\u2028\u3000\u00a0\x1c\x85".encode()),
        ("csv only commas", "POST", sm, csv_h, b",,,,,,,"),
        ("csv nul bytes", "POST", sm, csv_h, b"\0" * 64),
        ("csv not utf-8", "POST", sm, csv_h, b"\xff\xfe1,2"),
        ("csv huge number", "POST", sm, csv_h, b",".join([BIG_INT] * 8)),
        ("csv ragged", "POST", sm, csv_h, b"1,2,3\n1,2\n" * 100),
        ("csv long token", "POST", sm, csv_h, LONG.encode()),
        ("csv blank lines", "POST", sm, csv_h, b"\n\n\r\n\r\r"),
        ("csv wrong width", "POST", sm, csv_h, b"1,2,3"),
        # SageMaker JSON
        ("json deep list", "POST", sm, json_h, DEEP),
        ("json deep object", "POST", sm, json_h, DEEP_OBJ),
        ("json big int", "POST", sm, json_h, b'{"instances": [[' + BIG_INT + b"]]}"),
        ("json big float", "POST", sm, json_h, b"[[1e400, 1, 2, 3, 4, 5, 6, 7]]"),
        ("json nan literal", "POST", sm, json_h, b"[[NaN, 1, 2, 3, 4, 5, 6, 7]]"),
        ("json scalar", "POST", sm, json_h, b"3"),
        ("json string", "POST", sm, json_h, json.dumps(LONG).encode()),
        ("json null", "POST", sm, json_h, b"null"),
        ("json empty", "POST", sm, json_h, b""),
        ("json ragged", "POST", sm, json_h, b"[[1,2],[1]]"),
        ("json empty rows", "POST", sm, json_h, b"[[]]"),
        ("json strings", "POST", sm, json_h, json.dumps([["a"] * 8]).encode()),
        ("json instances object", "POST", sm, json_h, b'{"instances": {"a": 1}}'),
        ("json named wrong", "POST", sm, json_h, json.dumps({"inputs": {LONG: [[1] * 8]}}).encode()),
        ("json named scalar", "POST", sm, json_h, b'{"inputs": {"input": 1}}'),
        ("json named nested objects", "POST", sm, json_h, b'{"inputs": {"input": [{"a": 1}]}}'),
        ("json named bools", "POST", sm, json_h, json.dumps({"inputs": {"input": [[True] * 8]}}).encode()),
        ("json v2 big shape", "POST", sm, json_h, v2([tensor(shape=huge_shape)])),
        ("json other key", "POST", sm, json_h, json.dumps({LONG: 1}).encode()),
        ("json not utf-8", "POST", sm, json_h, b'{"instances": "\xff"}'),
        # NPY
        ("npy 10^12 rows", "POST", sm, npy_h,
         npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 8), }")),
        ("npy unterminated header", "POST", sm, npy_h, npy_header("{'descr': '<f8', 'shape': (1,")),
        ("npy header too long", "POST", sm, npy_h, b"\x93NUMPY\x01\x00\xff\xff{"),
        ("npy npz", "POST", sm, npy_h, npz()),
        ("npy zip", "POST", sm, npy_h, zip_bytes()),
        ("npy 0-d", "POST", sm, npy_h, npy(np.float64(3.0))),
        ("npy zero rows", "POST", sm, npy_h, npy(np.zeros((0, 8)))),
        ("npy zero columns", "POST", sm, npy_h, npy(np.zeros((3, 0)))),
        ("npy object", "POST", sm, npy_h,
         npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8)),
        ("npy pickle payload", "POST", sm, npy_h, b"\x80\x04\x95" + b"\0" * 32),
        ("npy strings", "POST", sm, npy_h, npy(np.array([["a"] * 8]))),
        ("npy complex", "POST", sm, npy_h, npy(np.ones((1, 8), dtype=np.complex64))),
        ("npy 3-d", "POST", sm, npy_h, npy(np.ones((2, 2, 2)))),
        ("npy big dims", "POST", sm, npy_h,
         npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (" + "9" * 400 + ", 8), }")),
        ("npy negative dims", "POST", sm, npy_h,
         npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 8), }")),
        ("npy version 9", "POST", sm, npy_h, b"\x93NUMPY\x09\x00\x10\x00" + b" " * 16),
        ("npy fortran", "POST", sm, npy_h, npy(np.asfortranarray(np.ones((2, 8))))),
        ("npy wrong columns", "POST", sm, npy_h, npy(np.ones((2, 3)))),
        ("npy nested header", "POST", sm, npy_h, npy_header("(" * 5000 + ")" * 5000)),
        # SageMaker headers
        ("no content type", "POST", sm, {}, b"1,2"),
        ("long content type", "POST", sm, {"content-type": LONG}, b"1,2"),
        ("long accept", "POST", sm, {**csv_h, "accept": LONG}, b"1,2,3,4,5,6,7,8"),
        ("long target variant", "POST", sm, {**csv_h, "x-amzn-sagemaker-target-variant": LONG}, b"1,2,3,4,5,6,7,8"),
        ("long inference id", "POST", sm, {**csv_h, "x-amzn-sagemaker-inference-id": LONG}, b"1,2,3,4,5,6,7,8"),
        ("bad content length", "POST", sm, {**csv_h, "content-length": "-1"}, b""),
        ("long endpoint name", "POST", f"/endpoints/{LONG}/invocations", csv_h, b"1"),
        # V2 JSON
        ("v2 deep", "POST", infer, {}, DEEP),
        ("v2 big int data", "POST", infer, {}, v2([tensor(data=[10 ** 400] + [0] * 7)]).replace(
            str(10 ** 400).encode(), BIG_INT)),
        ("v2 int64 overflow data", "POST", infer, {}, v2([tensor(datatype="INT64", data=[2 ** 70] * 8)])),
        ("v2 huge shape", "POST", infer, {}, v2([tensor(shape=huge_shape)])),
        ("v2 negative shape", "POST", infer, {}, v2([tensor(shape=[-1, 8])])),
        ("v2 float shape", "POST", infer, {}, v2([tensor(shape=[1.5, 8])])),
        ("v2 bool shape", "POST", infer, {}, v2([tensor(shape=[True, 8])])),
        ("v2 string shape", "POST", infer, {}, v2([tensor(shape="1,8")])),
        ("v2 list datatype", "POST", infer, {}, v2([tensor(datatype=["FP32"])])),
        ("v2 unknown datatype", "POST", infer, {}, v2([tensor(datatype=LONG)])),
        ("v2 bytes integer", "POST", infer, {}, v2([tensor(datatype="BYTES", shape=[1], data=[10 ** 15])])),
        ("v2 bytes nested", "POST", infer, {}, v2([tensor(datatype="BYTES", shape=[1], data=[["a"]])])),
        ("v2 parameters list", "POST", infer, {}, v2([tensor()], parameters=[1])),
        ("v2 input parameters string", "POST", infer, {}, v2([tensor(parameters="x")])),
        ("v2 output parameters list", "POST", infer, {}, v2([tensor()], outputs=[{"name": "label", "parameters": []}])),
        ("v2 outputs object", "POST", infer, {}, v2([tensor()], outputs={"name": "label"})),
        ("v2 output long name", "POST", infer, {}, v2([tensor()], outputs=[{"name": LONG}])),
        ("v2 id object", "POST", infer, {}, v2([tensor()], id={"a": 1})),
        ("v2 name list", "POST", infer, {}, v2([tensor(name=["input"])])),
        ("v2 long input name", "POST", infer, {}, v2([tensor(name=LONG)])),
        ("v2 duplicate inputs", "POST", infer, {}, v2([tensor(), tensor()])),
        ("v2 data object", "POST", infer, {}, v2([tensor(data={"a": 1})])),
        ("v2 data strings", "POST", infer, {}, v2([tensor(data=["a"] * 8)])),
        ("v2 data wrong count", "POST", infer, {}, v2([tensor(data=[1.0] * 7)])),
        ("v2 data nested ragged", "POST", infer, {}, v2([tensor(data=[[1.0], [1.0, 2.0]])])),
        ("v2 inputs empty", "POST", infer, {}, v2([])),
        ("v2 inputs object", "POST", infer, {}, v2({"a": 1})),
        ("v2 not an object", "POST", infer, {}, b"[1, 2]"),
        ("v2 wrong dtype", "POST", infer, {}, v2([tensor(datatype="INT8")])),
        ("v2 scalar shape", "POST", infer, {}, v2([tensor(shape=[], data=[1.0])])),
        ("v2 binary huge shape", "POST", infer, bin_h, bin_body),
        ("v2 binary bytes length", "POST", infer, bytes_h, bytes_body),
        ("v2 binary header length text", "POST", infer, {"inference-header-content-length": LONG}, b"{}"),
        ("v2 binary header length superscript", "POST", infer, {"inference-header-content-length": b"\xb2"},
         b"{}"),  # fuzz finding: str.isdigit() is true for it, int() is not
        ("v2 zero rows huge dims", "POST", infer, {}, v2([tensor(shape=[0, 2 ** 62, 2 ** 62], data=[])])),  # fuzz
        ("v2 binary header past body", "POST", infer, {"inference-header-content-length": "99999"}, b"{}"),
        ("v2 binary size bool", "POST", infer, *v2_binary(
            {"inputs": [tensor(data=None, parameters={"binary_data_size": True})]}, b"\0")),
        ("v2 binary size negative", "POST", infer, *v2_binary(
            {"inputs": [tensor(data=None, parameters={"binary_data_size": -4})]}, b"")),
        ("v2 binary unclaimed bytes", "POST", infer, *v2_binary({"inputs": [tensor()]}, b"\0" * 64)),
        ("v2 long version", "POST", f"/v2/models/{endpoint}/versions/{LONG}/infer", {}, v2([tensor()])),
        ("v2 long model", "GET", f"/v2/models/{LONG}", {}, b""),
        ("v2 long model ready", "GET", f"/v2/models/{LONG}/versions/{LONG}/ready", {}, b""),
        ("v2 unknown route", "DELETE", "/v2/" + LONG, {}, b""),
        # ground truth
        ("ground truth deep", "POST", f"/ground-truth?endpoint={endpoint}", {}, DEEP),
        ("ground truth big int", "POST", f"/ground-truth?endpoint={endpoint}", {}, b'[{"a": ' + BIG_INT + b"}]"),
        ("ground truth metadata not an object", "POST", f"/ground-truth?endpoint={endpoint}", {},
         json.dumps([{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": [1],
                      "eventVersion": "0"}]).encode()),
        ("ground truth metadata id list", "POST", f"/ground-truth?endpoint={endpoint}", {},
         json.dumps([{"groundTruthData": {"data": "1", "encoding": "CSV"},
                      "eventMetadata": {"eventId": ["x"]}, "eventVersion": "0"}]).encode()),
        ("ground truth data not an object", "POST", f"/ground-truth?endpoint={endpoint}", {},
         json.dumps([{"groundTruthData": "1", "eventMetadata": {"eventId": "x"}}]).encode()),
        ("ground truth not utf-8", "POST", f"/ground-truth?endpoint={endpoint}", {}, b"\xff\xfe"),
        ("ground truth long endpoint", "POST", f"/ground-truth?endpoint={LONG}", {}, b"[]"),
        ("ground truth lines of scalars", "POST", f"/ground-truth?endpoint={endpoint}", {}, b"1\n2\n"),
        # feature store
        ("feature name list", "PUT", f"/FeatureGroup/{group}", {}, json.dumps(
            {"Record": [{"FeatureName": ["applicant_id"], "ValueAsString": "1"}]}).encode()),
        ("feature deep", "PUT", f"/FeatureGroup/{group}", {}, DEEP),
        ("feature big int", "PUT", f"/FeatureGroup/{group}", {}, b'{"Record": ' + BIG_INT + b"}"),
        ("feature long group", "GET", f"/FeatureGroup/{LONG}?RecordIdentifierValueAsString=1", {}, b""),
        ("feature group path escape", "POST", "/feature-groups", {}, json.dumps({
            "name": "escape", "record_identifier": "id", "event_time": "et",
            "features": [{"FeatureName": "id", "FeatureType": "Integral"},
                         {"FeatureName": "et", "FeatureType": "Fractional"}],
            "offline_store": {"enabled": True, "path": "/tmp/ferry-escape"}}).encode()),
        ("feast deep", "POST", "/get-online-features", {}, DEEP_OBJ),
        ("batch get not utf-8", "POST", "/BatchGetRecord", {}, b"\xff{"),
        # routes
        ("unknown route", "GET", "/" + LONG, {}, b""),
        ("monitoring executions long", "GET", f"/monitoring/executions?endpoint={LONG}", {}, b""),
        ("control unknown", "POST", "/control/" + LONG, {}, b""),
        ("control weights deep", "PUT", f"/control/endpoints/{endpoint}/weights", {}, DEEP_OBJ),
        ("control weights wrong types", "PUT", f"/control/endpoints/{endpoint}/weights", {},
         b'{"weights": {"AllTraffic": "x"}}'),
        ("control weights long variant", "PUT", f"/control/endpoints/{endpoint}/weights", {},
         json.dumps({"weights": {LONG: 1}}).encode()),
        ("openapi post", "POST", "/openapi.json", {}, b"x"),
    ]
    return cases


def grpc_cases(model: str) -> list[tuple[str, bytes]]:
    """Malformed ModelInferRequests (serialized, so the test harness can send them with any stub)."""
    from serving.protos import inference_pb2 as pb

    def req(**tensor_fields) -> pb.ModelInferRequest:
        r = pb.ModelInferRequest(model_name=model)
        t = r.inputs.add(name=tensor_fields.pop("name", "input"), datatype=tensor_fields.pop("datatype", "FP32"))
        t.shape.extend(tensor_fields.pop("shape", [1, 8]))
        return r

    out = []
    r = req(shape=[2 ** 40, 2 ** 40, 2 ** 40])
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("huge shape raw", r))
    r = req(shape=[2 ** 62, 4])
    r.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    out.append(("huge shape contents", r))
    r = req(shape=[-1, 8])
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("negative shape", r))
    r = req(datatype=LONG)
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("long datatype", r))
    r = req(name=LONG)
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("long input name", r))
    r = req()
    r.raw_input_contents.append(b"\0" * 3)
    out.append(("short raw", r))
    r = req()
    out.append(("no data", r))
    r = req(datatype="BYTES", shape=[1])
    r.raw_input_contents.append(struct.pack("<I", 2 ** 31) + b"ab")
    out.append(("bytes length", r))
    r = req(datatype="FP16")
    r.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    out.append(("fp16 contents", r))
    r = req()
    r.inputs[0].contents.fp32_contents.extend([0.0] * 8)
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("both contents and raw", r))
    r = req()
    r.raw_input_contents.append(b"\0" * 32)
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("extra raw", r))
    r = pb.ModelInferRequest(model_name=model)
    out.append(("no inputs", r))
    r = pb.ModelInferRequest(model_name=LONG)
    out.append(("long model name", r))
    r = req()
    r.model_version = LONG
    r.raw_input_contents.append(b"\0" * 32)
    out.append(("long version", r))
    r = req()
    r.raw_input_contents.append(b"\0" * 32)
    r.outputs.add(name=LONG)
    out.append(("long output name", r))
    r = req(datatype="INT8")
    r.raw_input_contents.append(b"\0" * 8)
    out.append(("wrong dtype", r))
    r = req(shape=[])
    r.raw_input_contents.append(b"\0" * 4)
    out.append(("scalar", r))
    r = req(shape=[0, 8])
    r.raw_input_contents.append(b"")
    out.append(("zero rows", r))
    r = req(shape=[0, 2 ** 62, 2 ** 62])  # fuzz finding: no elements, but numpy cannot reshape to it
    r.raw_input_contents.append(b"")
    out.append(("zero rows huge dims", r))
    r = req()
    r.inputs.add(name="input", datatype="FP32", shape=[1, 8])
    r.raw_input_contents.extend([b"\0" * 32, b"\0" * 32])
    out.append(("duplicate inputs", r))
    return [(name, r.SerializeToString()) for name, r in out]
