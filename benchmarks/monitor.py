"""Data-quality drift on 1M rows x 50 features: Ferry's monitor vs Evidently's data-drift report, same data, same run.

    python -m benchmarks.monitor [--rows 1000000] [--evidently-python /path/to/venv/bin/python]

Reference and current tables (40 numerical, 10 categorical features; some shifted, scaled or re-weighted)
are written to Parquet; Ferry builds its baseline from the reference and checks the current table;
Evidently (run in its own venv, default ~/.cache/ferry-bench/evidently, created on first use, with
pandas<3 which evidently 0.7 needs) runs
DataDriftPreset on the same two files. Reported: wall time of each, which features each flags, and
agreement. Where the tests coincide (Evidently's defaults above 1000 reference rows are the std-normed
Wasserstein distance for numerical and Jensen-Shannon for categorical features, threshold 0.1), Ferry's
own values of those measures are compared with Evidently's, value by value and decision by decision.
Writes benchmarks/results/monitor.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from monitor import data_quality
from monitor.baseline import suggest_baseline

ROOT = Path(__file__).resolve().parent
RESULT = ROOT / "results" / "monitor.json"
EVIDENTLY_VERSION = "0.7.23"
N_NUM, N_CAT = 40, 10

EVIDENTLY_SCRIPT = r'''
import json, sys, time
import pandas as pd
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2]); cats = sys.argv[3].split(",")
nums = [c for c in ref.columns if c not in cats]
t = time.perf_counter()
dd = DataDefinition(numerical_columns=nums, categorical_columns=cats)
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd),
                                       Dataset.from_pandas(ref, data_definition=dd))
d = snap.dict()
elapsed = time.perf_counter() - t
out = {}
for m in d["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        out[cfg["column"]] = {"score": float(m["value"]), "method": cfg.get("method"),
                              "threshold": cfg.get("threshold")}
json.dump({"seconds": elapsed, "columns": out}, sys.stdout)
'''


def make_data(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Reference and current tables, and what was done to each drifted feature."""
    rng = np.random.default_rng(seed)
    ref, cur, truth = {}, {}, {}
    for i in range(N_NUM):
        name = f"num_{i:02d}"
        loc, scale = rng.uniform(-5, 5), rng.uniform(0.5, 3)
        ref[name] = rng.normal(loc, scale, rows)
        kind = ["none", "none", "shift", "none", "scale", "none", "small_shift", "none"][i % 8]
        c_loc, c_scale = loc, scale
        if kind == "shift":
            c_loc = loc + 0.5 * scale
        elif kind == "scale":
            c_scale = scale * 1.5
        elif kind == "small_shift":
            c_loc = loc + 0.03 * scale
        cur[name] = rng.normal(c_loc, c_scale, rows)
        truth[name] = kind
    for j in range(N_CAT):
        name = f"cat_{j}"
        k = 4 + j % 5
        cats = np.array([f"v{x}" for x in range(k)])
        p = rng.dirichlet(np.full(k, 3.0))
        ref[name] = cats[rng.choice(k, rows, p=p)]
        kind = ["none", "reweight", "none", "new_value", "none"][j % 5]
        q = p.copy()
        if kind == "reweight":
            q = np.roll(p, 1)
        cur_vals = cats[rng.choice(k, rows, p=q)]
        if kind == "new_value":
            cur_vals[rng.random(rows) < 0.2] = "unseen"
        cur[name] = cur_vals
        truth[name] = kind
    return pd.DataFrame(ref), pd.DataFrame(cur), truth


def evidently_python(path: str | None) -> str:
    if path:
        return path
    venv = Path.home() / ".cache" / "ferry-bench" / "evidently"
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"evidently=={EVIDENTLY_VERSION}", "pandas<3", "pyarrow"], check=True)
    return str(py)


def run_ferry(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    t0 = time.perf_counter()
    stats, cons = suggest_baseline(ref)
    t1 = time.perf_counter()
    result = data_quality.check(cur, stats, cons)
    t2 = time.perf_counter()
    flagged = sorted({v["feature_name"] for v in result.violations if v["constraint_check_type"] == "baseline_drift_check"})
    return {"baseline_seconds": t1 - t0, "check_seconds": t2 - t1, "flagged": flagged, "drift": result.drift,
            "categorical_values_flagged": sorted({v["feature_name"] for v in result.violations
                                                  if v["constraint_check_type"] == "categorical_values_check"})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--evidently-python", default=None)
    args = ap.parse_args()
    ref, cur, truth = make_data(args.rows)
    cats = [c for c in ref.columns if c.startswith("cat_")]
    with tempfile.TemporaryDirectory() as tmp:
        rp, cp = Path(tmp) / "ref.parquet", Path(tmp) / "cur.parquet"
        ref.to_parquet(rp)
        cur.to_parquet(cp)
        ferry = run_ferry(ref, cur)
        py = evidently_python(args.evidently_python)
        t = time.perf_counter()
        proc = subprocess.run([py, "-c", EVIDENTLY_SCRIPT, str(rp), str(cp), ",".join(cats)],
                              capture_output=True, text=True)
        ev_wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"evidently failed:\n{proc.stderr[-3000:]}")
    ev = json.loads(proc.stdout)
    ev_flag = sorted(c for c, m in ev["columns"].items() if m["score"] >= (m["threshold"] or 0.1))

    rows, same_test_agree, max_gap = [], 0, 0.0
    for name in ref.columns:
        d = ferry["drift"][name]
        e = ev["columns"].get(name, {})
        mine = d["wasserstein_normed"] if name.startswith("num_") else d["jensen_shannon"]
        gap = abs(mine - e.get("score", float("nan")))
        max_gap = max(max_gap, gap)
        same_test_agree += (mine >= 0.1) == (name in ev_flag)
        rows.append({"feature": name, "injected": truth[name], "ferry_linf": d["distance"],
                     "ferry_flag": name in ferry["flagged"], "ferry_same_test": mine,
                     "evidently_method": e.get("method"), "evidently_score": e.get("score"),
                     "evidently_flag": name in ev_flag})
    ferry_total = ferry["baseline_seconds"] + ferry["check_seconds"]
    out = {
        "rows": args.rows, "features": len(ref.columns), "evidently_version": EVIDENTLY_VERSION,
        "ferry": {"baseline_seconds": ferry["baseline_seconds"], "check_seconds": ferry["check_seconds"],
                  "total_seconds": ferry_total, "flagged": ferry["flagged"],
                  "categorical_values_flagged": ferry["categorical_values_flagged"]},
        "evidently": {"report_seconds": ev["seconds"], "wall_seconds_with_load": ev_wall, "flagged": ev_flag},
        "speedup_total": ev["seconds"] / ferry_total,
        "speedup_check_only": ev["seconds"] / ferry["check_seconds"],
        "decision_agreement_linf_vs_evidently": sum(r["ferry_flag"] == r["evidently_flag"] for r in rows) / len(rows),
        "decision_agreement_same_test": same_test_agree / len(rows),
        "max_abs_gap_same_test_value": max_gap,
        "per_feature": rows,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=2))
    print(f"## Data-quality drift, {args.rows:,} rows x {len(ref.columns)} features (2 shared cores)\n")
    print("| | Ferry baseline | Ferry check | Ferry total | Evidently DataDriftPreset |")
    print("|---|---|---|---|---|")
    print(f"| seconds | {ferry['baseline_seconds']:.2f} | {ferry['check_seconds']:.2f} | {ferry_total:.2f} | {ev['seconds']:.2f} |")
    print(f"\nSpeed-up: {out['speedup_total']:.1f}x (baseline + check), {out['speedup_check_only']:.1f}x (check only, "
          "the per-window cost)\n")
    print(f"Features flagged: Ferry (L-inf Robust > 0.1) {len(ferry['flagged'])}, Evidently {len(ev_flag)}; "
          f"decisions agree on {out['decision_agreement_linf_vs_evidently']:.0%}.")
    print(f"Same test (Wasserstein/std, JS; threshold 0.1): decisions agree on {out['decision_agreement_same_test']:.0%}, "
          f"max value gap {max_gap:.4f}.\n")
    print("| feature | injected | Ferry L-inf | Ferry flag | Ferry same-test value | Evidently method | Evidently score | Evidently flag |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["injected"] != "none" or r["ferry_flag"] != r["evidently_flag"]:
            print(f"| {r['feature']} | {r['injected']} | {r['ferry_linf']:.4f} | {r['ferry_flag']} | "
                  f"{r['ferry_same_test']:.4f} | {r['evidently_method']} | {r['evidently_score']:.4f} | {r['evidently_flag']} |")
    print("\n(features with nothing injected and the same decision on both sides are left out of the table)")


if __name__ == "__main__":
    main()
