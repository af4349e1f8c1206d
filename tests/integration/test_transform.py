"""Batch transform on a real Ray (the session's Ray; Ray tasks by default, Ray Data tasks and actors): outputs equal onnxruntime row by row, with
filters and join, on a folder and on a file; a rejected record named by its file and line; a rerun skips
the finished files; `ferry transform` and `ferry transform status` from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import orjson
import pytest

from serving.spec import ModelSpec
from serving.transform import TransformJob, job_status, run_transform


@pytest.fixture(scope="module")
def model(demo_dir):
    return ModelSpec(name="credit-gbm", path=str(demo_dir / "model.onnx"))


@pytest.fixture(scope="module")
def rows(demo_dir):
    base = np.loadtxt(demo_dir / "test_features.csv", delimiter=",")
    return np.vstack([base] * 5)  # 5000 rows


# onnxruntime's tree ensembles may differ in the last float32 bit between batch sizes (and a transform packs
# records in batches of its own): probabilities are compared to two float32 steps at 1.0, labels exactly
ULPS = 2.4e-7


def predict(demo_dir, rows):
    return ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows.astype(np.float32)})


def csv_lines(rows, first_id=0):
    return [f"id{first_id + i}," + ",".join(repr(float(v)) for v in r) for i, r in enumerate(rows)]


def check_joined(path, ids, labels, probs):
    out = [ln.split(",") for ln in path.read_text().splitlines()]
    assert [o[0] for o in out] == ids
    assert [int(o[1]) for o in out] == labels.tolist()
    np.testing.assert_allclose(np.array([o[2] for o in out], dtype=np.float32), probs, rtol=0, atol=ULPS)


def test_folder_with_filters_join_a_bad_record_and_a_rerun(ray_serve, demo_dir, model, rows, tmp_path):
    labels, probs = predict(demo_dir, rows)
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    a = csv_lines(rows[:3000])
    b = csv_lines(rows[3000:], 3000)
    b[1233] = "id4233,1,2,x,4,5,6,7,8"  # not a number: the model cannot take it
    (src / "a.csv").write_text("\n".join(a) + "\n")
    (src / "sub" / "b.csv").write_text("\n".join(b) + "\n")
    job = TransformJob(name="credit-batch", model=model, input=str(src), output=str(out), input_filter="$[1:]",
                       join_source="Input", output_filter="$[0,-3,-1]", max_payload_mb=0.05, chunk_mb=0.1,
                       max_concurrent_transforms=2)
    record = run_transform(job)
    assert record["status"] == "CompletedWithFailures"
    assert record["rows"] == {"done": 4999, "failed": 1}
    assert record["failures"] == [{"file": "sub/b.csv", "line": 1234, "reason": record["failures"][0]["reason"]}]
    assert "x" in record["failures"][0]["reason"]
    assert orjson.loads((out / "sub" / "b.csv.failed.jsonl").read_bytes())["line"] == 1234
    check_joined(out / "a.csv.out", [f"id{i}" for i in range(3000)], labels[:3000], probs[:3000, 1])
    keep = np.arange(3000, 5000) != 4233
    check_joined(out / "sub" / "b.csv.out", [f"id{i}" for i in np.arange(3000, 5000)[keep]],
                 labels[3000:][keep], probs[3000:, 1][keep])
    assert job_status(str(out))["files"]["a.csv"]["status"] == "Completed"

    # fixed, then rerun on a Ray Data actor pool (the first run was on Ray tasks, the default; how it runs is
    # not an option of the job's outputs): a.csv was finished and is skipped (its output untouched), b.csv is done again
    b[1233] = csv_lines(rows[4233:4234], 4233)[0]
    (src / "sub" / "b.csv").write_text("\n".join(b) + "\n")
    before = (out / "a.csv.out").stat().st_mtime_ns
    record = run_transform(job.model_copy(update={"compute": "actors"}))
    assert record["status"] == "Completed" and record["rows"] == {"done": 5000, "failed": 0}
    assert (out / "a.csv.out").stat().st_mtime_ns == before
    assert not (out / "sub" / "b.csv.failed.jsonl").exists()
    check_joined(out / "sub" / "b.csv.out", [f"id{i}" for i in range(3000, 5000)], labels[3000:], probs[3000:, 1])


def test_file_plain_csv_and_jsonlines_join(ray_serve, demo_dir, model, rows, tmp_path):
    labels, probs = predict(demo_dir, rows)
    plain = tmp_path / "rows.csv"
    plain.write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n")
    record = run_transform(TransformJob(model=model, input=str(plain), output=str(tmp_path / "out1"), chunk_mb=0.2,
                                        compute="tasks"))  # on Ray Data tasks
    assert record["status"] == "Completed" and record["rows"]["done"] == len(rows)
    out = np.loadtxt(tmp_path / "out1" / "rows.csv.out", delimiter=",", dtype=np.float64)
    assert out[:, 0].astype(int).tolist() == labels.tolist()
    np.testing.assert_allclose(out[:, 1:].astype(np.float32), probs, rtol=0, atol=ULPS)

    lines = tmp_path / "rows.jsonl"
    lines.write_bytes(b"\n".join(orjson.dumps({"id": i, "features": r.tolist()}) for i, r in enumerate(rows[:500])))
    record = run_transform(TransformJob(model=model, input=str(lines), output=str(tmp_path / "out2"),
                                        content_type="application/jsonlines", input_filter="$.features",
                                        join_source="Input", output_filter="$['id','SageMakerOutput']"))
    assert record["status"] == "Completed"
    got = [orjson.loads(ln) for ln in (tmp_path / "out2" / "rows.jsonl.out").read_bytes().splitlines()]
    assert [g["id"] for g in got] == list(range(500))
    assert [g["SageMakerOutput"]["label"] for g in got] == labels[:500].tolist()
    np.testing.assert_allclose([g["SageMakerOutput"]["probabilities"] for g in got], probs[:500], rtol=0, atol=ULPS)


def test_cli_transform_and_status(ray_serve, demo_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    ferry = [sys.executable, "-m", "ferry.cli"]
    missing = subprocess.run([*ferry, "transform", "--model", str(demo_dir / "model.onnx"), "--input",
                              str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "neither a file nor a folder" in missing.stderr
    run = subprocess.run([*ferry, "transform", "-f", str(demo_dir / "ferry.yaml"), "--model", "credit-gbm",
                          "--input", str(demo_dir / "test_features.csv"), "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Completed, 1000 rows done, 0 failed" in run.stderr
    status = subprocess.run([*ferry, "transform", "status", str(tmp_path / "o")], capture_output=True, text=True,
                            env=env, timeout=60)
    assert status.returncode == 0 and "Completed, 1000 rows done" in status.stderr
    assert len((tmp_path / "o" / "test_features.csv.out").read_text().splitlines()) == 1000


def test_the_docs_examples_run_on_the_demo(demo_dir, tmp_path):
    """docs/endpoints.md's runnable blocks, from a folder holding the quick start's ferry-demo."""
    from tests.integration.test_first_hour import ROOT, runnable_blocks

    blocks = [b for b in runnable_blocks(ROOT / "docs" / "endpoints.md") if "transform" in b.text]
    assert [b.lang for b in blocks] == ["bash", "python"]
    (tmp_path / "ferry-demo").symlink_to(demo_dir)
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    for b in blocks:
        cmd = ["bash", "-euo", "pipefail", "-c", b.text] if b.lang == "bash" else [sys.executable, "-c", b.text]
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, f"docs/endpoints.md:{b.line}: {run.stderr[-3000:]}"
        if b.lang == "bash":
            assert run.stdout.splitlines()[-3].startswith("applicant-1,0.")
        else:
            assert run.stdout.strip().endswith("Completed {'done': 1000, 'failed': 0}")
