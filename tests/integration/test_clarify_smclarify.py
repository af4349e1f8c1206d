"""Ferry's bias metrics against AWS's smclarify itself, run in its own venv (pandas 2.x), on generated data:
every metric, every facet entry, values to 1e-9, infinities and errors alike.

The venv is created on first use (~/.cache/ferry-smclarify-venv, or $FERRY_SMCLARIFY_VENV); when it cannot
be made the test fails with the reason, it never skips.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.smclarify_ref import compare_entries, ensure_venv, ferry_entries, run_smclarify

STRING_COLS = ["sex", "y_str", "yhat_str"]


@pytest.fixture(scope="session")
def smclarify_python():
    try:
        return ensure_venv()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"the smclarify reference venv could not be made: {exc}")


def make_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M", "X"], n, p=[0.45, 0.45, 0.1])
    age = np.round(rng.uniform(18, 80, n), 1)  # continuous: smclarify would call a 62-value int column categorical
    income = np.round(rng.lognormal(10, 0.6, n), 2)
    score = rng.integers(0, 6, n)
    region = rng.integers(0, 4, n)
    logit = 0.5 * (sex == "M") + 0.02 * (age - 45) + 0.3 * (np.log(income) - 10) - 0.2 * score
    p_true = 1 / (1 + np.exp(-logit))
    y = (rng.uniform(size=n) < p_true).astype(int)
    prob = np.clip(p_true + rng.normal(0, 0.15, n), 0, 1).round(3)
    yhat = (rng.uniform(size=n) < prob).astype(int)
    y_str = np.where(y == 1, rng.choice(["yes", "maybe"], n), "no")
    yhat_str = np.where(yhat == 1, rng.choice(["yes", "maybe", "no"], n, p=[0.6, 0.3, 0.1]), "no")
    y_cont = np.round(p_true + rng.normal(0, 0.1, n), 4)
    yhat_cont = np.round(prob + rng.normal(0, 0.05, n), 4)
    return pd.DataFrame({
        "sex": sex, "age": age, "income": income, "score_int": score, "region": region,
        "y": y, "y_str": y_str, "y_cont": y_cont, "yhat": yhat, "yhat_str": yhat_str, "yhat_cont": yhat_cont,
        "prob": prob, "yhat_p": (prob > 0.5).astype(int),
    })


def _cases(prefix: str) -> list[dict]:
    """Facet kinds x label kinds x prediction kinds, both stages."""
    others = ["y", "y_str", "y_cont", "yhat", "yhat_str", "yhat_cont", "prob", "yhat_p"]

    def drop(*keep):
        return [c for c in others + ["sex"] if c not in keep]

    base = [
        dict(facet="sex", facet_mode="all", label="y", label_mode="values", positive=[1], predicted="yhat",
             group="region", drop=drop("sex", "y", "yhat")),
        dict(facet="sex", facet_mode="values", facet_values=["F"], label="y_str", label_mode="values",
             positive=["yes", "maybe"], predicted="yhat_str", group="region", drop=drop("sex", "y_str", "yhat_str")),
        dict(facet="age", facet_mode="threshold", facet_values=[40], label="y_cont", label_mode="threshold",
             positive=[0.3], predicted="yhat_cont", group="score_int", drop=drop("y_cont", "yhat_cont")),
        dict(facet="score_int", facet_mode="values", facet_values=[0, 1], label="y", label_mode="values",
             positive=[0], predicted="yhat", drop=drop("y", "yhat")),
        dict(facet="score_int", facet_mode="all", label="y", label_mode="values", positive=[1], predicted="yhat",
             group="sex", drop=drop("y", "yhat", "sex")),
        # probabilities: smclarify gets the thresholded column, Ferry the probability and its threshold
        dict(facet="sex", facet_mode="values", facet_values=["F", "X"], label="y", label_mode="values",
             positive=[1], predicted="yhat_p", probability="prob", probability_threshold=0.5, group="region",
             drop=drop("sex", "y", "yhat_p", "prob"), smc_drop=["prob"], ferry_drop=["yhat_p"]),
        # a string column left in the data: FT reports an error, every other metric is computed
        dict(facet="age", facet_mode="threshold", facet_values=[60], label="y", label_mode="values",
             positive=[1], predicted="yhat", drop=drop("y", "yhat", "sex")),
    ]
    out = []
    for i, c in enumerate(base):
        for stage in ("pre_training", "post_training"):
            case = dict(c, id=f"{prefix}-{i}-{stage}", stage=stage)
            if stage == "pre_training":
                case.pop("probability", None)
            out.append(case)
    return out


def _tiny_cases(tmp_path) -> list[dict]:
    """Small random tables where groups go empty, predictions are all positive, infinities appear."""
    cases = []
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        n = int(rng.integers(4, 14))
        df = pd.DataFrame({
            "x": rng.choice(["a", "b", "c"], n, p=[0.5, 0.35, 0.15]),
            "y": rng.integers(0, 2, n),
            "yhat": rng.choice([0, 1], n, p=[0.25, 0.75] if seed % 3 else [0.0, 1.0]),
            "z": rng.integers(0, 2, n),
            "f1": rng.integers(0, 4, n),
            "f2": rng.normal(size=n).round(2),
        })
        if df["yhat"].sum() == 0:
            df.loc[0, "yhat"] = 1
        path = tmp_path / f"tiny{seed}.parquet"
        df.to_parquet(path)
        for stage in ("pre_training", "post_training"):
            cases.append(dict(id=f"tiny{seed}-{stage}", data=str(path), facet="x", facet_mode="all", label="y",
                              label_mode="values", positive=[1], predicted="yhat",
                              group="z" if seed % 4 else None, stage=stage))
    return cases


def _check(df, cases, smc) -> list[str]:
    problems = []
    for case in cases:
        got = smc[case["id"]]
        assert "error" not in got, f"smclarify failed on {case['id']}: {got['error']}"
        mine = ferry_entries(df, case)
        diffs, _ = compare_entries(mine, got["report"])
        problems += [f"{case['id']}: {p}" for p in diffs]
    return problems


@pytest.mark.parametrize("n,seed", [(400, 1), (2000, 2)])
def test_every_metric_matches_smclarify(smclarify_python, tmp_path, n, seed):
    df = make_data(n, seed)
    path = tmp_path / "data.parquet"
    df.to_parquet(path)
    cases = _cases(f"n{n}")
    smc = run_smclarify(path, cases)
    problems = _check(df, cases, smc)
    assert not problems, "\n".join(problems[:40])
    # the comparison compared something: every metric appears, with values and with errors
    names = {m["name"] for c in cases for e in smc[c["id"]]["report"] for m in e["metrics"]}
    assert len(names) == 21


def test_small_tables_edge_cases_match_smclarify(smclarify_python, tmp_path):
    cases = _tiny_cases(tmp_path)
    smc = run_smclarify(None, cases)
    problems, compared, infinities, errors = [], 0, 0, 0
    for case in cases:
        got = smc[case["id"]]
        if "error" in got:
            # smclarify aborts a post-training report when nothing is predicted positive; Ferry computes it
            assert "No Label values are present in the predicted Label Column" in got["error"], got["error"]
            continue
        compared += 1
        diffs, _ = compare_entries(ferry_entries(None, case), got["report"])
        problems += [f"{case['id']}: {p}" for p in diffs]
        vals = [m for e in got["report"] for m in e["metrics"]]
        infinities += sum(isinstance(m["value"], str) for m in vals)
        errors += sum("error" in m for m in vals)
    assert not problems, "\n".join(problems[:40])
    assert compared >= 60 and infinities > 0 and errors > 0, (compared, infinities, errors)
