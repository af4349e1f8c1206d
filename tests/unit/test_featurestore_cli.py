"""`ferry features` commands on the embedded default (SQLite + Parquet), through the real typer app."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from ferry.cli import app

GROUP = {"name": "users", "record_identifier": "user_id", "event_time": "ts",
         "features": [{"name": "user_id", "type": "Integral"}, {"name": "ts", "type": "Fractional"},
                      {"name": "score", "type": "Fractional"}]}


def run(*args):
    return CliRunner().invoke(app, ["features", *args])


def test_put_get_training_set(tmp_path):
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"feature_groups": [GROUP]}))
    f = ["-f", str(cfg)]
    r = run("create", *f)
    assert r.exit_code == 0 and "users" in r.output and "ferry.features.users" in r.output
    assert run("put", "users", "--record", '{"user_id": 1, "ts": 10, "score": 0.5}', *f).exit_code == 0
    r = run("put", "users", "--record", '{"user_id": 1, "ts": 5, "score": 0.9}', *f)
    assert "offline only" in r.output
    r = run("get", "users", "1", *f)
    assert r.exit_code == 0, r.output
    assert {"FeatureName": "score", "ValueAsString": "0.5"} in json.loads(r.output)["Record"]
    assert (tmp_path / ".ferry" / "features" / "online.db").exists()  # beside the deploy file

    bad = run("put", "users", "--record", '{"user_id": 1, "ts": 11, "score": "high"}', *f)
    assert bad.exit_code != 0 and "score" in bad.output

    pd.DataFrame({"user_id": [1, 1, 2], "event_timestamp": [7, 12, 12]}).to_csv(tmp_path / "e.csv", index=False)
    r = run("training-set", "users", "--entities", str(tmp_path / "e.csv"), "--out", str(tmp_path / "o.parquet"), *f)
    assert r.exit_code == 0, r.output
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert out["score"].tolist()[:2] == [0.9, 0.5] and pd.isna(out["score"][2])


def test_training_set_csv_writes_collections_as_json_arrays(tmp_path):
    cfg = tmp_path / "ferry.yaml"
    group = {**GROUP, "features": GROUP["features"] + [
        {"name": "tags", "type": "String", "collection": "Set"},
        {"name": "emb", "type": "Fractional", "collection": "Vector", "dimension": 2}]}
    cfg.write_text(yaml.safe_dump({"feature_groups": [group]}))
    f = ["-f", str(cfg)]
    record = {"user_id": 1, "ts": 10, "score": 0.5, "tags": ["a", "b"], "emb": [3, 4]}
    assert run("put", "users", "--record", json.dumps(record), *f).exit_code == 0
    pd.DataFrame({"user_id": [1, 2], "event_timestamp": [12, 12]}).to_csv(tmp_path / "e.csv", index=False)
    r = run("training-set", "users", "--entities", str(tmp_path / "e.csv"), "--out", str(tmp_path / "o.csv"), *f)
    assert r.exit_code == 0, r.output
    out = pd.read_csv(tmp_path / "o.csv")
    assert sorted(json.loads(out["tags"][0])) == ["a", "b"] and json.loads(out["emb"][0]) == [3.0, 4.0]
    assert out[["tags", "emb"]].iloc[1].isna().all()


def test_create_from_spec_file_and_bad_config(tmp_path):
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"feature_groups": []}))
    spec = tmp_path / "g.yaml"
    spec.write_text(yaml.safe_dump({**GROUP, "name": "extra"}))
    r = run("create", "-f", str(cfg), "--spec", str(spec))
    assert r.exit_code == 0 and "extra" in r.output
    assert run("get", "extra", "1", "-f", str(cfg)).output.strip() == "{}"
    cfg.write_text(yaml.safe_dump({"feature_groups": [{**GROUP, "event_time": "nope"}]}))
    r = run("get", "users", "1", "-f", str(cfg))
    assert r.exit_code != 0 and "event_time" in r.output


def test_training_set_reads_entities_with_the_clis_one_table_reader(tmp_path):
    """--entities is read as every --data is (monitor.tables.load_table): JSON Lines of rows give the same training
    set as the CSV; a missing or unknown file is a usage error naming it, not a pandas traceback."""
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"feature_groups": [GROUP]}))
    f = ["-f", str(cfg)]
    assert run("put", "users", "--record", '{"user_id": 1, "ts": 10, "score": 0.5}', *f).exit_code == 0
    ents = pd.DataFrame({"user_id": [1, 1, 2], "event_timestamp": [7, 12, 12]})
    ents.to_csv(tmp_path / "e.csv", index=False)
    ents.to_json(tmp_path / "e.jsonl", orient="records", lines=True)
    outs = []
    for name in ("e.csv", "e.jsonl"):
        r = run("training-set", "users", "--entities", str(tmp_path / name), "--out", str(tmp_path / f"{name}.parquet"),
                *f)
        assert r.exit_code == 0, r.output
        outs.append(pd.read_parquet(tmp_path / f"{name}.parquet"))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert outs[1]["score"].tolist()[1] == 0.5
    for name, said in (("none.csv", "no such file"), ("e.xlsx", "data must be CSV")):
        (tmp_path / "e.xlsx").write_bytes(b"PK")
        r = run("training-set", "users", "--entities", str(tmp_path / name), "--out", str(tmp_path / "o.parquet"), *f)
        assert r.exit_code == 2 and said in " ".join(r.output.replace("│", " ").split()), r.output
