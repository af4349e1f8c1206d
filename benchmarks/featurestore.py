"""Feature store benchmark: Ferry vs Feast on the same data, same machine, same run.

    python -m benchmarks.featurestore [--quick] [--feast-python PATH]

Lines: GetRecord and BatchGetRecord(100) p50/p99 in-process and over HTTP (SQLite and Redis online stores),
ingestion records/s (Ferry: from a 6-partition Kafka topic through validation to both stores, with 1, 2 and 3
worker processes of one consumer group; Feast: write_to_online_store of a DataFrame, it has no Kafka consumer
outside Spark), point-in-time join of 1M entity rows.
Needs `.ci/services start` (Kafka, Redis). Feast runs in its own venv (created on first use under
~/.cache/ferry-bench/feast-venv with `pip install feast[redis]`), driven by the script in FEAST_SCRIPT.
Writes benchmarks/results/featurestore.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from featurestore.demo import applicant_feature_group, load_applicants
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore
from featurestore.training import point_in_time_join
from ferry.demo import make_credit_data, model_matrix

log = logging.getLogger("benchmarks.featurestore")
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "featurestore.json"
REDIS_URL = os.environ.get("FERRY_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KAFKA = os.environ.get("FERRY_BENCH_KAFKA", "127.0.0.1:9092")
FEATURES = ["age", "income", "debt_ratio", "credit_history_months", "num_open_accounts", "loan_amount",
            "employment_code", "housing_code"]
T0 = 1_767_225_600.0


def online_config(backend: str) -> dict:
    return {"type": "redis", "url": REDIS_URL} if backend == "redis" else {"type": backend}


def applicants(n: int) -> pd.DataFrame:
    df = make_credit_data(n, seed=5)
    m = model_matrix(df)
    df["employment_code"] = m[:, 6].astype(int)
    df["housing_code"] = m[:, 7].astype(int)
    return df


def pct(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(a)}


def timed(fn, args_list) -> dict[str, float]:
    for a in args_list[:50]:  # warm-up
        fn(a)
    out = []
    for a in args_list:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return pct(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


# ---------------------------------------------------------------- Ferry
SERVE = """
import json, sys, uvicorn
from featurestore.api import create_app
from featurestore.demo import applicant_feature_group
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore
store = FeatureStore(FeatureStoreSettings(data_dir=sys.argv[1], online=json.loads(sys.argv[2])),
                     [applicant_feature_group(sys.argv[4])])
uvicorn.run(create_app(store), host="127.0.0.1", port=int(sys.argv[5]), log_level="warning")
"""


def ferry_online(backend: str, df: pd.DataFrame, n_get: int, n_batch: int, rng) -> dict:
    import httpx

    group = f"bench_{uuid.uuid4().hex[:6]}"
    data_dir = tempfile.mkdtemp(prefix="ferry-bench-")
    store = FeatureStore(FeatureStoreSettings(data_dir=data_dir, online=online_config(backend)),
                         [applicant_feature_group(group)])
    load_applicants(store, df, event_time=T0, group=group)
    ids = df["applicant_id"].astype(str).to_numpy()
    singles = list(rng.choice(ids, n_get))
    batches = [list(rng.choice(ids, 100, replace=False)) for _ in range(n_batch)]
    # both sides read the same 8 features; answers are checked untimed, the timed calls check the status only
    # (the Feast side does the same)
    def ident(b):
        return {"FeatureGroupName": group, "RecordIdentifiersValueAsString": b, "FeatureNames": FEATURES}

    def check_get(resp):
        return [f["FeatureName"] for f in resp["Record"]] == FEATURES

    def check_batch(resp):
        return len(resp["Records"]) == 100 and all(len(x["Record"]) == len(FEATURES) for x in resp["Records"])

    assert check_get(store.get_record(group, singles[0], FEATURES))
    assert check_batch(store.batch_get_record([ident(batches[0])]))
    out = {
        "get_inprocess": timed(lambda i: store.get_record(group, i, FEATURES), singles),
        "batch100_inprocess": timed(lambda b: store.batch_get_record([ident(b)]), batches),
    }
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, data_dir, json.dumps(online_config(backend)), "", group,
                             str(port)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_http(f"http://127.0.0.1:{port}/ping")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            def get(i):
                r = c.get(f"/FeatureGroup/{group}", params=[("RecordIdentifierValueAsString", i)] + [
                    ("FeatureName", f) for f in FEATURES])
                assert r.status_code == 200
                return r

            def batch(b):
                r = c.post("/BatchGetRecord", json={"Identifiers": [ident(b)]})
                assert r.status_code == 200
                return r

            assert check_get(get(singles[0]).json()) and check_batch(batch(batches[0]).json())
            out["get_http"] = timed(get, singles)
            out["batch100_http"] = timed(batch, batches)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if backend == "redis":
        store.online.drop_group(store.group(group))
    store.close()
    return out


def _stream(n: int) -> tuple[str, str, object]:
    """A fresh topic holding n applicant records (fresh, out-of-order event times); returns topic, group, spec."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"ferry.bench.{uuid.uuid4().hex[:8]}"
    group = "ing" + topic.rsplit(".", 1)[1]
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics([NewTopic(topic, 6, 1)])  # 6 partitions: 1, 2 and 3 workers get equal shares
    admin.close()
    spec = applicant_feature_group(group).model_copy(update={"topic": topic})
    rows = applicants(20000).drop(columns=["approved"]).to_dict("records")
    producer = KafkaProducer(bootstrap_servers=KAFKA, linger_ms=20, batch_size=512 * 1024)
    rng = np.random.default_rng(1)
    ets = T0 + rng.permutation(n) * (3600.0 / n)  # a stream: fresh events, out of order within the hour
    for i in range(n):
        r = dict(rows[i % len(rows)])
        r["event_time"] = float(ets[i])
        producer.send(topic, key=str(r["applicant_id"]).encode(), value=json.dumps(r).encode())
    producer.flush()
    producer.close()
    return topic, group, spec


def _drop_topic(topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.delete_topics([topic])
    admin.close()


def ferry_ingest(backend: str, n: int, processes: int) -> dict:
    """`ferry features ingest --processes N` from Kafka to both stores; records/s from the first to the last
    committed offset (so group joins before the first commit are not counted, rebalances after it are)."""
    from kafka.admin import KafkaAdminClient

    topic, group, spec = _stream(n)
    tmp = Path(tempfile.mkdtemp(prefix="ferry-bench-ing-"))
    cfg = tmp / "ferry.yaml"
    cfg.write_text(json.dumps({"kafka": {"bootstrap_servers": KAFKA}, "redis": {"url": REDIS_URL},
                               "feature_groups": [spec.model_dump(mode="json", exclude_none=True)]}))
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg),
                             "--data-dir", str(tmp / "fs"), "--online", backend, "--consumer-group", group,
                             "--processes", str(processes), "--until-idle", "2"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)

    def committed() -> int:
        return sum(o.offset for tp, o in admin.list_group_offsets(group).get(group, {}).items() if tp.topic == topic)

    deadline = time.time() + 600
    first = 0
    while first == 0 and time.time() < deadline:
        first = committed()
        time.sleep(0.01)
    start = time.perf_counter()
    done = first
    while done < n and time.time() < deadline:
        time.sleep(0.01)
        done = committed()
    elapsed = time.perf_counter() - start
    admin.close()
    proc.wait(timeout=120)
    _drop_topic(topic)
    if backend == "redis":
        FeatureStore(FeatureStoreSettings(data_dir=str(tmp / "fs"), online=online_config("redis")),
                     [spec]).online.drop_group(spec)
    return {"records": n, "processes": processes, "records_per_s": (done - first) / elapsed if done >= n else 0.0}


def ferry_pit(n_ids: int, versions: int, n_entities: int) -> dict:
    spec = applicant_feature_group("pit")
    root = tempfile.mkdtemp(prefix="ferry-bench-pit-")
    store = FeatureStore(FeatureStoreSettings(data_dir=root), [spec])
    feat_df, ent_df = pit_data(n_ids, versions, n_entities)
    for v in range(versions):
        part = feat_df.iloc[v * n_ids:(v + 1) * n_ids]
        load_applicants_at(store, part)
    t = time.perf_counter()
    out = point_in_time_join(store.offline(spec), spec, ent_df, features=FEATURES)
    elapsed = time.perf_counter() - t
    assert len(out) == n_entities
    feat_df.to_parquet(Path(root) / "features.parquet")
    ent_df.to_parquet(Path(root) / "entities.parquet")
    return {"seconds": elapsed, "entity_rows": n_entities, "feature_rows": len(feat_df),
            "matched": int(out["income"].notna().sum()), "_root": root}


def pit_data(n_ids: int, versions: int, n_entities: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = applicants(n_ids).drop(columns=["approved"])
    rng = np.random.default_rng(2)
    parts = []
    for v in range(versions):
        p = base.copy()
        p["income"] = p["income"] * (1 + 0.01 * v)
        p["event_time"] = T0 + v * 86400 + rng.integers(0, 86400, n_ids).astype(float)
        parts.append(p)
    feat = pd.concat(parts, ignore_index=True)
    ents = pd.DataFrame({"applicant_id": rng.integers(1, n_ids + 1, n_entities),
                         "event_timestamp": pd.to_datetime(T0 + rng.integers(0, versions * 86400, n_entities),
                                                           unit="s", utc=True)})
    return feat, ents


def load_applicants_at(store: FeatureStore, part: pd.DataFrame) -> None:
    spec = store.group("pit")
    parser = store.parser("pit")
    cols = [c for c in spec.feature_names if c in part.columns]
    recs = [parser.parse(r) for r in part[cols].to_dict("records")]
    store.write_batch(spec, recs, targets=("OfflineStore",))


# ---------------------------------------------------------------- Feast (its own venv)
FEAST_SCRIPT = r'''
import json, os, socket, subprocess, sys, tempfile, time
from datetime import timedelta
import numpy as np, pandas as pd
P = json.loads(sys.argv[1])
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64, Int64

def pct(xs):
    a = np.asarray(xs) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(a)}

def timed(fn, args):
    for a in args[:50]:
        fn(a)
    out = []
    for a in args:
        t = time.perf_counter(); fn(a); out.append(time.perf_counter() - t)
    return pct(out)

FEATURES = P["features"]
INT = {"age", "employment_code", "housing_code"}

def repo(online, source_path):
    d = tempfile.mkdtemp(prefix="feast-bench-")
    online_cfg = ("  type: sqlite\n  path: " + d + "/online.db\n" if online == "sqlite" else
                  "  type: redis\n  connection_string: \"" + P["redis"] + "\"\n")
    open(d + "/feature_store.yaml", "w").write(
        "project: bench\nregistry: " + d + "/registry.db\nprovider: local\nonline_store:\n" + online_cfg
        + "offline_store:\n  type: " + P.get("offline", "dask") + "\nentity_key_serialization_version: 3\n")
    store = FeatureStore(repo_path=d)
    ent = Entity(name="applicant", join_keys=["applicant_id"])
    src = FileSource(path=source_path, timestamp_field="event_timestamp")
    fv = FeatureView(name="applicants", entities=[ent], ttl=timedelta(0), online=True, source=src,
                     schema=[Field(name=f, dtype=Int64 if f in INT else Float64) for f in FEATURES])
    store.apply([ent, fv])
    return d, store

refs = ["applicants:" + f for f in FEATURES]
out = {}
df = pd.read_parquet(P["online_data"])
df["event_timestamp"] = pd.to_datetime(df["event_time"], unit="s", utc=True)
df = df[["applicant_id", "event_timestamp"] + FEATURES]
rng = np.random.default_rng(0)
ids = df["applicant_id"].to_numpy()
singles = [int(i) for i in rng.choice(ids, P["n_get"])]
batches = [[int(i) for i in rng.choice(ids, 100, replace=False)] for _ in range(P["n_batch"])]
src_path = P["online_data_feast"]
df.to_parquet(src_path)
for online in ("sqlite", "redis"):
    d, store = repo(online, src_path)
    t = time.perf_counter()
    store.write_to_online_store("applicants", df)
    res = {"write_records_per_s": len(df) / (time.perf_counter() - t)}
    res["get_inprocess"] = timed(lambda i: store.get_online_features(features=refs, entity_rows=[{"applicant_id": i}]).to_dict(), singles)
    res["batch100_inprocess"] = timed(lambda b: store.get_online_features(features=refs, entity_rows=[{"applicant_id": i} for i in b]).to_dict(), batches)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    feast_bin = os.path.join(os.path.dirname(sys.executable), "feast")
    proc = subprocess.Popen([feast_bin, "-c", d, "serve", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(d + "/serve.log", "w"))
    try:
        import httpx
        deadline = time.time() + 120
        while True:
            try:
                httpx.get("http://127.0.0.1:%d/health" % port, timeout=1.0); break
            except httpx.HTTPError:
                if time.time() > deadline: raise
                time.sleep(0.2)
        with httpx.Client(base_url="http://127.0.0.1:%d" % port) as c:
            def get(i):
                r = c.post("/get-online-features", json={"features": refs, "entities": {"applicant_id": [i]}})
                assert r.status_code == 200, r.text
            def batch(b):
                r = c.post("/get-online-features", json={"features": refs, "entities": {"applicant_id": b}})
                assert r.status_code == 200, r.text
            first = c.post("/get-online-features", json={"features": refs, "entities": {"applicant_id": batches[0]}}).json()
            assert len(first["results"]) == len(refs) + 1 and all(len(x["values"]) == 100 for x in first["results"])
            res["get_http"] = timed(get, singles)
            res["batch100_http"] = timed(batch, batches)
    except Exception as e:
        res["http_error"] = repr(e) + " / server log: " + open(d + "/serve.log").read()[-1500:]
    finally:
        proc.terminate(); proc.wait(timeout=30)
    out[online] = res
if P.get("pit_root"):
    feat = pd.read_parquet(P["pit_root"] + "/features.parquet")
    feat["event_timestamp"] = pd.to_datetime(feat["event_time"], unit="s", utc=True)
    path = P["pit_root"] + "/feast_features.parquet"
    feat[["applicant_id", "event_timestamp"] + FEATURES].to_parquet(path)
    ents = pd.read_parquet(P["pit_root"] + "/entities.parquet")
    d, store = repo("sqlite", path)
    t = time.perf_counter()
    try:
        res = store.get_historical_features(entity_df=ents, features=refs).to_df()
        out["pit"] = {"seconds": time.perf_counter() - t, "entity_rows": len(ents), "matched": int(res["income"].notna().sum())}
    except Exception as e:
        out["pit"] = {"error": repr(e)[:300], "seconds": time.perf_counter() - t}
print("FEAST_RESULT " + json.dumps(out))
'''


def feast_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    venv = Path.home() / ".cache" / "ferry-bench" / "feast-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        log.info("creating the Feast venv at %s", venv)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "feast[redis]", "httpx"], check=True)
    return str(py)


def run_feast(py: str, df: pd.DataFrame, n_get: int, n_batch: int, pit_root: str | None, timeout: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="feast-in-"))
    online = tmp / "online.parquet"
    df.assign(event_time=T0).to_parquet(online)
    redis_hostport = REDIS_URL.split("//", 1)[1].rsplit("/", 1)[0]
    params = {"features": FEATURES, "redis": redis_hostport, "online_data": str(online),
              "online_data_feast": str(tmp / "feast_online.parquet"), "n_get": n_get, "n_batch": n_batch,
              "pit_root": pit_root, "offline": "dask"}
    try:
        proc = subprocess.run([py, "-c", FEAST_SCRIPT, json.dumps(params)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"Feast run did not finish in {timeout:.0f}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("FEAST_RESULT "):
            return json.loads(line.removeprefix("FEAST_RESULT "))
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


# ---------------------------------------------------------------- report
def table(res: dict) -> str:
    f, fe = res["ferry"], res.get("feast", {})

    def cell(d, *path, unit="ms", key="p99_ms"):
        for p in path:
            d = d.get(p, {}) if isinstance(d, dict) else {}
        if not d or (key not in d):
            return "n/a"
        v = d[key]
        return f"{v:,.0f}" if unit == "rec/s" else (f"{v:.2f}" if unit == "s" else f"{v:.3f}")

    rows = ["| line | Ferry SQLite | Feast SQLite | Ferry Redis | Feast Redis | target |",
            "|---|---|---|---|---|---|"]
    for label, key, tgt in [("GetRecord in-process", "get_inprocess", "p99 < 1 ms"),
                            ("BatchGetRecord(100) in-process", "batch100_inprocess", ""),
                            ("GetRecord over HTTP", "get_http", "p99 < 3 ms"),
                            ("BatchGetRecord(100) over HTTP", "batch100_http", "")]:
        for q in ("p50_ms", "p99_ms"):
            rows.append(f"| {label} {q[:3]} (ms) | {cell(f, 'sqlite', key, key=q)} | {cell(fe, 'sqlite', key, key=q)} "
                        f"| {cell(f, 'redis', key, key=q)} | {cell(fe, 'redis', key, key=q)} | "
                        f"{tgt if q == 'p99_ms' else ''} |")
    for procs in (1, 2, 3):
        rows.append(f"| ingestion, records/s (Ferry: Kafka -> both stores, {procs} worker process(es); "
                    f"Feast: write_to_online_store of a DataFrame) | "
                    f"{cell(f, f'ingest_sqlite_{procs}p', unit='rec/s', key='records_per_s')} | "
                    f"{cell(fe, 'sqlite', unit='rec/s', key='write_records_per_s')} | "
                    f"{cell(f, f'ingest_redis_{procs}p', unit='rec/s', key='records_per_s')} | "
                    f"{cell(fe, 'redis', unit='rec/s', key='write_records_per_s')} | >= 20,000 |")
    pit_n = f.get("pit", {}).get("entity_rows", 0)
    rows.append(f"| point-in-time join, {pit_n:,} entity rows (s) | {cell(f, 'pit', unit='s', key='seconds')} | "
                f"{cell(fe, 'pit', unit='s', key='seconds')} | | | |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    ap.add_argument("--feast-python", default=os.environ.get("FERRY_FEAST_PYTHON"))
    ap.add_argument("--no-feast", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    q = args.quick
    n_get, n_batch = (500, 100) if q else (3000, 300)
    n_ingest = 20_000 if q else 100_000
    pit = (2000, 5, 100_000) if q else (20_000, 10, 1_000_000)
    rng = np.random.default_rng(0)
    df = applicants(10_000).drop(columns=["approved"])
    res: dict = {"machine": {"cpus": os.cpu_count()}, "params": {"n_get": n_get, "n_batch": n_batch,
                                                                 "n_ingest": n_ingest, "pit": pit}, "ferry": {}}
    for backend in ("sqlite", "redis"):
        log.info("Ferry online %s", backend)
        res["ferry"][backend] = ferry_online(backend, df, n_get, n_batch, rng)
        for procs in (1, 2, 3):
            log.info("Ferry ingestion %s, %d process(es)", backend, procs)
            res["ferry"][f"ingest_{backend}_{procs}p"] = ferry_ingest(backend, n_ingest, procs)
    log.info("Ferry point-in-time join")
    res["ferry"]["pit"] = ferry_pit(*pit)
    pit_root = res["ferry"]["pit"].pop("_root")
    if not args.no_feast:
        log.info("Feast (its own venv)")
        res["feast"] = run_feast(feast_python(args.feast_python), df, n_get, n_batch, pit_root, timeout=1800)
    md = table(res)
    res["table"] = md
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1))
    sys.stdout.write(md + "\n")


if __name__ == "__main__":
    main()
