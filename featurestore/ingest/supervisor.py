"""Running workers: one in this process, or N in child processes of one consumer group; signals and exit codes.

Exit code 0 when the workers stopped on SIGTERM/SIGINT or `until_idle`, 1 when any failed (2 when the watchdog
gave up on a stall), so an orchestrator restarts them and the log says why.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from typing import Any

from featurestore.ingest.watchdog import IngestStalled
from featurestore.ingest.worker import IngestWorker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)

EXIT_STALLED = 2


def run_ingest(settings: FeatureStoreSettings, groups: list[FeatureGroupSpec], processes: int = 1,
               until_idle: float | None = None, metrics_port: int | None = None, **options: Any) -> int:
    """Run `processes` workers (one per core: the GIL bounds one); worker i serves metrics on metrics_port + i and,
    with an `instance_id`, uses `<instance_id>-<i>` when there are several. Returns the exit code."""
    if processes == 1:
        return _run_one(settings, groups, until_idle, metrics_port, options)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(processes):
        opts = dict(options)
        if opts.get("instance_id"):
            opts["instance_id"] = f"{opts['instance_id']}-{i}"
        port = None if metrics_port is None else metrics_port + i
        procs.append(ctx.Process(target=_child, name=f"ferry-ingest-{i}", args=(
            settings.model_dump(mode="json"), [g.model_dump(mode="json") for g in groups], until_idle, port, opts)))
    for p in procs:
        p.start()
    previous = signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    return 0 if not codes else (EXIT_STALLED if EXIT_STALLED in codes else 1)


def _run_one(settings: FeatureStoreSettings, groups: list[FeatureGroupSpec], until_idle: float | None,
             metrics_port: int | None, options: dict[str, Any]) -> int:
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    store = FeatureStore(settings, groups)
    worker = IngestWorker(store, groups, settings.kafka_bootstrap_servers, **options)
    previous = signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    log.info("ingesting %s from %s", ", ".join(g.kafka_topic for g in groups), settings.kafka_bootstrap_servers)
    try:
        worker.run(until_idle=until_idle)
    except KeyboardInterrupt:
        pass
    except IngestStalled as e:
        log.error("ingest worker stalled: %s", e)
        return EXIT_STALLED
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()
    return 0


def _child(settings: dict, groups: list[dict], until_idle: float | None, metrics_port: int | None,
           options: dict[str, Any]) -> None:
    """Entry point of a worker process."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(_run_one(FeatureStoreSettings.model_validate(settings),
                      [FeatureGroupSpec.model_validate(g) for g in groups], until_idle, metrics_port, options))
