"""Ferry's dashboards and alerts as code: Grafana dashboards built with grafana-foundation-sdk (dashboards.build
writes dashboards/grafana/*.json), Grafana alert rules made from the Prometheus rules of dashboards/alerts/
(dashboards.alerting), and the HTML preview drawn from a Prometheus server (dashboards.preview).

Imports nothing of Ferry's packages: the queries name metrics that tests check against ferry.metrics_catalog.
"""
