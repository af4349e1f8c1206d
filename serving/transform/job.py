"""Run a transform job on Ray Data, keep its record, skip what a previous run finished.

    record = run_transform(TransformJob(model=ModelSpec(name="m", path="model.onnx"), input="in/",
                                        output="out/"))

The input (a file, a folder or an fsspec prefix) is cut into chunks of whole lines; Ray Data maps them
over onnxruntime sessions (serving.transform.worker) with the order kept - on Ray tasks by default
(`compute="core"`, serving.transform.tasks: each Ray worker process imports and loads the session once and
keeps it for its next tasks and for this driver's next job of the same model and options), on Ray Data tasks
(`compute="tasks"`) or on a Ray Data actor pool made for the job (`compute="actors"`) - and this
process writes each file's answers to `<output>/<input relative path>.out` as they arrive. The job record,
`<output>/transform-job.json`, is rewritten after each file: status, rows done and failed, seconds, each
file's output and fingerprint. A rerun of the same job skips the files recorded as completed whose input
is unchanged; failed records are listed with their file and line in `<output>/<input>.failed.jsonl` (and
the first ones in the record), and a file with failures is done again by the next run.
"""

from __future__ import annotations

import logging
import math
import os
import time

import orjson
from fsspec.core import url_to_fs

from serving.transform.spec import TransformJob

log = logging.getLogger(__name__)
RECORD = "transform-job.json"
RUN_ONLY = {"model", "name", "input", "output", "max_concurrent_transforms", "chunk_mb", "compute"}  # not in what a file's output is
FIRST_FAILURES = 100  # failures quoted in the record; all of them are in the .failed.jsonl files


def run_transform(job: TransformJob, address: str | None = None, progress: bool = False) -> dict:
    """Run `job` (on the Ray at `address`, the Ray this process already joined, or a local one) and
    return its record. `progress` draws a rich progress bar (on a terminal)."""
    fs_in, root_in = url_to_fs(job.input)
    fs_out, root_out = url_to_fs(job.output)
    inputs = _inputs(fs_in, root_in, fs_out, root_out)
    fs_out.makedirs(root_out, exist_ok=True)
    record = _previous(fs_out, root_out, job) or _new(job)
    record.update(status="InProgress", started_at=time.time(), finished_at=None)
    todo = [f for f in inputs if not _finished(record, f)]
    for f in inputs:
        if f not in todo:
            log.info("%s: finished by a previous run, skipped", f["name"])
    _save(fs_out, root_out, record)
    started = time.perf_counter()
    try:
        if todo:
            _run(job, todo, record, fs_out, root_out, address, progress)
    except BaseException as err:
        record.update(status="Failed", reason=f"{type(err).__name__}: {err}"[:500], finished_at=time.time())
        _save(fs_out, root_out, record)
        raise
    files = record["files"].values()
    record.update(status="CompletedWithFailures" if any(f["rows_failed"] for f in files) else "Completed",
                  finished_at=time.time(), seconds=round(time.perf_counter() - started, 3),
                  rows={"done": sum(f["rows_done"] for f in files), "failed": sum(f["rows_failed"] for f in files)},
                  reason=None)
    _save(fs_out, root_out, record)
    return record


def job_status(output: str) -> dict | None:
    """The record of the job whose output is `output`, or None."""
    fs, root = url_to_fs(output)
    path = f"{root.rstrip('/')}/{RECORD}"
    return orjson.loads(fs.cat_file(path)) if fs.exists(path) else None


# --- inputs and the record

def _inputs(fs, root: str, fs_out, root_out: str) -> list[dict]:
    """Each input file: uri, name relative to the input, size, fingerprint (the output folder left out)."""
    if fs.isdir(root):
        out_root = root_out.rstrip("/") + "/" if type(fs) is type(fs_out) else None
        paths = sorted(p for p in fs.find(root) if not (out_root and p.startswith(out_root))
                       and not os.path.basename(p).startswith("."))
        names = [os.path.relpath(p, root) for p in paths]
    elif fs.isfile(root):
        paths, names = [root], [os.path.basename(root)]
    else:
        raise FileNotFoundError(f"transform input {root!r} is neither a file nor a folder")
    if not paths:
        raise FileNotFoundError(f"transform input {root!r} holds no files")
    return [{"uri": fs.unstrip_protocol(p), "name": n, "size": fs.size(p), "fingerprint": str(fs.checksum(p))}
            for p, n in zip(paths, names)]


def _new(job: TransformJob) -> dict:
    return {"name": job.name, "model": job.model.path, "input": job.input, "output": job.output,
            "options": job.model_dump(exclude=RUN_ONLY), "status": "InProgress",
            "rows": {"done": 0, "failed": 0}, "seconds": 0.0, "files": {}, "failures": []}


def _previous(fs, root: str, job: TransformJob) -> dict | None:
    """The record of an earlier run of the same job (same model and options), else None (a fresh start)."""
    path = f"{root.rstrip('/')}/{RECORD}"
    if not fs.exists(path):
        return None
    old = orjson.loads(fs.cat_file(path))
    fresh = _new(job)
    if (old.get("model"), old.get("options")) != (fresh["model"], fresh["options"]):
        log.info("the job record in %s is of another model or options: every file is done again", root)
        return None
    return old


def _finished(record: dict, f: dict) -> bool:
    done = record["files"].get(f["name"])
    return bool(done) and done["status"] == "Completed" and done["fingerprint"] == f["fingerprint"]


def _save(fs, root: str, record: dict) -> None:
    path = f"{root.rstrip('/')}/{RECORD}"
    with fs.open(path + ".tmp", "wb") as out:
        out.write(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    fs.mv(path + ".tmp", path)


# --- the run

def _chunks(job: TransformJob, files: list[dict]) -> list[dict]:
    size = max(1, int(job.chunk_mb * 1024 * 1024))
    out = []
    for i, f in enumerate(files):
        n = 1 if job.split_type == "None" else max(1, math.ceil(f["size"] / size))
        out += [{"file": i, "chunk": k, "path": f["uri"], "start": k * size,
                 "end": f["size"] if k == n - 1 else (k + 1) * size} for k in range(n)]
    return out


def _run(job: TransformJob, files: list[dict], record: dict, fs, root: str, address: str | None,
         progress: bool) -> None:
    import ray

    started_ray = not ray.is_initialized()
    if started_ray:
        _join_ray(address)
    try:
        chunks = _chunks(job, files)
        workers = min(job.max_concurrent_transforms or max(1, int(ray.available_resources().get("CPU", 1))),
                      len(chunks))
        # what a worker needs (not where the job reads and writes: the next job of the same model and options
        # finds the session a worker process kept)
        worker_job = job.model_copy(update={"input": "", "output": ""}).model_dump_json()
        if job.compute == "core":
            rows = _core_rows(chunks, worker_job, workers)
        else:
            rows = _ray_data_rows(job.compute, chunks, worker_job, workers)
        left = {i: sum(1 for c in chunks if c["file"] == i) for i in range(len(files))}
        with _Progress(progress, sum(f["size"] for f in files)) as bar:
            writer = _Writer(fs, root, files, record)
            for row in rows:
                writer.add(row)
                bar.advance(int(row["bytes"]))
                left[int(row["file"])] -= 1
                if not left[int(row["file"])]:
                    writer.close(int(row["file"]))
    finally:
        if started_ray:
            ray.shutdown()


def _core_rows(chunks: list[dict], worker_job: str, workers: int):
    """The chunks' answers in order, from Ray tasks (`compute="core"`): `workers` tasks at once (one session
    per worker: MaxConcurrentTransforms), a finished one replaced at once by the next chunk; answers that
    arrive ahead of their turn wait here, at most 2 x workers chunks ahead of the one being written."""
    import ray

    from serving.transform.tasks import run_chunk

    task = ray.remote(run_chunk).options(num_cpus=1, name="transform_chunks", max_retries=3,
                                         scheduling_strategy="SPREAD")  # over every node of a cluster
    running: dict = {}  # ObjectRef -> chunk index
    done: dict[int, dict] = {}
    submitted = written = 0
    while written < len(chunks):
        while submitted < len(chunks) and len(running) < workers and submitted - written < 2 * workers:
            running[task.remote(chunks[submitted], worker_job)] = submitted
            submitted += 1
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            done[running.pop(ref)] = ray.get(ref)
        while written in done:
            yield done.pop(written)
            written += 1


def _ray_data_rows(compute: str, chunks: list[dict], worker_job: str, workers: int):
    """The chunks' answers in order, from Ray Data: map_batches on tasks (each Ray worker process keeps the
    session for its next tasks) or on an actor pool made for the job."""
    import ray
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True  # outputs in input order, written as they come
    ctx.enable_progress_bars = False
    items = ray.data.from_items(chunks, override_num_blocks=len(chunks))
    if compute == "tasks":
        from serving.transform.tasks import transform_chunks

        ds = items.map_batches(transform_chunks, fn_kwargs={"job_json": worker_job}, batch_size=1,
                               compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1)
    else:
        from serving.transform.worker import TransformWorker

        ds = items.map_batches(TransformWorker, fn_constructor_args=(worker_job,), batch_size=1,
                               compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    yield from ds.iter_rows()


def _join_ray(address: str | None) -> None:
    """Join the Ray at `address`, else the one RAY_ADDRESS names, else the one `ray start` left running on this
    machine (Ray's own rule: no start-up to pay), else start a lean local Ray for the job: no dashboard, no
    usage report, the job's logs kept out of the terminal."""
    import ray

    if address is None and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=False)
    log.info("transform on Ray %s (%s CPUs)", ray.get_runtime_context().gcs_address,
             ray.cluster_resources().get("CPU", 0))


class _Writer:
    """Appends each file's chunks to `<name>.out.tmp` in order; on the file's last chunk, renames it to
    `<name>.out`, writes its failures and updates the record."""

    def __init__(self, fs, root: str, files: list[dict], record: dict):
        self.fs, self.root, self.files, self.record = fs, root.rstrip("/"), files, record
        self.open: dict[int, dict] = {}

    def add(self, row: dict) -> None:
        i = int(row["file"])
        state = self.open.get(i)
        if state is None:
            out = f"{self.root}/{self.files[i]['name']}.out"
            self.fs.makedirs(os.path.dirname(out) or self.root, exist_ok=True)
            state = self.open[i] = {"out": out, "handle": self.fs.open(out + ".tmp", "wb"), "line": 0, "done": 0,
                                    "failures": [], "seconds": 0.0}
        state["handle"].write(row["output"])
        for line, reason in orjson.loads(row["failures"]):
            state["failures"].append({"file": self.files[i]["name"],
                                      "line": None if line is None else state["line"] + line + 1, "reason": reason})
        state["line"] += int(row["lines"])
        state["done"] += int(row["done"])
        state["seconds"] += float(row["seconds"])

    def close(self, i: int) -> None:
        state = self.open.pop(i)
        state["handle"].close()
        self.fs.mv(state["out"] + ".tmp", state["out"])
        f = self.files[i]
        failed_path = f"{self.root}/{f['name']}.failed.jsonl"
        failures = state["failures"]
        if failures:
            with self.fs.open(failed_path, "wb") as out:
                out.write(b"".join(orjson.dumps(x) + b"\n" for x in failures))
            log.warning("%s: %d record(s) failed, first: line %s: %s", f["name"], len(failures),
                        failures[0]["line"], failures[0]["reason"])
        elif self.fs.exists(failed_path):
            self.fs.rm(failed_path)
        rows_failed = len(failures)
        self.record["files"][f["name"]] = {
            "output": state["out"], "status": "CompletedWithFailures" if failures else "Completed",
            "rows_done": state["done"], "rows_failed": rows_failed, "fingerprint": f["fingerprint"],
            "seconds": round(state["seconds"], 3), "failures": f"{f['name']}.failed.jsonl" if failures else None}
        quoted = [x for x in self.record["failures"] if x["file"] != f["name"]]
        self.record["failures"] = (quoted + failures)[:FIRST_FAILURES]
        files = self.record["files"].values()
        self.record["rows"] = {"done": sum(x["rows_done"] for x in files), "failed": sum(x["rows_failed"] for x in files)}
        _save(self.fs, self.root, self.record)
        log.info("%s: %d rows -> %s (%d failed)", f["name"], state["done"], state["out"], rows_failed)


class _Progress:
    """A rich progress bar over the input bytes when asked for (on a terminal), else nothing."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress("transform", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                                    console=console)
                self.task = self.bar.add_task("transform", total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


__all__ = ["RECORD", "job_status", "run_transform"]
