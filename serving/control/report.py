"""Adding up the gateway replicas' counts (ServingMetrics.snapshot, as the metrics hub keeps them): per-variant
traffic and shadow comparisons."""

from __future__ import annotations

from serving.metrics import REQUEST_LATENCY, SHADOW_LATENCY


def _quantile(bounds: tuple, counts: list[int], q: float) -> float | None:
    """The upper bound of the bucket holding quantile q (Prometheus's histogram_quantile, without interpolation)."""
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for bound, n in zip((*bounds, float("inf")), counts):
        seen += n
        if seen >= q * total:
            return bound
    return float("inf")


def add_counts(into: dict, item: dict) -> None:
    """Add a nested dict of counts (numbers, lists of numbers, dicts of those) into `into`."""
    for k, v in item.items():
        if isinstance(v, dict):
            add_counts(into.setdefault(k, {}), v)
        elif isinstance(v, list):
            into[k] = [a + b for a, b in zip(into.get(k, [0] * len(v)), v)]
        else:
            into[k] = into.get(k, 0) + v


def variant_totals(snapshots: list[dict]) -> dict[str, dict]:
    """"endpoint/variant" -> codes, latency counts and sum, over every replica."""
    out: dict[str, dict] = {}
    for snap in snapshots:
        for key, v in snap.get("variants", {}).items():
            add_counts(out.setdefault(key, {}), v)
    return out


def shadow_report(endpoint: str, snapshots: list[dict]) -> dict:
    shadows: dict[str, dict] = {}
    for snap in snapshots:
        for key, st in snap.get("shadows", {}).items():
            ep, _, name = key.partition("/")
            if ep == endpoint:
                add_counts(shadows.setdefault(name, {}), st)
    production: dict[str, list] = {}
    errors = total = 0
    for key, v in variant_totals(snapshots).items():
        ep, _, _ = key.partition("/")
        if ep == endpoint:
            production["latency_counts"] = [a + b for a, b in zip(production.get("latency_counts",
                                                                               [0] * len(v["latency_counts"])),
                                                                  v["latency_counts"])]
            total += sum(v["codes"].values())
            errors += sum(n for c, n in v["codes"].items() if c.startswith("5") or c == "424")
    out = {"endpoint": endpoint, "production": {
        "requests": total, "error_rate": errors / total if total else None,
        "p50_s": _quantile(REQUEST_LATENCY.buckets, production.get("latency_counts", []), 0.5),
        "p99_s": _quantile(REQUEST_LATENCY.buckets, production.get("latency_counts", []), 0.99)}, "shadows": {}}
    for name, st in shadows.items():
        answered = st.get("ok", 0) + st.get("errors", 0)
        out["shadows"][name] = {
            "copies": answered, "dropped": st.get("dropped", 0),
            "error_rate": st.get("errors", 0) / answered if answered else None,
            "agreement": st["agreed"] / st["rows"] if st.get("rows") else None,
            "mean_abs_difference": st["abs_diff"] / st["values"] if st.get("values") else None,
            "p50_s": _quantile(SHADOW_LATENCY.buckets, st.get("latency_counts", []), 0.5),
            "p99_s": _quantile(SHADOW_LATENCY.buckets, st.get("latency_counts", []), 0.99)}
    return out
