"""Ferry clarify: bias metrics, SHAP explanations, reports.

Public API (see docs/clarify.md):

- ``bias_report(df, label=..., positive_label_values=..., facets=[...], predicted_label=..., methods=..., stage=...)``
  -> analysis.json-shaped dict of pre/post-training bias metrics
- ``compute_metric(name, facet, label=..., predicted=..., group=..., features=...)`` -> one metric on masks
- ``explain(model, data, ...)`` -> analysis.json-shaped dict of SHAP values (``explanations.kernel_shap``)
- ``ndcg(baseline, live)`` -> the attribution-drift score of two global SHAP vectors
- ``render_html(report=..., explanation=...)`` -> a self-contained HTML page
"""

from clarify.bias import (POST_TRAINING, PRE_TRAINING, ClarifyInputError, Facet, FacetCounts, bias_report,
                          compute_metric, get as get_metric, names as metric_names)
from core.jsonio import dumps, json_value, parse_value  # the report values' JSON dialect, shared with monitor

__all__ = ["bias_report", "compute_metric", "Facet", "FacetCounts", "ClarifyInputError", "PRE_TRAINING",
           "POST_TRAINING", "get_metric", "metric_names", "dumps", "json_value", "parse_value",
           "explain", "ndcg", "render_html"]


def __getattr__(name):
    # explanations and HTML pull in onnxruntime/shap/matplotlib: import them only when asked for
    if name in ("explain", "ndcg", "global_shap_values"):
        from clarify import explanations
        return getattr(explanations, name)
    if name == "render_html":
        from clarify.htmlreport import render_html
        return render_html
    raise AttributeError(name)
