"""KServe V2 / Open Inference Protocol tensors: JSON, and the binary tensor data extension.

`parse_request` turns a body (a JSON header, optionally followed by raw little-endian tensor bytes whose
split point is ``Inference-Header-Content-Length``) into named arrays; `encode_response` does the reverse,
sending an output as binary when asked (``binary_data`` per output or ``binary_data_output``), as
tritonclient does by default. Shapes are checked with Python integers against the data actually sent
before anything is allocated.

`V2_BINARY` is the codec of captured V2 payloads with binary data (and of gRPC calls): media type
``application/vnd.sagemaker-triton.binary+json;json-header-size=N``, as SageMaker's Triton containers name it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np
import orjson

from core.dtypes import NUMPY_TO_V2, V2_TO_NUMPY
from core.errors import FerryError, bad_request, quote
from core.payloads.base import INPUT, CaptureCodec, Side, tensors_rows

BINARY_JSON = "application/vnd.sagemaker-triton.binary+json"


@dataclass
class V2Request:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # requested output names, None = all
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    parameters: dict = field(default_factory=dict)


MAX_ELEMENTS = 2 ** 40  # no shape may describe more (even with a zero dimension: numpy could not reshape to it)


def _bad(message: str) -> FerryError:
    return FerryError(bad_request(message))


def parse_request(body: bytes, header_length: str | None) -> V2Request:
    """Parse a V2 infer request body; every malformed part is a 400 naming the tensor."""
    if header_length is not None:
        if not (header_length.strip().isascii() and header_length.strip().isdigit()):  # not '²'
            raise _bad(f"Inference-Header-Content-Length {quote(header_length, 40)} is not an integer")
        n = int(header_length)
        if not 0 < n <= len(body):
            raise _bad(f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)")
        head, binary = body[:n], memoryview(body)[n:]
    else:
        head, binary = body, memoryview(b"")
    if not head.strip():
        raise _bad("the request body is empty")
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError as err:
        raise _bad(f"the request is not valid JSON: {str(err)[:200]}") from None
    return parse_document(doc, binary)


def parse_document(doc, binary: memoryview) -> V2Request:
    """A parsed V2 request document (plus its binary section) as named arrays."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise _bad('a V2 request needs a non-empty "inputs" list')
    params = doc.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad('"parameters" must be an object')
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(doc["inputs"]):
        arr, used = _input_tensor(t, i, binary, offset)
        offset += used
        if t["name"] in inputs:
            raise _bad(f"input {quote(t['name'])} is given twice")
        inputs[t["name"]] = arr
    if offset != len(binary):
        raise _bad(f"the body has {len(binary) - offset} bytes of binary data no input claims")
    outputs, binary_outputs = None, set()
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise _bad('"outputs" must be a list of {"name": ...}')
        outputs = []
        for o in doc["outputs"]:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise _bad('each requested output needs a "name"')
            oparams = o.get("parameters") or {}
            if not isinstance(oparams, dict):
                raise _bad(f"output {quote(o['name'])}: \"parameters\" must be an object")
            outputs.append(o["name"])
            if oparams.get("binary_data"):
                binary_outputs.add(o["name"])
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, (str, int)):
        raise _bad('"id" must be a string')
    return V2Request(id=str(rid) if rid is not None else None, inputs=inputs, outputs=outputs,
                     binary_outputs=binary_outputs, binary_all=bool(params.get("binary_data_output")),
                     parameters=params)


def element_count(name: str, shape) -> int:
    """The number of elements a V2 shape describes (a 400 if it is not a list of non-negative integers)."""
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                       for d in shape):
        raise _bad(f"input {quote(name)}: \"shape\" must be a list of non-negative integers")
    if math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:  # Python integers: never an overflow
        raise _bad(f"input {quote(name)}: shape {list(shape[:8])} is too large")
    return math.prod(shape)


def dtype_of(name: str, datatype) -> np.dtype:
    if not isinstance(datatype, str) or datatype not in V2_TO_NUMPY:
        raise _bad(f"input {quote(name)}: unknown datatype {quote(datatype, 20)}; use one of {sorted(V2_TO_NUMPY)}")
    return V2_TO_NUMPY[datatype]


def _input_tensor(t, i: int, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    if not isinstance(t, dict) or not isinstance(t.get("name"), str):
        raise _bad(f"inputs[{i}] needs a string \"name\"")
    name = t["name"]
    dtype = dtype_of(name, t.get("datatype"))
    shape = t.get("shape")
    count = element_count(name, shape)
    params = t.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad(f"input {quote(name)}: \"parameters\" must be an object")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise _bad(f"input {quote(name)}: binary_data_size {quote(size, 20)} exceeds the binary data sent")
        return from_bytes(binary[offset:offset + size], dtype, count, name).reshape(shape), size
    if "data" not in t:
        raise _bad(f"input {quote(name)} has neither \"data\" nor binary_data_size")
    data = t["data"]
    if not isinstance(data, list):
        data = [data]
    try:
        if dtype == np.object_:
            flat = np.ravel(np.array(data, dtype=object))
            if not all(isinstance(s, str) for s in flat):
                raise TypeError
            arr = np.array([s.encode() for s in flat], dtype=object)
        else:
            arr = np.asarray(data, dtype=dtype).ravel()
    except (TypeError, ValueError, OverflowError):
        raise _bad(f"input {quote(name)}: data is not an array of {t['datatype']}") from None
    if arr.size != count:
        raise _bad(f"input {quote(name)}: shape {shape[:8]} needs {count} values, got {arr.size}")
    return arr.reshape(shape), 0


def from_bytes(raw: memoryview, dtype: np.dtype, count: int, name: str) -> np.ndarray:
    """Raw little-endian tensor bytes (BYTES: 4-byte length + bytes per element) as a flat array."""
    if dtype == np.object_:
        out, pos, buf = [], 0, bytes(raw)
        while pos < len(buf) and len(out) <= count:
            if pos + 4 > len(buf):
                raise _bad(f"input {quote(name)}: truncated BYTES element length")
            (n,) = struct.unpack_from("<I", buf, pos)
            out.append(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
        if pos != len(buf) or len(out) != count:
            raise _bad(f"input {quote(name)}: BYTES data does not hold the {count} elements its shape needs")
        return np.array(out, dtype=object)
    want = count * dtype.itemsize
    if len(raw) != want:
        raise _bad(f"input {quote(name)}: {len(raw)} bytes of binary data, shape and datatype need {want}")
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def tensor_bytes(arr: np.ndarray) -> bytes:
    """Raw little-endian bytes of a tensor (BYTES: 4-byte length prefix per element)."""
    if arr.dtype == object or arr.dtype.kind in "US":
        parts = []
        for v in arr.ravel():
            b = v if isinstance(v, bytes) else str(v).encode()
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def datatype_of(arr: np.ndarray) -> str:
    if arr.dtype.kind in "USO":
        return "BYTES"
    return NUMPY_TO_V2[arr.dtype]


def _json_data(arr: np.ndarray, datatype: str) -> list:
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
    if datatype == "FP16":
        return arr.astype(np.float32).ravel().tolist()
    return arr.ravel().tolist()


def encode_response(model_name: str, model_version: str | None, req: V2Request,
                    outputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The response body and headers (binary outputs after the JSON header when asked for)."""
    entries, chunks = [], []
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        entry = {"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape)}
        if req.binary_all or name in req.binary_outputs:
            raw = tensor_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _json_data(arr, entry["datatype"])
        entries.append(entry)
    doc = {"model_name": model_name, "outputs": entries}
    if model_version:
        doc["model_version"] = model_version
    if req.id is not None:
        doc["id"] = req.id
    head = orjson.dumps(doc)
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream",
                                     "inference-header-content-length": str(len(head))}


def binary_document(key: str, tensors: dict[str, np.ndarray]) -> tuple[bytes, str]:
    """Tensors as V2 JSON with every tensor binary, and its V2_BINARY content type (for capture)."""
    entries, chunks = [], []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        raw = tensor_bytes(arr)
        entries.append({"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape),
                        "parameters": {"binary_data_size": len(raw)}})
        chunks.append(raw)
    head = orjson.dumps({key: entries})
    return head + b"".join(chunks), f"{BINARY_JSON};json-header-size={len(head)}"


def header_size(content_type: str | None) -> int | None:
    """The json-header-size parameter of a V2_BINARY content type."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "json-header-size" and value.strip().isdigit():
            return int(value)
    return None


class V2BinaryCodec(CaptureCodec):
    """Captured V2 requests or responses with binary tensor data (HTTP binary extension, gRPC)."""

    media_type = BINARY_JSON

    def read_one(self, body: bytes, side: Side, content_type: str | None = None) -> tuple[np.ndarray, list[str] | None]:
        n = header_size(content_type)
        if n is None:
            raise ValueError("the content type has no json-header-size")
        doc = orjson.loads(body[:n])
        key = "inputs" if "inputs" in doc else "outputs"
        named = parse_document({"inputs": doc.get(key)}, memoryview(body)[n:]).inputs
        rows, names = tensors_rows(named)
        return rows, None if side == INPUT and len(named) == 1 else names


V2_BINARY = V2BinaryCodec()
