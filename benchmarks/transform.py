"""Batch transform of CSV rows on the demo model: Ferry's `run_transform` against a plain single-process
onnxruntime loop and a hand-written Ray Data job, same files, same run.

    python -m benchmarks.transform [--rows 1000000 4000000] [--out DIR] [--settle 5]

Each size is one CSV file of the demo's model rows (8 features, no header; the demo's test rows repeated).
- plain: pandas reads 100k-row chunks, one onnxruntime session (default threads) runs each, pandas writes
  label and probabilities as CSV (`%.9g`);
- Ferry, whole command: `run_transform` with no Ray running - it starts a local Ray, runs the job and stops
  Ray, as `ferry transform` does by default (Ray's start and stop are counted);
- Ferry, first job on a fresh Ray: a Ray is started (not counted) and left to settle (`--settle` seconds,
  its processes finish starting), then the job runs on worker processes that have not run one (each imports
  and loads the session: counted); then the next job of this driver (workers warm). For each `compute`:
  core (Ray tasks, the default), tasks (Ray Data tasks), actors (a Ray Data actor pool, first job only);
- Ray Data by hand: `read_csv` -> `map_batches` over an actor pool of onnxruntime sessions (one per CPU,
  one thread each) -> `write_csv`, on the last fresh Ray.
Ferry runs MultiRecord, 6 MB requests, through the data plane, one session per core. The plain loop runs
first and again last: the two show the noise. Writes benchmarks/results/transform.json and transform.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from ferry.demo import write_demo
from serving.spec import ModelSpec
from serving.transform import TransformJob, run_transform

ROOT = Path(__file__).resolve().parent
RESULT = ROOT / "results" / "transform.json"


def make_input(demo: Path, rows: int, path: Path) -> None:
    block = (demo / "test_features.csv").read_bytes()
    n = block.count(b"\n")
    with open(path, "wb") as f:
        for _ in range(rows // n):
            f.write(block)
        f.write(b"".join(block.splitlines(keepends=True)[: rows % n]))


def plain(model: str, src: Path, dst: Path) -> int:
    sess = ort.InferenceSession(model)
    done = 0
    with open(dst, "w") as out:
        for chunk in pd.read_csv(src, header=None, chunksize=100_000):
            labels, probs = sess.run(None, {"input": chunk.to_numpy(np.float32)})
            pd.DataFrame({"label": labels, "p0": probs[:, 0], "p1": probs[:, 1]}).to_csv(
                out, header=False, index=False, float_format="%.9g")
            done += len(chunk)
    return done


class _Session:
    def __init__(self, model: str):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model, opts)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.column_stack([batch[k] for k in sorted(batch, key=lambda k: int(k[1:]))]).astype(np.float32)
        labels, probs = self.sess.run(None, {"input": x})
        return {"label": labels, "p0": probs[:, 0], "p1": probs[:, 1]}


def ray_data(model: str, src: Path, dst: Path, cpus: int) -> int:
    import ray
    from pyarrow import csv as pacsv

    ds = ray.data.read_csv(str(src), read_options=pacsv.ReadOptions(column_names=[f"f{i}" for i in range(8)]))
    ds = ds.map_batches(_Session, fn_constructor_args=(model,), batch_format="numpy", batch_size=100_000,
                        compute=ray.data.ActorPoolStrategy(size=cpus), num_cpus=1)
    ds.write_csv(str(dst))
    return sum(sum(1 for _ in open(p)) - 1 for p in dst.glob("*.csv"))  # each part has a header line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds a fresh Ray is left to finish starting")
    args = ap.parse_args()
    import ray
    from ray.data import DataContext

    work = args.out or Path(tempfile.mkdtemp(prefix="ferry-transform-bench-"))
    demo = work / "demo"
    write_demo(demo)
    model = str(demo / "model.onnx")
    cpus = os.cpu_count() or 1
    results = []

    def ferry(rows: int, src: Path, compute: str, label: str, runs: dict) -> None:
        out = work / f"ferry-{rows}-{compute}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        record = run_transform(TransformJob(model=ModelSpec(name="credit-gbm", path=model), input=str(src),
                                            output=str(out), max_concurrent_transforms=cpus, compute=compute))
        runs[label] = (record["rows"]["done"], time.perf_counter() - t)

    def fresh_ray(num_cpus: int) -> None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        DataContext.get_current().enable_progress_bars = False
        time.sleep(args.settle)

    try:
        for rows in args.rows:
            src = work / f"rows-{rows}.csv"
            make_input(demo, rows, src)
            runs = {}
            t = time.perf_counter()
            runs["plain onnxruntime loop"] = (plain(model, src, work / f"plain-{rows}.csv"), time.perf_counter() - t)
            ferry(rows, src, "core", "Ferry, whole command: Ray start + job + Ray stop (core)", runs)
            for compute, name in (("core", "core: Ray tasks, the default"), ("tasks", "tasks: Ray Data tasks"),
                                  ("actors", "actors: Ray Data actor pool")):
                # a fresh Ray each; one logical CPU more than the cores: the hand-written job's read and write
                # tasks run beside its actors
                fresh_ray(cpus + 1)
                ferry(rows, src, compute, f"Ferry {name}, first job on a fresh Ray", runs)
                if compute != "actors":  # an actor pool is made per job: its next job is a first job again
                    ferry(rows, src, compute, f"Ferry {name}, next job (warm workers)", runs)
                if compute == "actors":
                    dst = work / f"raydata-{rows}"
                    shutil.rmtree(dst, ignore_errors=True)
                    t = time.perf_counter()
                    runs["Ray Data by hand"] = (ray_data(model, src, dst, cpus), time.perf_counter() - t)
                ray.shutdown()
            t = time.perf_counter()
            runs["plain onnxruntime loop, again"] = (plain(model, src, work / f"plain-{rows}.csv"),
                                                     time.perf_counter() - t)
            base = runs["plain onnxruntime loop"][1]
            for name, (done, seconds) in runs.items():
                assert done == rows, f"{name} answered {done} of {rows} rows"
                results.append({"rows": rows, "engine": name, "seconds": round(seconds, 2),
                                "rows_per_s": round(rows / seconds), "vs_plain": round(base / seconds, 2)})
                print(results[-1], flush=True)
            src.unlink()
    finally:
        ray.shutdown()
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    table = ["| rows | engine | seconds | rows/s | x plain loop |", "|---|---|---|---|---|"]
    table += [f"| {r['rows']:,} | {r['engine']} | {r['seconds']} | {r['rows_per_s']:,} | {r['vs_plain']} |"
              for r in results]
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps({"cpus": cpus, "settle_s": args.settle, "results": results}, indent=2))
    (ROOT / "results" / "transform.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
