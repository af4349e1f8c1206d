"""Read SageMaker capture JSONL (a file or a folder of them) into a DataFrame for the monitors.

Each payload is read back by the codec of its content type (core.payloads: the same codecs the server
used to decode and encode it), so whatever any protocol captured - SageMaker CSV/JSON/NPY, KServe V2
JSON or binary, gRPC - reads into rows. Input columns are named by ``input_columns`` (else _c0, _c1, ...),
output columns by ``output_columns`` (else prediction, or prediction_0, prediction_1, ... whatever the
protocol). Each row keeps its record's eventId, inferenceId,
inferenceTime and variant. What cannot be read is skipped and counted by reason, never raised.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import pandas as pd

from core import capture, payloads

log = logging.getLogger(__name__)
METADATA_COLUMNS = ("eventId", "inferenceId", "inferenceTime", "variant")


CHUNK_RECORDS = 2048  # records parsed at a time: the reader holds one chunk of parsed JSON, never a whole file


def iter_chunks(path: Path, start: datetime | None = None, end: datetime | None = None,
                skipped: Counter | None = None, chunk: int | None = None) -> Iterator[list[dict]]:
    """Capture records of a file or folder in lists of at most `chunk`, in file-name order, inside [start, end)
    when given; lines that are not JSON objects are counted in `skipped` (or raise ValueError without it).
    Files are streamed line by line: memory follows the chunk, not the files. Records repeated by an
    at-least-once sink are all yielded (read_capture keeps the first copy of each eventId)."""
    chunk = chunk or CHUNK_RECORDS
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if path.is_dir() and (start is not None or end is not None):
        files = [f for f in files if _hour_may_overlap(f, start, end)]
    records: list[dict] = []
    for f in files:
        with f.open("rb") as lines:
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                    if not isinstance(record, dict):
                        raise orjson.JSONDecodeError("not an object", line.decode("utf-8", "replace"), 0)
                except orjson.JSONDecodeError as err:
                    if not line.endswith(b"\n"):  # the file's last line, without its newline yet
                        log.info("%s: last line still being written, left for the next read", f)
                        continue
                    if skipped is None:
                        raise ValueError(f"{f}:{i + 1}: not a JSON capture record: {err}") from None
                    skipped["not a JSON capture record"] += 1
                    continue
                records.append(record)
                if len(records) >= chunk:
                    yield _keep(records, start, end)
                    records = []
    if records:
        yield _keep(records, start, end)


def _keep(records: list[dict], start: datetime | None, end: datetime | None) -> list[dict]:
    """The records inside [start, end), each one's eventMetadata made a dict."""
    for r in records:
        if not isinstance(r.get("eventMetadata"), dict):
            r["eventMetadata"] = {}
    if start is None and end is None:
        return records
    times = pd.to_datetime([r["eventMetadata"].get("inferenceTime") for r in records], utc=True,
                           format="ISO8601", errors="coerce")
    keep = np.ones(len(records), dtype=bool)
    if start is not None:
        keep &= times >= _utc(start)
    if end is not None:
        keep &= times < _utc(end)
    return [r for r, k in zip(records, keep) if k]


def _strings(values: list) -> pd.Series:
    """Metadata values as an Arrow-backed string column (None stays missing): no Python object per value
    outlives the chunk it was parsed in."""
    return pd.Series(pd.array([v if v is None or isinstance(v, str) else str(v) for v in values], dtype="str"))


def _repeated(event_ids: pd.Series) -> np.ndarray:
    """True for each record whose eventId an earlier record has (at-least-once sinks may repeat a record)."""
    return (event_ids.duplicated() & event_ids.notna()).to_numpy()


def _hour_may_overlap(f: Path, start: datetime | None, end: datetime | None) -> bool:
    """False only for a file in a yyyy/mm/dd/hh folder whose hour lies outside [start, end)."""
    try:
        y, mo, d, h = (int(x) for x in f.parent.parts[-4:])
        hour = pd.Timestamp(year=y, month=mo, day=d, hour=h, tz="UTC")
    except (ValueError, TypeError):
        return True
    if start is not None and hour + pd.Timedelta(hours=1) <= _utc(start):
        return False
    return not (end is not None and hour >= _utc(end))


def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


SIDES = {"endpointInput": "input", "endpointOutput": "output"}
FALLBACK = {"CSV": "text/csv", "JSON": "application/json"}  # SageMaker's encodings, for unknown content types


def _tables(records: list[dict], key: str, skipped: Counter, offset: int = 0) -> list:
    """Rows of one side (endpointInput or endpointOutput) of a chunk of records, read by the payload codec of
    each part's content type, as (record numbers counted from `offset`, Table) pairs for _combine; what
    cannot be read is counted in `skipped` by reason."""
    side = SIDES[key]
    groups: dict[str, tuple[list[int], list[bytes], list[str]]] = {}
    for i, r in enumerate(records):
        part = (r.get("captureData") or {}).get(key)
        if not part:
            continue
        try:
            body, content_type = capture.payload(part)
        except ValueError as err:
            skipped[f"{side}: {err}"] += 1
            continue
        codec = payloads.codec_for(content_type) or payloads.codec_for(FALLBACK.get(part.get("encoding")))
        if codec is None:
            skipped[f"{side}: content type {content_type[:60]!r} has no codec"] += 1
            continue
        ids, bodies, types = groups.setdefault(codec.media_type, ([], [], []))
        ids.append(i)
        bodies.append(body)
        types.append(content_type)
    tables = []
    for media, (ids, bodies, types) in groups.items():
        table = payloads.CODECS[media].read(bodies, side, types)
        for reason, which in table.skipped.items():
            skipped[f"{side}: {reason}"] += len(which)
        if len(table.rows):
            tables.append((np.asarray(ids)[table.record] + offset, table))
    return tables


def _combine(tables: list, side: str, skipped: Counter) -> pd.DataFrame:
    """One frame from each codec's rows: names kept when every payload named the same columns, else
    positional; payloads whose width differs from the widest group's are skipped."""
    empty = pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["record", "line"]))
    if not tables:
        return empty
    width = max((t.rows.shape[1] for _, t in tables), key=lambda w: sum(len(t.rows) for _, t in tables
                                                                          if t.rows.shape[1] == w))
    kept = []
    for records, t in tables:
        if t.rows.shape[1] == width:
            kept.append((records, t))
        else:
            skipped[f"{side}: {t.rows.shape[1]} columns where the other payloads have {width}"] += len(set(records))
    names = {tuple(t.columns) if t.columns else None for _, t in kept}
    columns = list(names.pop()) if len(names) == 1 and None not in names else None
    frames, recs, lines = [], [], []
    for records, t in kept:
        df = pd.DataFrame(t.rows)
        df.columns = columns if columns else range(df.shape[1])
        frames.append(df)
        recs.append(records)
        lines.append(pd.Series(records).groupby(records).cumcount().to_numpy())
    rec, line = np.concatenate(recs), np.concatenate(lines)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    order = np.lexsort((line, rec))  # by record, then line (one MultiIndex at the end: no index per frame)
    df = df.take(order)
    df.index = pd.MultiIndex.from_arrays([rec[order], line[order]], names=["record", "line"])
    return df


def _name(df: pd.DataFrame, names: list[str] | None, default: list[str], what: str,
          keep_names: bool = True) -> pd.DataFrame:
    if names is not None:
        if len(names) != df.shape[1]:
            raise ValueError(f"{what}: payloads have {df.shape[1]} columns but {len(names)} names were given: {names}")
        return df.set_axis(names, axis=1)
    if keep_names and all(isinstance(c, str) for c in df.columns):
        return df
    return df.set_axis(default, axis=1)


def read_capture(path: str | Path, input_columns: list[str] | None = None, output_columns: list[str] | None = None,
                 start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """One row per captured payload line: input columns, output columns, then METADATA_COLUMNS.

    Payloads that cannot be read are left out and counted by reason in ``df.attrs["skipped"]`` (and logged)."""
    skipped: Counter = Counter()
    meta: dict[str, list] = {c: [] for c in METADATA_COLUMNS}
    tables: dict[str, list] = {"endpointInput": [], "endpointOutput": []}
    n = 0
    # a chunk's parsed JSON at a time; what is kept of it is compact: codec rows (numpy) and Arrow strings
    for records in iter_chunks(Path(path), start, end, skipped):
        for key, found in tables.items():
            found += _tables(records, key, skipped, offset=n)
        for c in ("eventId", "inferenceId", "inferenceTime"):
            meta[c].append(_strings([r["eventMetadata"].get(c) for r in records]))
        meta["variant"].append(_strings([r.get("variant") for r in records]))
        n += len(records)
        del records
    if not n:
        df = pd.DataFrame(columns=list(METADATA_COLUMNS))
        df.attrs["skipped"] = dict(skipped)
        return df
    inp = _combine(tables.pop("endpointInput"), "input", skipped)
    out = _combine(tables.pop("endpointOutput"), "output", skipped)
    if skipped:
        log.warning("%s: left out %s", path, "; ".join(f"{n} x {reason}" for reason, n in skipped.items()))
    inp = _name(inp, input_columns, [f"_c{i}" for i in range(inp.shape[1])], "input_columns")
    n_out = out.shape[1]
    out = _name(out, output_columns, ["prediction"] if n_out == 1 else [f"prediction_{i}" for i in range(n_out)],
                "output_columns", keep_names=False)  # positional: the same columns whatever the protocol
    if len(inp) and len(out):
        df = inp.join(out, how="left")
    else:
        df = inp if len(inp) else out
    del inp, out
    rec = df.index.get_level_values("record").to_numpy()
    df = df.reset_index(drop=True)
    for c in METADATA_COLUMNS:  # a column at a time, each chunk's strings let go once joined
        values = pd.concat(meta.pop(c), ignore_index=True)
        if c == "eventId":
            dup = _repeated(values)
        df[c] = values.iloc[rec].array
        del values
    if dup.any():  # keep each record's first copy
        df = df[~dup[rec]].reset_index(drop=True)
    df.attrs["skipped"] = dict(skipped)
    return df


def feature_frame(df: pd.DataFrame, outputs: list[str] | None = None) -> pd.DataFrame:
    """The input feature columns of a capture frame: without metadata, prediction* and the given outputs."""
    gone = [c for c in df.columns
            if c in METADATA_COLUMNS or c in (outputs or []) or (isinstance(c, str) and c.startswith("prediction"))]
    return df.drop(columns=gone)


def name_inputs(df: pd.DataFrame, names: list[str] | None, where: str = "capture") -> pd.DataFrame:
    """Give the unnamed input columns (_c0, _c1, ...) their names; the counts must agree."""
    unnamed = [c for c in df.columns if isinstance(c, str) and c.startswith("_c") and c[2:].isdigit()]
    if not unnamed or not names:
        return df
    if len(unnamed) != len(names):
        raise ValueError(f"{where}: captured payloads have {len(unnamed)} columns but {len(names)} "
                         f"names are known ({names}); set input_columns")
    return df.rename(columns=dict(zip(unnamed, names)))
