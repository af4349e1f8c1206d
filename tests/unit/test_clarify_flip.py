"""The Flip Test's fast k-NN vote equals sklearn's classifier (what smclarify runs), ties included."""

import logging

import numpy as np
import pytest

from clarify.bias.flip import FlipRows, sklearn_vote


def _case(rng, n, x):
    d = rng.uniform(size=n) < 0.4
    predicted = rng.uniform(size=n) < 0.5
    return d, predicted


@pytest.mark.parametrize("seed", range(3))
def test_continuous_rows_vote_as_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    x = np.column_stack([rng.normal(size=n), rng.lognormal(3, 1, n), rng.uniform(0, 100, n)])
    d, p = _case(rng, n, x)
    np.testing.assert_array_equal(FlipRows(x).vote(d, p), sklearn_vote(x, d, p))


@pytest.mark.parametrize("seed", range(6))
def test_tied_rows_vote_as_sklearn_breaks_the_tie(seed, caplog):
    rng = np.random.default_rng(100 + seed)
    n = 3000
    x = rng.integers(0, 4, size=(n, 3)).astype(float)  # 64 distinct points: every neighbourhood is a tie
    d, p = _case(rng, n, x)
    rows = FlipRows(x)
    with caplog.at_level(logging.DEBUG, logger="clarify.bias.flip"):
        got = rows.vote(d, p)
    np.testing.assert_array_equal(got, sklearn_vote(x, d, p))
    assert "tie at the k-th neighbour" in caplog.text  # the tie path ran
    for other in (~d, rng.uniform(size=n) < 0.1):  # the same prepared rows serve every facet value
        np.testing.assert_array_equal(rows.vote(other, p), sklearn_vote(x, other, p))


@pytest.mark.parametrize("n_a", [1, 3, 9, 10, 11])
def test_small_a_uses_one_neighbour_up_to_nine_rows(n_a):
    rng = np.random.default_rng(n_a)
    x = rng.integers(0, 3, size=(n_a + 7, 2)).astype(float)
    d = np.r_[np.zeros(n_a, bool), np.ones(7, bool)]
    p = rng.uniform(size=len(x)) < 0.5
    np.testing.assert_array_equal(FlipRows(x).vote(d, p), sklearn_vote(x, d, p))


def test_non_finite_rows_raise_sklearns_error():
    x = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0], [2.0, 0.0]])
    d, p = np.array([True, False, False, False]), np.array([True, False, True, False])
    with pytest.raises(ValueError, match="NaN"):
        FlipRows(x).vote(d, p)
