"""Seeded, bounded fuzzing (hypothesis) of every payload codec, the gRPC request codec and the deploy-file
schema. The property everywhere: client bytes give a value or a 4xx FerryError with a bounded message, never
another exception (which would be a 5xx); encoders round-trip what they are given; captured payloads are read
or skipped with a reason, never raised. Findings are regression cases in tests/hostile.py."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.errors import MAX_MESSAGE, FerryError
from core.payloads import CSV, JSON, NPY, V2_BINARY, v2
from ferry.config import ConfigError, DeployFile, parse_config
from ferry.demo import demo_config
from serving.adapters import grpc as grpc_adapter
from serving.protos import inference_pb2 as pb

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def dumps(doc) -> bytes:
    """JSON as any client may send it (integers past 64 bits, NaN included)."""
    return json.dumps(doc).encode()


def decodes_or_4xx(decode, body):
    try:
        return decode(body)
    except FerryError as err:
        assert 400 <= err.error.status < 500 and len(err.error.message) <= MAX_MESSAGE, err.error
        return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=40)
numbers = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["1e400", "nan", "inf", "", " ", "0x10", "1_0", "\u00a0", "１"]))
finite_matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                             elements=st.floats(-1e300, 1e300, allow_nan=False))


# --- CSV

@FUZZ
@given(st.binary(max_size=300))
@example("\u2028\u3000\u00a0\x1c\x85".encode())
def test_csv_any_bytes(body):
    decodes_or_4xx(CSV.decode, body)


@FUZZ
@given(st.lists(st.lists(numbers, min_size=1, max_size=5), min_size=1, max_size=5),
       st.sampled_from(["\n", "\r\n", "\r", "\n\n"]), st.sampled_from([",", ", ", " ,"]))
def test_csv_rows_of_tokens(rows, newline, sep):
    body = newline.join(sep.join(str(v) for v in row) for row in rows).encode()
    out = decodes_or_4xx(CSV.decode, body)
    if out is not None:
        assert out.ndim == 2 and out.shape[0] >= 1 and out.dtype == np.float64


number_texts = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr), st.floats(width=32).map("{:.9g}".format),
    st.integers(-2 ** 80, 2 ** 80).map(str), st.floats(-1e6, 1e6).map("{:.3e}".format),
    st.sampled_from(["-0", "0", "-0.0", "-00", "1E+5", "1e-400", "1e999", "+1", ".5", "5.", "01", "-", "e", "1e",
                     "--1", "1-2", "", " 7 ", "\t8"]))


@FUZZ
@given(st.lists(st.lists(number_texts, min_size=3, max_size=3), min_size=1, max_size=4), st.sampled_from(["\n", "\r\n"]))
@example([["-0", "1", "2"]], "\n")
def test_csv_numbers_as_float_reads_them(rows, newline):
    """The C fast path for plain numbers gives what float() gives for every token (sign of zero included), and
    whatever float() refuses is refused with the token-by-token message."""
    body = newline.join(",".join(row) for row in rows).encode()
    try:
        expected = np.array([[float(t) for t in row] for row in rows])
    except ValueError:
        expected = None
    out = decodes_or_4xx(CSV.decode, body)
    if expected is None:
        assert out is None
    else:
        np.testing.assert_array_equal(out, expected)
        assert np.array_equal(np.signbit(out), np.signbit(expected))


@FUZZ
@given(finite_matrices.filter(lambda a: a.size > 0))
def test_csv_round_trip(matrix):
    np.testing.assert_array_equal(CSV.decode(CSV.encode({"y": matrix})), matrix)


# --- SageMaker JSON and V2 JSON

@FUZZ
@given(st.binary(max_size=300))
def test_json_any_bytes(body):
    decodes_or_4xx(JSON.decode, body)


@FUZZ
@given(json_values)
def test_json_any_document(doc):
    decodes_or_4xx(JSON.decode, dumps(doc))


@FUZZ
@given(st.dictionaries(st.sampled_from(["instances", "inputs", "outputs", "parameters", "id"]), json_values,
                       min_size=1, max_size=3))
def test_json_sagemaker_shaped_documents(doc):
    decodes_or_4xx(JSON.decode, dumps(doc))


@FUZZ
@given(finite_matrices.filter(lambda a: a.size > 0))
def test_json_round_trip(matrix):
    np.testing.assert_array_equal(JSON.decode(dumps({"instances": matrix.tolist()})), matrix)


def v2_tensors():
    """V2 tensor objects: mostly well-formed, each field sometimes replaced by anything."""
    def field(good):
        return st.one_of(good, json_values)
    shape = st.lists(st.integers(-2, 2 ** 64), max_size=4)
    return st.fixed_dictionaries(
        {"name": field(st.sampled_from(["input", "x", ""])),
         "datatype": field(st.sampled_from(sorted(v2.V2_TO_NUMPY))),
         "shape": field(shape)},
        optional={"data": json_values, "parameters": field(st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-4, 64), "binary_data": st.booleans()}))})


@FUZZ
@given(st.lists(v2_tensors(), max_size=3), st.binary(max_size=64),
       st.lists(st.fixed_dictionaries({"name": json_values}, optional={"parameters": json_values}), max_size=2))
def test_v2_documents_json_and_binary(tensors, data, outputs):
    head = dumps({"inputs": tensors, "outputs": outputs})
    decodes_or_4xx(lambda b: v2.parse_request(b, None), head)
    decodes_or_4xx(lambda b: v2.parse_request(b, str(len(head))), head + data)


@FUZZ
@given(st.binary(max_size=200), st.one_of(st.none(), st.text(max_size=12)))
def test_v2_any_bytes_and_header(body, header_length):
    decodes_or_4xx(lambda b: v2.parse_request(b, header_length), body)


@FUZZ
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_]),
                  hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)))
def test_v2_binary_round_trip(arr):
    body, content_type = v2.binary_document("inputs", {"x": arr})
    head = v2.header_size(content_type)
    parsed = v2.parse_request(body, str(head)).inputs["x"]
    np.testing.assert_array_equal(parsed, arr)
    assert parsed.dtype == arr.dtype
    rows, _ = V2_BINARY.read_one(body, "input", content_type)
    assert rows.shape[0] == (arr.shape[0] if arr.ndim else 1)


# --- NPY

def npy_header(header: str, data: bytes) -> bytes:
    head = header.encode("latin-1", "replace")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


@FUZZ
@given(st.binary(max_size=300))
def test_npy_any_bytes(body):
    decodes_or_4xx(NPY.decode, b"\x93NUMPY" + body)
    decodes_or_4xx(NPY.decode, body)


@FUZZ
@given(st.sampled_from(["<f8", "<f4", "|b1", "<i8", "|O", "<U3", "<c8", "V8", "x", "<M8[s]"]), st.booleans(),
       st.lists(st.integers(-1, 2 ** 66), max_size=3), st.binary(max_size=64))
def test_npy_headers(descr, fortran, shape, data):
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    decodes_or_4xx(NPY.decode, npy_header(header, data))


@FUZZ
@given(st.text(max_size=120), st.binary(max_size=32))
def test_npy_header_text(header, data):
    decodes_or_4xx(NPY.decode, npy_header(header, data))


@FUZZ
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.bool_]),
                  hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)))
def test_npy_round_trip(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    out = NPY.decode(buf.getvalue())
    np.testing.assert_array_equal(out, arr.reshape(1, -1) if arr.ndim == 1 else arr)


# --- captured payloads: read or skipped with a reason, never raised

@FUZZ
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=4), st.sampled_from(["input", "output"]))
def test_capture_readers_never_raise(bodies, side):
    for codec in (CSV, JSON, NPY, V2_BINARY):
        table = codec.read(bodies, side, [f"{v2.BINARY_JSON};json-header-size={len(b) // 2}" for b in bodies])
        assert len(set(table.record.tolist())) + sum(map(len, table.skipped.values())) == len(bodies)


# --- the gRPC request codec (serving/adapters/grpc.py)

DATATYPES = sorted(v2.V2_TO_NUMPY) + ["", "FP8", "x" * 300]


@st.composite
def infer_requests(draw):
    r = pb.ModelInferRequest(model_name=draw(st.sampled_from(["credit-risk"]) | st.text(max_size=10)),
                             model_version=draw(st.sampled_from(["", "AllTraffic", "Deployed"]) | st.text(max_size=5)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        t = r.inputs.add(name=draw(st.sampled_from(["input", "x", ""])), datatype=draw(st.sampled_from(DATATYPES)))
        t.shape.extend(draw(st.sampled_from([[1, 8], [2, 8]]) | st.lists(st.integers(-2, 2 ** 63 - 1) | st.integers(0, 8),
                                                                          max_size=4)))
        if raw:
            r.raw_input_contents.append(draw(st.binary(max_size=64)))
        else:
            field = grpc_adapter.CONTENTS_FIELD.get(t.datatype, draw(st.sampled_from(
                sorted(set(grpc_adapter.CONTENTS_FIELD.values())))))
            values = {"bool_contents": st.booleans(), "int_contents": st.integers(-2 ** 31, 2 ** 31 - 1),
                      "int64_contents": st.integers(-2 ** 63, 2 ** 63 - 1), "uint_contents": st.integers(0, 2 ** 32 - 1),
                      "uint64_contents": st.integers(0, 2 ** 64 - 1), "fp32_contents": st.floats(width=32),
                      "fp64_contents": st.floats(), "bytes_contents": st.binary(max_size=8)}[field]
            getattr(t.contents, field).extend(draw(st.lists(values, max_size=10)))
    if raw and draw(st.booleans()):
        r.raw_input_contents.append(b"\0" * draw(st.integers(0, 8)))
    for _ in range(draw(st.integers(0, 2))):
        r.outputs.add(name=draw(st.text(max_size=8)))
    return r


@FUZZ
@given(infer_requests())
def test_grpc_request_codec(request):
    decodes_or_4xx(grpc_adapter.request_inputs, request)


@FUZZ
@given(st.binary(max_size=200))
def test_grpc_any_message_bytes(raw):
    try:
        request = pb.ModelInferRequest.FromString(raw)
    except Exception:  # noqa: BLE001 - not a message: Ray's proxy refuses it before Ferry sees it
        return
    decodes_or_4xx(grpc_adapter.request_inputs, request)


# --- the deploy-file schema

def mutations():
    """Paths into demo_config() and values put there: a valid file with one field replaced by anything."""
    paths = st.sampled_from([
        ("server",), ("server", "http_port"), ("server", "host"), ("server", "auth_token"),
        ("server", "auth_token_file"), ("server", "max_payload_bytes"), ("server", "ingress"),
        ("server", "extra_key"), ("models",), ("models", 0), ("models", 0, "path"), ("models", 0, "name"),
        ("endpoints",), ("endpoints", 0, "name"), ("endpoints", 0, "variants"), ("endpoints", 0, "variants", 0),
        ("endpoints", 0, "variants", 0, "model"), ("endpoints", 0, "variants", 0, "initial_weight"),
        ("endpoints", 0, "variants", 0, "replicas"), ("endpoints", 0, "variants", 0, "batching"),
        ("endpoints", 0, "variants", 0, "serverless"), ("endpoints", 0, "data_capture"),
        ("endpoints", 0, "data_capture", "sampling_percentage"), ("endpoints", 0, "data_capture", "destination"),
        ("feature_groups",), ("feature_groups", 0, "features"), ("feature_groups", 0, "offline_store"),
        ("monitoring_schedules",), ("kafka",), ("unknown_section",)])
    return st.lists(st.tuples(paths, json_values), min_size=1, max_size=3)


def put(doc, path, value):
    for key in path[:-1]:
        if isinstance(doc, dict) and isinstance(doc.get(key), (dict, list)) or \
                isinstance(doc, list) and isinstance(key, int) and key < len(doc):
            doc = doc[key]
        else:
            return
    if isinstance(doc, dict):
        doc[path[-1]] = value
    elif isinstance(doc, list) and isinstance(path[-1], int) and path[-1] < len(doc):
        doc[path[-1]] = value


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz-deploy")
    (out / "model.onnx").write_bytes(b"")
    return out


@FUZZ
@given(mutations(), st.dictionaries(st.sampled_from(["FERRY_SERVER__HTTP_PORT", "FERRY_SERVER__AUTH_TOKEN",
                                                     "FERRY_ENDPOINTS__0__VARIANTS__0__REPLICAS", "FERRY_MODELS",
                                                     "FERRY_SERVER__HOST"]), st.text(max_size=12), max_size=2))
def test_deploy_file_schema(deploy_dir, edits, environ):
    doc = demo_config()
    for path, value in edits:
        put(doc, path, value)
    try:
        cfg = parse_config(doc, base=deploy_dir, environ=environ)
    except ConfigError as err:
        assert str(err)
        return
    assert isinstance(cfg, DeployFile)
