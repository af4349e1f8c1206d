"""Bias metrics (pre- and post-training) on shared group counts, and bias reports."""

from clarify.bias import metrics  # noqa: F401  (registers the metrics)
from clarify.bias.counts import FacetCounts
from clarify.bias.registry import POST_TRAINING, PRE_TRAINING, Metric, get, metrics as registered, names
from clarify.bias.report import ClarifyInputError, Facet, bias_report, compute_metric

__all__ = ["FacetCounts", "Metric", "PRE_TRAINING", "POST_TRAINING", "get", "registered", "names",
           "ClarifyInputError", "Facet", "bias_report", "compute_metric"]
