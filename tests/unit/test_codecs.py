import io
import json

import numpy as np
import pytest

from core import payloads
from core.errors import FerryError
from core.payloads import choose_accept


def decode(body, content_type):
    codec = payloads.codec_for(content_type)
    if codec is None:
        raise FerryError(payloads.unsupported(content_type))
    return codec.decode(body)


def encode(outputs, accept):
    return payloads.CODECS[accept].encode(outputs)


def status_of(fn, *args):
    with pytest.raises(FerryError) as err:
        fn(*args)
    return err.value.error.status, err.value.error.message


def test_csv_rows_parse_to_a_matrix():
    m = decode(b"1,2,3\n4,5.5,-6e2\n", "text/csv; charset=utf-8")
    np.testing.assert_array_equal(m, [[1, 2, 3], [4, 5.5, -600]])


@pytest.mark.parametrize("body, needle", [
    (b"1,2,3\n4,5\n", "row 2 has 2 columns"),
    (b"1,abc,3\n", "'abc' in row 1, column 2"),
    (b"1,,3\n", "'' in row 1, column 2"),
    (b"   \n", "empty"),
])
def test_bad_csv_is_a_400_that_names_the_problem(body, needle):
    status, msg = status_of(decode, body, "text/csv")
    assert status == 400 and needle in msg


def test_json_forms():
    np.testing.assert_array_equal(decode(b'{"instances": [[1, 2], [3, 4]]}', "application/json"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(decode(b"[[1, 2], [3, 4]]", "application/json"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(decode(b"[1, 2]", "application/json"), [[1, 2]])
    named = decode(b'{"inputs": {"a": [[1, 2]], "b": [true]}}', "application/json")
    assert set(named) == {"a", "b"} and named["b"].dtype == bool


@pytest.mark.parametrize("body, needle", [
    (b"{not json", "not valid JSON"),
    (b'{"instances": [[1, 2], [3]]}', "rectangular"),
    (b'{"instances": [["a", "b"]]}', "numbers"),
    (b'{"rows": []}', "instances"),
    (b'{"instances": []}', "non-empty"),
])
def test_bad_json_is_a_400(body, needle):
    status, msg = status_of(decode, body, "application/json")
    assert status == 400 and needle in msg


def test_npy_round_trip_and_garbage():
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(decode(buf.getvalue(), "application/x-npy"), [[0, 1, 2], [3, 4, 5]])
    assert status_of(decode, b"garbage", "application/x-npy")[0] == 400


def test_unknown_content_type_and_accept():
    assert status_of(decode, b"x", "image/png")[0] == 415
    assert status_of(choose_accept, "image/png", "text/csv")[0] == 406
    assert choose_accept(None, "text/csv") == "text/csv"
    assert choose_accept("*/*", "application/x-npy") == "application/x-npy"
    assert choose_accept("image/png, application/json", "text/csv") == "application/json"


def test_encodings_are_exact():
    out = {"label": np.array([1, 0]), "probabilities": np.array([[0.1, 0.9], [0.75, 0.25]], dtype=np.float32)}
    lines = encode(out, "text/csv").decode().splitlines()
    assert lines[0].split(",")[0] == "1"
    back = np.array([ln.split(",")[1:] for ln in lines], dtype=np.float32)
    np.testing.assert_array_equal(back, out["probabilities"])
    doc = json.loads(encode(out, "application/json"))
    assert doc["predictions"][1]["label"] == 0
    assert np.float32(doc["predictions"][0]["probabilities"][1]) == out["probabilities"][0, 1]
    npy = np.load(io.BytesIO(encode(out, "application/x-npy")))
    assert npy.shape == (2, 3) and npy[1, 0] == 0


@pytest.mark.parametrize("dtypes", [("<i8", "<f4"), ("<f8",), (">f8", "<f4"), ("<f2", "bool", "<u2"), ("<U3", "<f4")])
def test_csv_rows_are_written_value_by_value_as_one_row_is(dtypes):
    """Many rows are formatted in one pass; each value must read as the one-row path writes it."""
    rng = np.random.default_rng(5)
    outputs = {}
    for k, dt in enumerate(dtypes):
        if dt == "bool":
            outputs[f"o{k}"] = rng.random(50) > 0.5
        elif dt == "<U3":
            outputs[f"o{k}"] = np.array(["ab", "c"] * 25)
        elif dt[1] in "iu":
            outputs[f"o{k}"] = rng.integers(0, 10**6, (50, 2)).astype(dt)
        else:
            with np.errstate(over="ignore"):
                x = (rng.standard_normal((50, 2)) * 10.0 ** rng.integers(-40, 40, (50, 2))).astype(dt)
            x[:3, 0] = [np.nan, np.inf, -0.0]
            outputs[f"o{k}"] = x
    rows = encode(outputs, "text/csv").decode().splitlines()
    assert rows == [encode({k: v[i:i + 1] for k, v in outputs.items()}, "text/csv").decode().rstrip("\n")
                    for i in range(50)]


@pytest.mark.parametrize("shapes", [((1,), (1, 2)), ((), (1, 3)), ((1, 1),), ((1, 4), (1,), ())])
@pytest.mark.parametrize("dtypes", [("<i8", "<f4", "<f8"), ("<f2", "bool", "<u2"), (">f8", "<i4", "<f4")])
def test_a_one_row_answer_is_written_value_by_value(shapes, dtypes):
    """One row of numbers is written by one cached %-format: the text must be each value as _formatter writes it."""
    from core.payloads.csv import _formatter

    rng = np.random.default_rng(7)
    for _ in range(20):
        outputs = {}
        for k, shape in enumerate(shapes):
            dt = dtypes[k % len(dtypes)]
            with np.errstate(over="ignore"):
                x = rng.standard_normal(shape) * 10.0 ** rng.integers(-40, 40, shape)
            if dt == "bool":
                x = x > 0
            elif dt[1] in "iu":
                x = np.abs(x) % 10**6
            outputs[f"o{k}"] = np.asarray(x).astype(dt)
        first = next(iter(outputs.values()))
        if first.dtype.kind == "f" and first.size:
            first.reshape(-1)[0] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.1])
        want = ",".join(_formatter(a)(v) for a in outputs.values() for v in np.asarray(a).reshape(-1).tolist())
        assert encode(outputs, "text/csv").decode() == want + "\n"
