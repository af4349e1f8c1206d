"""The router without Ray: VariantPicker's weighted choice, and an endpoint's routing through the data plane on
every protocol (weights, a named target on each protocol's own spelling, a zero-weight variant reached only by
name, an unknown target a 400 that names the variants, live weights), on stand-in runners that say who answered."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import numpy as np

from serving.adapters import grpc as grpc_adapter
from serving.adapters import sagemaker, v2rest
from serving.dataplane import DataPlane, ModelResult
from serving.endpoint import Endpoint, VariantPicker
from tests.unit.test_dataplane import Context, grpc_request, http_request, v2_doc


def test_weights_split_and_zero_weight_never_picked():
    picker = VariantPicker({"A": 3, "B": 1, "C": 0}, seed=3)
    counts = Counter(picker.pick() for _ in range(20000))
    assert set(counts) == {"A", "B"}
    assert abs(counts["B"] / 20000 - 0.25) < 0.02


def test_target_wins_and_unknown_target_is_none():
    picker = VariantPicker({"A": 1, "B": 0})
    assert picker.pick("B") == "B"
    assert picker.pick("Z") is None
    assert VariantPicker({"only": 2}).pick() == "only"


class Answers:
    """A variant's runner that answers each row with its variant's number (A=1, B=2, ...) and counts its calls."""

    def __init__(self, variant: str):
        self.variant, self.calls = variant, 0

    async def infer(self, payload, output_names=None):
        self.calls += 1
        rows = len(payload.matrix) if payload.matrix is not None else len(next(iter(payload.named.values())))
        return ModelResult(self.variant, {"label": np.full(rows, ord(self.variant) - ord("A") + 1, np.int64)})

    async def metadata(self):
        return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 2]}],
                "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}]}

    async def ready(self):
        return True


def plane(weights: dict[str, float]) -> tuple[DataPlane, Endpoint]:
    ep = Endpoint("ep", {n: Answers(n) for n in weights}, weights)
    return DataPlane({"ep": ep}, 1_000_000), ep


ROWS = np.ones((1, 2), np.float32)


def invoke(dp, target: str | None = None):
    h = {"content-type": "text/csv", **({"x-amzn-sagemaker-target-variant": target} if target else {})}
    return asyncio.run(sagemaker.invoke(dp, http_request("/", b"1,1", h), "ep"))


def test_weights_route_requests_and_the_answer_names_its_variant():
    dp, ep = plane({"A": 3.0, "B": 1.0, "C": 0.0})
    said = Counter()
    for _ in range(2000):
        r = invoke(dp)
        variant = r.headers["x-amzn-invoked-production-variant"]
        assert r.status_code == 200 and r.body.decode().strip() == str(ord(variant) - ord("A") + 1)
        said[variant] += 1
    assert set(said) == {"A", "B"} and abs(said["B"] / 2000 - 0.25) < 0.05
    assert {n: r.calls for n, r in ep.runners.items()} == dict(said, C=0)


def test_a_named_target_is_reached_on_every_protocol_even_at_weight_zero():
    dp, ep = plane({"A": 1.0, "B": 0.0})
    r = invoke(dp, "B")
    assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "B" and r.body == b"2\n"
    r = asyncio.run(v2rest.handle(dp, http_request("/v2/models/ep/versions/B/infer", v2_doc(ROWS)),
                                  ["models", "ep", "versions", "B", "infer"], "POST"))
    doc = json.loads(r.body)
    assert r.status_code == 200 and doc["model_version"] == "B" and doc["outputs"][0]["data"] == [2]
    req = grpc_request(ROWS)
    req.model_version = "B"
    ctx = Context()
    resp = asyncio.run(grpc_adapter.model_infer(dp, req, ctx))
    assert ctx.code is None and resp.model_version == "B"
    assert ep.runners["B"].calls == 3 and ep.runners["A"].calls == 0


def test_an_unknown_target_is_a_400_naming_the_variants_and_is_counted():
    dp, ep = plane({"A": 1.0, "B": 1.0})
    r = invoke(dp, "Z")
    assert r.status_code == 400 and r.headers["x-amzn-errortype"].startswith("ValidationError")
    assert json.loads(r.body)["Message"] == "endpoint 'ep' has no variant 'Z'; variants: ['A', 'B']"
    r = asyncio.run(v2rest.handle(dp, http_request("/v2/models/ep/versions/Z/infer", v2_doc(ROWS)),
                                  ["models", "ep", "versions", "Z", "infer"], "POST"))
    assert r.status_code == 400 and "no variant 'Z'" in json.loads(r.body)["error"]
    req = grpc_request(ROWS)
    req.model_version = "Z"
    ctx = Context()
    asyncio.run(grpc_adapter.model_infer(dp, req, ctx))
    assert ctx.code.name == "INVALID_ARGUMENT" and "no variant 'Z'" in ctx.details
    assert ep.runners["A"].calls == ep.runners["B"].calls == 0
    text = dp.metrics.exposition().decode()
    for protocol in ("sagemaker", "v2", "grpc"):
        assert (f'ferry_invocation_errors_total{{code="400",endpoint="ep",error_type="ValidationError",'
                f'protocol="{protocol}",variant=""}} 1.0') in text


def test_live_weights_merge_or_replace_and_ignore_unknown_variants():
    """set_weights merges by default; with replace (the gateway applying the control plane's traffic state) the
    given weights are the variants routed to."""
    dp, ep = plane({"A": 1.0, "B": 0.0})
    assert {invoke(dp).headers["x-amzn-invoked-production-variant"] for _ in range(50)} == {"A"}
    ep.set_weights({"B": 1.0, "Z": 5.0})  # B joins, A keeps its weight, Z is no variant of this endpoint
    assert ep.weights == {"A": 1.0, "B": 1.0}
    assert {invoke(dp).headers["x-amzn-invoked-production-variant"] for _ in range(200)} == {"A", "B"}
    ep.set_weights({"A": 0.0, "B": 1.0}, replace=True)  # the control plane's whole state: A at zero
    assert ep.weights == {"A": 0.0, "B": 1.0}
    assert {invoke(dp).headers["x-amzn-invoked-production-variant"] for _ in range(50)} == {"B"}
    assert invoke(dp, "A").headers["x-amzn-invoked-production-variant"] == "A"  # still a target
    ep.set_weights({"B": 1.0}, replace=True)  # a variant the state leaves out is not routed to, even by name
    assert ep.weights == {"B": 1.0} and invoke(dp, "A").status_code == 400


def test_metadata_and_readiness_per_variant():
    dp, _ = plane({"A": 1.0, "B": 0.0})
    meta = asyncio.run(dp.model_metadata("ep", "B"))
    assert meta["versions"] == ["A", "B"] and meta["outputs"][0]["name"] == "label"
    assert asyncio.run(dp.model_ready("ep", "B")) and not asyncio.run(dp.model_ready("ep", "Z"))
    r = asyncio.run(v2rest.handle(dp, http_request("/v2/models/ep/versions/Z", b""), ["models", "ep", "versions", "Z"],
                                  "GET"))
    assert r.status_code == 404

