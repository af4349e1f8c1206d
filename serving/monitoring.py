"""The monitor inside Ferry: a one-replica deployment that runs the deploy file's monitoring schedules
and answers for their executions and Prometheus gauges (the gateway serves both over HTTP)."""

from __future__ import annotations

from ray import serve

from monitor.runner import list_executions
from monitor.service import MonitorService
from monitor.spec import ScheduleBase


@serve.deployment(num_replicas=1)
class MonitorRunner:
    """Runs every schedule on its interval or cron (one replica, so each execution happens once)."""

    def __init__(self, schedules: list[ScheduleBase]):
        self.schedules = list(schedules)  # typed and validated once, when the deploy file was read
        self.service = MonitorService(self.schedules)
        self.service.start()

    def __del__(self):
        self.service.stop()

    def metrics(self) -> bytes:
        """The monitor's own gauges (ferry_monitor_*), for the gateway to append to its /metrics."""
        from prometheus_client import REGISTRY, generate_latest  # a module global here would be pickled with the class

        class MonitorFamilies:
            def collect(self):
                return [m for m in REGISTRY.collect() if m.name.startswith("ferry_monitor_")]

        return generate_latest(MonitorFamilies())

    def executions(self, endpoint: str | None = None, schedule: str | None = None) -> list[dict]:
        outputs = sorted({s.output for s in self.schedules
                          if (endpoint is None or s.endpoint == endpoint) and (schedule is None or s.name == schedule)})
        found = [ex for out in outputs for ex in list_executions(out, endpoint, schedule)]
        return sorted(found, key=lambda ex: ex["started_at"])
