"""The Ray Data actor of a transform job: one onnxruntime session behind a data plane, one chunk of input
per call.

A chunk is a byte range of one input file, widened to whole lines: it owns the lines that start inside
it. Its records go to the data plane in requests as SageMaker's BatchStrategy packs them. A request that
fails is split in halves until the records that fail are alone, so a bad record costs a few calls, is
reported with its line, and the others are answered.
"""

from __future__ import annotations

import asyncio
import time

import fsspec
import numpy as np
import orjson

from core.errors import FerryError
from serving.adapters.transform import Lines, TransformExchange
from serving.dataplane import DataPlane
from serving.endpoint import Endpoint
from serving.transform import jsonpath
from serving.transform.spec import TransformJob
from serving.variants import ModelRunner

VARIANT = "AllTraffic"


def read_chunk(path: str, start: int, end: int, whole: bool) -> bytes:
    """The bytes of the lines starting in [start, end) (the whole file when `whole`)."""
    with fsspec.open(path, "rb") as f:
        if whole:
            return f.read()
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":
                f.readline()  # the line running into this chunk belongs to the previous one
        pos = f.tell()
        if pos >= end:
            return b""
        data = f.read(end - pos)
        if data and not data.endswith(b"\n"):
            data += f.readline()
        return data


def split_lines(data: bytes) -> tuple[list[bytes], range | list[int]]:
    """The lines of a chunk (without `\n` or `\r\n`) and the indexes of those that are records (not blank).
    A chunk without `\r` or whitespace (the common case: numbers and commas) is split without a pass per line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not any(c in data for c in (b"\r", b" ", b"\t", b"\x0b", b"\x0c")):
        if b"\n\n" not in data and not data.startswith(b"\n"):
            return lines, range(len(lines))
        return lines, [i for i, ln in enumerate(lines) if ln]
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    return lines, [i for i, ln in enumerate(lines) if ln.strip()]  # blank lines are not records


def plain_lines(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """(starts, ends) offsets of the lines of a chunk whose lines are all records - no blank line, no `\r`
    or whitespace (the common case: numbers and commas) - found without a Python object per line; None
    otherwise (split_lines handles it)."""
    if not data or data.startswith(b"\n") or b"\n\n" in data or any(
            c in data for c in (b"\r", b" ", b"\t", b"\x0b", b"\x0c")):
        return None
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    if not data.endswith(b"\n"):  # the file's last line, without a line end
        ends = np.append(ends, len(data))
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return starts, ends


def batches(sizes: np.ndarray, limit: int, single: bool) -> list[tuple[int, int]]:
    """[start, stop) record ranges of the requests: one record each, or as many as fit in `limit` bytes
    (a record alone above the limit is its own request, which the data plane refuses with the reason)."""
    n = len(sizes)
    if single:
        return [(i, i + 1) for i in range(n)]
    ends = np.cumsum(sizes + 1)  # each record and its line end
    out, start, base = [], 0, 0
    while start < n:
        stop = max(int(np.searchsorted(ends, base + limit + 1, side="right")), start + 1)
        out.append((start, stop))
        base = int(ends[stop - 1])
        start = stop
    return out


class TransformWorker:
    """`map_batches` callable: chunk descriptors in, output bytes and failures out."""

    def __init__(self, job_json: str):
        self.job = TransformJob.model_validate_json(job_json)
        runner = ModelRunner(self.job.model, VARIANT)
        self.plane = DataPlane({self.job.name: Endpoint(self.job.name, {VARIANT: runner}, {VARIANT: 1.0})},
                               max_payload_bytes=int(self.job.max_payload_mb * 1024 * 1024))
        self.filters = (jsonpath.parse(self.job.input_filter), jsonpath.parse(self.job.output_filter))
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: [] for k in ("file", "chunk", "lines", "done", "output", "failures", "seconds", "bytes")}
        for i in range(len(batch["path"])):
            start = time.perf_counter()
            body, lines, done, failures = self.loop.run_until_complete(self.chunk(
                str(batch["path"][i]), int(batch["start"][i]), int(batch["end"][i])))
            out["file"].append(int(batch["file"][i]))
            out["chunk"].append(int(batch["chunk"][i]))
            out["lines"].append(lines)
            out["done"].append(done)
            out["output"].append(body)
            out["failures"].append(orjson.dumps(failures))
            out["seconds"].append(time.perf_counter() - start)
            out["bytes"].append(int(batch["end"][i]) - int(batch["start"][i]))
        return {k: np.array(v, dtype=object if k in ("output", "failures") else None) for k, v in out.items()}

    async def chunk(self, path: str, start: int, end: int) -> tuple[bytes, int, int, list[tuple[int | None, str]]]:
        """(output bytes, lines in the chunk, records answered, [(line in the chunk or None: the file, reason)])."""
        try:
            data = read_chunk(path, start, end, self.job.split_type == "None")
        except OSError as err:
            return b"", 0, 0, [(None, f"cannot read {path}: {err}")]
        if self.job.split_type == "None":
            ex = TransformExchange(self.job, [data], self.filters)
            try:
                await self.plane.infer(ex)
            except FerryError as err:
                return b"", 0, 0, [(None, err.error.message)]
            return ex.response, 0, 1, []
        plain = plain_lines(data)
        if plain is not None:  # the records are the lines: requests are cut out of the chunk by offsets
            starts, ends = plain
            keep = range(len(starts))
            sizes = ends - starts

            def records(a: int, b: int) -> Lines:
                return Lines(data[starts[a]:ends[b - 1]], b - a)
            n_lines = len(starts)
        else:
            lines, keep = split_lines(data)
            listed = lines if isinstance(keep, range) else [lines[i] for i in keep]
            sizes = np.fromiter(map(len, listed), dtype=np.int64, count=len(listed))

            def records(a: int, b: int) -> list[bytes]:
                return listed[a:b]
            n_lines = len(lines)
        outputs: list[bytes] = []  # each request's answers, joined by line ends
        failures: list[tuple[int | None, str]] = []
        done = 0
        for a, b in batches(sizes, self.plane.max_payload_bytes, self.job.batch_strategy == "SingleRecord"):
            done += await self._run(records, keep, a, b, outputs, failures)
        body = b"\n".join(outputs) + b"\n" if outputs else b""
        return body, n_lines, done, failures

    async def _run(self, records, keep, a, b, outputs, failures) -> int:
        """Answer records a..b (appended to outputs) and return how many were answered."""
        ex = TransformExchange(self.job, records(a, b), self.filters)
        try:
            await self.plane.infer(ex)
        except FerryError as err:
            if b - a == 1:
                failures.append((keep[a], err.error.message))
                return 0
            mid = (a + b) // 2  # halve until the failing records are alone
            return (await self._run(records, keep, a, mid, outputs, failures)
                    + await self._run(records, keep, mid, b, outputs, failures))
        outputs.append(ex.block)
        return ex.count
