"""Ferry's compiled k-NN kernel (clarify/bias/knn.py over _knn.c) against brute force in numpy."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clarify.bias.knn import KDTree


def _brute(x, rows, qrows):
    """Squared distances (len(qrows), len(rows)), computed directly."""
    return ((x[qrows][:, None, :] - x[rows][None, :, :]) ** 2).sum(axis=-1)


def _check(x, rows, qrows, k, d2, idx):
    """d2 holds the k smallest distances ascending, and idx k distinct tree rows at exactly those distances (which
    of equally far rows is free)."""
    want = np.sort(_brute(x, rows, qrows), axis=1)[:, :k]
    np.testing.assert_allclose(d2, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(((x[qrows][:, None, :] - x[idx]) ** 2).sum(axis=-1), d2, rtol=1e-12, atol=1e-12)
    assert np.isin(idx, rows).all()
    assert all(len(set(r)) == k for r in idx.tolist())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("data", ["continuous", "ties", "duplicates", "skewed"])
def test_query_equals_brute_force(seed, data):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(2, 400)), int(rng.integers(1, 20))  # d over 16 takes the kernel's generic loop
    x = {"continuous": lambda: rng.normal(size=(n, d)),
         "ties": lambda: rng.integers(0, 3, size=(n, d)).astype(float),  # exact ties at every k
         "duplicates": lambda: np.repeat(rng.normal(size=(max(1, n // 7), d)), 7, axis=0)[:n],
         "skewed": lambda: rng.lognormal(8, 2, size=(n, d)).round(2)}[data]()
    n = len(x)
    rows = np.flatnonzero(rng.uniform(size=n) < 0.6)
    if len(rows) == 0:
        rows = np.array([0])
    tree = KDTree(x, rows, leafsize=int(rng.integers(1, 20)))
    assert sorted(tree.order.tolist()) == sorted(rows.tolist())  # the order is a permutation of the rows
    qrows = rng.permutation(n)
    for k in {1, min(6, len(rows)), len(rows)}:  # k == n: every row
        d2, idx = tree.query(qrows, k)
        _check(x, rows, qrows, k, d2, idx)


def test_all_rows_equal_and_many_chunks():
    x = np.ones((70000, 3))
    tree = KDTree(x)
    d2, idx = tree.query(np.arange(0, 70000, 2), 4)  # several chunks on two threads
    assert (d2 == 0).all() and all(len(set(r)) == 4 for r in idx[:50].tolist())


def test_non_contiguous_and_integer_input():
    rng = np.random.default_rng(3)
    big = rng.integers(0, 50, size=(300, 8))
    x = big[::2, ::3]  # a strided int view: taken as float64, C order
    rows = list(range(0, 150, 3))
    tree = KDTree(x, rows)
    d2, idx = tree.query(np.arange(150)[::-1], 5)
    _check(x.astype(float), np.array(rows), np.arange(150)[::-1], 5, d2, idx)


def test_votes_count_the_k_nearest_labels_and_flag_ties():
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.normal(size=2000), rng.integers(0, 3, 2000)])
    x[:100] = x[100:200]  # duplicates: ties at the k-th place
    labels = rng.uniform(size=2000) < 0.5
    rows, qrows, k = np.arange(0, 2000, 2), np.arange(1, 2000, 2), 5
    count = KDTree(x, rows).votes(qrows, labels, k, 1e-9)
    dist = _brute(x, rows, qrows)
    near = np.sort(dist, axis=1)
    tied = near[:, k] - near[:, k - 1] <= 1e-9 * near[:, k - 1]
    assert tied.any() and (count[tied] == -1).all()
    want = (labels[rows][np.argsort(dist, axis=1, kind="stable")[:, :k]]).sum(axis=1)
    np.testing.assert_array_equal(count[~tied], want[~tied])


def test_clear_errors():
    x = np.zeros((5, 2))
    tree = KDTree(x, [0, 1, 2])
    with pytest.raises(ValueError):
        tree.query([0], 4)  # more neighbours than tree rows
    with pytest.raises(ValueError):
        tree.votes([0], np.zeros(5, bool), 3, 1e-9)  # votes need a (k+1)-th row
    with pytest.raises(IndexError):
        tree.query([7], 1)
    with pytest.raises(IndexError):
        KDTree(x, [0, 9])
    with pytest.raises(ValueError):
        KDTree(x, [])


def test_a_column_of_powers_of_two_stays_exact():
    """Each mean split peels one row off: past the kernel's depth limit the rest is one leaf, still exact."""
    x = np.column_stack([2.0 ** np.arange(400), np.zeros(400)])
    rows, qrows = np.arange(0, 400, 2), np.arange(1, 400, 2)
    d2, idx = KDTree(x, rows).query(qrows, 3)
    _check(x, rows, qrows, 3, d2, idx)


def test_a_mean_rounded_above_the_largest_value_still_splits():
    """A column of two adjacent doubles whose running sum rounds the mean above the larger: the build splits at
    the top instead (it looped for ever before). Run in a child process, so a regression fails instead of hanging."""
    rng = np.random.default_rng(0)
    for _ in range(100_000):
        a = rng.uniform(0, 1)
        vals = [a] * int(rng.integers(17, 40)) + [np.nextafter(a, 2)] * int(rng.integers(1, 5))
        rng.shuffle(vals)
        total = 0.0
        for v in vals:  # summed in row order, as the kernel sums a node's column
            total += v
        if total / len(vals) > max(vals):
            break
    else:
        pytest.fail("no column whose mean rounds above its largest value was found")
    code = ("import sys, numpy as np; from clarify.bias.knn import KDTree\n"
            "x = np.zeros((len(sys.argv) - 1, 2)); x[:, 0] = [float(v) for v in sys.argv[1:]]\n"
            "d2, idx = KDTree(x, leafsize=4).query(np.arange(len(x)), 3); print(len(set(KDTree(x).order.tolist())))")
    out = subprocess.run([sys.executable, "-c", code, *map(repr, map(float, vals))], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(vals))]
