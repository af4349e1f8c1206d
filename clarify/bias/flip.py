"""The Flip Test's k-nearest-neighbour votes, exact and fast.

smclarify fits sklearn's ``KNeighborsClassifier`` (k = 5, or 1 when a has at most 9 rows; a KD-tree on the raw
features) on a's rows and predictions and asks it about d's rows, once per facet value. Ferry finds the same
neighbours with pykdtree's KD-tree (its queries run on every core):

- all rows are put once in a spatial order (a KD-tree's leaf order; on large inputs the two halves of a median
  split are ordered by two threads at once); each facet value's tree (over its a) is built on rows in that
  order, so a leaf's rows are neighbours in memory;
- each facet value's rows are queried in that order, so consecutive queries walk the same nodes (3-4x faster
  than in row order), for their k + 1 nearest in one pass: the vote is the k nearest's majority unless the
  (k+1)-th distance ties the k-th, and only those rows look further.

The k nearest rows are unique except where distances tie at the k-th place; there sklearn's own tree decides
which tied row counts, so a row whose tie group (rows within 1e-9 relative of the k-th distance) cannot change
the vote - all tied rows vote alike, or the closer rows already decide - keeps the vote (it is the same whichever
tied rows count), and the few rows whose vote does depend on the tie are asked of sklearn's classifier itself,
fitted as smclarify fits it (a's rows in row order), so its tie-breaking decides. Non-finite features go to
sklearn whole, which raises smclarify's error.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger(__name__)
TIE_RTOL = 1e-9  # distances this close to the k-th count as tied (far above any rounding difference)
LEAF_SIZE = 16
BUILD_THREADS = 2  # the spatial order's two halves are ordered at once (cKDTree builds release the GIL)


def n_neighbors(n_a: int) -> int:
    """smclarify's k: 5, or 1 when a has at most 9 rows."""
    return 5 if n_a > 9 else 1


def sklearn_vote(x: np.ndarray, d: np.ndarray, predicted: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """What smclarify's classifier predicts for d's rows (or for the given rows only)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=n_neighbors(int((~d).sum())), weights="uniform", algorithm="auto",
                               leaf_size=30, p=2, metric="minkowski", n_jobs=-1)
    knn.fit(x[~d], predicted[~d])
    return np.asarray(knn.predict(x[d] if rows is None else x[rows]), dtype=bool)


def spatial_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of x in a KD-tree's leaf order, and x's rows in that order; on large inputs two halves (split at
    the median of the widest column) are ordered and gathered by two threads at once."""
    from scipy.spatial import cKDTree

    def leaf_order(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        xr = x[rows]
        leaves = cKDTree(xr, leafsize=256, balanced_tree=False, compact_nodes=False).indices
        np.take(xr, leaves, axis=0, out=out)
        return rows[leaves]

    n = len(x)
    xo = np.empty_like(x)
    if n < 50_000:
        return leaf_order(np.arange(n), xo), xo
    sample = x[:: max(1, n // 65_536)]  # the widest column, from a sample: any split column gives a valid order
    widest = int(np.argmax(sample.max(axis=0) - sample.min(axis=0)))
    halves = np.argpartition(x[:, widest], n // 2)
    with ThreadPoolExecutor(BUILD_THREADS) as pool:
        lo, hi = pool.map(leaf_order, (halves[: n // 2], halves[n // 2:]), (xo[: n // 2], xo[n // 2:]))
    return np.concatenate((lo, hi)), xo


def _query(tree, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest tree rows of each row of xq (on every core): distances (n, k) and row numbers (n, k)."""
    dist, idx = tree.query(np.ascontiguousarray(xq), k=k)
    return dist.reshape(len(xq), k), idx.reshape(len(xq), k).astype(np.intp, copy=False)


class FlipVotes:
    """The k-NN votes of one facet split: for the rows of each facet value (codes == code), the majority
    prediction of their k nearest rows among the others (codes != code), as sklearn gives it."""

    def __init__(self, x: np.ndarray, predicted: np.ndarray, codes: np.ndarray, query_codes: list[int]):
        self.x, self.predicted, self.codes, self.query_codes = x, predicted, codes, list(query_codes)
        try:
            xf = np.ascontiguousarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            xf = None
        self.xf = xf if xf is not None and np.isfinite(xf).all() else None  # else sklearn raises smclarify's error
        self._votes: dict[int, np.ndarray] = {}
        self._order: np.ndarray | None = None
        self._xo: np.ndarray | None = None

    def vote(self, code: int) -> np.ndarray:
        """The votes for the rows of ``code``, in row order."""
        if self.xf is None:
            return sklearn_vote(self.x, self.codes == code, self.predicted)
        if code not in self._votes:
            self._run([c for c in [*self.query_codes, code] if c not in self._votes])
        if code not in self._votes:  # no rows, or no others: sklearn says what is wrong
            return sklearn_vote(self.x, self.codes == code, self.predicted)
        return self._votes[code]

    def _run(self, codes: list[int]) -> None:
        from pykdtree.kdtree import KDTree

        codes = [c for c in dict.fromkeys(codes) if 0 < (self.codes == c).sum() < len(self.codes)]
        if self._order is None:  # one spatial order of all rows: trees build faster on it, queries run along it
            self._order, self._xo = spatial_order(self.xf)
        order, xo, ordered_codes = self._order, self._xo, self.codes[self._order]

        def build(c: int):
            d_mask = ordered_codes == c
            return d_mask, KDTree(xo[~d_mask], leafsize=LEAF_SIZE), xo[d_mask]

        # the next value's tree builds while a value's rows are queried (pykdtree releases the GIL in both)
        with ThreadPoolExecutor(1) as builder:
            trees = [builder.submit(build, c) for c in codes]
            for c, tree in zip(codes, trees):
                d_mask, tree, xd = tree.result()
                d_rows = order[d_mask]
                vote = self._knn_vote(tree, order[~d_mask], xd, c, d_rows)
                out = np.empty(len(self.codes), dtype=bool)
                out[d_rows] = vote
                self._votes[c] = out[self.codes == c]

    def _knn_vote(self, tree, a_rows: np.ndarray, xd: np.ndarray, code: int, d_rows: np.ndarray) -> np.ndarray:
        """Votes for the rows xd (d_rows, in that order) from the tree over a_rows."""
        k = n_neighbors(len(a_rows))
        a_pred = self.predicted[a_rows]
        kk = min(k + 1, len(a_rows))
        dist, idx = _query(tree, xd, kk)
        vote = 2 * a_pred[idx[:, :k]].sum(axis=1) > k
        if kk == k:  # a has k rows: every row is a neighbour
            return vote
        # the k nearest are unique unless the (k+1)-th distance ties the k-th: only those rows look further
        edge = np.flatnonzero(dist[:, k] - dist[:, k - 1] <= TIE_RTOL * dist[:, k - 1])
        if len(edge):
            vote[edge] = self._tied_vote(tree, a_pred, xd, d_rows, edge, code, k)
        return vote

    def _tied_vote(self, tree, a_pred: np.ndarray, xd: np.ndarray, d_rows: np.ndarray, rows: np.ndarray,
                   code: int, k: int) -> np.ndarray:
        """Votes for d_rows[rows], whose k-th nearest distance is tied: kept where no choice of the tied rows
        changes the vote, else sklearn's classifier decides."""
        n_a = len(a_pred)
        vote = np.empty(len(rows), dtype=bool)
        undecided: list[np.ndarray] = []
        queries, extra = np.arange(len(rows)), 4
        while len(queries):
            kk = min(k + extra, n_a)
            dist, idx = _query(tree, xd[rows[queries]], kk)
            labels = a_pred[idx]
            kth = dist[:, k - 1:k]
            tied = np.abs(dist - kth) <= TIE_RTOL * kth
            closer = (dist < kth) & ~tied
            r = k - closer.sum(axis=1)  # places the tied rows fill
            pos_in = (labels & closer).sum(axis=1)
            tie_pos, tie_n = (labels & tied).sum(axis=1), tied.sum(axis=1)
            open_tie = tied[:, -1] & (kk < n_a)  # the tie may go on past the last row seen
            # the fewest and most positives any choice of the tied rows gives (unseen tied rows may be either)
            low = pos_in + np.where(open_tie, 0, np.maximum(0, r - (tie_n - tie_pos)))
            high = pos_in + np.where(open_tie, r, np.minimum(r, tie_pos))
            decided = (2 * low > k) | (2 * high < k)
            vote[queries[decided]] = 2 * low[decided] > k
            open_tie &= ~decided
            undecided.append(queries[~decided & ~open_tie])  # the whole tie decides: sklearn's tie-breaking
            queries, extra = queries[open_tie], extra * 4
        rest = np.concatenate(undecided)
        if len(rest):
            log.debug("Flip Test: %d of %d rows tie at the k-th neighbour, asked of sklearn", len(rest), len(d_rows))
            vote[rest] = sklearn_vote(self.x, self.codes == code, self.predicted, rows=d_rows[rows[rest]])
        return vote
