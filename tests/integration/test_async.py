"""Asynchronous inference on a real Ray Serve: boto3's invoke_endpoint_async unchanged, a 202 at once,
the result at OutputLocation equal to onnxruntime, a rejected payload at FailureLocation, the status
route, the refusals (location outside the allowed prefixes, missing file, bad TTL, a synchronous
endpoint), and the backlog and outcome metrics."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def runtime(ferry_url):
    return boto3.client("sagemaker-runtime", endpoint_url=ferry_url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def inbox(demo_dir):
    d = demo_dir / "async-in"
    d.mkdir(exist_ok=True)
    return d


def wait_status(ferry_url, inference_id, timeout_s=60) -> dict:
    start = time.monotonic()
    while True:
        doc = httpx.get(f"{ferry_url}/endpoints/async/async-invocations/{inference_id}").json()
        if doc["Status"] in ("Completed", "Failed", "Expired"):
            return doc
        assert time.monotonic() - start < timeout_s, f"{inference_id} still {doc['Status']} after {timeout_s} s"
        time.sleep(0.2)


def test_boto3_invoke_endpoint_async_end_to_end(ferry_url, runtime, demo_dir, inbox):
    rows = np.loadtxt(demo_dir / "test_features.csv", delimiter=",", max_rows=300)
    labels = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows.astype(np.float32)})[0]
    src = inbox / "batch.csv"
    src.write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    started = time.monotonic()
    out = runtime.invoke_endpoint_async(EndpointName="async", ContentType="text/csv", InputLocation=str(src),
                                        InferenceId="req-1", RequestTTLSeconds=600, InvocationTimeoutSeconds=60)
    assert time.monotonic() - started < 5 and out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["InferenceId"] == "req-1" and out["OutputLocation"].endswith("/req-1.out")
    assert out["FailureLocation"].endswith("/req-1-error.out")
    done = wait_status(ferry_url, "req-1")
    assert done["Status"] == "Completed" and done["Attempts"] == 1
    result = open(out["OutputLocation"]).read().splitlines()
    assert [int(ln.split(",")[0]) for ln in result] == labels.tolist()

    bad = inbox / "short.csv"
    bad.write_text("1,2,3\n")
    failed = runtime.invoke_endpoint_async(EndpointName="async", ContentType="text/csv", InputLocation=str(bad))
    assert wait_status(ferry_url, failed["InferenceId"])["Status"] == "Failed"
    error = orjson.loads(open(failed["FailureLocation"], "rb").read())
    assert error["ErrorCode"] == "ValidationError" and "8" in error["Message"]

    # The worker's own series reach the gateway's /metrics through the metrics hub (pushed every second)
    deadline = time.monotonic() + 10
    while min((found := worker_series(ferry_url))[("ferry_async_requests_total", "succeeded")],
              found[("ferry_async_requests_total", "failed")]) < 1:  # other tests' requests may come first
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert found[("ferry_async_requests_total", "failed")] >= 1
    assert found[("ferry_async_processing_seconds_count", None)] >= 2
    assert found[("ferry_async_in_flight_requests", None)] == 0
    assert found[("ferry_invocations_total", "200")] >= 1  # the worker's data plane, protocol async
    assert found[("ferry_async_backlog_requests", None)] == 0


def worker_series(ferry_url) -> dict:
    """Series of endpoint `async` on /metrics, summed over replicas, keyed by (name, outcome or code)."""
    out: dict = defaultdict(float)
    for fam in text_string_to_metric_families(httpx.get(f"{ferry_url}/metrics").text):
        for s in fam.samples:
            if s.labels.get("endpoint") == "async" and s.labels.get("protocol", "async") == "async":
                out[(s.name, s.labels.get("outcome", s.labels.get("code")))] += s.value
    return out


def test_async_refusals_say_what_is_wrong(ferry_url, runtime, demo_dir, inbox):
    (inbox / "ok.csv").write_text("1,2,3,4,5,6,7,8\n")
    cases = [
        ({"InputLocation": str(demo_dir / "test_features.csv")}, "outside the locations this endpoint reads"),
        ({"InputLocation": str(inbox / ".." / "test_features.csv")}, "outside the locations this endpoint reads"),
        ({"InputLocation": str(inbox / f"missing-{uuid.uuid4().hex}.csv")}, "cannot be read"),
    ]
    for kwargs, why in cases:
        with pytest.raises(ClientError) as err:
            runtime.invoke_endpoint_async(EndpointName="async", ContentType="text/csv", **kwargs)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert why in err.value.response["Error"]["Message"], err.value.response
    with pytest.raises(ClientError, match="not asynchronous"):
        runtime.invoke_endpoint_async(EndpointName="credit-risk", ContentType="text/csv",
                                      InputLocation=str(inbox / "ok.csv"))
    for ttl in ("10", "abc"):  # boto3 checks the range itself: a raw client
        r = httpx.post(f"{ferry_url}/endpoints/async/async-invocations", headers={
            "X-Amzn-SageMaker-InputLocation": str(inbox / "ok.csv"), "X-Amzn-SageMaker-RequestTTLSeconds": ttl})
        assert r.status_code == 400 and "RequestTTLSeconds must be" in r.json()["Message"]
    r = httpx.get(f"{ferry_url}/endpoints/async/async-invocations/nope")
    assert r.status_code == 400 and "no asynchronous request" in r.json()["Message"]
