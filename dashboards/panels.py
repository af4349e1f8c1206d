"""The few pieces every dashboard is made of: the Prometheus data source variable, label variables, and
time-series and stat panels with PromQL targets."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


def datasource_variable() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def label_variable(name: str, metric: str, label: str, label_text: str) -> db.QueryVariable:
    """A multi-value variable of a label's values (all by default), refreshed with the time range."""
    return (db.QueryVariable(name).label(label_text).datasource(DATASOURCE)
            .query(f"label_values({metric}, {label})").multi(True).include_all(True).all_value(".*")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))


def _targets(panel, queries: list[tuple[str, str]], instant: bool = False):
    for i, (expr, legend) in enumerate(queries):
        q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        panel = panel.with_target(q.instant() if instant else q)
    return panel


def graph(title: str, description: str, queries: list[tuple[str, str]], unit: str = "short", width: int = 12,
          height: int = 8) -> timeseries.Panel:
    """A time-series panel: one line per series of each (PromQL, legend) query."""
    p = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
         .span(width).height(height))
    return _targets(p, queries)


def single(title: str, description: str, queries: list[tuple[str, str]], unit: str = "short", width: int = 6,
           height: int = 5) -> stat.Panel:
    """A stat panel of the latest value of each series."""
    p = (stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
         .span(width).height(height))
    return _targets(p, queries, instant=True)
