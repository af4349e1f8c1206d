"""The data plane without Ray: every protocol adapter through one inference path, with the same auth,
limits, metrics and capture (in-process model runners, real onnxruntime, real files)."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from starlette.requests import Request

from core.errors import FerryError
from ferry.demo import make_credit_data, model_matrix, write_demo
from monitor.capture_reader import read_capture
from serving.adapters import grpc as grpc_adapter
from serving.adapters import sagemaker, v2rest
from serving.dataplane import DataPlane, Exchange, Payload
from serving.endpoint import Endpoint, EndpointCapture
from serving.capture.files import JsonlFileSink
from serving.protos import inference_pb2 as pb
from serving.spec import BatchingSpec, DataCaptureSpec, ModelSpec
from serving.variants import ModelRunner

TOKEN = "s3cr3t"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    write_demo(out, n_rows=300)
    rows = model_matrix(make_credit_data(5, seed=3))
    label, proba = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input": rows})
    return out, rows, label, proba


def plane(demo, capture_dir=None, token=None, limit=1_000_000):
    out = demo[0]
    runner = ModelRunner(ModelSpec(name="m", path=str(out / "model.onnx")), "A")
    capture = None
    if capture_dir is not None:
        spec = DataCaptureSpec(enabled=True, sampling_percentage=100, destination=str(capture_dir))
        capture = EndpointCapture(spec, JsonlFileSink(capture_dir, "ep", flush_interval_s=0.05))
    return DataPlane({"ep": Endpoint("ep", {"A": runner}, {"A": 1.0}, capture)}, limit, token)


def http_request(path: str, body: bytes, headers: dict[str, str] | None = None, chunks: int = 1) -> Request:
    parts = [body[i::chunks] for i in range(chunks)] if chunks > 1 else [body]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": path, "root_path": "", "query_string": b"",
                    "headers": raw}, receive)


class Context:
    """What Ray Serve's gRPC context offers the gateway: metadata in, status out."""

    def __init__(self, metadata=()):
        self.metadata, self.code, self.details = list(metadata), None, None

    def invocation_metadata(self):
        return self.metadata

    def set_code(self, code):
        self.code = code

    def set_details(self, details):
        self.details = details


def grpc_request(rows: np.ndarray, rid: str = "") -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="ep", id=rid)
    req.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    req.raw_input_contents.append(rows.astype(np.float32).tobytes())
    return req


def csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in r) for r in rows).encode()


def v2_doc(rows: np.ndarray, rid: str | None = None) -> bytes:
    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}
    if rid:
        doc["id"] = rid
    return json.dumps(doc).encode()


def run(coro):
    return asyncio.run(coro)


def test_every_protocol_gives_onnxruntimes_answer(demo):
    _, rows, label, proba = demo
    dp = plane(demo)
    r = run(sagemaker.invoke(dp, http_request("/", csv(rows), {"content-type": "text/csv"}), "ep"))
    assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "A"
    got = np.array([ln.split(",") for ln in r.body.decode().splitlines()], dtype=np.float64)
    np.testing.assert_array_equal(got[:, 0], label)
    np.testing.assert_allclose(got[:, 1:], proba, rtol=1e-6)
    r = run(v2rest.handle(dp, http_request("/v2/models/ep/infer", v2_doc(rows)), ["models", "ep", "infer"], "POST"))
    outs = {o["name"]: o for o in json.loads(r.body)["outputs"]}
    assert outs["label"]["data"] == label.tolist()
    resp = run(grpc_adapter.model_infer(dp, grpc_request(rows), Context()))
    np.testing.assert_array_equal(np.frombuffer(resp.raw_output_contents[1], dtype=np.float32).reshape(-1, 2), proba)


def test_the_token_is_required_on_every_protocol(demo):
    _, rows, _, _ = demo
    dp = plane(demo, token=TOKEN)
    body, h = csv(rows), {"content-type": "text/csv"}
    assert run(sagemaker.invoke(dp, http_request("/", body, h), "ep")).status_code == 401
    ok = run(sagemaker.invoke(dp, http_request("/", body, {**h, "authorization": f"Bearer {TOKEN}"}), "ep"))
    assert ok.status_code == 200
    assert run(v2rest.handle(dp, http_request("/v2/models/ep/infer", v2_doc(rows)), ["models", "ep", "infer"],
                             "POST")).status_code == 401
    assert run(v2rest.handle(dp, http_request("/v2/models/ep", b""), ["models", "ep"], "GET")).status_code == 401
    ctx = Context()
    run(grpc_adapter.model_infer(dp, grpc_request(rows), ctx))
    assert ctx.code.name == "UNAUTHENTICATED"
    ctx = Context([("authorization", f"Bearer {TOKEN}")])
    assert len(run(grpc_adapter.model_infer(dp, grpc_request(rows), ctx)).outputs) == 2 and ctx.code is None


def test_failures_of_every_protocol_are_counted_alike(demo):
    dp = plane(demo)
    run(sagemaker.invoke(dp, http_request("/", b"1,x", {"content-type": "text/csv"}), "ep"))
    run(v2rest.handle(dp, http_request("/v2/models/ep/infer", b"{nope"), ["models", "ep", "infer"], "POST"))
    bad = pb.ModelInferRequest(model_name="ep")
    bad.inputs.add(name="input", datatype="FP99", shape=[1])
    ctx = Context()
    run(grpc_adapter.model_infer(dp, bad, ctx))
    assert ctx.code.name == "INVALID_ARGUMENT" and "FP99" in ctx.details
    run(sagemaker.invoke(dp, http_request("/", b"1", {"content-type": "text/csv"}), "no-such"))
    text = dp.metrics.exposition().decode()
    for protocol in ("sagemaker", "v2", "grpc"):
        assert f'ferry_invocation_errors_total{{code="400",endpoint="ep",error_type="ValidationError",' \
               f'protocol="{protocol}",variant=""}} 1.0' in text
    assert 'ferry_invocations_total{code="404",endpoint="",protocol="sagemaker",variant=""} 1.0' in text
    run(sagemaker.invoke(dp, http_request("/", b"1,2", {"content-type": "text/csv"}), "ep"))  # fails in the model
    assert 'error_type="ValidationError",protocol="sagemaker",variant="A"} 1.0' in dp.metrics.exposition().decode()


def test_limits_are_checked_while_reading(demo):
    dp = plane(demo, limit=100)
    big = b"1," * 200
    r = run(sagemaker.invoke(dp, http_request("/", big, {"content-type": "text/csv"}, chunks=4), "ep"))  # chunked
    assert r.status_code == 413 and "100-byte limit" in json.loads(r.body)["Message"]
    r = run(sagemaker.invoke(dp, http_request("/", b"1", {"content-type": "text/csv", "content-length": "999"}), "ep"))
    assert r.status_code == 413


def test_a_bug_is_a_500_with_an_incident_id_and_nothing_else(demo, caplog):
    class Broken(Exchange):
        protocol = "test"

        def decode(self):
            raise KeyError("secret internals")

        encode = captured = decode  # never reached

    dp = plane(demo)
    with pytest.raises(FerryError) as err:
        run(dp.infer(Broken("ep")))
    assert err.value.error.status == 500 and "secret" not in err.value.error.message
    assert err.value.error.message.split()[-1] in caplog.text  # the id leads to the traceback in the log


def test_each_protocols_capture_reads_back_as_the_rows_sent(demo, tmp_path):
    _, rows, label, _ = demo
    dp = plane(demo, capture_dir=tmp_path)
    npy = io.BytesIO()
    np.save(npy, rows)
    for ctype, body in [("text/csv", csv(rows)), ("application/json", json.dumps({"instances": rows.tolist()}).encode()),
                        ("application/x-npy", npy.getvalue())]:
        assert run(sagemaker.invoke(dp, http_request("/", body, {"content-type": ctype}), "ep")).status_code == 200
    run(v2rest.handle(dp, http_request("/v2/models/ep/infer", v2_doc(rows, "j")), ["models", "ep", "infer"], "POST"))
    head = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape),
                                   "parameters": {"binary_data_size": rows.nbytes}}],
                       "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                                   {"name": "probabilities"}]}).encode()
    r = run(v2rest.handle(dp, http_request("/v2/models/ep/infer", head + rows.tobytes(),
                                           {"inference-header-content-length": str(len(head))}),
                          ["models", "ep", "infer"], "POST"))
    assert r.status_code == 200
    run(grpc_adapter.model_infer(dp, grpc_request(rows, "g"), Context()))
    dp.endpoints["ep"].close()
    df = read_capture(tmp_path)
    assert df.attrs["skipped"] == {} and len(df) == 6 * len(rows)
    np.testing.assert_allclose(df[[f"_c{i}" for i in range(8)]].to_numpy(float), np.tile(rows, (6, 1)), rtol=1e-6)
    labels = df["prediction_0"].to_numpy(float).reshape(6, -1)
    assert (labels == label).all()


def test_our_protobuf_classes_and_tritonclients_live_in_one_process():
    """tritonclient registers the same `inference.*` names; ours keep to their own descriptor pool."""
    from tritonclient.grpc import service_pb2

    req = grpc_request(np.ones((2, 8), dtype=np.float32), "both")
    theirs = service_pb2.ModelInferRequest.FromString(req.SerializeToString())
    assert theirs.id == "both" and list(theirs.inputs[0].shape) == [2, 8]


@pytest.mark.parametrize("thread", [False, True], ids=["event-loop", "thread"])
def test_shadows_see_copies_are_compared_and_never_reach_the_caller(demo, tmp_path, thread):
    """A shadow of the same model agrees on every row; a failing shadow counts errors; the caller gets
    production's answer either way, and with capture on both answers are captured with their names. On the
    event loop or on a thread of their own (batches of copies)."""
    from serving.metrics import ServingMetrics
    from serving.shadow import Shadow
    from serving.spec import ShadowVariantSpec
    from tests.models import fragile_model

    out, rows, label, _ = demo
    (tmp_path / "fragile.onnx").write_bytes(fragile_model())
    metrics = ServingMetrics()
    spec = DataCaptureSpec(enabled=True, sampling_percentage=100, destination=str(tmp_path / "cap"))
    capture = EndpointCapture(spec, JsonlFileSink(tmp_path / "cap", "ep", flush_interval_s=0.05))
    model = ModelSpec(name="m", path=str(out / "model.onnx"))
    same = Shadow("ep", ShadowVariantSpec(name="Same", model="m"), ModelRunner(model, "Same"),
                  metrics.shadow("ep", "Same"), capture, thread=thread)
    broken = Shadow("ep", ShadowVariantSpec(name="Broken", model="f"),
                    ModelRunner(ModelSpec(name="f", path=str(tmp_path / "fragile.onnx")), "Broken"),
                    metrics.shadow("ep", "Broken"), thread=thread)
    ep = Endpoint("ep", {"A": ModelRunner(model, "A")}, {"A": 1.0}, capture, [same, broken])
    dp = DataPlane({"ep": ep}, 1_000_000, metrics=metrics)

    async def scenario():
        answers = [await sagemaker.invoke(dp, http_request("/", csv(rows), {"content-type": "text/csv",
                                                                             "x-amzn-sagemaker-inference-id": f"r{i}"}),
                                          "ep") for i in range(4)]
        await asyncio.sleep(0.2)  # the shadows' worker runs after the callers were answered
        return answers

    answers = run(scenario())
    assert all(r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "A" for r in answers)
    s, b = metrics.shadow("ep", "Same"), metrics.shadow("ep", "Broken")
    assert (s.ok, s.rows, s.agreed, s.abs_diff) == (4, 4 * len(rows), 4 * len(rows), 0.0)
    assert (b.ok, b.errors) == (0, 4)
    ep.close()
    df = read_capture(tmp_path / "cap")
    assert sorted(df["variant"].unique()) == ["A", "Same"]
    same_rows = df[df["variant"] == "Same"].sort_values("inferenceId")
    prod_rows = df[df["variant"] == "A"].sort_values("inferenceId")
    assert same_rows["inferenceId"].tolist() == prod_rows["inferenceId"].tolist()
    np.testing.assert_array_equal(same_rows["prediction_0"].to_numpy(float), prod_rows["prediction_0"].to_numpy(float))


def test_a_full_shadow_queue_drops_copies_and_counts_them(demo):
    from serving.metrics import ShadowStats
    from serving.shadow import Shadow
    from serving.spec import ShadowVariantSpec

    class Never:
        async def infer(self, payload, names=None):
            await asyncio.sleep(3600)

    stats = ShadowStats()
    shadow = Shadow("ep", ShadowVariantSpec(name="S", model="m", max_queued=5), Never(), stats)

    async def scenario():
        for _ in range(20):
            shadow.offer(None, None, None, None)
        await asyncio.sleep(0)
    run(scenario())
    assert stats.dropped >= 14  # one copy may already be with the worker


def test_the_sagemaker_response_has_the_headers_starlette_would_write(demo):
    """The inference route's headers are made once per variant and type (RawResponse); they must be the ones a
    plain starlette Response with the same media type and headers has, custom attributes passed back."""
    from starlette.responses import Response

    dp, rows = plane(demo), demo[1]
    for ctype, accept in (("text/csv", None), ("text/csv", "application/json"), ("application/json", None)):
        body = csv(rows[:1]) if ctype == "text/csv" else json.dumps({"instances": rows[:1].tolist()}).encode()
        h = {"content-type": ctype, **({"accept": accept} if accept else {}),
             "x-amzn-sagemaker-custom-attributes": "trace=1"}
        for _ in range(2):  # the second time from the cache
            r = run(sagemaker.invoke(dp, http_request("/", body, h), "ep"))
            want = Response(r.body, media_type=accept or ctype, headers={
                "x-amzn-invoked-production-variant": "A", "X-Amzn-SageMaker-Custom-Attributes": "trace=1"})
            assert r.status_code == 200 and sorted(r.raw_headers) == sorted(want.raw_headers)
    r = run(sagemaker.invoke(dp, http_request("/", csv(rows), {"content-type": "text/csv", "accept": "image/png"}),
                             "ep"))
    assert r.status_code == 406


class _Method:
    def __init__(self, handle, name):
        self.handle, self.name = handle, name

    def remote(self, *args):
        self.handle.calls.append((self.name, len(args[0]) if args and isinstance(args[0], list) else 1))

        async def answer():
            await asyncio.sleep(0.01)  # the hop: requests arriving meanwhile are gathered
            result = getattr(self.handle.runner, self.name)(*args)
            return await result if asyncio.iscoroutine(result) else result
        return answer()


class _Handle:
    """A DeploymentHandle's shape (method.remote(...) is awaitable) over an in-process ModelServer's runner."""

    deployment_name = "ep.A"

    def __init__(self, runner):
        self.runner, self.calls = runner, []

    def options(self, **_):
        return self

    def __getattr__(self, name):
        return _Method(self, name)


def test_a_variant_deployment_gets_concurrent_requests_in_one_call_each_run_on_its_own(demo):
    from serving.variants import RemoteVariant

    out, rows, label, proba = demo
    runner = ModelRunner(ModelSpec(name="m", path=str(out / "model.onnx")), "A")
    handle = _Handle(runner)
    remote = RemoteVariant(handle, "A", max_in_flight=1, gather=True)
    dp = DataPlane({"ep": Endpoint("ep", {"A": remote}, {"A": 1.0})}, 1_000_000)

    async def scenario():
        bodies = [csv(rows[i:i + 1]) for i in range(5)] + [b"1,2"]  # the last has too few columns
        return await asyncio.gather(*(sagemaker.invoke(dp, http_request("/", b, {"content-type": "text/csv"}), "ep")
                                      for b in bodies))

    answers = run(scenario())
    assert [r.status_code for r in answers] == [200] * 5 + [400]
    for i, r in enumerate(answers[:5]):
        got = r.body.decode().strip().split(",")
        assert int(got[0]) == label[i] and np.allclose(np.array(got[1:], dtype=np.float32), proba[i])
    # the first found the variant idle and went at once; the others arrived meanwhile: one call, each run on its own
    assert handle.calls == [("infer_each", 1), ("infer_each", 5)]
    assert runner.infer_each([]) == []


def test_without_gathering_each_request_is_its_own_call(demo):
    from serving.variants import RemoteVariant

    out, rows = demo[0], demo[1]
    handle = _Handle(ModelRunner(ModelSpec(name="m", path=str(out / "model.onnx")), "A"))
    dp = DataPlane({"ep": Endpoint("ep", {"A": RemoteVariant(handle, "A")}, {"A": 1.0})}, 1_000_000)

    async def scenario():
        return await asyncio.gather(*(sagemaker.invoke(dp, http_request("/", csv(rows[i:i + 1]),
                                                                        {"content-type": "text/csv"}), "ep")
                                      for i in range(3)))

    assert [r.status_code for r in run(scenario())] == [200] * 3
    assert [c[0] for c in handle.calls] == ["infer"] * 3


def test_a_captured_http_request_is_let_go_at_once_and_its_record_is_whole(demo, tmp_path):
    """SageMaker and V2 REST exchanges hand their capture parts over at once: the queued record holds bytes and
    strings, not the request (whose objects the garbage collector would otherwise walk until the writer runs)."""
    import weakref

    from serving.adapters.sagemaker import SageMakerExchange

    _, rows, label, _ = demo
    dp = plane(demo, capture_dir=tmp_path)
    ep = dp.endpoints["ep"]
    ep.capture.sink.flush_interval_s = 60  # the writer sleeps: the record stays queued while we look
    ex = SageMakerExchange("ep", http_request("/", csv(rows[:1]), {"content-type": "text/csv",
                                                                   "x-amzn-sagemaker-inference-id": "abc"}))
    result = run(dp.infer(ex))
    gone = weakref.ref(ex)
    del ex
    assert gone() is None and len(ep.capture.sink._queue) == 1
    ep.close()
    df = read_capture(tmp_path)
    assert len(df) == 1 and df["inferenceId"].tolist() == ["abc"] and result.variant == "A"
    np.testing.assert_allclose(df[[f"_c{i}" for i in range(8)]].to_numpy(float), rows[:1], rtol=1e-6)
    assert df["prediction_0"].to_numpy(float)[0] == label[0]


def test_a_hop_takes_ray_serves_grpc_transport_when_the_environment_asks_for_it(monkeypatch):
    """RAY_SERVE_USE_GRPC_BY_DEFAULT (Ferry's throughput switches) reaches handles bound in the driver too, and
    the handle is made in the event loop, on first use (Ray's options() needs the running loop, and a green
    variant's runner is built in a worker thread)."""
    from serving.pipeline import RemoteStep
    from serving.variants import RemoteVariant

    class Handle:
        deployment_name = "ep.A"

        def __init__(self, **options):
            self.opts = options

        def options(self, **kw):
            asyncio.get_running_loop()  # as Ray's: RuntimeError outside the event loop
            return Handle(**self.opts, **kw)

    async def opts(remote):
        return remote.handle.opts

    monkeypatch.delenv("RAY_SERVE_USE_GRPC_BY_DEFAULT", raising=False)
    assert run(opts(RemoteVariant(Handle(), "A"))) == {} and run(opts(RemoteStep(Handle()))) == {}
    monkeypatch.setenv("RAY_SERVE_USE_GRPC_BY_DEFAULT", "1")
    for remote in (RemoteVariant(Handle(), "A", gather=True), RemoteStep(Handle())):  # made outside the loop
        assert run(opts(remote)) == {"_by_reference": False, "request_serialization": "pickle",
                                     "response_serialization": "pickle"} and remote.deployment == "ep.A"


def test_what_a_hop_carries_survives_plain_pickle(demo):
    """Hops write requests and results with plain pickle (serving.variants.HOP_SERIALIZATION): every type a
    variant or step deployment gets or gives back must be importable, not made on the fly."""
    import pickle

    from core.errors import bad_request
    from serving.variants import HOP_SERIALIZATION

    out, rows = demo[0], demo[1]
    runner = ModelRunner(ModelSpec(name="m", path=str(out / "model.onnx")), "A")
    requests = [(Payload(matrix=rows[:1]), None), (Payload(named={"input": rows[:2].astype(np.float32)},
                                                                strict_dtype=True), ["label"]),
                (Payload(matrix=np.ones((1, 3))), None)]
    results = runner.infer_each(requests)
    assert HOP_SERIALIZATION == {"request_serialization": "pickle", "response_serialization": "pickle"}
    assert results[2].error is not None  # a 400 carried as a value
    def same(a, b):
        if isinstance(a, np.ndarray):
            return a.dtype == b.dtype and np.array_equal(a, b)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if hasattr(a, "__slots__"):
            return type(a) is type(b) and all(same(getattr(a, f), getattr(b, f)) for f in a.__slots__)
        return a == b

    for value in (requests, results, bad_request("no")):
        assert same(pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)), value)


def test_hop_types_pickle_their_arrays_as_raw_buffers_and_come_back_equal():
    import copy
    import pickle

    from serving.dataplane import ModelResult, Payload
    from serving.wire import Wire

    named = {"s": np.array(["a", "b"], dtype=object), "strided": np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2],
             "f": np.ones((2, 3), np.float32)}
    p = Payload(matrix=np.arange(8.0).reshape(1, 8), named=named, strict_dtype=True)
    r = ModelResult("v", {"label": np.array([1, 0]), "p": np.full((2, 2), 0.5, np.float32)}, None, 2, 0.25)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        q, s = pickle.loads(pickle.dumps(p, protocol)), pickle.loads(pickle.dumps(r, protocol))
        assert q.strict_dtype and q.matrix.flags.writeable and np.array_equal(q.matrix, p.matrix)
        for k, v in named.items():
            assert q.named[k].dtype == v.dtype and np.array_equal(q.named[k], v)
        assert (s.variant, s.error, s.batch_size, s.model_seconds) == ("v", None, 2, 0.25)
        assert all(s.outputs[k].dtype == v.dtype and np.array_equal(s.outputs[k], v) for k, v in r.outputs.items())
    assert len(pickle.dumps(p, 5)) < len(pickle.dumps(p.matrix, 5)) + len(pickle.dumps(named, 5))
    for c in (copy.copy(r), copy.deepcopy(r), copy.copy(p)):  # copies never hold the pickling wrapper
        values = [*c.outputs.values()] if isinstance(c, ModelResult) else [c.matrix, *c.named.values()]
        assert not any(isinstance(v, Wire) for v in values)


def test_a_batching_runner_runs_concurrent_requests_as_one_batch_on_its_model_thread(demo):
    out, rows, label, proba = demo
    runner = ModelRunner(ModelSpec(name="m", path=str(out / "model.onnx")), "A", BatchingSpec())

    async def scenario():
        return await asyncio.gather(*(runner.infer(Payload(matrix=rows[i:i + 1])) for i in range(len(rows))))

    for _ in range(2):  # the thread takes each batch as it is handed over
        results = run(scenario())
        assert [r.batch_size for r in results] == [len(rows)] * len(rows)
        for i, r in enumerate(results):
            assert r.error is None and r.outputs["label"][0] == label[i]
            assert np.allclose(r.outputs["probabilities"][0], proba[i])
