"""Bias reports in Clarify's analysis.json shape, from a DataFrame.

``bias_report`` resolves the label, predicted label, group variable and facets into boolean/integer codes
once, counts every facet value in one vectorised pass per facet (see ``counts``), then runs the registered
metrics on those counts. A metric that cannot be computed gets an ``error`` entry; it never aborts the
report. Bad input (a missing column, a facet value that does not occur, a non-numeric column given a
threshold) raises ``ClarifyInputError`` naming the column.

Semantics follow smclarify with one deliberate difference: explicit positive label values and facet values
are always matched as values, and thresholds are asked for explicitly (``label_threshold``,
``Facet(threshold=...)``). smclarify instead guesses a column's type, and treats a small integer 0/1 label
given ``[1]`` as the threshold "> 1", which selects nothing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from clarify.bias import metrics as _metrics  # noqa: F401  (registers the metrics)
from clarify.bias import registry
from clarify.bias.counts import FacetCounts, combined_codes, joint_counts
from clarify.bias.flip import FlipVotes, feature_rows
from core.jsonio import json_value

log = logging.getLogger(__name__)

Column = Union[str, pd.Series, np.ndarray]


class ClarifyInputError(ValueError):
    """Input that no report can be made from; the message names the column."""


@dataclass
class Facet:
    """A facet column and how it selects d: ``values`` (d = rows with one of them), ``threshold`` (d = rows
    with value > threshold), or neither (one entry per distinct value, each against all the others)."""

    name: str
    values: Optional[list] = None
    threshold: Optional[float] = None

    def __post_init__(self):
        if self.values is not None and not isinstance(self.values, (list, tuple)):
            self.values = [self.values]
        if self.values is not None and self.threshold is not None:
            raise ClarifyInputError(f"facet {self.name!r}: give values or a threshold, not both")
        if self.values is not None and len(self.values) == 0:
            self.values = None


FacetLike = Union[str, Facet, dict]

STAGES = {"pre": registry.PRE_TRAINING, "pre_training": registry.PRE_TRAINING,
          "post": registry.POST_TRAINING, "post_training": registry.POST_TRAINING, "all": "all"}
SECTION = {registry.PRE_TRAINING: "pre_training_bias_metrics", registry.POST_TRAINING: "post_training_bias_metrics"}


# ---- column resolution -------------------------------------------------------------------------------

def _column(df: pd.DataFrame, col: Column, what: str) -> tuple[str, pd.Series]:
    if isinstance(col, str):
        if col not in df.columns:
            raise ClarifyInputError(f"{what} column {col!r} is not in the data (columns: {', '.join(map(str, df.columns))})")
        return col, df[col]
    s = pd.Series(np.asarray(col) if not isinstance(col, pd.Series) else col.to_numpy())
    if len(s) != len(df):
        raise ClarifyInputError(f"{what} has {len(s)} values but the data has {len(df)} rows")
    name = getattr(col, "name", None)
    return (str(name) if name is not None else what), s.set_axis(df.index)


def _numeric(s: pd.Series, name: str, what: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype(float)
    if pd.api.types.is_numeric_dtype(s):
        return s
    try:
        return pd.to_numeric(s)
    except (ValueError, TypeError) as exc:
        raise ClarifyInputError(f"{what} column {name!r} is not numeric, but a threshold needs numbers ({exc})") from None


def _convert_values(s: pd.Series, values: Sequence[Any]) -> list:
    """The values converted to the column's type ("1" -> 1 for numbers, "true" -> True for booleans)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = pd.Series(s.cat.categories)
    out = []
    for v in values:
        try:
            if pd.api.types.is_bool_dtype(s):
                out.append(str(v).strip().lower() in ("true", "1", "yes") if isinstance(v, str) else bool(v))
            elif pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s):
                f = float(v)
                out.append(int(f) if f.is_integer() and pd.api.types.is_integer_dtype(s) else f)
            else:
                out.append(v if isinstance(v, str) else str(v))
        except (TypeError, ValueError):
            out.append(v)
    return out


def match_values(s: pd.Series, values: Sequence[Any]) -> np.ndarray:
    """Rows whose value is one of ``values``; when none match as given, the values are converted to the
    column's type and matched again (as smclarify does, e.g. "1" on an integer column)."""
    mask = s.isin(list(values)).to_numpy(dtype=bool)
    if not mask.any():
        mask = s.isin(_convert_values(s, values)).to_numpy(dtype=bool)
    return mask


def threshold_split(x: pd.Series, threshold: Any, upper: Any = None) -> tuple[np.ndarray, str]:
    """d = rows in smclarify's interval (threshold, max], and the interval as smclarify writes it.

    The breaks are sorted([t, max]) (max left out when abs(max) equals t), so a threshold at or above the
    maximum selects nothing. ``upper`` overrides the maximum (predictions use max over labels and predictions).
    """
    max_value = x.max() if upper is None else upper
    if pd.isna(max_value):
        raise ClarifyInputError(f"column {x.name!r} has no numeric values")
    breaks = [threshold]
    if abs(max_value) not in breaks:
        breaks.append(max_value)
    breaks = sorted(breaks)
    text = ",".join(map(str, pd.IntervalIndex.from_breaks(breaks)))
    if len(breaks) < 2:
        return np.zeros(len(x), dtype=bool), text
    lo, hi = breaks
    return ((x > lo) & (x <= hi)).to_numpy(dtype=bool), text


@dataclass
class _Label:
    name: str
    positive: np.ndarray
    value_or_threshold: str
    series: pd.Series
    values: Optional[list] = None
    threshold: Optional[float] = None


def _resolve_label(df, label, positive_label_values, label_threshold) -> _Label:
    name, s = _column(df, label, "label")
    if label_threshold is not None and positive_label_values:
        raise ClarifyInputError(f"label {name!r}: give positive label values or a label threshold, not both")
    if label_threshold is not None:
        x = _numeric(s, name, "label")
        pos, text = threshold_split(x, label_threshold)
        return _Label(name, pos, text, x, threshold=label_threshold)
    if not positive_label_values:
        raise ClarifyInputError("Positive label values or thresholds are empty for Label column "
                                f"{name!r}: give positive_label_values or label_threshold")
    values = list(positive_label_values) if isinstance(positive_label_values, (list, tuple)) else [positive_label_values]
    pos = match_values(s, values)
    if not pos.any():
        log.warning("label column %r: no row has a positive value %s", name, values)
    return _Label(name, pos, ",".join(map(str, values)), s, values=values)


def _resolve_predicted(df, lab: _Label, predicted_label, probability, probability_threshold) -> tuple[Optional[str], Optional[np.ndarray]]:
    if predicted_label is not None and probability is not None:
        raise ClarifyInputError("give a predicted label column or a probability column, not both")
    if probability is not None:
        name, s = _column(df, probability, "probability")
        return name, (_numeric(s, name, "probability") > probability_threshold).to_numpy(dtype=bool)
    if predicted_label is None:
        return None, None
    name, s = _column(df, predicted_label, "predicted label")
    if lab.threshold is not None:
        p = _numeric(s, name, "predicted label")
        upper = max(lab.series.max(), p.max())  # smclarify: max over labels and predictions together
        return name, threshold_split(p, lab.threshold, upper)[0]
    pred = match_values(s, lab.values)
    if not pred.any():
        log.warning("predicted label column %r: no row is predicted positive (%s)", name, lab.values)
    return name, pred


def _resolve_group(df, group) -> tuple[Optional[str], Optional[np.ndarray], Optional[int]]:
    if group is None:
        return None, None, None
    name, s = _column(df, group, "group")
    codes, uniques = pd.factorize(s, sort=True)
    return name, codes, len(uniques)


def _as_facet(f: FacetLike) -> Facet:
    if isinstance(f, Facet):
        return f
    if isinstance(f, str):
        return Facet(f)
    if isinstance(f, dict):
        return Facet(**f)
    raise ClarifyInputError(f"a facet is a column name, a Facet or a dict, not {type(f).__name__}")


@dataclass
class _Split:
    """One facet column coded for counting: per-row codes, and the report entries as
    (value_or_threshold, the code of d's rows)."""

    codes: np.ndarray
    n_codes: int
    entries: list[tuple[str, int]]


def _facet_split(df: pd.DataFrame, facet: Facet, max_one_vs_all: int) -> _Split:
    name, s = _column(df, facet.name, "facet")
    if facet.threshold is not None:
        x = _numeric(s, name, "facet")
        d, text = threshold_split(x, facet.threshold)
        if not d.any():
            raise ClarifyInputError(f"facet column {name!r}: threshold {facet.threshold} selects no rows "
                                    f"(d = values in {text or '(empty interval)'}, max {x.max()})")
        return _Split(d.astype(np.int64), 2, [(text, 1)])
    if facet.values is not None:
        d = match_values(s, facet.values)
        if not d.any():
            present = ", ".join(map(str, pd.unique(s.dropna())[:10]))
            raise ClarifyInputError(f"facet column {name!r}: none of the values {list(facet.values)} occur in it "
                                    f"(values seen: {present})")
        return _Split(d.astype(np.int64), 2, [(",".join(map(str, facet.values)), 1)])
    codes, uniques = pd.factorize(s)
    if pd.api.types.is_float_dtype(s) and len(uniques) > max_one_vs_all:
        raise ClarifyInputError(f"facet column {name!r} looks continuous ({len(uniques)} distinct values): "
                                "give a facet threshold, or the facet values to compare")
    return _Split(codes, len(uniques), [(str(u), k) for k, u in enumerate(uniques)])


# ---- the report --------------------------------------------------------------------------------------

def resolve_methods(methods: Union[str, Iterable[str], None], stages: list[str]) -> dict[str, list[registry.Metric]]:
    """The metrics to run per stage: "all", or names (exact, as smclarify's) split by their stage."""
    if methods is None or methods == "all" or list(methods) == ["all"]:
        return {st: registry.metrics(st) for st in stages}
    names = [m.strip() for m in ([methods] if isinstance(methods, str) else methods) for m in m.split(",") if m.strip()]
    chosen = [registry.get(n) for n in names]
    out = {st: sorted({m.name: m for m in chosen if m.stage == st}.values(), key=lambda m: m.name) for st in stages}
    if not any(out.values()):
        raise ClarifyInputError(f"none of the methods {names} belongs to the stage(s) {stages}")
    return out


def _entry(value_or_threshold: str, metrics: list[registry.Metric], counts: FacetCounts) -> dict:
    rows = []
    for m in metrics:
        try:
            rows.append({"name": m.name, "description": m.description, "value": json_value(m(counts))})
        except Exception as exc:  # noqa: BLE001 - a metric's failure is reported, never raised
            log.debug("%s failed for %s: %s", m.name, value_or_threshold, exc)
            rows.append({"name": m.name, "description": m.description, "value": None, "error": str(exc)})
    return {"value_or_threshold": value_or_threshold, "metrics": rows}


def _flip_factory(features: pd.DataFrame, predicted: np.ndarray, split: "_Split") -> Callable[[int], Callable[[], float]]:
    """FT needs the rows: numeric feature columns (all that remain, as smclarify); the k-NN votes of every facet
    value of the split are computed together, once."""
    @functools.cache
    def votes() -> FlipVotes:
        numeric = features.select_dtypes([np.number, bool]).columns
        if len(features.columns) != len(numeric):
            bad = [c for c in features.columns if c not in set(numeric)]
            raise ValueError(f"FlipTest does not support non-numeric columns: {', '.join(map(str, bad))} (pass "
                             "numeric feature columns as features=[...], --features on the CLI)")
        x, finite = feature_rows(features)
        return FlipVotes(x, predicted, split.codes, [code for _, code in split.entries], finite)

    def for_code(code: int) -> Callable[[], float]:
        return lambda: _metrics.divide(*votes().flips(code))  # (F+ - F-) / n_d, counted beside the queries

    return for_code


def bias_report(
    df: pd.DataFrame,
    label: Column,
    positive_label_values: Optional[Sequence[Any]] = None,
    facets: Union[FacetLike, Sequence[FacetLike]] = (),
    *,
    label_threshold: Optional[float] = None,
    predicted_label: Optional[Column] = None,
    probability: Optional[Column] = None,
    probability_threshold: float = 0.5,
    group: Optional[Column] = None,
    methods: Union[str, Iterable[str], None] = "all",
    stage: Optional[str] = None,
    features: Optional[Sequence[str]] = None,
    max_one_vs_all: int = 50,
) -> dict:
    """Pre- and/or post-training bias metrics for each facet, in Clarify's analysis.json shape.

    :param df: the data, one row per example
    :param label: label column name (or a Series aligned with df)
    :param positive_label_values: label values that count as positive (matched as values)
    :param facets: facet column names, ``Facet`` objects or dicts ``{"name", "values" | "threshold"}``
    :param label_threshold: instead of values, positive = label > threshold
    :param predicted_label: predicted label column, matched like the label (values or threshold)
    :param probability: or a probability column: predicted positive = probability > probability_threshold
    :param group: group variable for CDDL/CDDPL
    :param methods: "all" or metric names (e.g. ["CI", "DPL", "DI"] or "CI,DPL")
    :param stage: "pre", "post" or "all"; default "all" with predictions, else "pre"
    :param features: feature columns for the Flip Test (default: every column but the facet, label and
        prediction columns, as smclarify)
    :return: ``{"version": "1.0", "pre_training_bias_metrics": {"label", "label_value_or_threshold",
        "facets": {name: [{"value_or_threshold", "metrics": [{"name", "description", "value"[, "error"]}]}]}},
        "post_training_bias_metrics": {...}}`` with +-inf as "Infinity"/"-Infinity"
    """
    if not isinstance(df, pd.DataFrame):
        raise ClarifyInputError(f"data must be a pandas DataFrame, not {type(df).__name__}")
    facet_list = [_as_facet(f) for f in ([facets] if isinstance(facets, (str, Facet, dict)) else list(facets))]
    if not facet_list:
        raise ClarifyInputError("give at least one facet column")
    has_pred = predicted_label is not None or probability is not None
    stage_key = STAGES.get(stage or ("all" if has_pred else "pre"))
    if stage_key is None:
        raise ClarifyInputError(f"stage must be one of pre, post, all; not {stage!r}")
    stages = [registry.PRE_TRAINING, registry.POST_TRAINING] if stage_key == "all" else [stage_key]
    if registry.POST_TRAINING in stages and not has_pred:
        raise ClarifyInputError("post-training metrics need a predicted label column or a probability column")
    to_run = resolve_methods(methods, stages)
    missing = [c for c in features or [] if c not in df.columns]
    if missing:
        raise ClarifyInputError(f"feature column(s) {', '.join(map(repr, missing))} are not in the data")

    lab = _resolve_label(df, label, positive_label_values, label_threshold)
    pred_name, pred = _resolve_predicted(df, lab, predicted_label, probability, probability_threshold)
    _, group_codes, n_groups = _resolve_group(df, group)
    row_codes, shape = combined_codes(lab.positive, 2, pred, group_codes, n_groups or 0)

    dropped = {c for c in (lab.name, pred_name) if isinstance(c, str)}
    sections = {st: {"label": lab.name, "label_value_or_threshold": lab.value_or_threshold, "facets": {}}
                for st in stages if to_run[st]}
    for facet in facet_list:
        split = _facet_split(df, facet, max_one_vs_all)
        joint = joint_counts(split.codes, split.n_codes, row_codes, shape)
        total = joint.sum(axis=0)
        flip = None
        if pred is not None and any(m.name == "FT" for m in to_run.get(registry.POST_TRAINING, [])):
            feats = df[list(features)] if features is not None else df.drop(
                columns=[c for c in df.columns if c in dropped | {facet.name}])
            flip = _flip_factory(feats, pred, split)
        for st in sections:
            sections[st]["facets"][facet.name] = []
        for value_or_threshold, code in split.entries:
            counts = FacetCounts.from_split(joint[code], total, has_predicted=pred is not None, n_groups=n_groups,
                                            flip=flip(code) if flip else None)
            for st, sec in sections.items():
                sec["facets"][facet.name].append(_entry(value_or_threshold, to_run[st], counts))
    return {"version": "1.0", **{SECTION[st]: sec for st, sec in sections.items()}}


def compute_metric(
    name: str,
    facet: Any,
    label: Any = None,
    predicted: Any = None,
    group: Any = None,
    features: Any = None,
) -> float:
    """One metric on explicit row masks, like calling an smclarify metric function.

    :param facet: boolean d mask (sensitive facet index)
    :param label: boolean positive-label index; for KL/JS/LP/TVD/KS any label values
    :param predicted: boolean positive-predicted-label index
    :param group: group variable values (CDDL, CDDPL)
    :param features: 2-D numeric rows (FT)
    Raises ``ValueError`` as the metric would in a report.
    """
    m = registry.get(name)
    d = np.asarray(facet)
    if d.dtype != bool:
        raise ValueError("sensitive_facet_index must be of type bool")
    n = len(d)
    label_is_bool = True
    if label is None:
        if name not in ("CI", "DPPL", "DI", "FT"):
            raise ValueError(f"{name} needs the label")
        l_codes, n_label = np.zeros(n, dtype=np.int64), 2
    else:
        lv = np.asarray(label)
        if lv.dtype == bool:
            l_codes, n_label = lv.astype(np.int64), 2
        else:
            label_is_bool = False
            l_codes, uniq = pd.factorize(pd.Series(lv), sort=True)
            n_label = len(uniq)
    p = None if predicted is None else np.asarray(predicted)
    if p is not None and p.dtype != bool:
        raise ValueError("positive_predicted_label_index must be of type bool")
    g_codes, n_groups = None, None
    if group is not None:
        g_codes, g_uniques = pd.factorize(pd.Series(np.asarray(group)), sort=True)
        n_groups = len(g_uniques)
    row_codes, shape = combined_codes(l_codes, n_label, p, g_codes, n_groups or 0)
    joint = joint_counts(d.astype(np.int64), 2, row_codes, shape)
    flip = None
    if features is not None and p is not None:
        x = np.asarray(features)
        flip = lambda: _metrics.flip_test(x, d, p)  # noqa: E731
    counts = FacetCounts.from_split(joint[1], joint.sum(axis=0), label_is_bool=label_is_bool,
                                    has_predicted=p is not None, n_groups=n_groups, flip=flip)
    return m(counts)
