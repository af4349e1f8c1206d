"""The demo: a seeded synthetic credit-risk table, an ONNX model trained on it, a data-quality baseline of
the rows the model receives, and a ferry.yaml that serves, captures and monitors the model.

`make_credit_data` is the one generator every part of Ferry reuses (Clarify, the monitor, the feature
store). The facet ``age_group`` carries an injected bias: applicants under 25 are approved less often
than their features alone would say. `model_frame` turns its rows into what the endpoint receives.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ferry import demo_steps
from ferry.demo_steps import EMPLOYMENT, HOUSING, MODEL_FEATURES, encode
from featurestore.demo import applicant_feature_group, load_applicants

log = logging.getLogger(__name__)

LABEL = "approved"
ENDPOINT = "credit-risk"
PIPELINE_ENDPOINT = "credit-risk-pipeline"  # raw applicant JSON -> encode -> model -> decide
LOOKUP_ENDPOINT = "credit-risk-by-id"  # applicant_id -> the applicants feature group -> model -> decide
AB_ENDPOINT = "credit-risk-ab"  # live traffic control: variants A and B at 90/10, a shadow Challenger
CHALLENGER = "challenger.onnx"  # a smaller model trained on the same rows: the shadow, then promoted
STEPS_MODULE = "credit_steps"  # ferry/demo_steps.py, written beside ferry.yaml
SCHEDULE = "credit-risk-data-quality"
BASELINE_DIR = "baselines/data-quality"
BIAS_PENALTY = 1.2  # log-odds taken from under_25 applicants: the injected bias


def make_credit_data(n_rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    """A deterministic credit-risk table with numeric and categorical features and a biased label."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n_rows)
    employment = rng.choice(EMPLOYMENT, n_rows, p=[0.6, 0.2, 0.1, 0.1])
    housing = rng.choice(HOUSING, n_rows, p=[0.3, 0.4, 0.3])
    income = np.round(rng.lognormal(10.6, 0.5, n_rows) * np.where(employment == "student", 0.4, 1.0), 2)
    debt_ratio = np.round(np.clip(rng.beta(2, 5, n_rows), 0, 1), 4)
    history = np.clip((age - 18) * 12 * rng.uniform(0.2, 1.0, n_rows), 0, None).round()
    accounts = rng.poisson(3, n_rows).astype(float)
    loan = np.round(rng.lognormal(9.5, 0.7, n_rows), 2)
    age_group = np.where(age < 25, "under_25", np.where(age <= 60, "25_to_60", "over_60"))
    logit = (
        1.0 + 0.8 * (np.log(income) - 10.6) - 4.0 * (debt_ratio - 0.28) + 0.004 * (history - 150)
        - 0.4 * (np.log(loan) - 9.5) - 1.5 * (employment == "unemployed") - 0.3 * (housing == "rent")
        - BIAS_PENALTY * (age_group == "under_25")
    )
    approved = (rng.uniform(size=n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "applicant_id": np.arange(1, n_rows + 1),
        "age": age,
        "age_group": age_group,
        "income": income,
        "debt_ratio": debt_ratio,
        "credit_history_months": history,
        "num_open_accounts": accounts,
        "loan_amount": loan,
        "employment": employment,
        "housing": housing,
        LABEL: approved,
    })


def model_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The model's features by name, at full precision: numeric columns plus categoricals coded as their
    index (unknown -> -1). These are the rows the endpoint receives (the pipeline's `encode` step)."""
    return encode(df)


def model_matrix(df: pd.DataFrame) -> np.ndarray:
    """The model's float32 input (model_frame as a matrix)."""
    return model_frame(df).to_numpy(dtype=np.float32)


def train_model(df: pd.DataFrame, seed: int = 7, n_estimators: int = 60, max_depth: int = 3) -> bytes:
    """Train a gradient-boosted classifier on the table; return it as ONNX (zipmap off)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier

    x = model_matrix(df)
    clf = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                     random_state=seed).fit(x, df[LABEL].to_numpy())
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    onx.graph.input[0].name = _rename(onx, onx.graph.input[0].name, "input")
    entry = onx.metadata_props.add()  # `ferry explain` names headerless columns from it
    entry.key, entry.value = "feature_names", ",".join(MODEL_FEATURES)
    return onx.SerializeToString()


def _rename(onx, old: str, new: str) -> str:
    for node in onx.graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
    return new


def demo_config(model_path: str = "model.onnx", monitoring: bool = False, pipelines: bool = True,
                ab: bool = True) -> dict:
    """The demo's ferry.yaml as a dict; with `monitoring`, a data-quality schedule on the endpoint's capture
    every 30 s over the last 15 minutes, against the baseline write_demo writes; with `pipelines`, the two
    pipeline endpoints (their step module, credit_steps.py, is written by write_demo); with `ab`, the endpoint
    of the README's live traffic control examples (weights, a shadow, a rollout)."""
    doc = {
        "server": {"host": "127.0.0.1", "http_port": 8080, "grpc_port": 9000},
        "models": [{"name": "credit-gbm", "path": model_path}],
        "endpoints": [{
            "name": ENDPOINT,
            "variants": [{"name": "AllTraffic", "model": "credit-gbm", "initial_weight": 1.0,
                          "replicas": 1, "max_ongoing_requests": 64}],
            "data_capture": {"enabled": True, "sampling_percentage": 100, "destination": "./capture"},
        }],
        "feature_groups": [applicant_feature_group().model_dump(mode="json", by_alias=True, exclude_none=True)],
    }
    if pipelines:
        doc["endpoints"] += pipeline_endpoints()
    if ab:
        doc["models"].append({"name": "credit-gbm-challenger", "path": CHALLENGER})
        doc["endpoints"].append(ab_endpoint())
    if monitoring:
        doc["monitoring_schedules"] = [{
            "name": SCHEDULE, "endpoint": ENDPOINT, "monitor_type": "data_quality", "interval_s": 30,
            "window_start_offset_s": 900, "baseline": f"./{BASELINE_DIR}", "capture": "./capture",
            "output": "./monitoring"}]
    return doc


def pipeline_endpoints() -> list[dict]:
    """`credit-risk-pipeline` (raw applicant JSON -> encode -> model -> decide) and `credit-risk-by-id`
    (applicant_id -> features from the `applicants` group -> model -> decide), captured apart from the
    monitored endpoint's capture."""
    decide = {"name": "decide", "python": f"{STEPS_MODULE}:Decide", "init_args": {"approve_at": 0.6, "review_at": 0.4}}
    capture = {"enabled": True, "sampling_percentage": 100, "destination": "./pipeline-capture"}
    return [
        {"name": PIPELINE_ENDPOINT, "variants": [{"name": "AllTraffic", "pipeline": [
            {"name": "encode", "python": f"{STEPS_MODULE}:encode", "takes": "table"},
            {"name": "model", "model": "credit-gbm"},
            decide]}], "data_capture": capture},
        {"name": LOOKUP_ENDPOINT, "variants": [{"name": "AllTraffic", "pipeline": [
            {"name": "lookup", "feature_lookup": {"feature_group": "applicants", "features": MODEL_FEATURES}},
            {"name": "model", "model": "credit-gbm"},
            decide]}], "data_capture": capture},
    ]


def ab_endpoint() -> dict:
    """`credit-risk-ab`: the model as variants A and B (90/10, for `ferry weights`), every request copied to the
    shadow `Challenger` (for `ferry shadow report`, then `ferry shadow promote`), all in the gateway replicas."""
    return {"name": AB_ENDPOINT,
            "variants": [{"name": "A", "model": "credit-gbm", "initial_weight": 90},
                         {"name": "B", "model": "credit-gbm", "initial_weight": 10}],
            "shadow_variants": [{"name": "Challenger", "model": "credit-gbm-challenger", "sampling_percentage": 100}]}


DEMO_FILES = ("train.csv", "test.csv", "train_features.csv", "test_features.csv", "model.onnx", CHALLENGER,
              f"{BASELINE_DIR}/", f"{STEPS_MODULE}.py", "ferry.yaml")


def write_demo(out_dir: str | Path, n_rows: int = 5000, seed: int = 7) -> Path:
    """Write DEMO_FILES and load the applicants into the embedded feature store; return ferry.yaml's path.

    train.csv / test.csv are the raw tables (80/20); train_features.csv (with a header) and
    test_features.csv (without: what the SageMaker route takes) are the model's rows at full precision;
    the data-quality baseline is built from train_features.csv, the rows the endpoint will see."""
    from monitor.jobs import baseline_data_quality

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = make_credit_data(n_rows, seed)
    n_train = int(len(df) * 0.8)
    train, test = df.iloc[:n_train], df.iloc[n_train:]
    train.to_csv(out / "train.csv", index=False)
    test.to_csv(out / "test.csv", index=False)
    train_rows = model_frame(train)
    train_rows.to_csv(out / "train_features.csv", index=False)
    model_frame(test).to_csv(out / "test_features.csv", index=False, header=False)
    baseline_data_quality(train_rows, out / BASELINE_DIR)
    (out / "model.onnx").write_bytes(train_model(train, seed))
    (out / CHALLENGER).write_bytes(train_model(train, seed, n_estimators=25, max_depth=2))
    (out / f"{STEPS_MODULE}.py").write_text(Path(demo_steps.__file__).read_text())
    (out / "ferry.yaml").write_text(yaml.dump(demo_config(monitoring=True), Dumper=_IndentedDumper, sort_keys=False))
    load_demo_features(out, df)
    log.debug("demo written to %s", out)
    return out / "ferry.yaml"


class _IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as the docs' ferry.yaml snippets are, so a snippet pasted under a section
    of the demo's file (e.g. docs/endpoints.md's endpoints under `endpoints:`) is valid YAML."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def load_demo_features(out: Path, df: pd.DataFrame) -> int:
    """Put every applicant into the demo's embedded feature store (SQLite + Parquet next to ferry.yaml)."""
    from featurestore.settings import FeatureStoreSettings
    from featurestore.store import FeatureStore

    table = df.copy()
    codes = model_matrix(table)[:, 6:8].astype(int)
    table["employment_code"], table["housing_code"] = codes[:, 0], codes[:, 1]
    store = FeatureStore(FeatureStoreSettings(data_dir=str(out / FeatureStoreSettings().data_dir)),
                         [applicant_feature_group()])
    try:
        return load_applicants(store, table)
    finally:
        store.close()
