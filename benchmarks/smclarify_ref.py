"""AWS's smclarify as a reference implementation, in its own virtual environment.

smclarify 0.5 breaks on pandas 3, so it lives in a venv of its own (pandas 2.x, numpy < 2.3) under
``~/.cache/ferry-smclarify-venv`` (or ``$FERRY_SMCLARIFY_VENV``), created on first use with
``python -m venv`` and pip. The comparison test and the benchmark run it through ``run_smclarify``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = ["smclarify==0.5", "pandas>=2.2,<3", "numpy>=1.26,<2.3", "pyarrow>=15", "scikit-learn"]
RUNNER = Path(__file__).with_name("smclarify_runner.py")


def venv_dir() -> Path:
    return Path(os.environ.get("FERRY_SMCLARIFY_VENV", "~/.cache/ferry-smclarify-venv")).expanduser()


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _works(py: Path) -> bool:
    if not py.exists():
        return False
    probe = "import smclarify.bias.report, pandas, pyarrow; assert int(pandas.__version__.split('.')[0]) < 3"
    return subprocess.run([str(py), "-c", probe], capture_output=True, timeout=300).returncode == 0


def ensure_venv() -> Path:
    """The smclarify venv's python, creating the venv when it is missing or broken.
    Raises RuntimeError with the failing command's output."""
    venv = venv_dir()
    py = _python(venv)
    if _works(py):
        return py
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"],
             [str(py), "-m", "pip", "install", "-q", *REQUIREMENTS]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"could not build the smclarify venv at {venv}: {' '.join(cmd)} exited "
                               f"{r.returncode}\n{(r.stdout + r.stderr)[-3000:]}")
    if not _works(py):
        raise RuntimeError(f"the smclarify venv at {venv} was built but cannot import smclarify")
    return py


def run_smclarify(data_path: str | Path | None, cases: list[dict], timeout: float = 3600) -> dict:
    """Run smclarify's bias_report on the cases (see smclarify_runner.py for their shape); a case's own
    "data" path overrides ``data_path``."""
    py = ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"data": str(data_path) if data_path else None, "cases": cases}))
        r = subprocess.run([str(py), "-P", str(RUNNER), str(spec), str(out)], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"smclarify runner failed ({r.returncode}):\n{r.stderr[-3000:]}")
        return json.loads(out.read_text())


def ferry_entries(df, case: dict) -> list[dict]:
    """Ferry's report entries for an smclarify runner case (same data, same semantics)."""
    import pandas as pd

    from clarify.bias.report import Facet, bias_report

    data = pd.read_parquet(case["data"]) if case.get("data") else df
    data = data.drop(columns=case.get("drop", []) + case.get("ferry_drop", []))
    facet = Facet(case["facet"], values=case.get("facet_values") if case["facet_mode"] == "values" else None,
                  threshold=case["facet_values"][0] if case["facet_mode"] == "threshold" else None)
    values = case["label_mode"] == "values"
    post = case["stage"] == "post_training"
    report = bias_report(
        data, case["label"], case["positive"] if values else None, [facet],
        label_threshold=None if values else case["positive"][0],
        predicted_label=case.get("predicted") if post and not case.get("probability") else None,
        probability=case.get("probability") if post else None,
        probability_threshold=case.get("probability_threshold", 0.5),
        group=case.get("group"), methods=case.get("methods", "all"), stage=case["stage"])
    section = "post_training_bias_metrics" if post else "pre_training_bias_metrics"
    return report[section]["facets"][case["facet"]]


def compare_entries(ferry: list[dict], smc: list[dict], tol: float = 1e-9) -> tuple[list[str], float]:
    """Differences between Ferry's and smclarify's entries for one facet (empty = same), and the largest
    absolute difference of finite values."""
    problems: list[str] = []
    worst = 0.0
    if [e["value_or_threshold"] for e in ferry] != [e["value_or_threshold"] for e in smc]:
        return [f"facet entries differ: {[e['value_or_threshold'] for e in ferry]} vs "
                f"{[e['value_or_threshold'] for e in smc]}"], worst
    for fe, se in zip(ferry, smc):
        where = fe["value_or_threshold"]
        if [m["name"] for m in fe["metrics"]] != [m["name"] for m in se["metrics"]]:
            problems.append(f"{where}: metric names differ")
            continue
        for fm, sm in zip(fe["metrics"], se["metrics"]):
            tag = f"{where}/{fm['name']}"
            if fm["description"] != sm["description"]:
                problems.append(f"{tag}: description {fm['description']!r} vs {sm['description']!r}")
            if "error" in sm or "error" in fm:
                if ("error" in sm) != ("error" in fm):
                    problems.append(f"{tag}: ferry {fm.get('error', fm['value'])!r} vs smclarify "
                                    f"{sm.get('error', sm['value'])!r}")
                elif not fm["error"].startswith(sm["error"]) and not sm["error"].startswith(fm["error"]):
                    problems.append(f"{tag}: error {fm['error']!r} vs {sm['error']!r}")
                continue
            fv, sv = fm["value"], sm["value"]
            if isinstance(fv, str) or isinstance(sv, str):
                if fv != sv:
                    problems.append(f"{tag}: {fv!r} vs {sv!r}")
                continue
            diff = abs(fv - sv)
            worst = max(worst, diff)
            if not diff <= tol:
                problems.append(f"{tag}: {fv!r} vs {sv!r} (diff {diff:.3g})")
    return problems, worst
