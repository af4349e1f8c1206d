"""Clarify benchmark: Ferry's bias metrics against AWS's smclarify (in its own venv, same data, same run),
and SHAP time per 100 explained rows on the demo model.

    python -m benchmarks.clarify [--sizes 10000,100000,1000000] [--skip-shap]

Bias: one categorical facet (3 values, one-vs-all), a 0/1 label, predicted labels, a group variable for
CDD, ten numeric feature columns for the Flip Test; pre- and post-training, all 21 metrics. The Flip Test's
k-NN dominates at scale in both implementations, so times are also given without it.
Writes benchmarks/results/clarify.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clarify import bias_report, metric_names
from benchmarks.smclarify_ref import compare_entries, ensure_venv, run_smclarify

RESULTS = Path(__file__).parent / "results" / "clarify.json"
NO_FT = [m for m in metric_names("post_training") if m != "FT"]


def make_data(n: int, seed: int = 0) -> pd.DataFrame:
    """A credit table: a 3-value facet, a 0/1 label and prediction, and 10 numeric features at their raw scales
    (the Flip Test's k-NN runs on all of them, as smclarify's does)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M", "X"], n, p=[0.45, 0.45, 0.1])
    age = np.round(rng.uniform(18, 80, n), 1)
    income = np.round(rng.lognormal(10, 0.6, n), 2)
    score = rng.integers(0, 6, n)
    region = rng.integers(0, 4, n)
    debt_ratio = np.round(rng.beta(2, 5, n), 3)
    years_employed = np.minimum(rng.poisson(8, n), 45)
    accounts = rng.integers(0, 21, n)
    credit_score = np.clip(np.round(rng.normal(680, 60, n)), 300, 850).astype(int)
    savings = np.round(rng.lognormal(8, 1.2, n), 2)
    mortgage = rng.integers(0, 2, n)
    logit = (0.5 * (sex == "M") + 0.02 * (age - 45) + 0.3 * (np.log(income) - 10) - 0.2 * score
             - 2 * (debt_ratio - 0.3) + 0.01 * (credit_score - 680))
    p = 1 / (1 + np.exp(-logit))
    y = (rng.uniform(size=n) < p).astype(int)
    yhat = (rng.uniform(size=n) < np.clip(p + rng.normal(0, 0.15, n), 0, 1)).astype(int)
    return pd.DataFrame({"sex": sex, "age": age, "income": income, "score": score, "region": region,
                         "debt_ratio": debt_ratio, "years_employed": years_employed, "accounts": accounts,
                         "credit_score": credit_score, "savings": savings, "mortgage": mortgage,
                         "y": y, "yhat": yhat})


def _timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_bias(n: int, tmp: Path) -> dict:
    df = make_data(n)
    path = tmp / f"bias_{n}.parquet"
    df.to_parquet(path)
    repeat = 3
    run = lambda methods: bias_report(df, "y", [1], ["sex"], predicted_label="yhat", group="region",  # noqa: E731
                                      stage="all", methods=methods)
    t_all, report = _timed(lambda: run("all"), repeat)
    t_noft, _ = _timed(lambda: run(metric_names("pre_training") + NO_FT), repeat)

    case = dict(facet="sex", facet_mode="all", label="y", label_mode="values", positive=[1], predicted="yhat",
                group="region")
    cases = [dict(case, id="pre", stage="pre_training"), dict(case, id="post", stage="post_training"),
             dict(case, id="post_noft", stage="post_training", methods=NO_FT)]
    smc = run_smclarify(path, cases, timeout=7200)
    for c in cases:
        if "error" in smc[c["id"]]:
            raise RuntimeError(f"smclarify failed on {c['id']}: {smc[c['id']]['error']}")
    problems, worst = [], 0.0
    for key, section in (("pre", "pre_training_bias_metrics"), ("post", "post_training_bias_metrics")):
        p, w = compare_entries(report[section]["facets"]["sex"], smc[key]["report"])
        problems += p
        worst = max(worst, w)
    s_all = smc["pre"]["seconds"] + smc["post"]["seconds"]
    s_noft = smc["pre"]["seconds"] + smc["post_noft"]["seconds"]
    n_metrics = sum(len(e["metrics"]) for sec in ("pre_training_bias_metrics", "post_training_bias_metrics")
                    for e in report[sec]["facets"]["sex"])
    return {"rows": n, "facet_values": 3, "metric_values": n_metrics,
            "ferry_s": t_all, "smclarify_s": s_all, "speedup": s_all / t_all,
            "ferry_no_ft_s": t_noft, "smclarify_no_ft_s": s_noft, "speedup_no_ft": s_noft / t_noft,
            # the Flip Test alone: each side's time with FT minus its time without (same run, same data)
            "ferry_ft_s": t_all - t_noft, "smclarify_ft_s": s_all - s_noft, "speedup_ft": (s_all - s_noft) / (t_all - t_noft),
            "max_abs_diff": worst, "mismatches": problems[:20]}


def bench_shap(rows: int = 100) -> list[dict]:
    from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix, train_model
    from clarify.explanations import explain

    df = make_credit_data(5000, 7)
    model = train_model(df.iloc[:4000])
    x = pd.DataFrame(model_matrix(df.iloc[4000:]), columns=MODEL_FEATURES)
    baseline = pd.DataFrame(model_matrix(df.iloc[:4000].sample(10, random_state=0)), columns=MODEL_FEATURES)
    out = []
    for method, num_samples in (("kernel", None), ("kernel", 100), ("exact", None)):
        t, result = _timed(lambda: explain(model, x.iloc[:rows], baseline, method=method, num_samples=num_samples,
                                           seed=0), 2)
        out.append({"method": method, "num_samples": num_samples or "auto", "features": len(MODEL_FEATURES),
                    "baseline_rows": len(baseline), "rows": rows, "seconds_per_100_rows": t * 100 / rows,
                    "top_feature": max(result["explanations"]["kernel_shap"]["label0"]["global_shap_values"].items(),
                                       key=lambda kv: kv[1])[0]})
    return out


def markdown(bias: list[dict], shap: list[dict]) -> str:
    lines = ["| rows | Ferry (s) | smclarify (s) | speedup | Ferry w/o FT (s) | smclarify w/o FT (s) | speedup w/o FT "
             "| Ferry FT (s) | smclarify FT (s) | FT speedup | max abs diff |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in bias:
        lines.append(f"| {r['rows']:,} | {r['ferry_s']:.3f} | {r['smclarify_s']:.2f} | {r['speedup']:.0f}x "
                     f"| {r['ferry_no_ft_s']:.4f} | {r['smclarify_no_ft_s']:.2f} | {r['speedup_no_ft']:.0f}x "
                     f"| {r['ferry_ft_s']:.3f} | {r['smclarify_ft_s']:.2f} | {r['speedup_ft']:.0f}x "
                     f"| {r['max_abs_diff']:.2e} |")
    if shap:
        lines += ["", "| SHAP method | num_samples | features | baseline rows | s per 100 rows |", "|---|---:|---:|---:|---:|"]
        for r in shap:
            lines.append(f"| {r['method']} | {r['num_samples']} | {r['features']} | {r['baseline_rows']} "
                         f"| {r['seconds_per_100_rows']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--skip-shap", action="store_true")
    args = ap.parse_args(argv)
    ensure_venv()
    load_before = os.getloadavg()
    bias = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            bias.append(bench_bias(n, Path(tmp)))
            print(f"{n:>9,} rows: Ferry {bias[-1]['ferry_s']:.3f}s, smclarify {bias[-1]['smclarify_s']:.2f}s; "
                  f"FT alone {bias[-1]['ferry_ft_s']:.3f}s vs {bias[-1]['smclarify_ft_s']:.2f}s "
                  f"({bias[-1]['speedup_ft']:.0f}x)", flush=True)
    shap = [] if args.skip_shap else bench_shap()
    # the machine may be shared: the load average says how much the times can be trusted
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "load_avg_1m_before": round(load_before[0], 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    result = {"benchmark": "clarify", "machine": machine, "bias": bias, "shap": shap,
              "markdown": markdown(bias, shap)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(result["markdown"])
    return result


if __name__ == "__main__":
    main()
