"""Issue 11's hostile inputs against a real Ray Serve (HAProxy or Python ingress, as `ferry up` runs it): every
HTTP route, the gRPC service through Ray's gRPC proxy, and the variant deployed on its own replicas (so a
replica's answer to bad input is a 4xx, not a 503). No 5xx, no INTERNAL, no message longer than the bound,
and the server still answers afterwards."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.hostile import LONG, MAX_MESSAGE, grpc_cases, http_cases
from tests.openapi_fuzz import DOC, OPERATIONS, fuzz, send
from tests.unit.test_fuzz_codecs import infer_requests

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def http(ferry_url):
    with httpx.Client(base_url=ferry_url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("variant", [None, "Deployed"])
def test_every_hostile_http_request_is_a_bounded_4xx(http, variant):
    headers = {"x-amzn-sagemaker-target-variant": variant} if variant else {}
    bad = []
    for name, method, path, h, body in http_cases("credit-risk", "applicants"):
        if "content-length" in h:
            continue  # httpx will not send a wrong Content-Length (the in-process test does)
        r = http.request(method, path, headers={**headers, **h}, content=body)
        if r.status_code >= 500 or len(r.content) > MAX_MESSAGE + 200 or LONG[:MAX_MESSAGE] in r.text:
            bad.append((name, r.status_code, r.text[:200]))
    assert not bad
    assert http.get("/ping").status_code == 200


@pytest.mark.parametrize("version", ["", "Deployed"])
def test_every_hostile_grpc_request_is_a_bounded_status(ferry_url, grpc_port, version):
    from serving.protos import inference_pb2 as pb

    bad = []
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=None)
        for name, raw in grpc_cases("credit-risk"):
            req = pb.ModelInferRequest.FromString(raw)
            if version and not req.model_version:
                req.model_version = version
            try:
                call(req.SerializeToString(), timeout=30)
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) or \
                        len((err.details() or "").encode()) > 4096:
                    bad.append((name, err.code(), (err.details() or "")[:300]))
    assert not bad


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=lambda v: v if "/" in v else v.upper())
def test_every_route_against_its_description(ferry_url, path, method):
    """Schemathesis on the real server: each documented route, fewer cases than in-process (tests/openapi_fuzz.py)."""
    async def call(kwargs):
        async with httpx.AsyncClient(base_url=ferry_url, timeout=30) as client:
            return await send(client, {**kwargs, "url": kwargs["url"].replace("http://gateway", ferry_url)})

    fuzz(schemathesis.openapi.from_dict(DOC), path, method, lambda kwargs: asyncio.run(call(kwargs)), examples=8)


def test_model_infer_fuzz_through_rays_grpc_proxy(ferry_url, grpc_port):
    """Generated ModelInferRequests through Ray Serve's gRPC proxy, to the in-process and the deployed variant."""
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        call = channel.unary_unary(MODEL_INFER, request_serializer=None, response_deserializer=None)

        @settings(max_examples=100, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(infer_requests())
        def check(request):
            try:
                call(request.SerializeToString(), timeout=30)
            except grpc.RpcError as err:
                assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.details()
                assert len((err.details() or "").encode()) <= 4096, err.details()[:300]

        check()
