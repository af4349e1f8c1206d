"""constraints.json in Model Monitor's format: suggested from a profile, read back with defaults."""

from __future__ import annotations

from dataclasses import dataclass

from monitor import distance
from monitor.statistics import ColumnProfile

MAX_DOMAIN_VALUES = 100

# What a suggested constraints file carries (as Model Monitor's baselining job writes them).
SUGGESTED_MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


# Model Monitor's names for the tests: comparison_method picks the numerical test, categorical_drift_method
# the categorical one (LInfinity follows comparison_method); any registered test's name may stand for either.
NUMERICAL_METHODS = {"Simple": "linf_simple", "Robust": "linf_robust"}
CATEGORICAL_METHODS = {"ChiSquared": "chi_squared_pvalue"}


@dataclass(frozen=True)
class MonitoringConfig:
    """monitoring_config with the documented defaults for any key a file leaves out, its drift methods
    resolved to registered tests (monitor.distance)."""

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = 0.1
    domain_content_threshold: float = 0.1
    perform_comparison: bool = True
    comparison_threshold: float = 0.1
    comparison_method: str = "Simple"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"
    numerical_test: str = "linf_simple"
    categorical_test: str = "linf_simple"

    @property
    def categorical_method_label(self) -> str:
        """The categorical method as drift_report.json names it (LInfinity/Simple, ChiSquared, ...)."""
        if self.categorical_drift_method == "LInfinity":
            return "LInfinity/" + ("Robust" if self.categorical_test == "linf_robust" else "Simple")
        return self.categorical_drift_method

    @classmethod
    def from_json(cls, mc: dict | None) -> "MonitoringConfig":
        """The config a file's monitoring_config says; each key it leaves out takes the field's default above."""
        mc = mc or {}
        dc = mc.get("distribution_constraints") or {}
        where = "monitoring_config.distribution_constraints."
        method = dc.get("comparison_method", cls.comparison_method)
        numerical = NUMERICAL_METHODS.get(method, method)
        if numerical not in distance.names(distance.NUMERICAL):
            raise ValueError(f"{where}comparison_method: {method!r} is not one of "
                             f"{', '.join([*NUMERICAL_METHODS, *distance.names(distance.NUMERICAL)])}")
        cat = dc.get("categorical_drift_method", cls.categorical_drift_method)
        linf = NUMERICAL_METHODS.get(method, "linf_simple")
        categorical = linf if cat == "LInfinity" else CATEGORICAL_METHODS.get(cat, cat)
        if categorical not in distance.names(distance.CATEGORICAL):
            raise ValueError(f"{where}categorical_drift_method: {cat!r} is not one of "
                             f"{', '.join(['LInfinity', *CATEGORICAL_METHODS, *distance.names(distance.CATEGORICAL)])}")
        threshold = float(dc.get("comparison_threshold", distance.get(numerical).default_threshold))
        cat_default = dc.get("comparison_threshold", distance.get(categorical).default_threshold)
        return cls(
            evaluate_constraints=_enabled(mc, "evaluate_constraints"),
            emit_metrics=_enabled(mc, "emit_metrics"),
            datatype_check_threshold=float(mc.get("datatype_check_threshold", cls.datatype_check_threshold)),
            domain_content_threshold=float(mc.get("domain_content_threshold", cls.domain_content_threshold)),
            perform_comparison=_enabled(dc, "perform_comparison", "distribution_constraints."),
            comparison_threshold=threshold,
            comparison_method=method,
            categorical_comparison_threshold=float(dc.get("categorical_comparison_threshold", cat_default)),
            categorical_drift_method=cat,
            numerical_test=numerical,
            categorical_test=categorical,
        )


def _enabled(d: dict, key: str, where: str = "") -> bool:
    v = d.get(key, "Enabled")
    if v not in ("Enabled", "Disabled"):
        raise ValueError(f"monitoring_config.{where}{key}: {v!r} is not Enabled or Disabled")
    return v == "Enabled"


def suggest(profiles: dict[str, ColumnProfile], monitoring_config: dict | None = None) -> dict:
    """Suggested constraints.json for a baseline profile."""
    features = []
    for p in profiles.values():
        common = (p.entry.get("numerical_statistics") or p.entry.get("string_statistics"))["common"]
        n = common["num_present"] + common["num_missing"]
        f: dict = {"name": p.name, "inferred_type": p.inferred_type,
                   "completeness": common["num_present"] / n if n else 0.0}
        if p.sorted_values is not None and len(p.sorted_values):
            f["num_constraints"] = {"is_non_negative": bool(p.sorted_values[0] >= 0)}
        if p.counts is not None and 0 < len(p.counts) <= MAX_DOMAIN_VALUES:
            f["string_constraints"] = {"domains": [str(v) for v in p.counts.index]}
        f["monitoringConfigOverrides"] = {}
        features.append(f)
    return {"version": 0, "features": features,
            "monitoring_config": monitoring_config or SUGGESTED_MONITORING_CONFIG}
