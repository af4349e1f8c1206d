"""The V2 REST codec against tritonclient's own request builder and response parser."""

import json

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.http import InferResult

from core.payloads import v2
from core.errors import FerryError

ARRAYS = {
    "a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1, -2]], dtype=np.int32),
    "c": np.array([True, False, True]), "s": np.array([b"x", b"hello"], dtype=object),
    "h": np.array([0.5, 1.5], dtype=np.float16), "u": np.array([255, 0], dtype=np.uint64),
    "d": np.array([1e-300, 2.0]),
}


def triton_body(binary: bool, outputs=None):
    inputs = []
    for name, arr in ARRAYS.items():
        t = th.InferInput(name, list(arr.shape), v2.datatype_of(arr))
        t.set_data_from_numpy(arr, binary_data=binary or arr.dtype == np.float16)
        inputs.append(t)
    return th.InferenceServerClient.generate_request_body(inputs, outputs=outputs, request_id="r1")


@pytest.mark.parametrize("binary", [True, False])
def test_parses_tritonclient_requests_exactly(binary):
    body, header_len = triton_body(binary)
    req = v2.parse_request(body, None if header_len is None else str(header_len))
    assert req.id == "r1" and req.outputs is None and req.binary_all
    for name, arr in ARRAYS.items():
        got = req.inputs[name]
        assert got.shape == arr.shape
        if arr.dtype == object:
            assert list(got.ravel()) == list(arr.ravel())
        else:
            assert got.dtype == arr.dtype
            np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("binary", [True, False])
def test_responses_read_back_with_tritonclient(binary):
    outs = [th.InferRequestedOutput(n, binary_data=binary) for n in ("a", "b", "c", "s", "d")]
    body, header_len = triton_body(True, outs)
    req = v2.parse_request(body, str(header_len))
    out, headers = v2.encode_response("m", "v1", req, {n: ARRAYS[n] for n in ("a", "b", "c", "s", "d")})
    hl = headers.get("inference-header-content-length")
    result = InferResult.from_response_body(out, header_length=int(hl) if hl else None)
    for n in ("a", "b", "c", "d"):
        np.testing.assert_array_equal(result.as_numpy(n), ARRAYS[n])
    as_bytes = [v if isinstance(v, bytes) else v.encode() for v in result.as_numpy("s").ravel()]
    assert as_bytes == [b"x", b"hello"]  # tritonclient gives str for JSON BYTES, bytes for binary
    assert result.get_response()["model_version"] == "v1"


def bad(body: bytes, header=None):
    with pytest.raises(FerryError) as err:
        v2.parse_request(body, header)
    assert err.value.error.status == 400
    return err.value.error.message


def test_malformed_requests_are_400s():
    tensor = {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]}
    assert "JSON" in bad(b"{nope")
    assert "inputs" in bad(json.dumps({"inputs": []}).encode())
    assert "datatype" in bad(json.dumps({"inputs": [{**tensor, "datatype": "FP99"}]}).encode())
    assert "needs 3 values" in bad(json.dumps({"inputs": [{**tensor, "shape": [3]}]}).encode())
    assert "FP32" in bad(json.dumps({"inputs": [{**tensor, "data": ["x", "y"]}]}).encode())
    head = json.dumps({"inputs": [{"name": "a", "shape": [2], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 8}}]}).encode()
    assert "exceeds" in bad(head + b"\0" * 4, str(len(head)))
    assert "no input claims" in bad(head + b"\0" * 12, str(len(head)))
    assert "outside" in bad(head, "999999")
    head6 = json.dumps({"inputs": [{"name": "a", "shape": [2], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 6}}]}).encode()
    assert "need 8" in bad(head6 + b"\0" * 6, str(len(head6)))
