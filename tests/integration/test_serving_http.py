"""Ferry's HTTP routes on a real Ray Serve, called by clients no one here wrote (boto3, tritonclient, httpx)."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.http as th
from botocore.config import Config
from tritonclient.utils import np_to_triton_dtype

from ferry.demo import model_matrix
from tests.integration.conftest import MAX_PAYLOAD


@pytest.fixture(scope="module")
def rows(demo_dir):
    return model_matrix(pd.read_csv(demo_dir / "test.csv").head(40))


@pytest.fixture(scope="module")
def reference(demo_dir, rows):
    label, proba = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})
    return label, proba


@pytest.fixture(scope="module")
def runtime(ferry_url):
    return boto3.client("sagemaker-runtime", endpoint_url=ferry_url, region_name="us-east-1",
                        aws_access_key_id="any", aws_secret_access_key="any",
                        config=Config(retries={"max_attempts": 1}))


def csv_body(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in r) for r in rows)


def test_boto3_invoke_endpoint_equals_onnxruntime(runtime, rows, reference):
    resp = runtime.invoke_endpoint(EndpointName="credit-risk", Body=csv_body(rows), ContentType="text/csv",
                                   CustomAttributes="trace=abc", InferenceId="inf-1")
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    assert resp["CustomAttributes"] == "trace=abc"
    out = np.array([ln.split(",") for ln in resp["Body"].read().decode().splitlines()], dtype=np.float64)
    np.testing.assert_array_equal(out[:, 0].astype(np.int64), reference[0])
    np.testing.assert_array_equal(out[:, 1:].astype(np.float32), reference[1])


def test_boto3_json_and_npy_with_accept(runtime, rows, reference):
    resp = runtime.invoke_endpoint(EndpointName="credit-risk", ContentType="application/json",
                                   Accept="application/json", Body=json.dumps({"instances": rows.tolist()}))
    preds = json.loads(resp["Body"].read())["predictions"]
    assert [p["label"] for p in preds] == reference[0].tolist()
    np.testing.assert_array_equal(np.array([p["probabilities"] for p in preds], np.float32), reference[1])
    buf = io.BytesIO()
    np.save(buf, rows)
    resp = runtime.invoke_endpoint(EndpointName="credit-risk", ContentType="application/x-npy",
                                   Accept="text/csv", Body=buf.getvalue())
    assert resp["ContentType"].startswith("text/csv")
    assert len(resp["Body"].read().decode().splitlines()) == len(rows)


def test_boto3_errors_have_sagemaker_shapes(runtime):
    with pytest.raises(runtime.exceptions.ValidationError) as err:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", Body="1,2", ContentType="text/csv")
    assert "no-such-endpoint" in str(err.value)
    with pytest.raises(runtime.exceptions.ValidationError, match="columns"):
        runtime.invoke_endpoint(EndpointName="credit-risk", Body="1,2,3", ContentType="text/csv")
    with pytest.raises(runtime.exceptions.ModelError):
        runtime.invoke_endpoint(EndpointName="fragile", ContentType="application/json",
                                Body=json.dumps({"instances": [[1, 2, 3, 4]]}))


def test_container_contract_routes(ferry_url, rows, reference):
    assert httpx.get(f"{ferry_url}/ping").status_code == 200
    r = httpx.post(f"{ferry_url}/invocations", content=csv_body(rows[:3]), headers={"content-type": "text/csv"})
    assert r.status_code == 200
    assert [int(ln.split(",")[0]) for ln in r.text.splitlines()] == reference[0][:3].tolist()


def test_tritonclient_http_infer_equals_onnxruntime(ferry_url, rows, reference):
    client = th.InferenceServerClient(ferry_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("credit-risk")
    meta = client.get_model_metadata("credit-risk")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}]
    for binary in (True, False):
        inp = th.InferInput("input", list(rows.shape), "FP32")
        inp.set_data_from_numpy(rows, binary_data=binary)
        outs = [th.InferRequestedOutput("label", binary_data=binary), th.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer("credit-risk", [inp], outputs=outs, request_id="req-7")
        np.testing.assert_array_equal(result.as_numpy("label"), reference[0])
        np.testing.assert_array_equal(result.as_numpy("probabilities"), reference[1])
        assert result.get_response()["id"] == "req-7"
    result = client.infer("credit-risk", [inp])  # no outputs named: all come back binary
    np.testing.assert_array_equal(result.as_numpy("probabilities"), reference[1])


def test_tritonclient_every_dtype(ferry_url):
    client = th.InferenceServerClient(ferry_url.removeprefix("http://"))
    feed = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([[1, 2], [3, 4]], np.int32),
            "c": np.array([True, False]), "s": np.array([b"ab", b"c"], dtype=object),
            "h": np.array([[0.5, 1], [2, 4]], np.float16), "u": np.array([[0, 255], [7, 8]], np.uint8),
            "i8": np.array([-128, 127], np.int8), "d": np.array([1.5, -3.0])}
    inputs = []
    for name, arr in feed.items():
        t = th.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr, binary_data=True)
        inputs.append(t)
    result = client.infer("multi", inputs)
    np.testing.assert_array_equal(result.as_numpy("a2"), feed["a"] * 2)
    np.testing.assert_array_equal(result.as_numpy("b1"), feed["b"] + 1)
    np.testing.assert_array_equal(result.as_numpy("nc"), ~feed["c"])
    assert list(result.as_numpy("s_out")) == [b"ab", b"c"]
    np.testing.assert_array_equal(result.as_numpy("h2"), feed["h"] + feed["h"])
    np.testing.assert_array_equal(result.as_numpy("u_out"), feed["u"])
    np.testing.assert_array_equal(result.as_numpy("i8_out"), feed["i8"])
    np.testing.assert_array_equal(result.as_numpy("d2"), feed["d"] ** 2)


async def _fire(url: str, n: int, headers: dict, body: str, concurrency: int = 16) -> Counter:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as client:
        async def one():
            async with sem:
                r = await client.post(url, content=body, headers=headers)
                assert r.status_code == 200, r.text
                return r.headers["x-amzn-invoked-production-variant"]
        return Counter(await asyncio.gather(*(one() for _ in range(n))))


def test_variant_weights_split_traffic(ferry_url, rows):
    n = 800
    counts = asyncio.run(_fire(f"{ferry_url}/endpoints/ab-test/invocations", n,
                               {"content-type": "text/csv"}, csv_body(rows[:1])))
    share_b = counts["B"] / n
    sigma = (0.25 * 0.75 / n) ** 0.5
    assert set(counts) == {"A", "B"}
    assert abs(share_b - 0.25) < 5 * sigma, counts  # weights 3:1


def test_target_variant_header_wins(ferry_url, rows):
    counts = asyncio.run(_fire(f"{ferry_url}/endpoints/ab-test/invocations", 60,
                               {"content-type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "B"}, csv_body(rows[:1])))
    assert counts == Counter({"B": 60})
    r = httpx.post(f"{ferry_url}/endpoints/ab-test/invocations", content=csv_body(rows[:1]),
                   headers={"content-type": "text/csv", "X-Amzn-SageMaker-Target-Variant": "C"})
    assert r.status_code == 400 and "no variant 'C'" in r.json()["Message"]


@pytest.mark.parametrize("endpoint", ["batched", "batched-deployed"])
def test_batched_endpoint_is_exact_and_batches(ferry_url, rows, reference, endpoint):
    async def run():
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(f"{ferry_url}/endpoints/{endpoint}/invocations",
                                                      content=csv_body(rows[i:i + 1]), headers={"content-type": "text/csv"})
                                          for i in range(len(rows))))
    resps = asyncio.run(run())
    labels = [int(r.text.split(",")[0]) for r in resps]
    assert labels == reference[0].tolist()
    metrics = httpx.get(f"{ferry_url}/metrics").text
    sizes = [ln for ln in metrics.splitlines() if ln.startswith("ferry_batch_size_sum") and f'endpoint="{endpoint}"' in ln]
    counts = [ln for ln in metrics.splitlines() if ln.startswith("ferry_batch_size_count") and f'endpoint="{endpoint}"' in ln]
    assert float(sizes[0].split()[-1]) / float(counts[0].split()[-1]) > 1.0  # some calls held several requests


SAGEMAKER_BAD = [  # what the client sent wrong, and the exact status: 400, or 415 for a body type not taken
    ("text/csv", b"1,2,3", "columns", 400),
    ("text/csv", b"1,2,3,4,5,6,7,x", "not a number", 400),
    ("text/csv", b"1,2,3,4,5,6,7,8\n1,2", "columns", 400),
    ("text/csv", b"", "empty", 400),
    ("application/json", b"{oops", "not valid JSON", 400),
    ("application/json", b'{"instances": [[1,2],[3]]}', "rectangular", 400),
    ("application/x-npy", b"not npy", ".npy", 400),
    ("image/png", b"\x89PNG", "Content-Type", 415),
]


@pytest.mark.parametrize("ctype, body, needle, status", SAGEMAKER_BAD)
def test_malformed_sagemaker_requests_get_4xx(ferry_url, ctype, body, needle, status):
    r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=body, headers={"content-type": ctype})
    assert r.status_code == status
    assert r.headers["x-amzn-errortype"].startswith("ValidationError")
    assert needle in r.json()["Message"]


def test_payload_limit_and_accept(ferry_url):
    big = b"1," * (MAX_PAYLOAD // 2 + 10)
    r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=big, headers={"content-type": "text/csv"})
    assert r.status_code == 413 and "limit" in r.json()["Message"]
    r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=b"1,2,3,4,5,6,7,8",
                   headers={"content-type": "text/csv", "accept": "image/png"})
    assert r.status_code == 406


def v2_infer(url, model, doc, headers=None):
    return httpx.post(f"{url}/v2/models/{model}/infer", content=json.dumps(doc).encode(), headers=headers or {})


@pytest.mark.parametrize("inputs, needle", [
    ([{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": [0] * 7}], "shape"),
    ([{"name": "input", "shape": [1, 8], "datatype": "INT64", "data": [0] * 8}], "datatype"),
    ([{"name": "other", "shape": [1, 8], "datatype": "FP32", "data": [0] * 8}], "unknown input"),
    ([{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [0] * 5}], "needs 8 values"),
])
def test_malformed_v2_requests_get_400(ferry_url, inputs, needle):
    r = v2_infer(ferry_url, "credit-risk", {"inputs": inputs})
    assert r.status_code == 400 and needle in r.json()["error"]


def test_v2_missing_input_unknown_model_and_bad_binary(ferry_url):
    r = v2_infer(ferry_url, "multi", {"inputs": [{"name": "a", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert r.status_code == 400 and "missing input" in r.json()["error"]
    r = v2_infer(ferry_url, "nope", {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]})
    assert r.status_code == 404
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32",
                                   "parameters": {"binary_data_size": 32}}]}).encode()
    r = httpx.post(f"{ferry_url}/v2/models/credit-risk/infer", content=head + b"\0" * 30,
                   headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "exceeds" in r.json()["error"]


def test_v2_model_failure_is_not_a_client_error(ferry_url):
    r = v2_infer(ferry_url, "fragile", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
    assert r.status_code == 424 and "model failed" in r.json()["error"]


def test_metrics_count_requests_and_errors(ferry_url, rows):
    httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=csv_body(rows[:1]), headers={"content-type": "text/csv"})
    text = httpx.get(f"{ferry_url}/metrics").text
    want = ('code="200"', 'endpoint="credit-risk"', 'protocol="sagemaker"', 'variant="AllTraffic"')
    assert any(line.startswith("ferry_invocations_total{") and all(w in line for w in want)  # and replica="..."
               for line in text.splitlines()), text[:2000]
    assert "ferry_request_latency_seconds_bucket" in text
    assert 'ferry_invocation_errors_total{code="400"' in text


def test_autoscaling_from_zero_serves_the_first_request(ferry_url, rows, reference):
    from ray import serve

    from serving.status import app_summary

    replicas = app_summary("ferry")["deployments"]["scale-to-zero.AllTraffic"]["replicas"]
    assert replicas.get("RUNNING", 0) == 0, replicas  # autoscaling config reached Ray Serve: no replica yet
    r = httpx.post(f"{ferry_url}/endpoints/scale-to-zero/invocations", content=csv_body(rows[:2]),
                   headers={"content-type": "text/csv"}, timeout=120)
    assert r.status_code == 200
    assert [int(ln.split(",")[0]) for ln in r.text.splitlines()] == reference[0][:2].tolist()
    assert serve.status().applications["ferry"].deployments["scale-to-zero.AllTraffic"].replica_states
