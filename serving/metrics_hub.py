"""Every gateway replica's series on one GET /metrics: each replica pushes a snapshot of its metric families to
one hub actor per application (once a second, and at the moment it answers a scrape), and the replica that
answers the scrape returns the hub's merge, each series labelled with its `replica`.

Ray Serve replicas are separate processes and the proxy sends a scrape to any one of them, so without this a
scrape sees one replica's counters. The request path is untouched: it keeps adding to plain numbers (see
serving.metrics); a snapshot costs one collect and one actor call per replica per second, and works across
nodes (the hub is a named Ray actor). Recording through Ray's metrics export (ray.util.metrics) or
prometheus_client's multiprocess mode instead costs microseconds per request in the handler (measured side by
side by benchmarks/metrics_export.py; figures in docs/observability.md), the multiprocess mode only merges
the processes of one node, and Ray's export renames the series and adds Ray's labels.

A replica that stops pushing (stopped, crashed) drops out of the merge after `STALE_S`; its counters end there,
which Prometheus's rate() handles as the end of those series.

The same push carries the replica's cumulative counts per variant and shadow (ServingMetrics.snapshot): the
control plane reads them from the hub (`counts`) to judge a rollout's bake windows and to add up the shadow
report. A stale replica's counts are folded into one retired total, so that sums over replicas never go down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import ray
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

PUSH_INTERVAL_S = 1.0
STALE_S = 30.0


def merge(snapshots: dict[str, list[Metric]]) -> list[Metric]:
    """One family per name, holding every replica's samples with a `replica` label added."""
    out: dict[str, Metric] = {}
    for replica, families in sorted(snapshots.items()):
        for fam in families:
            merged = out.get(fam.name)
            if merged is None:
                merged = out[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            merged.samples += [Sample(s.name, {**s.labels, "replica": replica}, s.value, s.timestamp, s.exemplar)
                               for s in fam.samples]
    return list(out.values())


def local_families(registry: CollectorRegistry) -> list[Metric]:
    """This process's Ferry families: the data plane's registry, and the ferry_* of the default registry (capture
    sinks, feature lookups)."""
    return list(registry.collect()) + [f for f in REGISTRY.collect() if f.name.startswith("ferry_")]


def reporter_for(registry: CollectorRegistry, counts: Callable[[], dict] | None = None) -> "Reporter | None":
    """A Reporter of `registry` (and of `counts`, for the control plane) when running in a Ray Serve replica,
    else None (in-process use, benchmarks)."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        ctx = serve.get_replica_context()
    except RayServeException:
        return None
    return Reporter(ctx.app_name, ctx.replica_id.unique_id, lambda: local_families(registry), counts)


class _Families:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self):
        return self.families


RETIRED = "(retired)"  # the counts of replicas that stopped pushing, added up


class Snapshots:
    """The latest snapshot of each replica's families and counts; `exposition` merges the fresh families,
    `counts` gives the counts (the hub's state)."""

    def __init__(self):
        self.snapshots: dict[str, tuple[float, list[Metric]]] = {}
        self.counts_of: dict[str, tuple[float, dict]] = {}
        self.retired: dict = {}

    def push(self, replica: str, families: list[Metric], counts: dict | None = None) -> None:
        now = time.monotonic()
        self.snapshots[replica] = (now, families)
        if counts is not None:
            self.counts_of[replica] = (now, counts)

    def _drop_stale(self) -> None:
        from serving.control.report import add_counts

        now = time.monotonic()
        self.snapshots = {r: v for r, v in self.snapshots.items() if now - v[0] <= STALE_S}
        for replica, (at, counts) in list(self.counts_of.items()):
            if now - at > STALE_S:
                add_counts(self.retired, counts)
                del self.counts_of[replica]

    def exposition(self, replica: str | None = None, families: list[Metric] | None = None) -> bytes:
        """The merge in Prometheus's text format, after taking `replica`'s `families` when given."""
        if replica is not None:
            self.push(replica, families or [])
        self._drop_stale()
        return generate_latest(_Families(merge({r: fams for r, (_, fams) in self.snapshots.items()})))

    def counts(self, fresh_s: float | None = None) -> dict[str, dict[str, Any]]:
        """Each replica's latest counts, {replica: snapshot}: those that pushed within `fresh_s` seconds, else
        all of them with the retired replicas' total under RETIRED."""
        self._drop_stale()
        now = time.monotonic()
        out = {r: c for r, (at, c) in self.counts_of.items() if fresh_s is None or now - at <= fresh_s}
        if fresh_s is None and self.retired:
            out[RETIRED] = self.retired
        return out


MetricsHub = ray.remote(num_cpus=0, max_restarts=-1)(Snapshots)


def hub_for(app_name: str):
    """The application's hub actor, created by whichever replica asks first."""
    return MetricsHub.options(name=f"ferry-metrics-hub-{app_name}", namespace="ferry", get_if_exists=True,
                              lifetime="detached").remote()


class Reporter:
    """Pushes this replica's families to the hub every PUSH_INTERVAL_S from a task on the replica's event loop
    (the loop is the only writer of the data plane's numbers: collecting there never races a request). Made on
    that loop (Ray Serve runs a deployment's constructor there)."""

    def __init__(self, app_name: str, replica: str, families: Callable[[], list[Metric]],
                 counts: Callable[[], dict] | None = None):
        self.replica, self.families, self.counts = replica, families, counts
        self.hub = hub_for(app_name)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PUSH_INTERVAL_S)
            try:
                self.hub.push.remote(self.replica, self.families(), self.counts() if self.counts else None)
            except Exception:  # noqa: BLE001 - metrics must never take a replica down; the next push retries
                log.warning("metrics push to the hub failed", exc_info=True)

    async def exposition(self) -> bytes:
        """Every fresh replica's series, this replica's as of now; this replica's alone if the hub cannot answer
        (restarting: the replicas' next pushes refill it)."""
        families = self.families()
        try:
            return await self.hub.exposition.remote(self.replica, families)
        except Exception:  # noqa: BLE001 - a scrape must still answer
            log.warning("metrics hub unavailable: this replica's series only", exc_info=True)
            return generate_latest(_Families(merge({self.replica: families})))

    def stop(self) -> None:
        """Stop pushing (callable from any thread: Ray Serve's shutdown calls __del__)."""
        loop = self._task.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._task.cancel)
