import numpy as np
import onnxruntime as ort
import pytest

from ferry.demo import make_credit_data, model_matrix, train_model
from core.errors import FerryError
from core.onnx import OnnxModel
from tests.models import fragile_model, multi_dtype_model


@pytest.fixture(scope="module")
def demo_bytes():
    return train_model(make_credit_data(800, seed=3))


def test_metadata_is_read_from_the_model(demo_bytes):
    m = OnnxModel(demo_bytes)
    assert [t.as_dict() for t in m.inputs] == [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}]
    assert m.output_names == ["label", "probabilities"]


def test_predictions_equal_onnxruntime(demo_bytes):
    m = OnnxModel(demo_bytes)
    x = model_matrix(make_credit_data(50, seed=9))
    ours = m.run(m.from_matrix(x.astype(np.float64)))
    ref = ort.InferenceSession(demo_bytes).run(None, {"input": x})
    np.testing.assert_array_equal(ours["label"], ref[0])
    np.testing.assert_array_equal(ours["probabilities"], ref[1])


def test_every_dtype_passes_through():
    m = OnnxModel(multi_dtype_model())
    feed = {"a": np.ones((2, 3), np.float32), "b": np.array([[1, 2], [3, 4]], np.int32),
            "c": np.array([True, False]), "s": np.array(["x", "yz"], dtype=object),
            "h": np.ones((2, 2), np.float16), "u": np.array([[1, 255], [0, 7]], np.uint8),
            "i8": np.array([-5, 5], np.int8), "d": np.array([1.5, -2.0])}
    out = m.run(m.validate(feed))
    np.testing.assert_array_equal(out["b1"], [[2, 3], [4, 5]])
    np.testing.assert_array_equal(out["nc"], [False, True])
    assert list(out["s_out"]) == ["x", "yz"]
    assert out["h2"].dtype == np.float16 and out["d2"].dtype == np.float64


@pytest.mark.parametrize("change, needle", [
    (lambda f: f.pop("b"), "missing input"),
    (lambda f: f.update(zzz=np.ones(1)), "unknown input"),
    (lambda f: f.update(a=np.ones((2, 3), np.float64)), "datatype FP64"),
    (lambda f: f.update(a=np.ones((2, 4), np.float32)), "shape [2, 4]"),
    (lambda f: f.update(c=np.ones((2, 1), bool)), "shape [2, 1]"),
])
def test_bad_feeds_are_400s_naming_the_input(change, needle):
    m = OnnxModel(multi_dtype_model())
    feed = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 2), np.int32), "c": np.ones(2, bool),
            "s": np.array(["a", "b"], dtype=object), "h": np.ones((2, 2), np.float16),
            "u": np.ones((2, 2), np.uint8), "i8": np.ones(2, np.int8), "d": np.ones(2)}
    change(feed)
    with pytest.raises(FerryError) as err:
        m.validate(feed)
    assert err.value.error.status == 400 and needle in err.value.error.message


def test_wrong_column_count_for_matrix_input(demo_bytes):
    with pytest.raises(FerryError, match="expected 8 columns"):
        OnnxModel(demo_bytes).from_matrix(np.ones((1, 3)))


def test_model_failure_is_a_424():
    m = OnnxModel(fragile_model())
    assert m.run(m.validate({"x": np.ones((3, 4), np.float32)}))["y"].shape == (3, 4)
    with pytest.raises(FerryError) as err:
        m.run(m.validate({"x": np.ones((1, 4), np.float32)}))
    assert err.value.error.status == 424 and err.value.error.error_type == "ModelError"
