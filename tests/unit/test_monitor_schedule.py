"""Schedule spec validation, next run times, ground-truth files."""

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from monitor import ground_truth
from monitor.service import next_run
from monitor.spec import MonitoringScheduleSpec

T = datetime(2026, 5, 4, 12, 7, 30, tzinfo=timezone.utc)


def _spec(**kw):
    return MonitoringScheduleSpec(name="s", endpoint="ep", baseline="b", **kw)


def test_next_run_on_interval_and_cron():
    assert next_run(_spec(interval_s=600), T) == datetime(2026, 5, 4, 12, 10, tzinfo=timezone.utc)
    assert next_run(_spec(cron="0 * * * *"), T) == datetime(2026, 5, 4, 13, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("kw,field", [
    ({"cron": "every hour"}, "cron"),
    ({"monitor_type": "model_quality"}, "ground_truth"),
    ({"monitor_type": "bias", "ground_truth": "gt"}, "bias"),
    ({"monitor_type": "bias", "ground_truth": "gt", "bias": {"facets": [{"name": "age", "value": [1]}]}}, "value"),
    ({"monitor_type": "bias", "ground_truth": "gt", "bias": {"facets": [{"name": "age", "values": [1], "threshold": 4}]}},
     "values or a threshold, not both"),
    ({"monitor_type": "attribution"}, r"attribution.model\n.*Field required(.|\n)*attribution.features"),
    ({"monitor_type": "data_quality", "ground_truth": "gt"}, r"data_quality.ground_truth\n.*Extra inputs"),
    ({"monitor_type": "drift"}, "monitor_type must be one of data_quality, model_quality, bias, attribution"),
    ({"window_start_offset_s": 60, "window_end_offset_s": 60}, "window_end_offset_s"),
    ({"colour": "red"}, "colour"),
])
def test_bad_schedules_name_the_field(kw, field):
    with pytest.raises(ValidationError, match=field):
        _spec(**kw)


def test_each_monitor_type_gets_its_own_class_and_an_untagged_entry_is_data_quality():
    from monitor.spec import SCHEDULE_TYPES, DataQualitySchedule

    assert type(_spec()) is DataQualitySchedule
    for name, cls in SCHEDULE_TYPES.items():
        needs = {"model_quality": {"ground_truth": "gt"}, "bias": {"ground_truth": "gt", "bias": {"facets": ["f"]}},
                 "attribution": {"model": "m.onnx", "features": ["a"]}}.get(name, {})
        spec = _spec(monitor_type=name, **needs)
        assert type(spec) is cls and cls.check_types
        assert MonitoringScheduleSpec(**spec.model_dump(mode="json")) == spec  # how serving hands it to Ray


def test_ground_truth_write_then_read(tmp_path):
    recs = [ground_truth.record("a", 1), ground_truth.record("b", 0)]
    p = ground_truth.write(recs, tmp_path, now=T)
    assert p.relative_to(tmp_path).as_posix() == "2026/05/04/12/ground-truth.jsonl"
    ground_truth.write([ground_truth.record("a", 0)], tmp_path, now=T)
    df = ground_truth.read(tmp_path)
    assert dict(zip(df["joinKey"], df["groundTruth"])) == {"a": "0", "b": "0"}
    with pytest.raises(ValueError, match="groundTruthData.data"):
        ground_truth.write([{"eventMetadata": {"eventId": "x"}}], tmp_path)


def test_service_runs_schedules_in_the_background_and_stops(tmp_path):
    import time

    from monitor.runner import list_executions
    from monitor.service import MonitorService

    spec = MonitoringScheduleSpec(name="tick", endpoint="ep", baseline=str(tmp_path / "b"), interval_s=0.5,
                                  capture=str(tmp_path / "cap"), output=str(tmp_path / "out"))
    svc = MonitorService([spec])
    svc.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list_executions(tmp_path / "out")) < 2:
        time.sleep(0.1)
    svc.stop()
    runs = list_executions(tmp_path / "out", "ep", "tick")
    assert len(runs) >= 2 and {r["status"] for r in runs} == {"Failed"}
    assert all(r["failure_reason"].startswith("no captured data in window") for r in runs)
    n = len(list_executions(tmp_path / "out"))
    time.sleep(1.2)
    assert len(list_executions(tmp_path / "out")) == n, "no run after stop()"
