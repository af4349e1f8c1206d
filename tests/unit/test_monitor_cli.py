"""`ferry baseline` and `ferry monitor ...` through the real CLI app."""

import json

import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from ferry.cli import app
from core.capture import build_record
from serving.capture import make_sink
from serving.spec import DataCaptureSpec

runner = CliRunner()


def _frame(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "n": rng.integers(0, 9, n), "c": rng.choice(["a", "b"], n)})


def test_baseline_then_data_quality_on_csv_parquet_and_capture(tmp_path):
    _frame(2000, 1).assign(label=1).to_csv(tmp_path / "train.csv", index=False)
    r = runner.invoke(app, ["baseline", "--data", str(tmp_path / "train.csv"), "--out", str(tmp_path / "base"),
                            "--exclude", "label"])
    assert r.exit_code == 0, r.output
    cons = json.loads((tmp_path / "base" / "constraints.json").read_text())
    assert [f["name"] for f in cons["features"]] == ["x", "n", "c"]
    assert cons["monitoring_config"]["distribution_constraints"]["comparison_method"] == "Robust"

    _frame(500, 2, shift=1.0).to_parquet(tmp_path / "live.parquet")
    r = runner.invoke(app, ["monitor", "data-quality", "--baseline", str(tmp_path / "base"),
                            "--data", str(tmp_path / "live.parquet"), "--out", str(tmp_path / "o1")])
    assert r.exit_code == 0, r.output
    v = json.loads((tmp_path / "o1" / "constraint_violations.json").read_text())["violations"]
    assert [(x["feature_name"], x["constraint_check_type"]) for x in v] == [("x", "baseline_drift_check")]

    spec = DataCaptureSpec(enabled=True, destination=str(tmp_path / "cap"))
    sink = make_sink(spec, "ep", None)
    for row in _frame(300, 3).itertuples(index=False):
        sink.put(build_record(spec, variant="AllTraffic", input_data=f"{row.x},{row.n},{row.c}",
                              input_content_type="text/csv", output_data="1", output_content_type="text/csv"))
    sink.close()
    r = runner.invoke(app, ["monitor", "data-quality", "--baseline", str(tmp_path / "base"),
                            "--data", str(tmp_path / "cap"), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["status"] == "Completed"


def test_jsonl_means_rows_and_capture_records_alike_in_every_command(tmp_path):
    """One table reader: a .jsonl of rows is a table for `ferry bias` and `ferry monitor`; a .jsonl of capture
    records is captured data for both."""
    from monitor.tables import load_table

    rows = _frame(400, 4).assign(y=lambda d: (d["x"] > 0).astype(int))
    rows.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    spec = DataCaptureSpec(enabled=True, destination=str(tmp_path / "cap"))
    sink = make_sink(spec, "ep", None)
    for row in rows.head(50).itertuples(index=False):
        sink.put(build_record(spec, variant="AllTraffic", input_data=f"{row.x},{row.n},{row.c}",
                              input_content_type="text/csv", output_data="1", output_content_type="text/csv"))
    sink.close()
    capture_file = next((tmp_path / "cap").rglob("*.jsonl"))
    pd.testing.assert_frame_equal(load_table(tmp_path / "rows.jsonl"), rows)
    captured = load_table(capture_file)
    assert len(captured) == 50 and {"eventId", "inferenceTime", "prediction"} <= set(captured.columns)

    r = runner.invoke(app, ["bias", "--data", str(tmp_path / "rows.jsonl"), "--label", "y", "--positive-label", "1",
                            "--facet", "c", "--out", str(tmp_path / "bias.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["baseline", "--data", str(tmp_path / "rows.jsonl"), "--out", str(tmp_path / "base"),
                            "--exclude", "y"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["monitor", "data-quality", "--baseline", str(tmp_path / "base"),
                            "--data", str(capture_file), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and json.loads(r.output)["status"] == "Completed", r.output
    for facet in (["--facet", "c", "--facet-value", "a"], ["--facet", "c=a"]):  # `ferry bias`'s facet grammar
        r = runner.invoke(app, ["baseline", "--type", "bias", "--data", str(tmp_path / "rows.jsonl"), "--label", "y",
                                "--out", str(tmp_path / "bb"), *facet])
        assert r.exit_code == 0, r.output
        pre = json.loads((tmp_path / "bb" / "analysis.json").read_text())["pre_training_bias_metrics"]
        assert [e["value_or_threshold"] for e in pre["facets"]["c"]] == ["a"]
    (tmp_path / "t.xlsx").write_text("x")
    r = runner.invoke(app, ["bias", "--data", str(tmp_path / "t.xlsx"), "--label", "y", "--facet", "c",
                            "--out", str(tmp_path / "b2.json")])
    assert r.exit_code == 2 and "data must be CSV" in r.output


def test_bad_input_is_a_clear_error(tmp_path):
    r = runner.invoke(app, ["monitor", "data-quality", "--baseline", str(tmp_path / "nope"),
                            "--data", str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "constraints.json: no such file" in r.output


def test_run_once_from_deploy_file_then_list_and_show(tmp_path):
    _frame(2000, 1).to_csv(tmp_path / "train.csv", index=False)
    runner.invoke(app, ["baseline", "--data", str(tmp_path / "train.csv"), "--out", str(tmp_path / "base")])
    cfg = {"monitoring_schedules": [{"name": "dq", "endpoint": "ep", "baseline": str(tmp_path / "base"),
                                     "capture": str(tmp_path / "cap"), "output": str(tmp_path / "mon")}]}
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["monitor", "run", "--once", "-f", str(tmp_path / "ferry.yaml"),
                            "--at", "2026-01-01T00:00:00Z"])
    assert r.exit_code == 1
    ex = json.loads(r.output)[0]
    assert ex["status"] == "Failed" and "no captured data" in ex["failure_reason"]
    r = runner.invoke(app, ["monitor", "list", "--output", str(tmp_path / "mon")])
    assert r.exit_code == 0 and "Failed" in r.output
    r = runner.invoke(app, ["monitor", "show", ex["path"]])
    assert json.loads(r.output)["status"] == "Failed"
    cfg["monitoring_schedules"][0]["monitor_type"] = "model_quality"
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(cfg))
    r = runner.invoke(app, ["monitor", "run", "--once", "-f", str(tmp_path / "ferry.yaml")])
    assert r.exit_code == 2 and "ground_truth" in r.output


def test_every_monitor_type_writes_its_baseline_from_the_one_table(tmp_path):
    """`ferry baseline --type T` runs SCHEDULE_TYPES[T].write_baseline (no dispatch of its own in the CLI): each type
    writes its files, and a type missing what it needs says so."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from monitor.spec import SCHEDULE_TYPES, ScheduleBase

    df = _frame(400, 5).assign(label=lambda d: (d["x"] > 0).astype(int))
    df["prediction"] = np.where(np.random.default_rng(6).uniform(size=len(df)) < 0.9, df["label"], 1 - df["label"])
    df.to_csv(tmp_path / "data.csv", index=False)
    x = df[["x", "n"]].to_numpy(np.float32)
    model = tmp_path / "m.onnx"
    model.write_bytes(to_onnx(LogisticRegression().fit(x, df["label"]), x[:1], options={"zipmap": False})
                      .SerializeToString())
    base = ["baseline", "--data", str(tmp_path / "data.csv")]
    wants = {"data_quality": (["--exclude", "label,prediction"], "constraints.json"),
             "model_quality": ([], "constraints.json"),
             "bias": (["--facet", "c"], "analysis.json"),
             "attribution": (["--model", str(model), "--features", "x,n"], "analysis.json")}
    assert set(wants) == set(SCHEDULE_TYPES)
    assert all(cls.write_baseline is not ScheduleBase.write_baseline for cls in SCHEDULE_TYPES.values())
    for kind, (flags, written) in wants.items():
        out = tmp_path / kind
        r = runner.invoke(app, [*base, "--type", kind.replace("_", "-"), "--out", str(out), *flags])
        assert r.exit_code == 0, (kind, r.output)
        assert (out / written).is_file(), kind
    assert [f["name"] for f in json.loads((tmp_path / "data_quality" / "constraints.json").read_text())["features"]] \
        == ["x", "n", "c"]
    mq = json.loads((tmp_path / "model_quality" / "constraints.json").read_text())
    assert "binary_classification_constraints" in mq
    for kind, said in (("bias", "at least one facet"), ("attribution", "the model and its features")):
        r = runner.invoke(app, [*base, "--type", kind, "--out", str(tmp_path / "no")])
        assert r.exit_code == 2 and said in r.output, r.output
