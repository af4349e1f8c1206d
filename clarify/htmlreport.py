"""A self-contained HTML page for a bias report and/or an explanation: a table per facet value with each
metric's value against its ideal and range, a sentence per metric saying what the value means for this
data, and bar charts (matplotlib, embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import datetime, timezone
from typing import Callable, Optional

from clarify.bias import registry
from core.jsonio import parse_value

SECTIONS = [("pre_training_bias_metrics", "Pre-training bias (labels only)"),
            ("post_training_bias_metrics", "Post-training bias (model predictions)")]
NEAR = 0.05  # |value - ideal| at most this reads as "close to the ideal"
D_MINUS_A = {"DCR", "SD", "DRR", "TE", "CDDL", "CDDPL"}  # computed as d's value minus a's (the rest: a - d)


def _pct(v: float) -> str:
    return f"{abs(v) * 100:.1f} percentage points"


def _signed(v: float, pos: str, neg: str) -> str:
    return pos if v > 0 else neg


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# One sentence per metric: f(value, d, a) with d naming the facet value(s) and a "the rest".
SENTENCES: dict[str, Callable[[float, str, str], str]] = {
    "CI": lambda v, d, a: (f"Rows with {d} make up {(1 - v) / 2:.1%} of the data: "
                           + _signed(v, f"fewer than {a}.", f"more than {a}.")),
    "DPL": lambda v, d, a: (f"Positive labels go to {_signed(v, a, d)} {_pct(v)} more often than to "
                            f"{_signed(v, d, a)}."),
    "KL": lambda v, d, a: (f"The label distributions of {a} and {d} diverge by {v:.4f} nats (0 = identical)"
                           + ("; negative because label values seen in only one group are left out." if v < 0 else ".")),
    "JS": lambda v, d, a: f"The label distributions of {d} and {a} differ by {v:.4f} (0 = identical, at most ln 2).",
    "LP": lambda v, d, a: f"The label distributions of {d} and {a} are {v:.4f} apart in L2 norm (0 = identical).",
    "TVD": lambda v, d, a: f"{v:.1%} of the label probability mass would have to move to make {d} look like {a}.",
    "KS": lambda v, d, a: f"The largest gap between the label proportions of {d} and {a} is {v:.1%}.",
    "CDDL": lambda v, d, a: (f"Within each group, {d}'s share of the negative labels "
                             + _signed(v, "exceeds", "falls short of") + f" its share of the positive labels "
                             f"(weighted by group size) by {abs(v):.3f}: {d} is "
                             + _signed(v, "disfavoured.", "favoured.")),
    "DPPL": lambda v, d, a: (f"The model predicts positive for {_signed(v, a, d)} {_pct(v)} more often than "
                             f"for {_signed(v, d, a)}."),
    "DI": lambda v, d, a: (f"Rows with {d} are never predicted positive." if v == 0 else
                           f"{_cap(a)} are never predicted positive; rows with {d} are." if math.isinf(v) else
                           f"Rows with {d} are predicted positive at {v:.0%} of the rate of {a}"
                           + (" (below the four-fifths rule of thumb)." if v < 0.8 else
                              " (above 1.25, the mirrored four-fifths rule)." if v > 1.25 else ".")),
    "DCA": lambda v, d, a: ("Relative to its observed positives, the model accepts " + d
                            + _signed(v, f" more readily than {a}.", f" more sparingly than {a}.")),
    "DCR": lambda v, d, a: ("Relative to its observed negatives, the model rejects " + d
                            + _signed(v, f" less often than {a}.", f" more often than {a}.")),
    "RD": lambda v, d, a: (f"The model finds the true positives of {_signed(v, d, a)} {_pct(v)} less often "
                           f"(recall) than those of {_signed(v, a, d)}."),
    "SD": lambda v, d, a: (f"The model recognises the true negatives of {_signed(v, d, a)} {_pct(v)} more often "
                           f"(specificity) than those of {_signed(v, a, d)}."),
    "DAR": lambda v, d, a: (f"Positive predictions for {_signed(v, d, a)} are right {_pct(v)} less often "
                            f"(precision) than for {_signed(v, a, d)}."),
    "DRR": lambda v, d, a: (f"Negative predictions for {_signed(v, d, a)} are right {_pct(v)} more often than "
                            f"for {_signed(v, a, d)}."),
    "AD": lambda v, d, a: f"The model is {_pct(v)} less accurate for {_signed(v, d, a)} than for {_signed(v, a, d)}.",
    "TE": lambda v, d, a: (f"Per false positive, {_signed(v, d, a)} gets {abs(v):.3f} more false negatives "
                           f"than {_signed(v, a, d)}: its errors lean towards wrongful rejection."),
    "CDDPL": lambda v, d, a: (f"Within each group, {d}'s share of the negative predictions "
                              + _signed(v, "exceeds", "falls short of") + " its share of the positive predictions by "
                              f"{abs(v):.3f}: the model " + _signed(v, "disfavours", "favours") + f" {d}."),
    "FT": lambda v, d, a: (f"{abs(v):.1%} more of {d}'s rows are predicted "
                           + _signed(v, "positive", "negative") + f" than their nearest neighbours in {a} would be."),
    "GE": lambda v, d, a: (f"The model's benefit (prediction minus label) is spread unequally over all rows "
                           f"with index {v:.3f}; this does not depend on the facet."),
}


def explain_value(name: str, value, error: Optional[str], d: str, a: str = "the rest") -> str:
    """One sentence saying what a metric's value means for this data."""
    if error is not None:
        return f"Not computed: {error}"
    v = parse_value(value)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "No value."
    metric = registry.get(name)
    close = (0.8 <= v <= 1.25) if name == "DI" else abs(v - metric.ideal) <= NEAR
    if close and v != metric.ideal:
        prefix = "Close to the ideal. "
    elif v == metric.ideal:
        return f"At the ideal value {metric.ideal:g}: no difference between {d} and {a} on this measure."
    else:
        prefix = ""
    if math.isinf(v) and name != "DI":
        who = d if (v > 0) == (name in D_MINUS_A) else a
        return (f"{'+' if v > 0 else '-'}infinity: a division by zero on the side of {who}, which has none of the "
                "cases this metric's ratio divides by (predicted positives, predicted negatives or false positives), "
                "while the other side's ratio is finite.")
    return prefix + SENTENCES[name](v, d, a)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return {"Infinity": "+∞", "-Infinity": "−∞"}.get(v, v)
    return f"{v:.4g}"


def _fmt_range(r: tuple[float, float]) -> str:
    lo, hi = (("−∞" if x == -math.inf else "+∞" if x == math.inf else f"{x:.3g}") for x in r)
    return f"[{lo}, {hi}]"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _metric_chart(metrics: list[dict], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(m["name"], parse_value(m["value"])) for m in metrics if m.get("value") is not None and "error" not in m]
    if not rows:
        return ""
    finite = [abs(v) for _, v in rows if not math.isinf(v)] + [1.0]
    cap = max(finite) * 1.15
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(rows) + 0.9))
    names = [n for n, _ in rows][::-1]
    vals = [max(-cap, min(cap, v)) for _, v in rows][::-1]
    ideals = [registry.get(n).ideal for n in names]
    colors = ["#2a9d8f" if (0.8 <= v <= 1.25 if n == "DI" else abs(v - i) <= NEAR) else "#e76f51"
              for n, v, i in zip(names, vals, ideals)]
    pos = list(range(len(names)))
    ax.barh(pos, vals, color=colors)
    ax.set_yticks(pos, names)
    ax.scatter(ideals, pos, marker="|", s=260, color="black", zorder=3, label="ideal")
    for y, v in enumerate([v for _, v in rows][::-1]):
        if math.isinf(v):  # drawn to the edge, labelled inside the bar
            ax.text(vals[y], y, "+∞ " if v > 0 else " −∞", va="center", ha="right" if v > 0 else "left",
                    color="white", fontweight="bold")
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_xlim(-cap, cap)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _shap_chart(values: dict, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(values.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(items) + 0.9))
    ax.barh(range(len(items)), [v for _, v in items], color="#457b9d")
    ax.set_yticks(range(len(items)), [k for k, _ in items])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("global SHAP value")
    return _png(fig)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #ddd;padding-bottom:.3rem;margin-top:2.2rem}h3{margin-top:1.6rem}
table{border-collapse:collapse;width:100%;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.near td.val{background:#e7f5f2}tr.far td.val{background:#fdeee9}tr.err td{color:#888}
.meta{color:#555}.entry{display:grid;grid-template-columns:1fr;gap:.4rem}img{max-width:100%}
"""


def _bias_section(section: dict, heading: str) -> str:
    out = [f"<h2>{html.escape(heading)}</h2>",
           f"<p class='meta'>Label <b>{html.escape(str(section['label']))}</b>, positive when "
           f"<b>{html.escape(str(section['label_value_or_threshold']))}</b>. d = the facet value(s) named; "
           "a = every other row.</p>"]
    for facet, entries in section["facets"].items():
        out.append(f"<h3>Facet {html.escape(str(facet))}</h3>")
        for entry in entries:
            d = f"{facet} = {entry['value_or_threshold']}"
            out.append(f"<h4>{html.escape(d)}</h4><div class='entry'><table><tr><th>Metric</th><th>Value</th>"
                       "<th>Ideal</th><th>Range</th><th>What it means here</th></tr>")
            for m in entry["metrics"]:
                metric = registry.get(m["name"])
                err = m.get("error")
                v = parse_value(m["value"]) if err is None else None
                cls = "err" if err is not None else (
                    "near" if v is not None and ((0.8 <= v <= 1.25) if m["name"] == "DI" else abs(v - metric.ideal) <= NEAR)
                    else "far")
                out.append(f"<tr class='{cls}'><td><b>{m['name']}</b><br><small>{html.escape(m['description'])}"
                           f"</small></td><td class='num val'>{_fmt(m['value'])}</td><td class='num'>{metric.ideal:g}"
                           f"</td><td class='num'>{_fmt_range(metric.range)}</td>"
                           f"<td>{html.escape(explain_value(m['name'], m['value'], err, d))}</td></tr>")
            out.append("</table>")
            out.append(_metric_chart(entry["metrics"], f"{heading.split(' (')[0]}: {d}"))
            out.append("</div>")
    return "\n".join(out)


def _explanation_section(explanation: dict) -> str:
    out = ["<h2>Explanations (SHAP)</h2>"]
    cfg = explanation.get("explanation_config", {})
    if cfg:
        out.append("<p class='meta'>" + html.escape(
            f"{cfg.get('method', '')} SHAP over {cfg.get('num_rows', '?')} rows against "
            f"{cfg.get('num_baseline_rows', '?')} baseline rows; global values aggregated by "
            f"{cfg.get('agg_method', '')}; model output {cfg.get('output', '?')}, column(s) "
            f"{cfg.get('label_index', '?')}.") + "</p>")
    for label, entry in explanation.get("explanations", {}).get("kernel_shap", {}).items():
        values = entry["global_shap_values"]
        out.append(f"<h3>Output {html.escape(label)}</h3><p>Expected value (mean model output on the baseline): "
                   f"<b>{entry['expected_value']:.4g}</b>. A feature's global SHAP value is how much it moves the "
                   "output away from that, aggregated over the explained rows.</p>")
        out.append("<table><tr><th>Feature</th><th>Global SHAP value</th></tr>" + "".join(
            f"<tr><td>{html.escape(k)}</td><td class='num'>{v:.4g}</td></tr>"
            for k, v in sorted(values.items(), key=lambda kv: -kv[1])) + "</table>")
        out.append(_shap_chart(values, f"Global SHAP values, {label}"))
    return "\n".join(out)


def render_html(report: Optional[dict] = None, explanation: Optional[dict] = None,
                title: str = "Ferry Clarify report") -> str:
    """One self-contained HTML page (inline CSS, charts as base64 PNG) for a bias report and/or an
    explanation, as returned by ``bias_report`` and ``explain``."""
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    legend = (f" Green rows are within {NEAR} of the ideal value (DI within 0.8–1.25); the black tick in each "
              "chart marks the ideal." if report else "")
    body = [f"<h1>{html.escape(title)}</h1><p class='meta'>Generated {when} by Ferry Clarify.{legend}</p>"]
    if report:
        for key, heading in SECTIONS:
            if key in report:
                body.append(_bias_section(report[key], heading))
    if explanation:
        body.append(_explanation_section(explanation))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>")
