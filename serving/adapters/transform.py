"""The batch-transform front door: records read from a file, as one request to the data plane.

A `TransformExchange` carries one request of a transform job: the records SageMaker's BatchStrategy puts
in it (one for SingleRecord, as many as fit in MaxPayloadInMB for MultiRecord, a whole file for SplitType
None). It applies DataProcessing's InputFilter when decoding and JoinSource / OutputFilter when encoding,
so the data plane does the rest (limits, model call, metrics, errors) as for any other protocol.
"""

from __future__ import annotations

import io
from itertools import repeat

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pacsv

from core import payloads
from core.errors import FerryError, bad_request, model_error, too_large
from serving.dataplane import Exchange, ModelResult, Payload
from serving.transform import jsonpath
from serving.transform.spec import CSV, TransformJob


class Lines:
    """Records given as one block: `count` lines joined by line ends (none at the end). A worker cuts its
    requests out of a chunk this way when the records are exactly the chunk's lines, without a Python
    object per record."""

    __slots__ = ("body", "count")

    def __init__(self, body: bytes, count: int):
        self.body, self.count = body, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter(self.body.split(b"\n"))

    def __getitem__(self, i):
        return self.body.split(b"\n")[i]


class TransformExchange(Exchange):
    protocol = "transform"

    def __init__(self, job: TransformJob, records: list[bytes] | Lines,
                 filters: tuple[jsonpath.Path, jsonpath.Path]):
        super().__init__(job.name)
        self.job = job
        self.records = records  # without their line ends; one whole file for SplitType None
        self.input_filter, self.output_filter = filters
        self.values: list | None = None  # JSON records as parsed (JoinSource Input keeps them)
        self.block = b""  # SplitType Line: one output record per input record, joined by line ends
        self.count = 0  # records in block
        self.response = b""

    async def read(self, limit: int) -> None:
        if isinstance(self.records, Lines):
            size = len(self.records.body)
        else:
            size = sum(map(len, self.records)) + len(self.records) - 1
        if size > limit:
            what = "the file" if self.job.split_type == "None" else f"{len(self.records)} record(s)"
            raise FerryError(too_large(f"{what} take {size} bytes, above MaxPayloadInMB "
                                       f"({self.job.max_payload_mb:g} MB)"))

    def decode(self) -> Payload:
        if self.job.split_type == "None":
            decoded = payloads.codec_for(self.job.content_type).decode(self.records[0])
            return Payload(named=decoded) if isinstance(decoded, dict) else Payload(matrix=decoded)
        if self.job.content_type == CSV:
            if self.input_filter.whole:
                matrix = csv_floats(self.records)
                if matrix is not None:
                    return Payload(matrix=matrix)
            table = csv_table(self.records)
            cols = self.input_filter.columns(table.num_columns)
            return Payload(matrix=_numbers(table, cols))
        self.values = [_json(r) for r in self.records]
        selected = self.values if self.input_filter.whole else list(map(self.input_filter.apply, self.values))
        rows = [list(v.values()) if isinstance(v, dict) else v for v in selected]
        try:
            matrix = np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            raise FerryError(bad_request("the selected JSON values are not rows of numbers")) from None
        return Payload(matrix=matrix.reshape(1, -1) if matrix.ndim == 1 else matrix)

    def encode(self, result: ModelResult) -> None:
        outputs = result.outputs
        if self.job.split_type == "None":
            self.response = payloads.codec_for(self.job.output_type).encode(outputs)
            return
        n = len(np.asarray(next(iter(outputs.values()))))
        if n != len(self.records):
            raise FerryError(model_error(f"the model answered {n} rows for {len(self.records)} records"))
        join = self.job.join_source == "Input"
        if self.job.output_type == CSV:
            encoded = payloads.CSV.encode(outputs).rstrip(b"\n")
            if not join and self.output_filter.whole:  # as encoded: no need to cut it into lines
                self.block, self.count = encoded, encoded.count(b"\n") + 1
                return
            lines = encoded.split(b"\n")
            if join:
                lines = list(map(b",".join, zip(self.records, lines)))
            if not self.output_filter.whole:
                table = csv_table(lines)
                cols = self.output_filter.columns(table.num_columns)
                lines = [s.encode() for s in pc.binary_join_element_wise(
                    *(table.column(c) for c in cols), ",").to_pylist()]
        else:
            records = _predictions(outputs)
            if join:
                records = list(map(_joined, self.values or [_json(r) for r in self.records], records))
            if not self.output_filter.whole:
                records = list(map(self.output_filter.apply, records))
            lines = list(map(orjson.dumps, records))
        self.block, self.count = b"\n".join(lines), len(lines)

    def captured(self) -> tuple[bytes, str, bytes, str]:
        body = _joined_lines(self.records)
        return body, self.job.content_type, self.response or self.block, self.job.output_type


def _joined_lines(lines: list[bytes] | Lines) -> bytes:
    return lines.body if isinstance(lines, Lines) else b"\n".join(lines)


def _names(body: bytes) -> list[str]:
    first = body.find(b"\n")
    return [f"f{i}" for i in range(body.count(b",", 0, first if first >= 0 else len(body)) + 1)]


def csv_table(lines: list[bytes] | Lines) -> pa.Table:
    """CSV records as a table of string fields (all records must have the same number of fields)."""
    body = _joined_lines(lines)
    names = _names(body)
    try:
        return pacsv.read_csv(io.BytesIO(body), read_options=pacsv.ReadOptions(
            column_names=names, use_threads=False), convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False))
    except pa.ArrowInvalid as err:
        raise FerryError(bad_request(f"CSV records: {str(err).splitlines()[0][:200]}")) from None


def csv_floats(lines: list[bytes] | Lines) -> np.ndarray | None:
    """CSV records of plain numbers as a float64 matrix, in one pass of Arrow's parser (the same number parser
    as the cast of `_numbers`); None when any field is not a plain number (blank, padded, a null word, text):
    then the string path says what is wrong, or reads what it accepts."""
    body = _joined_lines(lines)
    names = _names(body)
    try:
        table = pacsv.read_csv(pa.py_buffer(body), read_options=pacsv.ReadOptions(
            column_names=names, use_threads=False), convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.float64())))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if any(col.null_count for col in table.columns):
        return None
    return np.column_stack([col.to_numpy() for col in table.columns])


def _numbers(table: pa.Table, cols: list[int]) -> np.ndarray:
    try:
        return np.column_stack([pc.cast(pc.utf8_trim_whitespace(table.column(c)), pa.float64()).to_numpy()
                                for c in cols])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise FerryError(bad_request(f"CSV value: {str(err).splitlines()[0][:200]}")) from None


def _json(record: bytes):
    try:
        return orjson.loads(record)
    except orjson.JSONDecodeError as err:
        raise FerryError(bad_request(f"a JSON Lines record is not valid JSON: {str(err)[:200]}")) from None


def _predictions(outputs: dict[str, np.ndarray]) -> list[dict]:
    """One object per row, {output name: value}, as application/json responses' `predictions` items."""
    names = list(outputs)
    return list(map(dict, map(zip, repeat(names), zip(*(np.asarray(a).tolist() for a in outputs.values())))))


def _joined(record, prediction: dict) -> dict:
    """JoinSource Input for JSON: the prediction under SageMakerOutput (a non-object input under SageMakerInput)."""
    if isinstance(record, dict):
        return {**record, "SageMakerOutput": prediction}
    return {"SageMakerInput": record, "SageMakerOutput": prediction}



