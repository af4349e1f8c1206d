"""Serverless variants on a real Ray Serve: from zero on demand, throttled past max_concurrency, down to zero
when idle and back (Ray Serve has had scale-to-zero regressions: this pins the behaviour on our Ray), and
ModelNotReadyException past the start-up bound."""

from __future__ import annotations

import asyncio
import re
import time

import boto3
import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from botocore.config import Config

from ferry.demo import model_matrix
from serving.protos import inference_pb2 as pb
from serving.protos import inference_pb2_grpc as pbg
from serving.status import app_summary

CSV = {"content-type": "text/csv"}


@pytest.fixture(scope="module")
def rows(demo_dir):
    return model_matrix(pd.read_csv(demo_dir / "test.csv").head(5))


@pytest.fixture(scope="module")
def body(rows):
    return "\n".join(",".join(repr(float(v)) for v in r) for r in rows)


@pytest.fixture(scope="module")
def labels(demo_dir, rows):
    return ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})[0].tolist()


def running(deployment: str) -> int:
    return app_summary("ferry")["deployments"][deployment]["replicas"].get("RUNNING", 0)


def metric(text: str, name: str, **labels) -> float:
    """The sum of the series of `name` that carry `labels` in a Prometheus exposition (other labels, such as
    the gateway replica, summed over; 0 when absent)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if m and m.group(1) == name and want <= set(m.group(2).split(",")):
            total += float(m.group(3))
    return total


async def burst(url: str, body: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=180) as client:
        return await asyncio.gather(*(client.post(url, content=body, headers=CSV) for _ in range(n)))


def wait_for(predicate, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"{what} not within {timeout_s:.0f} s"
        time.sleep(0.5)
    return time.monotonic() - start


def test_serverless_throttles_reaches_zero_and_comes_back(ferry_url, grpc_port, body, labels, rows):
    dep, url = "serverless.AllTraffic", f"{ferry_url}/endpoints/serverless/invocations"
    cold = dict(endpoint="serverless", variant="AllTraffic")
    # provisioned_concurrency 0: no replica while idle (the dashboards' preview test may have woken it earlier)
    wait_for(lambda: running(dep) == 0, 180, "an idle serverless variant at zero replicas")
    before = httpx.get(f"{ferry_url}/metrics").text

    # 8 requests at once on a cold variant with max_concurrency 2: two wait for the cold start and are answered,
    # six are refused at once (SageMaker's ThrottlingException)
    answers = asyncio.run(burst(url, body, 8))
    ok = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert len(ok) == 2 and len(refused) == 6, [r.status_code for r in answers]
    assert all(r.status_code == 429 and r.headers["x-amzn-errortype"] == "ThrottlingException:"
               and "max_concurrency" in r.json()["Message"] for r in refused)
    assert all([int(ln.split(",")[0]) for ln in r.text.splitlines()] == labels for r in ok)
    assert running(dep) == 1
    after = httpx.get(f"{ferry_url}/metrics").text
    assert (metric(after, "ferry_serverless_cold_start_seconds_count", **cold)
            - metric(before, "ferry_serverless_cold_start_seconds_count", **cold)) == 2
    throttles = dict(endpoint="serverless", variant="AllTraffic", protocol="sagemaker",
                     error_type="ThrottlingException", code="429")
    assert (metric(after, "ferry_invocation_errors_total", **throttles)
            - metric(before, "ferry_invocation_errors_total", **throttles)) == 6
    assert metric(after, "ferry_serve_replicas", deployment=dep, state="RUNNING") == 1

    # idle: down to zero replicas (idle_timeout_s 2, plus Ray Serve's metric look-back)
    took = wait_for(lambda: running(dep) == 0, 180, "scale to zero")
    print(f"scaled to zero {took:.1f} s after the last request")
    # and back, over gRPC this time: the first two wait for a new replica and are answered, four are refused
    # with RESOURCE_EXHAUSTED
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pbg.GRPCInferenceServiceStub(channel)
        calls = [stub.ModelInfer.future(infer_request("serverless", rows), timeout=180) for _ in range(6)]
        codes = sorted(_code(c) for c in calls)
    assert codes == ["OK", "OK"] + ["RESOURCE_EXHAUSTED"] * 4, codes
    assert running(dep) == 1
    again = httpx.get(f"{ferry_url}/metrics").text
    assert (metric(again, "ferry_serverless_cold_start_seconds_count", **cold)
            - metric(after, "ferry_serverless_cold_start_seconds_count", **cold)) == 2


def _code(call) -> str:
    try:
        call.result()
        return "OK"
    except grpc.RpcError as err:
        return err.code().name


def infer_request(model: str, rows: np.ndarray):
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    req.raw_input_contents.append(rows.astype(np.float32).tobytes())
    return req


def test_serverless_start_past_the_bound_is_model_not_ready_then_served(ferry_url, grpc_port, body, labels):
    r = httpx.post(f"{ferry_url}/endpoints/serverless-not-ready/invocations", content=body, headers=CSV, timeout=60)
    assert r.status_code == 429 and r.headers["x-amzn-errortype"] == "ModelNotReadyException:", r.text
    assert "still starting" in r.json()["Message"]
    # the replica goes on starting: a retry is answered
    wait_for(lambda: running("serverless-not-ready.AllTraffic") == 1, 120, "the replica to start")
    rt = boto3.client("sagemaker-runtime", endpoint_url=ferry_url, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))
    out = rt.invoke_endpoint(EndpointName="serverless-not-ready", ContentType="text/csv", Body=body)["Body"].read()
    assert [int(ln.split(",")[0]) for ln in out.decode().splitlines()] == labels
