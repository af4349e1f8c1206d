"""Inference pipelines without Ray: the demo's pipeline endpoints through the data plane, built as the gateway
builds them (real onnxruntime, the real embedded feature store, real capture files), against their steps run
by hand; the step contract, errors that name the step, the deploy-file schema."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import numpy as np
import pandas as pd
import pytest
import yaml

from core.onnx import OnnxModel
from ferry.app import application, feature_api_config
from ferry.config import ConfigError, load_config, parse_config
from ferry.demo import LOOKUP_ENDPOINT, MODEL_FEATURES, PIPELINE_ENDPOINT, demo_config, make_credit_data, write_demo
from ferry.demo_steps import Decide, encode
from ferry.preflight import check_steps
from monitor.capture_reader import read_capture
from serving.adapters import sagemaker, v2rest
from serving.dataplane import DataPlane, Payload
from serving.gateway import _endpoint
from serving.pipeline import PipelineRunner
from serving.spec import EndpointSpec, ModelSpec, VariantSpec
from serving.steps import load_callable
from tests.unit.test_dataplane import http_request

RAW = ["age", "income", "debt_ratio", "credit_history_months", "num_open_accounts", "loan_amount", "employment",
       "housing"]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe")
    write_demo(out, n_rows=300)
    return out, load_config(out / "ferry.yaml")


def plane(demo, capture_dir=None) -> DataPlane:
    out, cfg = demo
    models, features = {m.name: m for m in cfg.models}, feature_api_config(cfg, out)
    endpoints = [e.model_copy(deep=True) for e in cfg.endpoints]
    for e in endpoints:
        e.data_capture.enabled = capture_dir is not None
        e.data_capture.destination = str(capture_dir)
    return DataPlane({e.name: _endpoint(e, models, {}, None, features) for e in endpoints}, 1_000_000)


def by_hand(demo, x: np.ndarray) -> dict[str, np.ndarray]:
    """The model run on x with onnxruntime (one thread, as served), then the demo's Decide step."""
    label, proba = OnnxModel(str(demo[0] / "model.onnx")).session.run(None, {"input": x.astype(np.float32)})
    return Decide(approve_at=0.6, review_at=0.4)({"label": label, "probabilities": proba})


def invoke(dp, endpoint: str, body, content_type="application/json", accept=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type} | ({"accept": accept} if accept else {})
    return run(sagemaker.invoke(dp, http_request("/", data, headers), endpoint))


def predictions(r) -> pd.DataFrame:
    assert r.status_code == 200, r.body
    return pd.DataFrame(json.loads(r.body)["predictions"])


def assert_same(got: pd.DataFrame, want: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(got["label"].to_numpy(), want["label"])
    np.testing.assert_allclose(np.array(got["probabilities"].tolist()), want["probabilities"], rtol=1e-6)
    assert got["decision"].tolist() == want["decision"].tolist()


def test_encode_pipeline_equals_its_steps_by_hand(demo):
    raw = make_credit_data(60, seed=11)  # extra fields (applicant_id, age_group, approved) are left out by encode
    want = by_hand(demo, encode(raw).to_numpy())
    dp = plane(demo)
    assert set(want["decision"]) == {"approve", "review", "decline"}  # the rows exercise every branch
    r = invoke(dp, PIPELINE_ENDPOINT, raw.to_dict("records"))
    assert r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert_same(predictions(r), want)
    one = invoke(dp, PIPELINE_ENDPOINT, raw[RAW].iloc[0].to_dict())  # one object: one applicant
    assert predictions(one)["decision"].tolist() == [want["decision"][0]]
    csv = invoke(dp, PIPELINE_ENDPOINT, {"instances": raw.to_dict("records")}, accept="text/csv")
    first = csv.body.decode().splitlines()[0].split(",")
    assert first[0] == str(want["label"][0]) and first[-1] == want["decision"][0]


def test_v2_tensors_go_through_the_same_pipeline(demo):
    raw = make_credit_data(12, seed=5)
    inputs = [{"name": c, "datatype": "FP64" if raw[c].dtype.kind in "iuf" else "BYTES", "shape": [len(raw)],
               "data": raw[c].tolist()} for c in RAW]
    body = json.dumps({"inputs": inputs, "outputs": [{"name": "decision"}, {"name": "label"}]}).encode()
    r = run(v2rest.handle(plane(demo), http_request("/", body), ["models", PIPELINE_ENDPOINT, "infer"], "POST"))
    outs = {o["name"]: o for o in json.loads(r.body)["outputs"]}
    want = by_hand(demo, encode(raw).to_numpy())
    assert list(outs) == ["decision", "label"] and outs["decision"]["datatype"] == "BYTES"
    assert outs["decision"]["data"] == want["decision"].tolist() and outs["label"]["data"] == want["label"].tolist()
    body = json.dumps({"inputs": inputs, "outputs": [{"name": "nope"}]}).encode()
    r = run(v2rest.handle(plane(demo), http_request("/", body), ["models", PIPELINE_ENDPOINT, "infer"], "POST"))
    assert r.status_code == 400 and "unknown output(s) ['nope']" in json.loads(r.body)["error"]


def test_lookup_pipeline_answers_from_the_feature_store(demo):
    table = make_credit_data(300)  # the applicants write_demo put in the store
    ids = [7, 8, 250, 7]
    want = by_hand(demo, encode(table.set_index("applicant_id").loc[ids]).to_numpy())
    dp = plane(demo)
    assert_same(predictions(invoke(dp, LOOKUP_ENDPOINT, [{"applicant_id": i} for i in ids])), want)
    csv = invoke(dp, LOOKUP_ENDPOINT, b"7\n8\n250\n7", "text/csv", accept="application/json")  # one id per row
    assert_same(predictions(csv), want)
    meta = run(dp.model_metadata(LOOKUP_ENDPOINT))
    assert meta["inputs"] == [{"name": "applicant_id", "datatype": "INT64", "shape": [-1]}]
    (variant,) = dp.endpoints[LOOKUP_ENDPOINT].describe()  # what `ferry status` shows
    assert variant["steps"] == [{"name": n, "runs": "in gateway"} for n in ("lookup", "model", "decide")]


def test_a_request_column_named_like_a_feature_overrides_the_store(demo):
    table = make_credit_data(300).set_index("applicant_id")
    row = table.loc[[9]].copy()
    row["loan_amount"] = 250_000.0
    want = by_hand(demo, encode(row).to_numpy())
    got = predictions(invoke(plane(demo), LOOKUP_ENDPOINT, [{"applicant_id": 9, "loan_amount": 250_000.0}]))
    np.testing.assert_allclose(np.array(got["probabilities"].tolist()), want["probabilities"], rtol=1e-6)


@pytest.mark.parametrize("endpoint, body, status, needle", [
    (PIPELINE_ENDPOINT, [{"age": 35}], 400, "step 'encode': applicants need the fields"),
    (PIPELINE_ENDPOINT, [dict(zip(RAW, [35, "lots", 0.2, 100, 3, 9000, "salaried", "rent"]))], 400,
     "step 'encode': the numeric fields"),
    (LOOKUP_ENDPOINT, [{"applicant_id": 7}, {"applicant_id": 99999}], 400,
     "step 'lookup': no online record in feature group 'applicants' for ids: 99999"),
    (LOOKUP_ENDPOINT, [{"applicant_id": 7.5}], 400, "step 'lookup': 'applicant_id' holds numbers that are not whole"),
    (LOOKUP_ENDPOINT, [{"id": 7}], 400, "step 'lookup': the rows need an id column 'applicant_id'"),
])
def test_a_steps_bad_input_is_a_4xx_naming_the_step(demo, endpoint, body, status, needle):
    dp = plane(demo)
    r = invoke(dp, endpoint, body)
    assert r.status_code == status and r.headers["x-amzn-ErrorType"] == "ValidationError:"
    assert needle in json.loads(r.body)["Message"]
    assert (f'ferry_invocation_errors_total{{code="400",endpoint="{endpoint}",error_type="ValidationError",'
            f'protocol="sagemaker",variant="AllTraffic"}} 1.0') in dp.metrics.exposition().decode()


def test_npy_answers_refuse_text_outputs(demo):
    buf = io.BytesIO()
    np.save(buf, np.array([[7.0]]))
    r = invoke(plane(demo), LOOKUP_ENDPOINT, buf.getvalue(), "application/x-npy")
    assert r.status_code == 406 and "['decision'] are not numeric" in json.loads(r.body)["Message"]


def test_pipeline_captures_read_back_like_any_endpoints(demo, tmp_path):
    dp = plane(demo, tmp_path)
    raw = make_credit_data(5, seed=3)[RAW]
    r = invoke(dp, PIPELINE_ENDPOINT, raw.to_dict("records"))
    for ep in dp.endpoints.values():
        ep.close()
    df = read_capture(tmp_path / PIPELINE_ENDPOINT)
    assert df.attrs["skipped"] == {} and len(df) == 5
    assert df["employment"].tolist() == raw["employment"].tolist()
    assert df["prediction_3"].tolist() == predictions(r)["decision"].tolist()  # the decision step's output


# ---- the step contract, on steps of a module written for the test


def steps_module(tmp_path, source: str) -> str:
    name = f"steps_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(source)
    return name


SOURCE = '''
import numpy as np
import pandas as pd

def table(df):
    return df.assign(total=df["a"] + df["b"])

def tensors(t):
    return {"sum": t["a"] + t["b"], "pair": np.stack([t["a"], t["b"]], axis=1)}

def matrix(t):
    return np.asarray(t["sum"]) * 2

async def later(m):
    return {"doubled": m[:, 0]}

def text(df):
    return df.assign(word="x")

def boom(t):
    raise RuntimeError("disk on fire")

def picky(t):
    raise ValueError("b must be positive")

def wrong(t):
    return "not a table"

def ragged(t):
    return {"a": np.arange(2), "b": np.arange(3)}

class Scale:
    def __init__(self, by=1.0):
        self.by = by

    def __call__(self, t):
        return {"scaled": t["a"] * self.by}
'''


def pipeline(tmp_path, *steps: dict) -> PipelineRunner:
    module = steps_module(tmp_path, SOURCE)
    spec = VariantSpec(pipeline=[{**s, "python": f"{module}:{s['python']}", "path": str(tmp_path)}
                                 if "python" in s else s for s in steps])
    return PipelineRunner.build("ep", spec, {}, {}, None)


AB = Payload(named={"a": np.array([1.0, 2.0]), "b": np.array([10.0, 20.0])})


def test_steps_exchange_tables_tensors_and_matrices(tmp_path):
    p = pipeline(tmp_path, {"python": "table", "takes": "table"}, {"python": "tensors"})
    out = run(p.infer(AB)).outputs
    np.testing.assert_array_equal(out["sum"], [11, 22])
    np.testing.assert_array_equal(out["pair"], [[1, 10], [2, 20]])
    p = pipeline(tmp_path, {"python": "tensors"}, {"python": "matrix"}, {"python": "later"})
    np.testing.assert_array_equal(run(p.infer(AB)).outputs["doubled"], [22, 44])
    p = pipeline(tmp_path, {"python": "tensors"}, {"python": "matrix"})
    np.testing.assert_array_equal(run(p.infer(AB)).outputs["output"], [[22], [44]])  # a final matrix is "output"
    p = pipeline(tmp_path, {"python": "Scale", "init_args": {"by": 3}}, {"python": "tensors", "name": "again"},
                 {"python": "Scale", "name": "unit"})
    assert run(p.infer(AB)).error.message == "step 'again': missing 'a'"


@pytest.mark.parametrize("step, status, message", [
    ("boom", 424, "step 'boom': failed: RuntimeError: disk on fire"),
    ("picky", 400, "step 'picky': b must be positive"),
    ("wrong", 424, "step 'wrong': returned str; return a pandas DataFrame, a dict of arrays or a numpy array"),
    ("ragged", 424, "step 'ragged': returned columns with different row counts: {'a': 2, 'b': 3}"),
])
def test_step_errors_name_the_step_and_keep_their_status(tmp_path, step, status, message):
    err = run(pipeline(tmp_path, {"python": "tensors"}, {"python": step}).infer(AB)).error
    assert (err.status, err.message) == (status, message)


def test_a_model_step_takes_numeric_columns_side_by_side(tmp_path, demo):
    model = ModelSpec(name="m", path=str(demo[0] / "model.onnx"))
    module = steps_module(tmp_path, SOURCE)
    spec = VariantSpec(pipeline=[{"python": f"{module}:text", "takes": "table", "path": str(tmp_path)},
                                 {"model": "m"}])
    raw = encode(make_credit_data(4, seed=2))
    err = run(PipelineRunner.build("ep", spec, {"m": model}, {}, None).infer(
        Payload(named={c: raw[c].to_numpy() for c in MODEL_FEATURES}))).error
    assert err.status == 400 and err.message == ("step 'm': column(s) ['word'] are not numeric: the model takes "
                                                 "numbers (encode them in an earlier step)")
    spec = VariantSpec(pipeline=[{"python": f"{module}:table", "takes": "table", "path": str(tmp_path)},
                                 {"model": "m"}])
    err = run(PipelineRunner.build("ep", spec, {"m": model}, {}, None).infer(AB)).error
    assert err.status == 400 and "step 'm': expected 8 columns per row for input 'input', got 3" in err.message


def test_python_steps_that_cannot_load_are_named_before_start(tmp_path):
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        load_callable("no_such_module:f", str(tmp_path))
    module = steps_module(tmp_path, SOURCE)
    with pytest.raises(ValueError, match="has no 'nope'"):
        load_callable(f"{module}:nope", str(tmp_path))
    with pytest.raises(ValueError, match="init_args: .* is a function, not a class"):
        load_callable(f"{module}:boom", str(tmp_path), {"x": 1})
    ep = EndpointSpec(name="e", variants=[VariantSpec(pipeline=[
        {"python": "no_such_module:f", "path": str(tmp_path)}, {"python": f"{module}:boom", "path": str(tmp_path)}])])
    (problem,) = check_steps([ep])
    assert problem.startswith("endpoint 'e', variant 'AllTraffic', step 'f': cannot import 'no_such_module'")


# ---- the deploy file


@pytest.mark.parametrize("variant, needle", [
    ({"model": "credit-gbm", "pipeline": [{"model": "credit-gbm"}, {"model": "credit-gbm", "name": "again"}]},
     "give exactly one of model or pipeline"),
    ({}, "give exactly one of model or pipeline"),
    ({"pipeline": [{"model": "credit-gbm"}]}, "variants.0.pipeline: List should have at least 2 items"),
    ({"pipeline": [{"model": "credit-gbm", "name": f"s{i}"} for i in range(16)]}, "at most 15 items"),
    ({"pipeline": [{"model": "credit-gbm"}, {"model": "credit-gbm"}]}, "step names must be unique"),
    ({"pipeline": [{"model": "credit-gbm", "python": "m:f"}, {"model": "x"}]}, "exactly one of python, model"),
    ({"pipeline": [{"model": "credit-gbm", "takes": "table"}, {"python": "m:f"}]}, "takes: only for a python step"),
    ({"pipeline": [{"python": "m.f"}, {"python": "m:g"}]}, "'m.f' is not `module:function`"),
    ({"replicas": 2, "pipeline": [{"python": "m:f"}, {"python": "m:g"}]}, "replicas: a pipeline variant places"),
    ({"serverless": {}, "pipeline": [{"python": "m:f"}, {"python": "m:g"}]}, "serverless: not for a pipeline"),
    ({"pipeline": [{"python": "m:f"}, {"model": "nope"}]}, "endpoints.0.variants.0.pipeline.1.model: unknown model"),
    ({"pipeline": [{"feature_lookup": {"feature_group": "nope"}}, {"python": "m:g"}]},
     "pipeline.0.feature_lookup.feature_group: unknown feature group 'nope'"),
    ({"pipeline": [{"feature_lookup": {"feature_group": "applicants", "features": ["housing"]}}, {"python": "m:g"}]},
     "pipeline.0.feature_lookup.features: feature 'housing' is String: not a numeric scalar"),
])
def test_pipeline_schema_errors_name_the_field(variant, needle, tmp_path):
    doc = demo_config(pipelines=False)
    doc["endpoints"][0]["variants"] = [variant]
    with pytest.raises(ConfigError) as err:
        parse_config(doc, base=tmp_path, environ={})
    assert needle in str(err.value)


def test_the_demo_file_declares_both_pipelines_with_paths_from_its_folder(demo):
    out, cfg = demo
    eps = {e.name: e for e in cfg.endpoints}
    steps = eps[PIPELINE_ENDPOINT].variants[0].pipeline
    assert [(s.name, s.kind) for s in steps] == [("encode", "python"), ("model", "model"), ("decide", "python")]
    assert steps[0].path == str(out) and steps[0].takes == "table"
    lookup = eps[LOOKUP_ENDPOINT].variants[0].pipeline[0].feature_lookup
    assert lookup.feature_group == "applicants" and lookup.features == MODEL_FEATURES
    assert check_steps(cfg.endpoints) == []


def test_a_step_with_its_own_scaling_gets_its_own_deployment(demo):
    out, _ = demo
    doc = yaml.safe_load((out / "ferry.yaml").read_text())
    pipe = next(e for e in doc["endpoints"] if e["name"] == LOOKUP_ENDPOINT)["variants"][0]["pipeline"]
    pipe[0].update(replicas=2)
    pipe[1].update(num_cpus=0.5)
    cfg = parse_config(doc, base=out, environ={})
    gateway = application(cfg, out)._bound_deployment
    remote = gateway.init_args[3]
    assert set(remote) == {f"{LOOKUP_ENDPOINT}.AllTraffic.lookup", f"{LOOKUP_ENDPOINT}.AllTraffic.model"}
    lookup = remote[f"{LOOKUP_ENDPOINT}.AllTraffic.lookup"].handle._bound_deployment
    assert lookup.name == f"{LOOKUP_ENDPOINT}.AllTraffic.lookup" and lookup._deployment_config.num_replicas == 2
    assert lookup.init_args[2].groups[0].name == "applicants"  # the feature store's configuration, typed
    model = remote[f"{LOOKUP_ENDPOINT}.AllTraffic.model"].handle._bound_deployment
    assert model.ray_actor_options["num_cpus"] == 0.5 and list(model.init_args[1]) == ["credit-gbm"]


def test_ferry_validate_names_a_step_that_cannot_import(demo, tmp_path, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from ferry.cli import app

    out, _ = demo
    from pathlib import Path

    monkeypatch.delitem(sys.modules, "credit_steps", raising=False)  # other tests' demo folders imported it
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not (Path(p) / "credit_steps.py").exists()])
    doc = yaml.safe_load((out / "ferry.yaml").read_text())
    (tmp_path / "model.onnx").write_bytes((out / "model.onnx").read_bytes())
    doc.pop("monitoring_schedules")
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))  # without credit_steps.py beside it
    r = CliRunner().invoke(app, ["validate", "-f", str(tmp_path / "ferry.yaml")])
    assert r.exit_code == 2
    assert f"endpoint '{PIPELINE_ENDPOINT}', variant 'AllTraffic', step 'encode': cannot import 'credit_steps'" in \
        " ".join(r.output.split())


def test_json_objects_decode_to_named_columns_and_bad_ones_are_400():
    from core.errors import FerryError
    from core.payloads.json import JsonCodec

    got = JsonCodec().decode(b'[{"a": 1, "s": "x"}, {"a": 2.5, "s": "y"}]')
    np.testing.assert_array_equal(got["a"], [1.0, 2.5])
    assert got["s"].tolist() == ["x", "y"]
    assert list(JsonCodec().decode(b'{"a": 1, "s": "x"}')) == ["a", "s"]  # one object: one row
    for body, needle in [(b'[{"a": 1}, {"b": 2}]', "a row lacks the field 'a'"),
                         (b'[{"a": 1}, {"a": 1, "b": 2}]', "every row must be an object with the fields ['a']"),
                         (b'[{"a": [1, 2]}, {"a": [1]}]', "field 'a' must hold a value"),
                         (b'{"instances": [{}]}', "an object with no fields")]:
        with pytest.raises(FerryError) as err:
            JsonCodec().decode(body)
        assert err.value.error.status == 400 and needle in err.value.error.message, err.value.error.message
