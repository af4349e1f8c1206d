"""Declarations of Prometheus metrics: every metric Ferry exports is declared once, here-shaped.

A package declares its metrics in its own metrics module through a `MetricSet`, one line each:

    METRICS = MetricSet("monitor")
    NDCG = METRICS.gauge("ferry_monitor_attribution_ndcg", "NDCG of ...", ["endpoint", "schedule", "label"]).client()

`Metric.client()` makes the prometheus_client object (for code that sets values through labels);
`Metric.family()` makes an empty family (for custom collectors that build their families at scrape time).
The declaration checks Prometheus's conventions when it is made: the `ferry_` prefix, `_total` on counters
only, the unit (a base unit) as the name's suffix, buckets on histograms, and label names that are neither
reserved nor per-request (no request ids, no user strings). ferry.metrics_catalog gathers every set for the
README's table, the dashboards and the PromQL checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

KINDS = ("counter", "gauge", "histogram")
BASE_UNITS = ("seconds", "bytes", "ratio")
_NAME = re.compile(r"^ferry_[a-z0-9_]+$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
# Labels that would make a series per request or per caller: unbounded cardinality.
UNBOUNDED_LABELS = frozenset({"request_id", "inference_id", "event_id", "id", "record_id", "user", "user_id",
                              "client", "ip", "path", "url", "message", "target_model"})
RESERVED_LABELS = frozenset({"le", "quantile", "job", "instance", "replica"})  # replica: added by the hub


@dataclass(frozen=True)
class Metric:
    """One exported metric: its exposed name (counters with `_total`), kind, help, labels, unit, buckets."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()
    package: str = ""

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            raise ValueError(f"metric {self.name!r}: " + "; ".join(problems))

    @property
    def base_name(self) -> str:
        """The name prometheus_client takes (a counter's without `_total`)."""
        return self.name.removesuffix("_total") if self.kind == "counter" else self.name

    def family(self):
        """An empty metric family of this declaration, for a collector to fill with add_metric()."""
        cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}
        return cls[self.kind](self.base_name, self.help, labels=list(self.labels), unit=self.unit)

    def client(self, registry: CollectorRegistry | None = REGISTRY):
        """The prometheus_client Counter, Gauge or Histogram of this declaration (default registry)."""
        kw = {"labelnames": self.labels, "unit": self.unit, "registry": registry}
        if self.kind == "counter":
            return Counter(self.base_name, self.help, **kw)
        if self.kind == "gauge":
            return Gauge(self.base_name, self.help, **kw)
        return Histogram(self.base_name, self.help, buckets=self.buckets, **kw)


def _problems(m: Metric) -> list[str]:
    out = []
    if not _NAME.match(m.name):
        out.append("names start with ferry_ and use [a-z0-9_]")
    if m.kind not in KINDS:
        out.append(f"kind is one of {KINDS}")
    if not m.help or not m.help.strip():
        out.append("help text is required")
    if (m.kind == "counter") != m.name.endswith("_total"):
        out.append("counters, and only counters, end with _total")
    stem = m.name.removesuffix("_total")
    if m.unit:
        if m.unit not in BASE_UNITS:
            out.append(f"unit is a base unit ({', '.join(BASE_UNITS)})")
        elif not stem.endswith("_" + m.unit):
            out.append(f"a metric in {m.unit} ends with _{m.unit}")
    for word in ("milliseconds", "_ms", "minutes", "hours", "kilobytes", "megabytes", "percent"):
        if stem.endswith(word):
            out.append("use base units (seconds, bytes, ratio)")
    if m.kind == "histogram":
        if not m.buckets or list(m.buckets) != sorted(set(m.buckets)):
            out.append("a histogram has increasing buckets")
    elif m.buckets:
        out.append("only histograms have buckets")
    for label in m.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            out.append(f"label {label!r} is not a valid label name")
        if label in RESERVED_LABELS:
            out.append(f"label {label!r} is reserved")
        if label in UNBOUNDED_LABELS:
            out.append(f"label {label!r} would make a series per request or caller")
    if len(set(m.labels)) != len(m.labels):
        out.append("labels repeat")
    return out


@dataclass
class MetricSet:
    """The metrics one package declares: `counter`, `gauge` and `histogram` add a declaration and return it."""

    package: str
    metrics: dict[str, Metric] = field(default_factory=dict)

    def _add(self, name, kind, help, labels, unit, buckets) -> Metric:
        if name in self.metrics:
            raise ValueError(f"metric {name!r} is declared twice in {self.package}")
        m = Metric(name, kind, help, tuple(labels), unit, tuple(buckets), self.package)
        self.metrics[name] = m
        return m

    def counter(self, name: str, help: str, labels=(), unit: str = "") -> Metric:
        return self._add(name, "counter", help, labels, unit, ())

    def gauge(self, name: str, help: str, labels=(), unit: str = "") -> Metric:
        return self._add(name, "gauge", help, labels, unit, ())

    def histogram(self, name: str, help: str, labels=(), unit: str = "", buckets=()) -> Metric:
        return self._add(name, "histogram", help, labels, unit, buckets)

    def __iter__(self):
        return iter(self.metrics.values())
