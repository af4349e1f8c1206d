"""`ferry bias` and `ferry explain` end to end on files, and the HTML report's content."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from clarify import bias_report, metric_names
from clarify.htmlreport import SENTENCES, render_html
from ferry.cli import app

runner = CliRunner()


@pytest.fixture()
def credit(tmp_path):
    rng = np.random.default_rng(5)
    n = 400
    df = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n), "age": rng.integers(18, 80, n), "income": rng.normal(50, 10, n).round(1),
        "region": rng.choice(["n", "s", "e"], n),
    })
    df["approved"] = (rng.uniform(size=n) < np.where(df.sex == "F", 0.4, 0.6)).astype(int)
    df["prob"] = np.clip(0.5 + 0.01 * (df.income - 50) + rng.normal(0, 0.2, n), 0, 1).round(3)
    df["pred"] = (df.prob > 0.5).astype(int)
    path = tmp_path / "credit.csv"
    df.to_csv(path, index=False)
    return path, df


def test_bias_cli_writes_report_and_html(credit, tmp_path):
    path, df = credit
    out, html = tmp_path / "report.json", tmp_path / "report.html"
    r = runner.invoke(app, ["bias", "--data", str(path), "--label", "approved", "--positive-label", "1",
                            "--facet", "sex", "--facet", "age", "--facet-value", "sex=F", "--facet-threshold", "age=60",
                            "--group", "region", "--predicted-label", "pred", "--features", "income,age",
                            "--out", str(out), "--html", str(html)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    want = bias_report(df, "approved", [1], [{"name": "sex", "values": ["F"]}, {"name": "age", "threshold": 60}],
                       group="region", predicted_label="pred", features=["income", "age"])
    assert report == json.loads(json.dumps(want))
    post = report["post_training_bias_metrics"]["facets"]
    assert [e["value_or_threshold"] for e in post["sex"]] == ["F"]
    assert [e["value_or_threshold"] for e in post["age"]] == ["(60, 79]"]
    assert all("error" not in m for e in post["sex"] for m in e["metrics"])  # FT included: numeric features given

    page = html.read_text()
    assert page.count("data:image/png;base64,") == 4  # a chart per facet value and stage
    assert not re.search(r"""(src|href)=["']https?:""", page)  # self-contained
    rows = re.findall(r"<tr class='(?:near|far|err)'>(.*?)</tr>", page)
    assert len(rows) == 2 * len(metric_names())
    assert all(re.search(r"<td>[^<]{20,}</td>$", row) for row in rows)  # a sentence per metric


def test_bias_cli_probability_and_methods(credit, tmp_path):
    path, _ = credit
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["bias", "--data", str(path), "--label", "approved", "--positive-label", "1",
                            "--facet", "sex", "--probability", "prob", "--probability-threshold", "0.6",
                            "--methods", "CI,DPL,DI", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert [m["name"] for m in report["pre_training_bias_metrics"]["facets"]["sex"][0]["metrics"]] == ["CI", "DPL"]
    assert [m["name"] for m in report["post_training_bias_metrics"]["facets"]["sex"][1]["metrics"]] == ["DI"]


@pytest.mark.parametrize("args,message", [
    (["--facet", "gender"], "facet column 'gender' is not in the data"),
    (["--facet", "sex", "--facet-value", "Q"], "none of the values ['Q'] occur"),
    (["--facet", "sex", "--facet", "age", "--facet-value", "F"], "COL=VALUE"),
    (["--facet", "region", "--facet-threshold", "2"], "'region' is not numeric"),
    (["--facet", "sex", "--methods", "XX"], "Invalid metric_name"),
])
def test_bias_cli_bad_input(credit, tmp_path, args, message):
    path, _ = credit
    r = runner.invoke(app, ["bias", "--data", str(path), "--label", "approved", "--positive-label", "1", *args,
                            "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 2
    assert message in r.output


def test_explain_cli(tmp_path):
    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(300, 3)).astype(np.float32), columns=["a", "b", "c"])
    y = (x.a - 2 * x.b > 0).astype(int)
    (tmp_path / "m.onnx").write_bytes(to_onnx(LogisticRegression().fit(x.to_numpy(), y), x.to_numpy()[:1],
                                              options={"zipmap": False}).SerializeToString())
    x.assign(label=y).to_csv(tmp_path / "d.csv", index=False)
    x.iloc[:20].to_csv(tmp_path / "b.csv", index=False)
    out, html = tmp_path / "analysis.json", tmp_path / "e.html"
    r = runner.invoke(app, ["explain", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "d.csv"),
                            "--baseline", str(tmp_path / "b.csv"), "--drop", "label", "--out", str(out),
                            "--html", str(html), "--method", "kernel", "--num-samples", "50", "--seed", "1"])
    assert r.exit_code == 0, r.output
    entry = json.loads(out.read_text())["explanations"]["kernel_shap"]["label0"]
    assert set(entry["global_shap_values"]) == {"a", "b", "c"}
    assert max(entry["global_shap_values"], key=entry["global_shap_values"].get) == "b"
    assert 0 < entry["expected_value"] < 1
    assert "data:image/png;base64," in html.read_text()


def test_html_sentences_cover_every_metric_and_edge_values():
    assert set(SENTENCES) == set(metric_names())
    df = pd.DataFrame({"x": list("abbcc"), "y": list("pqrpq"), "yhat": list("ppqpp")})
    page = render_html(report=bias_report(df, "y", ["p", "q"], ["x"], predicted_label="yhat"))
    assert "−∞" in page and "+∞" in page  # DCR's infinities
    assert "Not computed: Group variable is empty or not provided" in page


def test_one_facet_grammar_for_bias_and_monitor_bias():
    from clarify import Facet
    from ferry.cli_clarify import parse_facets

    inline = parse_facets(["age>40", "sex=F|X", "region"])
    options = parse_facets(["age", "sex", "region"], ["sex=F,X"], ["age=40"])
    assert inline == options == [Facet("age", threshold=40), Facet("sex", values=["F", "X"]), Facet("region")]
    assert parse_facets(["sex"], ["F"]) == parse_facets(["sex=F"]) == [Facet("sex", values=["F"])]
