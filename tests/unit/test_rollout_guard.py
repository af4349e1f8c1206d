"""Rollout steps and the built-in alarms, as pure functions."""

from __future__ import annotations

import pytest

from serving.control.rollout import built_in_alarm, shares, weights_at, window
from serving.control.state import Alarms, GreenVariant, TrafficState
from serving.metrics import REQUEST_LATENCY


def test_strategies_step_to_all_green():
    assert shares("all-at-once", 10, 20) == [1.0]
    assert shares("canary", 10, 20) == [0.1, 1.0]
    assert shares("linear", 10, 25) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        shares("big-bang", 10, 20)


def test_step_weights_keep_each_fleets_ratios():
    w = weights_at({"A": 3, "B": 1}, {"G": 1}, 0.2)
    assert w == pytest.approx({"A": 0.6, "B": 0.2, "G": 0.2})


def totals(codes: dict, slow: int = 0) -> dict:
    counts = [0] * (len(REQUEST_LATENCY.buckets) + 1)
    counts[0], counts[-1] = sum(codes.values()) - slow, slow
    return {"codes": codes, "latency_counts": counts, "latency_sum": 0.0}


def test_alarms_judge_the_window_not_the_history():
    before = {"ep/G": totals({"200": 1000, "424": 5}), "ep/B": totals({"200": 1000})}
    after = {"ep/G": totals({"200": 1090, "424": 15}), "ep/B": totals({"200": 1100, "400": 1})}
    g, b = window(before, after, "ep", ["G"]), window(before, after, "ep", ["B"])
    assert (g["requests"], g["errors"]) == (100, 10) and (b["requests"], b["client_errors"]) == (101, 1)
    assert "error rate 10.0%" in built_in_alarm(Alarms(), g, b)
    assert built_in_alarm(Alarms(max_error_rate=0.2), g, b) is None
    assert built_in_alarm(Alarms(min_requests=500), g, b) is None  # too few requests to judge
    many_4xx = window({"ep/G": totals({"200": 0})}, {"ep/G": totals({"200": 80, "400": 20})}, "ep", ["G"])
    assert "4xx rate 20.0%" in built_in_alarm(Alarms(), many_4xx, b)
    slow = window({}, {"ep/G": totals({"200": 100}, slow=5)}, "ep", ["G"])
    assert "p99" in built_in_alarm(Alarms(max_p99_s=1.0), slow, b)


def test_variants_added_and_removed_at_run_time():
    s = TrafficState(endpoints={"ep": {"weights": {"B": 1}}})
    s = s.with_variants("ep", added={"G": GreenVariant(model={"name": "m", "path": "/m.onnx"}).added("G")})
    assert s.endpoints["ep"].weights == {"B": 1, "G": 0.0} and set(s.endpoints["ep"].added) == {"G"}
    s = s.with_weights("ep", {"B": 0, "G": 1}, replace=True).with_variants("ep", removed=["B"])
    t = s.endpoints["ep"]
    assert t.weights == {"G": 1} and t.removed == ["B"] and set(t.added) == {"G"} and s.version == 3
