"""KServe V2 / Open Inference Protocol REST: JSON tensors and the binary tensor data extension.

`parse_request` turns a body (JSON header, optionally followed by raw little-endian tensor bytes whose
split point is the ``Inference-Header-Content-Length`` header) into named numpy arrays; `encode_response`
does the reverse, sending an output as binary when the request asked for it (``binary_data`` per output,
or ``binary_data_output`` for all), as tritonclient does by default.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from core.errors import FerryError, bad_request
from core.onnx import NUMPY_TO_V2, V2_TO_NUMPY


@dataclass
class V2Request:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # requested output names, None = all
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False
    parameters: dict = field(default_factory=dict)


def parse_request(body: bytes, header_length: str | None) -> V2Request:
    """Parse a V2 infer request body; every malformed part is a 400 naming the tensor."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise FerryError(bad_request(f"Inference-Header-Content-Length {header_length!r} is not an integer")) from None
        if not 0 < n <= len(body):
            raise FerryError(bad_request(f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)"))
        head, binary = body[:n], memoryview(body)[n:]
    else:
        head, binary = body, memoryview(b"")
    if not head.strip():
        raise FerryError(bad_request("the request body is empty"))
    try:
        doc = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FerryError(bad_request(f"the request is not valid JSON: {err}")) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise FerryError(bad_request('a V2 request needs a non-empty "inputs" list'))
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(doc["inputs"]):
        arr, used = _input_tensor(t, i, binary, offset)
        offset += used
        inputs[t["name"]] = arr
    if offset != len(binary):
        raise FerryError(bad_request(f"the body has {len(binary) - offset} bytes of binary data no input claims"))
    params = doc.get("parameters") or {}
    outputs, binary_outputs = None, set()
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise FerryError(bad_request('"outputs" must be a list of {"name": ...}'))
        outputs = []
        for o in doc["outputs"]:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise FerryError(bad_request('each requested output needs a "name"'))
            outputs.append(o["name"])
            if (o.get("parameters") or {}).get("binary_data"):
                binary_outputs.add(o["name"])
    rid = doc.get("id")
    return V2Request(id=str(rid) if rid is not None else None, inputs=inputs, outputs=outputs,
                     binary_outputs=binary_outputs, binary_all=bool(params.get("binary_data_output")),
                     parameters=params)


def _input_tensor(t, i: int, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    if not isinstance(t, dict) or not isinstance(t.get("name"), str):
        raise FerryError(bad_request(f"inputs[{i}] needs a string \"name\""))
    name = t["name"]
    datatype = t.get("datatype")
    if datatype not in V2_TO_NUMPY:
        raise FerryError(bad_request(f"input {name!r}: unknown datatype {datatype!r}; use one of {sorted(V2_TO_NUMPY)}"))
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise FerryError(bad_request(f"input {name!r}: \"shape\" must be a list of non-negative integers"))
    count = int(np.prod(shape)) if shape else 1
    dtype = V2_TO_NUMPY[datatype]
    size = (t.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise FerryError(bad_request(f"input {name!r}: binary_data_size {size!r} exceeds the binary data sent"))
        raw = binary[offset:offset + size]
        arr = _from_bytes(raw, dtype, count, name)
        return arr.reshape(shape), size
    if "data" not in t:
        raise FerryError(bad_request(f"input {name!r} has neither \"data\" nor binary_data_size"))
    try:
        if datatype == "BYTES":
            arr = np.array([s.encode() if isinstance(s, str) else bytes(s) for s in np.ravel(t["data"])], dtype=object)
        else:
            arr = np.asarray(t["data"], dtype=dtype).ravel()
    except (TypeError, ValueError, OverflowError):
        raise FerryError(bad_request(f"input {name!r}: data is not an array of {datatype}")) from None
    if arr.size != count:
        raise FerryError(bad_request(f"input {name!r}: shape {shape} needs {count} values, got {arr.size}"))
    return arr.reshape(shape), 0


def _from_bytes(raw: memoryview, dtype: np.dtype, count: int, name: str) -> np.ndarray:
    if dtype == np.object_:
        out, pos, buf = [], 0, bytes(raw)
        while pos < len(buf):
            if pos + 4 > len(buf):
                raise FerryError(bad_request(f"input {name!r}: truncated BYTES element length"))
            (n,) = struct.unpack_from("<I", buf, pos)
            out.append(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
        if pos != len(buf) or len(out) != count:
            raise FerryError(bad_request(f"input {name!r}: BYTES data holds {len(out)} elements, shape needs {count}"))
        return np.array(out, dtype=object)
    want = count * dtype.itemsize
    if len(raw) != want:
        raise FerryError(bad_request(
            f"input {name!r}: {len(raw)} bytes of binary data, shape and datatype need {want}"))
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


def encode_response(model_name: str, model_version: str | None, req: V2Request,
                    outputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """Build the response body and headers (binary outputs after the JSON header when asked for)."""
    entries, chunks = [], []
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        entry = {"name": name, "datatype": datatype_of(arr), "shape": list(arr.shape)}
        if req.binary_all or name in req.binary_outputs:
            raw = tensor_bytes(arr)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif entry["datatype"] == "BYTES":
            entry["data"] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
        elif entry["datatype"] == "FP16":
            entry["data"] = arr.astype(np.float32).ravel().tolist()
        else:
            entry["data"] = arr.ravel().tolist()
        entries.append(entry)
    doc = {"model_name": model_name, "outputs": entries}
    if model_version:
        doc["model_version"] = model_version
    if req.id is not None:
        doc["id"] = req.id
    head = json.dumps(doc).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream",
                                     "inference-header-content-length": str(len(head))}


def as_json(tensors: dict[str, np.ndarray]) -> bytes:
    """Tensors as a V2 JSON document ({"inputs"/"outputs" style list}), e.g. for data capture of gRPC calls."""
    doc = []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = datatype_of(arr)
        data = ([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.ravel()]
                if dt == "BYTES" else arr.astype(np.float32 if dt == "FP16" else arr.dtype).ravel().tolist())
        doc.append({"name": name, "datatype": dt, "shape": list(arr.shape), "data": data})
    return json.dumps({"tensors": doc}).encode()
