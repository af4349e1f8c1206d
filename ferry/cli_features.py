"""`ferry features ...`: create, put, get, ingest, training-set and serve for feature groups in ferry.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

features = typer.Typer(help="Feature store: groups, records, Kafka ingestion, training sets, REST API.",
                       no_args_is_help=True)

FILE = typer.Option("ferry.yaml", "-f", "--file", help="deploy file declaring feature_groups")
DATA_DIR = typer.Option(None, "--data-dir", help="feature store folder (default: .ferry/features beside the file)")
ONLINE = typer.Option(None, "--online", help="online store backend: sqlite or redis (default: redis when "
                                             "ferry.yaml has a redis section)")


def _open(file: Path, data_dir: Optional[Path], online: Optional[str]):
    """The FeatureStore, its settings and the declared groups from the deploy file."""
    from featurestore.settings import FeatureStoreSettings
    from featurestore.store import FeatureStore
    from ferry.config import ConfigError, load_config

    try:
        cfg = load_config(file)
    except ConfigError as e:
        raise typer.BadParameter(str(e), param_hint="--file") from None
    settings = cfg.feature_store_settings(Path(file).resolve().parent)
    upd: dict[str, Any] = {}
    if data_dir:
        upd["data_dir"] = str(data_dir)
    if online and online != settings.online.type:
        upd["online"] = online
    try:
        settings = FeatureStoreSettings.model_validate({**settings.model_dump(), **upd})
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--online") from None
    return FeatureStore(settings, cfg.feature_groups), settings, cfg.feature_groups


def _echo(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=1, default=str))


@features.command("create")
def create(file: Path = FILE, spec: Optional[Path] = typer.Option(None, "--spec", help="JSON/YAML of a new group"),
           data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """Prepare the declared groups' stores, or register a new group from --spec."""
    import yaml

    store, _, groups = _open(file, data_dir, online)
    if spec is not None:
        try:
            created = store.create_group(yaml.safe_load(spec.read_text()))
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--spec") from None
        groups = [created]
    for g in groups:
        typer.echo(f"feature group {g.name}: record id {g.record_identifier}, event time {g.event_time}, "
                   f"{len(g.features)} features, topic {g.kafka_topic}")


@features.command("put")
def put(group: str, record: str = typer.Option(..., "--record", help='JSON object {"feature": value, ...}'),
        file: Path = FILE, data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """PutRecord: write one record (online when its event time is newer, offline always)."""
    store, _, _ = _open(file, data_dir, online)
    try:
        applied = store.put_record(group, json.loads(record))
    except (ValueError, LookupError) as e:
        raise typer.BadParameter(str(e), param_hint="--record") from None
    typer.echo("written online and offline" if applied else "older or equal event time: written offline only")


@features.command("get")
def get(group: str, record_id: str, feature: list[str] = typer.Option(None, "--feature", help="repeatable"),
        file: Path = FILE, data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """GetRecord: print the online record (empty when unknown, deleted or expired)."""
    store, _, _ = _open(file, data_dir, online)
    try:
        _echo(store.get_record(group, record_id, feature or None, expiration=True))
    except (ValueError, LookupError) as e:
        raise typer.BadParameter(str(e)) from None


@features.command("ingest")
def ingest(file: Path = FILE, group: Optional[str] = typer.Option(None, "--group", help="only this feature group"),
           consumer_group: str = typer.Option("ferry-features", help="Kafka consumer group id"),
           until_idle: Optional[float] = typer.Option(None, help="exit after this many idle seconds with nothing "
                                                                 "left to consume"),
           metrics_port: Optional[int] = typer.Option(None, help="serve Prometheus metrics on 127.0.0.1:PORT"),
           max_batch: int = typer.Option(5000, help="records per micro-batch"),
           instance_id: Optional[str] = typer.Option(None, help="static group membership id: a restarted worker "
                                                                "gets its partitions back at once"),
           processes: int = typer.Option(1, min=1, help="worker processes in the consumer group (one per core); "
                                                        "worker i serves metrics on --metrics-port + i"),
           stall_timeout: float = typer.Option(60.0, min=1.0, help="watchdog: rejoin the group when its offsets "
                                                                   "have not moved for this long while records wait"),
           max_rejoins: int = typer.Option(3, min=0, help="watchdog: rejoins in a row without progress before the "
                                                          "worker exits with code 2"),
           data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """Consume the groups' Kafka topics into the online and offline stores."""
    from featurestore.ingest import run_ingest

    store, settings, groups = _open(file, data_dir, online)
    store.close()
    if group is not None:
        groups = [g for g in store.groups() if g.name == group]
        if not groups:
            raise typer.BadParameter(f"unknown feature group {group!r}", param_hint="--group")
    if not groups:
        raise typer.BadParameter("the deploy file declares no feature_groups", param_hint="--file")
    code = run_ingest(settings, groups, processes, until_idle=until_idle, metrics_port=metrics_port,
                      consumer_group=consumer_group, max_batch=max_batch, instance_id=instance_id,
                      stall_timeout_s=stall_timeout, max_rejoins=max_rejoins)
    if code:
        typer.echo(f"ingestion stopped with exit code {code}: see the log above", err=True)
    raise typer.Exit(code)


@features.command("training-set")
def training_set(group: str, entities: Path = typer.Option(..., help="CSV, Parquet or JSON Lines with the id and "
                                                                     "timestamp"),
                 out: Path = typer.Option(..., help="output .parquet or .csv"),
                 timestamp_column: str = typer.Option("event_timestamp"),
                 feature: list[str] = typer.Option(None, "--feature", help="repeatable; default all"),
                 ttl: Optional[float] = typer.Option(None, help="ignore feature rows older than this many seconds"),
                 file: Path = FILE, data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """Point-in-time join of entity rows with the group's offline log."""
    import numpy as np

    from featurestore.training import point_in_time_join
    from monitor.tables import load_table

    try:
        ents = load_table(entities)  # the CLIs' one table reader
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--entities") from None
    store, _, _ = _open(file, data_dir, online)
    try:
        spec = store.group(group)
        df = point_in_time_join(store.offline(spec), spec, ents, features=feature or None,
                                timestamp_column=timestamp_column, ttl=ttl)
    except (ValueError, LookupError) as e:
        raise typer.BadParameter(str(e)) from None
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    else:  # a collection as a JSON array, not numpy's repr ("['a' 'b']" reads back as one string)
        for f in spec.features:
            if f.collection is not None and f.name in df:
                df[f.name] = df[f.name].map(lambda v: None if v is None else json.dumps(np.asarray(v).tolist()))
        df.to_csv(out, index=False)
    typer.echo(f"{len(df)} rows -> {out}")


@features.command("serve")
def serve(file: Path = FILE, host: str = typer.Option("127.0.0.1", help="bind address; beyond loopback only with "
                                                                     "server.auth_token set"),
          port: int = typer.Option(8070), data_dir: Optional[Path] = DATA_DIR, online: Optional[str] = ONLINE) -> None:
    """Serve the feature-store REST API alone (server.auth_token and server.max_payload_bytes apply)."""
    import ipaddress

    import uvicorn

    from featurestore.api import create_app
    from ferry.config import load_config

    server = load_config(file).server
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not server.auth_token:
        raise typer.BadParameter(f"refusing to serve on {host} without server.auth_token in {file}: anyone who can "
                                 "reach it could write records and create feature groups", param_hint="--host")
    store, _, _ = _open(file, data_dir, online)
    uvicorn.run(create_app(store, server.max_payload_bytes, server.auth_token), host=host, port=port,
                log_level="warning")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.add_typer(features, name="features")
