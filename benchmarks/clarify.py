"""Clarify benchmark: Ferry's bias metrics against AWS's smclarify (in its own venv, same data, same run),
and SHAP time per 100 explained rows on the demo model.

    python -m benchmarks.clarify [--sizes 10000,100000,1000000] [--skip-shap]

Bias: one categorical facet (3 values, one-vs-all), a 0/1 label, predicted labels, a group variable for
CDD, ten numeric feature columns for the Flip Test; pre- and post-training, all 21 metrics. The Flip Test's
k-NN dominates at scale in both implementations, so times are also given without it, and for the Flip Test
alone: each side's FT computation timed by itself (smclarify's ``FT`` metric function, once per facet value, in
its venv; Ferry's FT for the three values, the code its ``bias_report`` runs), on the same data, facet and
predictions, its values compared with smclarify's.

Every timing is REPEAT runs on each side, and the figures are each side's median (the typical run on this shared
machine; the best of the runs, less exposed to other work but luckier, is given too, and every run is kept).
Writes benchmarks/results/clarify.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clarify import bias_report, metric_names
from clarify.bias.report import Facet, _facet_split, _flip_factory
from benchmarks.smclarify_ref import compare_entries, ensure_venv, run_smclarify

RESULTS = Path(__file__).parent / "results" / "clarify.json"
NO_FT = [m for m in metric_names("post_training") if m != "FT"]
REPEAT = 3  # runs of every timing, on each side
STATISTIC = f"median of {REPEAT} runs on each side (best of {REPEAT} also given)"


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


def _runs(fn, repeat: int = REPEAT) -> tuple[list[float], object]:
    """Each run's seconds, and the last run's result."""
    seconds, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return seconds, out


def _figures(tag: str, ferry: list[float], smc: list[float]) -> dict:
    """Both sides' runs, medians and bests, and the ratio of each (keys ferry_s, speedup, ... with tag "";
    ferry_ft_s, speedup_ft, ... with tag "ft")."""
    pre, post = f"{tag}_" if tag else "", f"_{tag}" if tag else ""
    return {f"ferry_{pre}s": statistics.median(ferry), f"smclarify_{pre}s": statistics.median(smc),
            f"speedup{post}": statistics.median(smc) / statistics.median(ferry),
            f"ferry_{pre}best_s": min(ferry), f"smclarify_{pre}best_s": min(smc), f"speedup{post}_best": min(smc) / min(ferry),
            f"ferry_{pre}runs_s": ferry, f"smclarify_{pre}runs_s": smc}


def ferry_flip_test(df: pd.DataFrame, facet: str, label: str, predicted: str):
    """Ferry's Flip Test alone, as its bias_report computes it for a one-vs-all facet: the facet's split and the
    predictions are made here (smclarify's masks are made outside its timing too); the returned function computes
    FT for every facet value (features to an array, the k-NN votes of all values together, the scores) and is
    what is timed."""
    split = _facet_split(df, Facet(facet), 50)
    features = df.drop(columns=[facet, label, predicted])  # what bias_report gives FT: every other column
    pred = df[predicted].to_numpy() == 1

    def run() -> dict:
        flip = _flip_factory(features, pred, split)  # one per run: it computes all values' votes once, on first use
        return {value: flip(code)() for value, code in split.entries}

    return run


def bench_bias(n: int, tmp: Path) -> dict:
    df = make_data(n)
    path = tmp / f"bias_{n}.parquet"
    df.to_parquet(path)
    run = lambda methods: bias_report(df, "y", [1], ["sex"], predicted_label="yhat", group="region",  # noqa: E731
                                      stage="all", methods=methods)
    t_all, report = _runs(lambda: run("all"))
    t_noft, _ = _runs(lambda: run(metric_names("pre_training") + NO_FT))
    t_ft, ferry_ft = _runs(ferry_flip_test(df, "sex", "y", "yhat"))

    case = dict(facet="sex", facet_mode="all", label="y", label_mode="values", positive=[1], predicted="yhat",
                group="region", repeat=REPEAT)
    cases = [dict(case, id="pre", stage="pre_training"), dict(case, id="post", stage="post_training"),
             dict(case, id="post_noft", stage="post_training", methods=NO_FT),
             dict(case, id="ft", stage="post_training", kind="ft")]
    smc = run_smclarify(path, cases, timeout=7200)
    for c in cases:
        if "error" in smc[c["id"]]:
            raise RuntimeError(f"smclarify failed on {c['id']}: {smc[c['id']]['error']}")
    problems, worst = [], 0.0
    for key, section in (("pre", "pre_training_bias_metrics"), ("post", "post_training_bias_metrics")):
        p, w = compare_entries(report[section]["facets"]["sex"], smc[key]["report"])
        problems += p
        worst = max(worst, w)
    # the Flip Test timed alone: equal to smclarify's FT to 1e-9, and each side's equal to its own report's FT
    ft_worst = 0.0
    report_ft = {e["value_or_threshold"]: m["value"] for e in report["post_training_bias_metrics"]["facets"]["sex"]
                 for m in e["metrics"] if m["name"] == "FT"}
    smc_report_ft = {e["value_or_threshold"]: m["value"] for e in smc["post"]["report"] for m in e["metrics"]
                     if m["name"] == "FT"}
    if not (set(ferry_ft) == set(smc["ft"]["ft"]) == set(report_ft) == set(smc_report_ft)):
        problems.append(f"FT alone: facet values differ: {sorted(ferry_ft)} vs {sorted(smc['ft']['ft'])}")
    for value in sorted(set(ferry_ft) & set(smc["ft"]["ft"])):
        mine, theirs = ferry_ft[value], smc["ft"]["ft"][value]
        ft_worst = max(ft_worst, abs(mine - theirs))
        if not abs(mine - theirs) <= 1e-9:
            problems.append(f"{value}/FT alone: {mine!r} vs smclarify {theirs!r}")
        if report_ft.get(value) != mine or smc_report_ft.get(value) != theirs:
            problems.append(f"{value}/FT alone differs from its report's FT: ferry {mine!r} vs {report_ft.get(value)!r},"
                            f" smclarify {theirs!r} vs {smc_report_ft.get(value)!r}")
    s_all = [a + b for a, b in zip(smc["pre"]["seconds"], smc["post"]["seconds"])]
    s_noft = [a + b for a, b in zip(smc["pre"]["seconds"], smc["post_noft"]["seconds"])]
    n_metrics = sum(len(e["metrics"]) for sec in ("pre_training_bias_metrics", "post_training_bias_metrics")
                    for e in report[sec]["facets"]["sex"])
    return {"rows": n, "facet_values": 3, "metric_values": n_metrics, "statistic": STATISTIC,
            # the whole report: smclarify's pre- plus post-training bias_report calls against Ferry's one call
            **_figures("", t_all, s_all), **_figures("no_ft", t_noft, s_noft),
            # the Flip Test alone, each side's FT computation timed by itself
            **_figures("ft", t_ft, smc["ft"]["seconds"]),
            "ft_values": {v: {"ferry": ferry_ft[v], "smclarify": smc["ft"]["ft"].get(v)} for v in sorted(ferry_ft)},
            "ft_max_abs_diff": ft_worst, "max_abs_diff": max(worst, ft_worst), "mismatches": problems[:20]}


def bench_shap(rows: int = 100) -> list[dict]:
    from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix, train_model
    from clarify.explanations import explain

    df = make_credit_data(5000, 7)
    model = train_model(df.iloc[:4000])
    x = pd.DataFrame(model_matrix(df.iloc[4000:]), columns=MODEL_FEATURES)
    baseline = pd.DataFrame(model_matrix(df.iloc[:4000].sample(10, random_state=0)), columns=MODEL_FEATURES)
    out = []
    for method, num_samples in (("kernel", None), ("kernel", 100), ("exact", None)):
        seconds, result = _runs(lambda: explain(model, x.iloc[:rows], baseline, method=method,
                                                num_samples=num_samples, seed=0), 2)
        t = min(seconds)
        out.append({"method": method, "num_samples": num_samples or "auto", "features": len(MODEL_FEATURES),
                    "baseline_rows": len(baseline), "rows": rows, "seconds_per_100_rows": t * 100 / rows,
                    "top_feature": max(result["explanations"]["kernel_shap"]["label0"]["global_shap_values"].items(),
                                       key=lambda kv: kv[1])[0]})
    return out


def markdown(bias: list[dict], shap: list[dict]) -> str:
    lines = [f"Times: {STATISTIC}.", "",
             "| rows | Ferry (s) | smclarify (s) | speedup | Ferry w/o FT (s) | smclarify w/o FT (s) | speedup w/o FT "
             "| Ferry FT (s) | smclarify FT (s) | FT speedup | FT speedup, best of runs | max abs diff |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in bias:
        lines.append(f"| {r['rows']:,} | {r['ferry_s']:.3f} | {r['smclarify_s']:.2f} | {r['speedup']:.0f}x "
                     f"| {r['ferry_no_ft_s']:.4f} | {r['smclarify_no_ft_s']:.2f} | {r['speedup_no_ft']:.0f}x "
                     f"| {r['ferry_ft_s']:.3f} | {r['smclarify_ft_s']:.2f} | {r['speedup_ft']:.1f}x "
                     f"| {r['speedup_ft_best']:.1f}x | {r['max_abs_diff']:.2e} |")
    lines += ["", "Flip Test runs (s), in order: " + "; ".join(
        f"{r['rows']:,} rows: Ferry {' / '.join(f'{t:.3f}' for t in r['ferry_ft_runs_s'])}, smclarify "
        f"{' / '.join(f'{t:.2f}' for t in r['smclarify_ft_runs_s'])}" for r in bias)]
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
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    bias = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            bias.append(bench_bias(n, Path(tmp)))
            r = bias[-1]
            print(f"{n:>9,} rows: Ferry {r['ferry_s']:.3f}s, smclarify {r['smclarify_s']:.2f}s; FT alone "
                  f"{r['ferry_ft_s']:.3f}s vs {r['smclarify_ft_s']:.2f}s ({r['speedup_ft']:.1f}x; best of runs "
                  f"{r['speedup_ft_best']:.1f}x); mismatches: {len(r['mismatches'])}", flush=True)
    shap = [] if args.skip_shap else bench_shap()
    # the machine may be shared: the load average says how much the times can be trusted
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "load_avg_1m_before": round(load_before[0], 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    result = {"benchmark": "clarify", "run_utc": started, "machine": machine, "bias": bias, "shap": shap,
              "markdown": markdown(bias, shap)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(result["markdown"])
    return result


if __name__ == "__main__":
    main()
