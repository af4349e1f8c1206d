"""V2 gRPC tensors <-> numpy: typed `contents` and `raw_input_contents` / `raw_output_contents`.

Works on any message with the Open Inference Protocol field names (ours, or Triton's wire-identical
ones), so the replica and the tests share one codec.
"""

from __future__ import annotations

import numpy as np

from core.errors import FerryError, bad_request
from core.onnx import V2_TO_NUMPY
from serving.v2 import _from_bytes, datatype_of, tensor_bytes

CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def request_inputs(request) -> dict[str, np.ndarray]:
    """The named input arrays of a ModelInferRequest; malformed tensors are INVALID_ARGUMENT."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise FerryError(bad_request(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs (one per input, in order)"))
    if not request.inputs:
        raise FerryError(bad_request("the request has no inputs"))
    out = {}
    for i, t in enumerate(request.inputs):
        if t.datatype not in V2_TO_NUMPY:
            raise FerryError(bad_request(f"input {t.name!r}: unknown datatype {t.datatype!r}"))
        if any(d < 0 for d in t.shape):
            raise FerryError(bad_request(f"input {t.name!r}: shape {list(t.shape)} has a negative dimension"))
        shape = list(t.shape)
        count = int(np.prod(shape)) if shape else 1
        dtype = V2_TO_NUMPY[t.datatype]
        if raw:
            if t.HasField("contents"):
                raise FerryError(bad_request(f"input {t.name!r} sets both contents and raw_input_contents"))
            arr = _from_bytes(memoryview(raw[i]), dtype, count, t.name)
        else:
            field = CONTENTS_FIELD.get(t.datatype)
            if field is None:
                raise FerryError(bad_request(f"input {t.name!r}: {t.datatype} travels only as raw_input_contents"))
            values = getattr(t.contents, field)
            if t.datatype == "BYTES":
                arr = np.array(list(values), dtype=object)
            else:
                arr = np.array(values, dtype=dtype)
            if arr.size != count:
                raise FerryError(bad_request(
                    f"input {t.name!r}: shape {shape} needs {count} values, contents has {arr.size}"))
        out[t.name] = arr.reshape(shape)
    return out


def fill_response(response, outputs: dict[str, np.ndarray], raw: bool):
    """Add the output tensors to a ModelInferResponse, as raw bytes or typed contents."""
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        t = response.outputs.add()
        t.name = name
        t.datatype = datatype_of(arr)
        t.shape.extend(arr.shape)
        if raw or t.datatype == "FP16":
            response.raw_output_contents.append(tensor_bytes(arr))
        elif t.datatype == "BYTES":
            getattr(t.contents, CONTENTS_FIELD["BYTES"]).extend(
                v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel())
        else:
            getattr(t.contents, CONTENTS_FIELD[t.datatype]).extend(arr.ravel().tolist())
    if not raw and response.raw_output_contents:  # one FP16 output forces raw for all (no mixing)
        del response.raw_output_contents[:]
        for t in response.outputs:
            t.ClearField("contents")
        for arr in outputs.values():
            response.raw_output_contents.append(tensor_bytes(np.asarray(arr)))
    return response
