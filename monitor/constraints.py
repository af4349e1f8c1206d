"""constraints.json in Model Monitor's format: suggested from a profile, read back with defaults."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class MonitoringConfig:
    """monitoring_config with the documented defaults for any key a file leaves out."""

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = 0.1
    domain_content_threshold: float = 0.1
    perform_comparison: bool = True
    comparison_threshold: float = 0.1
    comparison_method: str = "Simple"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"

    @classmethod
    def from_json(cls, mc: dict | None) -> "MonitoringConfig":
        mc = mc or {}
        dc = mc.get("distribution_constraints") or {}
        method = dc.get("comparison_method", "Simple")
        if method not in ("Simple", "Robust"):
            raise ValueError(f"monitoring_config.distribution_constraints.comparison_method: "
                             f"{method!r} is not Simple or Robust")
        cat = dc.get("categorical_drift_method", "LInfinity")
        if cat not in ("LInfinity", "ChiSquared"):
            raise ValueError(f"monitoring_config.distribution_constraints.categorical_drift_method: "
                             f"{cat!r} is not LInfinity or ChiSquared")
        threshold = float(dc.get("comparison_threshold", 0.1))
        return cls(
            evaluate_constraints=_enabled(mc, "evaluate_constraints"),
            emit_metrics=_enabled(mc, "emit_metrics"),
            datatype_check_threshold=float(mc.get("datatype_check_threshold", 0.1)),
            domain_content_threshold=float(mc.get("domain_content_threshold", 0.1)),
            perform_comparison=_enabled(dc, "perform_comparison", "distribution_constraints."),
            comparison_threshold=threshold,
            comparison_method=method,
            categorical_comparison_threshold=float(dc.get("categorical_comparison_threshold", threshold)),
            categorical_drift_method=cat,
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
