"""KServe V2 / Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) through Ray Serve's gRPC
proxy: typed `contents` and `raw_input_contents` / `raw_output_contents` (responses mirror the request's
choice). Works on any message with the Open Inference Protocol field names (ours, or Triton's
wire-identical ones). Errors are gRPC status codes with a bounded message, never a traceback.

Protobuf classes are imported inside functions, never at module import (Ray pickles the gateway class).
"""

from __future__ import annotations

import numpy as np

from core.errors import FerryError, InferenceError, bad_request, quote, too_large
from core.payloads import v2
from serving.dataplane import DataPlane, Exchange, ModelResult, Payload

CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def credentials(context) -> str | None:
    """The `authorization` metadata value of a call."""
    if context is None:
        return None
    for key, value in context.invocation_metadata():
        if key == "authorization":
            return value
    return None


class GrpcExchange(Exchange):
    protocol = "grpc"

    def __init__(self, request, context):
        super().__init__(request.model_name)
        self.request = request
        self.credentials = credentials(context)
        self.target_variant = request.model_version or None
        self.inference_id = request.id or None
        self.inputs: dict[str, np.ndarray] = {}
        self.response = None

    async def read(self, limit: int) -> None:
        size = self.request.ByteSize()
        if size > limit:
            raise FerryError(too_large(f"the message ({size} bytes) is over the {limit}-byte limit"))

    def decode(self) -> Payload:
        self.inputs = request_inputs(self.request)
        self.output_names = [o.name for o in self.request.outputs] or None
        return Payload(named=self.inputs, strict_dtype=True)

    def encode(self, result: ModelResult) -> None:
        from serving.protos import inference_pb2 as pb

        out = pb.ModelInferResponse(model_name=self.request.model_name, model_version=result.variant,
                                    id=self.request.id)
        self.response = fill_response(out, result.outputs, raw=bool(self.request.raw_input_contents))
        self.outputs = result.outputs

    def captured(self) -> tuple[bytes, str, bytes, str]:
        in_body, in_type = v2.binary_document("inputs", self.inputs)
        out_body, out_type = v2.binary_document("outputs", self.outputs)
        return in_body, in_type, out_body, out_type


async def model_infer(plane: DataPlane, request, context):
    from serving.protos import inference_pb2 as pb

    ex = GrpcExchange(request, context)
    try:
        await plane.infer(ex)
    except FerryError as err:
        return fail(context, err.error, pb.ModelInferResponse())
    return ex.response


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
        if t.name in out:
            raise FerryError(bad_request(f"input {quote(t.name)} is given twice"))
        dtype = v2.dtype_of(t.name, t.datatype)
        shape = list(t.shape)
        if any(d < 0 for d in shape):
            raise FerryError(bad_request(f"input {quote(t.name)}: shape {shape[:8]} has a negative dimension"))
        count = v2.element_count(t.name, shape)
        if raw:
            if t.HasField("contents"):
                raise FerryError(bad_request(f"input {quote(t.name)} sets both contents and raw_input_contents"))
            arr = v2.from_bytes(memoryview(raw[i]), dtype, count, t.name)
        else:
            field = CONTENTS_FIELD.get(t.datatype)
            if field is None:
                raise FerryError(bad_request(f"input {quote(t.name)}: {t.datatype} travels only as raw_input_contents"))
            values = getattr(t.contents, field)
            if len(values) != count:
                raise FerryError(bad_request(
                    f"input {quote(t.name)}: shape {shape[:8]} needs {count} values, contents has {len(values)}"))
            arr = np.array(list(values), dtype=object) if t.datatype == "BYTES" else _narrow(values, dtype, t.name)
        out[t.name] = arr.reshape(shape)
    return out


def _narrow(values, dtype: np.dtype, name: str) -> np.ndarray:
    """Contents as `dtype`; INT8/16 and UINT8/16 travel in 32-bit fields, so a value out of the type's range is a
    400, not numpy's OverflowError."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize >= 4:
        return np.array(values, dtype=dtype)
    wide = np.array(values, dtype=np.int64)
    info = np.iinfo(dtype)
    if wide.size and (wide.min() < info.min or wide.max() > info.max):
        raise FerryError(bad_request(f"input {quote(name)}: a value is outside {dtype.name}'s range "
                                     f"[{info.min}, {info.max}]"))
    return wide.astype(dtype)


def fill_response(response, outputs: dict[str, np.ndarray], raw: bool):
    """Add the output tensors to a ModelInferResponse, as raw bytes or typed contents."""
    raw = raw or any(v2.datatype_of(np.asarray(a)) == "FP16" for a in outputs.values())  # FP16 only travels raw
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        t = response.outputs.add()
        t.name = name
        t.datatype = v2.datatype_of(arr)
        t.shape.extend(arr.shape)
        if raw:
            response.raw_output_contents.append(v2.tensor_bytes(arr))
        elif t.datatype == "BYTES":
            t.contents.bytes_contents.extend(v if isinstance(v, bytes) else str(v).encode() for v in arr.ravel())
        else:
            getattr(t.contents, CONTENTS_FIELD[t.datatype]).extend(arr.ravel().tolist())
    return response


def fail(context, error: InferenceError, empty):
    """Set the gRPC status of a failed call (Ray Serve sends it instead of the empty message)."""
    import grpc

    if context is not None:
        context.set_code(getattr(grpc.StatusCode, error.grpc_code))
        context.set_details(error.message)
    return empty
