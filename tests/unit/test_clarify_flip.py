"""The Flip Test's fast k-NN votes equal sklearn's classifier (what smclarify runs), ties included."""

import logging

import numpy as np
import pytest

from clarify.bias.flip import FlipVotes, sklearn_vote


def _vote(x, d, p):
    return FlipVotes(x, p, d.astype(np.int64), [1]).vote(1)


@pytest.mark.parametrize("seed", range(3))
def test_continuous_rows_vote_as_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 4000
    x = np.column_stack([rng.normal(size=n), rng.lognormal(3, 1, n), rng.uniform(0, 100, n)])
    d, p = rng.uniform(size=n) < 0.4, rng.uniform(size=n) < 0.5
    np.testing.assert_array_equal(_vote(x, d, p), sklearn_vote(x, d, p))


@pytest.mark.parametrize("seed", range(6))
def test_tied_rows_vote_as_sklearn_breaks_the_tie(seed, caplog):
    rng = np.random.default_rng(100 + seed)
    n = 3000
    x = rng.integers(0, 4, size=(n, 3)).astype(float)  # 64 distinct points: every neighbourhood is a tie
    d, p = rng.uniform(size=n) < 0.4, rng.uniform(size=n) < 0.5
    with caplog.at_level(logging.DEBUG, logger="clarify.bias.flip"):
        got = _vote(x, d, p)
    np.testing.assert_array_equal(got, sklearn_vote(x, d, p))
    assert "tie at the k-th neighbour" in caplog.text  # the tie path ran


@pytest.mark.parametrize("tied", [False, True])
def test_every_facet_value_of_a_split_votes_as_sklearn(tied):
    """One-vs-all: each value's rows against all the others (rows without a value, code -1, are always others)."""
    rng = np.random.default_rng(7)
    n = 5000
    x = rng.integers(0, 5, size=(n, 3)).astype(float) if tied else rng.normal(size=(n, 4))
    codes = rng.choice([-1, 0, 1, 2], n, p=[0.05, 0.45, 0.4, 0.1])
    p = rng.uniform(size=n) < 0.5
    votes = FlipVotes(x, p, codes, [0, 1, 2])
    for c in (2, 0, 1):
        np.testing.assert_array_equal(votes.vote(c), sklearn_vote(x, codes == c, p))


@pytest.mark.parametrize("n_a", [1, 3, 9, 10, 11])
def test_small_a_uses_one_neighbour_up_to_nine_rows(n_a):
    rng = np.random.default_rng(n_a)
    x = rng.integers(0, 3, size=(n_a + 7, 2)).astype(float)
    d = np.r_[np.zeros(n_a, bool), np.ones(7, bool)]
    p = rng.uniform(size=len(x)) < 0.5
    np.testing.assert_array_equal(_vote(x, d, p), sklearn_vote(x, d, p))


def test_non_finite_rows_raise_sklearns_error():
    x = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0], [2.0, 0.0]])
    d, p = np.array([True, False, False, False]), np.array([True, False, True, False])
    with pytest.raises(ValueError, match="NaN"):
        _vote(x, d, p)
