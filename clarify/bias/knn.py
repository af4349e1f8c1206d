"""Exact k nearest neighbours on a KD-tree: Ferry's compiled kernel (clarify/bias/_knn.c), for the Flip Test.

``KDTree(x, rows)`` builds a tree over some rows of x and hands back its leaf order (``order``, a spatial order
of those rows); ``query`` answers rows of x for their k nearest tree rows (squared distances ascending, row
numbers), and ``votes`` for how many of them have a true label (or that the k-th distance is tied), on two
threads (the kernel releases the GIL). Queries asked in a spatial order, e.g. another tree's
``order`` restricted to the rows asked, run about 3x faster than in row order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from clarify.bias._knn import Tree

LEAF_SIZE = 16
THREADS = 2  # trees build and queries run on two threads (the kernel releases the GIL)
CHUNK = 16384  # queries per task: small, so the threads share the work evenly beside builds and between values


class KDTree:
    """A KD-tree over ``x[rows]`` (all rows when rows is None); x (n, d) is taken as float64 in C order."""

    def __init__(self, x: np.ndarray, rows: np.ndarray | None = None, leafsize: int = LEAF_SIZE):
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        rows = np.arange(len(self.x)) if rows is None else np.ascontiguousarray(rows, dtype=np.intp)
        self.n = len(rows)
        self.order = np.empty(self.n, dtype=np.intp)  # the rows in the tree's leaf order
        self._tree = Tree(self.x, rows, self.order, leafsize)

    def query(self, qrows: np.ndarray, k: int, pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest tree rows of each row qrows[i] of x: squared distances (m, k) ascending and row numbers
        (m, k)."""
        qrows = np.ascontiguousarray(qrows, dtype=np.intp)
        d2, idx = np.empty((len(qrows), k)), np.empty((len(qrows), k), dtype=np.intp)
        _chunked(lambda c: self._tree.query(self.x, qrows[c], d2[c], idx[c]), len(qrows), pool)
        return d2, idx

    def votes(self, qrows: np.ndarray, labels: np.ndarray, k: int, rtol: float,
              pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """For each row qrows[i] of x, how many of its k nearest tree rows have a true label (labels: bool, one per
        row of x), or -1 where the (k+1)-th squared distance is within rtol (relative) of the k-th. Needs k < n."""
        if pool is None:
            with ThreadPoolExecutor(THREADS) as own:
                return self.votes_start(qrows, labels, k, rtol, own)()
        return self.votes_start(qrows, labels, k, rtol, pool)()

    def votes_start(self, qrows: np.ndarray, labels: np.ndarray, k: int, rtol: float,
                    pool: ThreadPoolExecutor) -> Callable[[], np.ndarray]:
        """``votes`` queued on pool: returns a function that waits for the counts and returns them."""
        qrows, labels = np.ascontiguousarray(qrows, dtype=np.intp), np.ascontiguousarray(labels, dtype=bool)
        count = np.empty(len(qrows), dtype=np.intp)
        futures = [pool.submit(self._tree.votes, self.x, qrows[c], labels, k, rtol, count[c])
                   for c in _chunks(len(qrows))]

        def wait() -> np.ndarray:
            for f in futures:
                f.result()
            return count

        return wait


def _chunks(m: int) -> list[slice]:
    """0..m in chunks of at most CHUNK rows, at least THREADS."""
    cuts = np.linspace(0, m, max(THREADS, -(-m // CHUNK)) + 1).astype(int)
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _chunked(run, m: int, pool: ThreadPoolExecutor | None) -> None:
    """run(slice) over _chunks(m) on pool (one of its own when None)."""
    chunks = _chunks(m)
    if len(chunks) < 2:
        list(map(run, chunks))
    elif pool is None:
        with ThreadPoolExecutor(THREADS) as own:
            list(own.map(run, chunks))
    else:
        list(pool.map(run, chunks))
