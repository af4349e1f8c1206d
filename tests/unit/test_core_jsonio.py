"""The one JSON writer/reader of report files: SageMaker's dialect for non-finite numbers, numpy made plain."""

import json
import math

import numpy as np
import pytest

from core.jsonio import parse_value, read_json, write_json


def test_write_then_read_keeps_the_dialect(tmp_path):
    obj = {"nan": float("nan"), "inf": np.float64("inf"), "ninf": -math.inf, "i": np.int64(3), "b": np.bool_(True),
           "arr": np.array([1.5, np.nan]), "t": (1, 2), 4: "int key"}
    p = write_json(tmp_path / "a" / "b.json", obj)
    text = p.read_text()
    assert text.endswith("\n") and "NaN," not in text.replace('"NaN"', "")  # strict JSON: no bare NaN
    back = read_json(p)
    assert back == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "i": 3, "b": True, "arr": [1.5, "NaN"],
                    "t": [1, 2], "4": "int key"}
    assert math.isnan(parse_value(back["nan"])) and parse_value(back["ninf"]) == -math.inf
    json.loads(text)  # any JSON reader takes it


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_concurrent_atomic_writers_never_share_a_temporary_file_nor_leave_half_a_file(tmp_path):
    """write_text_atomic (under write_json, the feature-group registry and the control plane's state): threads
    writing one file at once each rename a whole file of their own into place, and no temporary file is left."""
    import threading

    from core.jsonio import write_text_atomic

    target = tmp_path / "state.json"
    texts = [json.dumps({"writer": i, "pad": "x" * 200_000}) for i in range(8)]
    errors = []

    def write(text):
        try:
            for _ in range(20):
                write_text_atomic(target, text)
                assert json.loads(target.read_text())["pad"]  # whatever is there is whole
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
