"""The V2 GRPCInferenceService through Ray Serve's gRPC proxy, called with tritonclient.grpc (no metadata)."""

from __future__ import annotations

import grpc
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from ferry.demo import model_matrix


@pytest.fixture(scope="module")
def client(ferry_url, grpc_port):
    return tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")


@pytest.fixture(scope="module")
def stub(ferry_url, grpc_port):
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
        ("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)])
    yield pb_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def rows(demo_dir):
    return model_matrix(pd.read_csv(demo_dir / "test.csv").head(25))


def inputs_of(feed: dict[str, np.ndarray]):
    out = []
    for name, arr in feed.items():
        t = tg.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("credit-risk")
    assert client.is_model_ready("credit-risk", model_version="Deployed")
    meta = client.get_model_metadata("credit-risk", as_json=True)
    assert meta["platform"] == "onnx_onnxv1"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "8"]}]
    assert client.get_server_metadata(as_json=True)["name"] == "ferry"


@pytest.mark.parametrize("version", ["", "AllTraffic", "Deployed"])
def test_infer_equals_onnxruntime(client, demo_dir, rows, version):
    label, proba = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})
    result = client.infer("credit-risk", inputs_of({"input": rows}), model_version=version, request_id="g1")
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), proba)
    resp = result.get_response()
    assert resp.id == "g1" and resp.model_version == (version or "AllTraffic")


FEED = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1, 2], [3, -4]], np.int32),
        "c": np.array([True, False]), "s": np.array([b"ab", b"c"], dtype=object),
        "h": np.array([[0.5, 1], [2, 4]], np.float16), "u": np.array([[0, 255], [7, 8]], np.uint8),
        "i8": np.array([-128, 127], np.int8), "d": np.array([1.5, -3.0])}


def check_multi(get):
    np.testing.assert_array_equal(get("a2"), FEED["a"] * 2)
    np.testing.assert_array_equal(get("b1"), FEED["b"] + 1)
    np.testing.assert_array_equal(get("nc"), ~FEED["c"])
    assert [v if isinstance(v, bytes) else v.encode() for v in get("s_out")] == [b"ab", b"c"]
    np.testing.assert_array_equal(get("h2"), FEED["h"] * 2)
    np.testing.assert_array_equal(get("u_out"), FEED["u"])
    np.testing.assert_array_equal(get("i8_out"), FEED["i8"])
    np.testing.assert_array_equal(get("d2"), FEED["d"] ** 2)


def test_every_dtype_raw(client):
    result = client.infer("multi", inputs_of(FEED))
    check_multi(result.as_numpy)


def typed_request(model: str, feed: dict[str, np.ndarray]) -> pb.ModelInferRequest:
    fields = {"FP32": "fp32_contents", "INT32": "int_contents", "BOOL": "bool_contents", "BYTES": "bytes_contents",
              "UINT8": "uint_contents", "INT8": "int_contents", "FP64": "fp64_contents"}
    req = pb.ModelInferRequest(model_name=model)
    for name, arr in feed.items():
        dt = np_to_triton_dtype(arr.dtype)
        t = req.inputs.add(name=name, datatype=dt, shape=list(arr.shape))
        getattr(t.contents, fields[dt]).extend(arr.ravel().tolist())
    return req


def test_typed_contents_in_typed_contents_out(stub, demo_dir, rows):
    label, proba = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})
    resp = stub.ModelInfer(typed_request("credit-risk", {"input": rows}))
    assert not resp.raw_output_contents
    np.testing.assert_array_equal(np.array(resp.outputs[0].contents.int64_contents), label)
    np.testing.assert_array_equal(np.array(resp.outputs[1].contents.fp32_contents, np.float32).reshape(-1, 2), proba)
    feed = {k: v for k, v in FEED.items() if k != "h"}  # FP16 has no typed contents field
    code, msg = status_of(lambda: stub.ModelInfer(typed_request("multi", feed)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "missing input(s) ['h']" in msg


def test_large_tensor(stub, client):
    x = np.random.default_rng(0).random((2048, 2560), dtype=np.float32)  # 20 MiB
    result = client.infer("big", inputs_of({"x": x}))
    np.testing.assert_array_equal(result.as_numpy("y"), x)


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_malformed_requests_get_the_right_status(stub):
    good = np.ones((1, 8), np.float32)
    code, msg = status_of(lambda: stub.ModelInfer(typed_request("credit-risk", {"input": np.ones((1, 7), np.float32)})))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "shape" in msg
    code, msg = status_of(lambda: stub.ModelInfer(typed_request("credit-risk", {"input": good.astype(np.float64)})))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "datatype" in msg
    code, msg = status_of(lambda: stub.ModelInfer(typed_request("credit-risk", {"other": good})))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown input" in msg
    code, _ = status_of(lambda: stub.ModelInfer(typed_request("no-such-model", {"input": good})))
    assert code == grpc.StatusCode.NOT_FOUND
    req = pb.ModelInferRequest(model_name="credit-risk")
    req.inputs.add(name="input", datatype="FP32", shape=[1, 8])
    req.raw_input_contents.append(good.tobytes()[:-4])
    code, msg = status_of(lambda: stub.ModelInfer(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "need 32" in msg
    req = pb.ModelInferRequest(model_name="credit-risk")
    req.inputs.add(name="input", datatype="FP32", shape=[1, 8])
    code, msg = status_of(lambda: stub.ModelInfer(req))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs 8 values" in msg
    code, _ = status_of(lambda: stub.ModelMetadata(pb.ModelMetadataRequest(name="nope")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_tritonclient_sees_errors_as_exceptions(client):
    with pytest.raises(InferenceServerException) as err:
        client.infer("credit-risk", inputs_of({"input": np.ones((1, 3), np.float32)}))
    assert "INVALID_ARGUMENT" in str(err.value.status())
