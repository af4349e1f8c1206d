"""The demo's inference pipelines on a real Ray Serve (the session's Ferry), called with boto3, tritonclient and
httpx: each equals its steps run by hand, in the gateway (`AllTraffic`) and with steps on their own
deployments (`Deployed`: credit-risk-pipeline's encode and model steps, credit-risk-by-id's lookup step); a
step's bad input is a 4xx naming it; the lookup pipeline answers from the demo's feature store; captures read
back; the README's pipeline examples run."""

from __future__ import annotations

import json
import uuid

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.http as th
from botocore.config import Config

from ferry.demo import LOOKUP_ENDPOINT, PIPELINE_ENDPOINT
from ferry.demo_steps import RAW_FIELDS, Decide, encode
from monitor.capture_reader import read_capture
from tests.integration.test_first_hour import DOCS, run_block, runnable_blocks
from tests.integration.test_serving_capture import captured

VARIANTS = ["AllTraffic", "Deployed"]


@pytest.fixture(scope="module")
def applicants(demo_dir) -> pd.DataFrame:
    return pd.read_csv(demo_dir / "test.csv").head(40)


@pytest.fixture(scope="module")
def runtime(ferry_url):
    return boto3.client("sagemaker-runtime", endpoint_url=ferry_url, region_name="us-east-1",
                        aws_access_key_id="any", aws_secret_access_key="any",
                        config=Config(retries={"max_attempts": 1}))


def by_hand(demo_dir, raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """The steps run by hand: the demo's encode, the model in onnxruntime, Decide as ferry.yaml configures it."""
    x = encode(raw).to_numpy().astype(np.float32)
    label, proba = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": x})
    return Decide(approve_at=0.6, review_at=0.4)({"label": label, "probabilities": proba})


def invoke(runtime, endpoint: str, variant: str, body, **kw) -> tuple[str, bytes]:
    r = runtime.invoke_endpoint(EndpointName=endpoint, TargetVariant=variant, ContentType="application/json",
                                Body=json.dumps(body), **kw)
    return r["InvokedProductionVariant"], r["Body"].read()


def assert_same(body: bytes, want: dict[str, np.ndarray]) -> None:
    got = pd.DataFrame(json.loads(body)["predictions"])
    np.testing.assert_array_equal(got["label"].to_numpy(), want["label"])
    np.testing.assert_allclose(np.array(got["probabilities"].tolist()), want["probabilities"], rtol=1e-6)
    assert got["decision"].tolist() == want["decision"].tolist()


@pytest.mark.parametrize("variant", VARIANTS)
def test_raw_applicants_pipeline_equals_its_steps_by_hand(runtime, demo_dir, applicants, variant):
    want = by_hand(demo_dir, applicants)
    assert set(want["decision"]) == {"approve", "review", "decline"}  # every branch of the decision step
    invoked, body = invoke(runtime, PIPELINE_ENDPOINT, variant, applicants[RAW_FIELDS].to_dict("records"))
    assert invoked == variant
    assert_same(body, want)


@pytest.mark.parametrize("variant", VARIANTS)
def test_lookup_pipeline_answers_from_the_demo_feature_store(runtime, demo_dir, applicants, variant):
    ids = applicants["applicant_id"].tolist()
    _, body = invoke(runtime, LOOKUP_ENDPOINT, variant, [{"applicant_id": i} for i in ids])
    assert_same(body, by_hand(demo_dir, applicants))


def test_v2_clients_reach_a_pipeline_with_string_tensors(ferry_url, demo_dir, applicants):
    client = th.InferenceServerClient(ferry_url.removeprefix("http://"))
    inputs = []
    for c in RAW_FIELDS:
        col = applicants[c].to_numpy()
        text = col.dtype == object
        x = th.InferInput(c, [len(col)], "BYTES" if text else "FP64")
        x.set_data_from_numpy(col.astype(object) if text else col.astype(np.float64), binary_data=True)
        inputs.append(x)
    out = client.infer(PIPELINE_ENDPOINT, inputs, outputs=[th.InferRequestedOutput("decision", binary_data=False),
                                                           th.InferRequestedOutput("probabilities")])
    want = by_hand(demo_dir, applicants)
    assert [v.decode() if isinstance(v, bytes) else v for v in out.as_numpy("decision")] == want["decision"].tolist()
    np.testing.assert_allclose(out.as_numpy("probabilities"), want["probabilities"], rtol=1e-6)
    meta = client.get_model_metadata(LOOKUP_ENDPOINT)
    assert meta["inputs"] == [{"name": "applicant_id", "datatype": "INT64", "shape": [-1]}]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("endpoint, body, needle", [
    (PIPELINE_ENDPOINT, [{"age": 35}], "step 'encode': applicants need the fields"),
    (PIPELINE_ENDPOINT, [dict(zip(RAW_FIELDS, [35, "lots", 0.2, 100, 3, 9000, "salaried", "rent"]))],
     "step 'encode': the numeric fields"),
    (LOOKUP_ENDPOINT, [{"applicant_id": 99_999_999}], "step 'lookup': no online record in feature group "
                                                      "'applicants' for ids: 99999999"),
    (LOOKUP_ENDPOINT, [{"id": 7}], "step 'lookup': the rows need an id column 'applicant_id'"),
])
def test_a_steps_bad_input_is_a_4xx_naming_the_step(ferry_url, endpoint, body, needle, variant):
    r = httpx.post(f"{ferry_url}/endpoints/{endpoint}/invocations", json=body, timeout=30,
                   headers={"X-Amzn-SageMaker-Target-Variant": variant})
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-errortype"] == "ValidationError:" and needle in r.json()["Message"]
    errors = [ln for ln in httpx.get(f"{ferry_url}/metrics").text.splitlines()
              if ln.startswith("ferry_invocation_errors_total") and f'endpoint="{endpoint}"' in ln
              and f'variant="{variant}"' in ln and 'code="400"' in ln]
    assert errors and float(errors[0].rsplit(" ", 1)[1]) >= 1, errors  # counted against the variant asked for


def test_steps_with_their_own_scaling_are_deployments_of_their_own(ferry_url):
    from ray import serve

    deployments = serve.status().applications["ferry"].deployments
    steps = {d for d in deployments if d.startswith((PIPELINE_ENDPOINT, LOOKUP_ENDPOINT))}
    assert steps == {f"{PIPELINE_ENDPOINT}.Deployed.encode", f"{PIPELINE_ENDPOINT}.Deployed.model",
                     f"{LOOKUP_ENDPOINT}.Deployed.lookup"}
    assert all(deployments[d].status == "HEALTHY" for d in steps)
    layout = serve.get_deployment_handle("gateway", "ferry").describe.remote().result(timeout_s=30)
    deployed = next(v for v in layout[PIPELINE_ENDPOINT] if v["variant"] == "Deployed")  # what `ferry status` shows
    assert deployed["steps"] == [{"name": "encode", "runs": f"{PIPELINE_ENDPOINT}.Deployed.encode"},
                                 {"name": "model", "runs": f"{PIPELINE_ENDPOINT}.Deployed.model"},
                                 {"name": "decide", "runs": "in gateway"}]


def test_pipeline_requests_are_captured_like_any_endpoints(runtime, demo_dir, applicants):
    ids = {f"pipe-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)}
    rows = applicants[RAW_FIELDS].head(2).to_dict("records")
    answers = {iid: invoke(runtime, PIPELINE_ENDPOINT, "AllTraffic", rows, InferenceId=iid)[1] for iid in ids}
    folder = demo_dir / "pipeline-capture" / PIPELINE_ENDPOINT
    recs = captured(folder, ids)
    assert set(recs) == ids
    some = next(iter(ids))
    assert json.loads(recs[some]["captureData"]["endpointInput"]["data"]) == rows
    assert recs[some]["captureData"]["endpointOutput"]["data"] == answers[some].decode()
    df = read_capture(folder)  # the monitor's reader: one row per applicant, the raw fields as columns
    mine = df[df["inferenceId"].isin(ids)]
    assert len(mine) == 2 * len(ids) and mine["employment"].tolist() == [r["employment"] for r in rows] * len(ids)


def test_readme_pipeline_examples_run_on_the_demo(ferry_url, demo_dir, tmp_path):
    """The README's runnable pipeline blocks, against the session's demo (its port and folder)."""
    blocks = [b for b in runnable_blocks(DOCS[0]) if PIPELINE_ENDPOINT in b.text or LOOKUP_ENDPOINT in b.text]
    text = "\n".join(b.text for b in blocks)
    assert PIPELINE_ENDPOINT in text and LOOKUP_ENDPOINT in text, "README.md lacks a runnable example of each"
    for b in blocks:
        out = run_block(b, ferry_url, demo_dir, tmp_path)
        answers = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        decisions = [p["decision"] for a in answers for p in a["predictions"]]
        assert len(answers) == b.text.count("/invocations"), f"README.md:{b.line}: {out[-2000:]}"
        assert decisions and set(decisions) <= {"approve", "review", "decline"}, out[-2000:]
