from collections import Counter

from serving.endpoint import VariantPicker


def test_weights_split_and_zero_weight_never_picked():
    picker = VariantPicker({"A": 3, "B": 1, "C": 0}, seed=3)
    counts = Counter(picker.pick() for _ in range(20000))
    assert set(counts) == {"A", "B"}
    assert abs(counts["B"] / 20000 - 0.25) < 0.02


def test_target_wins_and_unknown_target_is_none():
    picker = VariantPicker({"A": 1, "B": 0})
    assert picker.pick("B") == "B"
    assert picker.pick("Z") is None
    assert VariantPicker({"only": 2}).pick() == "only"
