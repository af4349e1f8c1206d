"""What a Ray worker process runs for a transform job: a Ray task per chunk (`compute="core"`, the default,
`run_chunk`) or Ray Data tasks (`compute="tasks"`, `transform_chunks`).

This module is light on purpose: the driver imports it only to name these functions to Ray, and the
heavy modules (Ray Data, pyarrow, onnxruntime, the data plane) load in the worker process, once. A worker
process keeps the job's `TransformWorker` (its onnxruntime session behind a data plane) for its next tasks,
and for the next job of the same model and options that this driver runs.
"""

from __future__ import annotations

_CACHED: dict = {}  # per worker process: the last job's TransformWorker (Ray reuses task processes)


def worker_for(job_json: str):
    """This process's TransformWorker for the job (one job's session per process: a long-lived Ray does not
    collect models)."""
    worker = _CACHED.get(job_json)
    if worker is None:
        from serving.transform.worker import TransformWorker

        _CACHED.clear()
        worker = _CACHED[job_json] = TransformWorker(job_json)
    return worker


def transform_chunks(batch: dict, job_json: str) -> dict:
    """`map_batches` function for Ray Data tasks: the process's worker for this job, one chunk per call."""
    return worker_for(job_json)(batch)


def run_chunk(chunk: dict, job_json: str) -> dict:
    """A Ray task (`compute="core"`): one chunk descriptor in, its answer row out (the shape of a Ray Data row)."""
    import numpy as np

    batch = {k: np.array([v]) for k, v in chunk.items()}
    return {k: v[0] for k, v in worker_for(job_json)(batch).items()}
