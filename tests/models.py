"""Small ONNX models built in code for tests: several inputs/outputs and dtypes, and one that can fail."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def _model(nodes, inputs, outputs, initializers=()) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def multi_dtype_model() -> bytes:
    """Inputs a FP32[-1,3], b INT32[-1,2], c BOOL[-1], s STRING[-1], h FP16[-1,2], u UINT8[-1,2], i8 INT8[-1],
    d FP64[-1]; outputs a2 = 2a, b1 = b + 1, nc = not c, s_out = s, h2 = h + h, u_out = u, i8_out = i8, d2 = d * d."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.INT32, [], [1])
    nodes = [
        helper.make_node("Mul", ["a", "two"], ["a2"]),
        helper.make_node("Add", ["b", "one"], ["b1"]),
        helper.make_node("Not", ["c"], ["nc"]),
        helper.make_node("Identity", ["s"], ["s_out"]),
        helper.make_node("Add", ["h", "h"], ["h2"]),
        helper.make_node("Identity", ["u"], ["u_out"]),
        helper.make_node("Identity", ["i8"], ["i8_out"]),
        helper.make_node("Mul", ["d", "d"], ["d2"]),
    ]
    vi = helper.make_tensor_value_info
    inputs = [vi("a", TensorProto.FLOAT, ["n", 3]), vi("b", TensorProto.INT32, ["n", 2]),
              vi("c", TensorProto.BOOL, ["n"]), vi("s", TensorProto.STRING, ["n"]),
              vi("h", TensorProto.FLOAT16, ["n", 2]), vi("u", TensorProto.UINT8, ["n", 2]),
              vi("i8", TensorProto.INT8, ["n"]), vi("d", TensorProto.DOUBLE, ["n"])]
    outputs = [vi("a2", TensorProto.FLOAT, ["n", 3]), vi("b1", TensorProto.INT32, ["n", 2]),
               vi("nc", TensorProto.BOOL, ["n"]), vi("s_out", TensorProto.STRING, ["n"]),
               vi("h2", TensorProto.FLOAT16, ["n", 2]), vi("u_out", TensorProto.UINT8, ["n", 2]),
               vi("i8_out", TensorProto.INT8, ["n"]), vi("d2", TensorProto.DOUBLE, ["n"])]
    return _model(nodes, inputs, outputs, [two, one])


def fragile_model(width: int = 4) -> bytes:
    """x FP32[-1, width] reshaped to [3, -1]: fails inside onnxruntime unless rows * width is a multiple of 3."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, -1])
    vi = helper.make_tensor_value_info
    return _model([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [vi("x", TensorProto.FLOAT, ["n", width])], [vi("y", TensorProto.FLOAT, [3, "m"])], [shape])


def identity_model() -> bytes:
    """x FP32[-1, -1] -> y = x: for large tensors."""
    vi = helper.make_tensor_value_info
    return _model([helper.make_node("Identity", ["x"], ["y"])],
                  [vi("x", TensorProto.FLOAT, ["n", "m"])], [vi("y", TensorProto.FLOAT, ["n", "m"])])


def facet_model(width: int = 8, column: int = 0, below: float = 40.0) -> bytes:
    """x FP32[-1, width] -> label INT64[-1] = x[:, column] < below, probabilities FP32[-1, 2]: a classifier that
    answers by one column alone (the demo's outputs, biased by age)."""
    vi = helper.make_tensor_value_info
    inits = [helper.make_tensor("col", TensorProto.INT64, [], [column]),
             helper.make_tensor("below", TensorProto.FLOAT, [], [below]),
             helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("axis", TensorProto.INT64, [1], [1])]
    nodes = [helper.make_node("Gather", ["x", "col"], ["v"], axis=1),
             helper.make_node("Less", ["v", "below"], ["yes"]),
             helper.make_node("Cast", ["yes"], ["label"], to=TensorProto.INT64),
             helper.make_node("Cast", ["yes"], ["p1"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["one", "p1"], ["p0"]),
             helper.make_node("Unsqueeze", ["p0", "axis"], ["p0c"]),
             helper.make_node("Unsqueeze", ["p1", "axis"], ["p1c"]),
             helper.make_node("Concat", ["p0c", "p1c"], ["probabilities"], axis=1)]
    return _model(nodes, [vi("x", TensorProto.FLOAT, ["n", width])],
                  [vi("label", TensorProto.INT64, ["n"]), vi("probabilities", TensorProto.FLOAT, ["n", 2])], inits)
