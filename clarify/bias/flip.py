"""The Flip Test's k-nearest-neighbour vote, exact and fast.

smclarify fits sklearn's ``KNeighborsClassifier`` (k = 5, or 1 when a has at most 9 rows; a KD-tree on the raw
features) on a's rows and predictions and asks it about d's rows. Ferry finds the same neighbours with scipy's
cKDTree queried in parallel, with rows (tree and queries) laid out in one spatial order so that consecutive
queries walk the same nodes (3-4x fewer cache misses than row order). The k nearest rows are unique except
where distances tie at the k-th place; there sklearn's own tree decides which tied row counts, so:

- a row whose tie group (rows within 1e-9 relative of the k-th distance) cannot change the vote - all tied rows
  vote alike, or the closer rows already decide - keeps the vote: it is the same whichever tied rows count;
- the few rows whose vote does depend on the tie are asked of sklearn's classifier itself, fitted as smclarify
  fits it (a's rows in row order), so its tie-breaking decides, as in smclarify.

Non-finite or non-numeric features go to sklearn whole, which raises smclarify's errors.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)
TIE_RTOL = 1e-9  # distances this close to the k-th count as tied (far above any rounding difference)
LEAF_SIZE = 32


def spatial_order(x: np.ndarray) -> np.ndarray:
    """A permutation of the rows that keeps near rows together (a KD-tree's leaf order)."""
    from scipy.spatial import cKDTree

    return cKDTree(x, leafsize=256, balanced_tree=False, compact_nodes=False).indices


def n_neighbors(n_a: int) -> int:
    """smclarify's k: 5, or 1 when a has at most 9 rows."""
    return 5 if n_a > 9 else 1


def sklearn_vote(x: np.ndarray, d: np.ndarray, predicted: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """What smclarify's classifier predicts for d's rows (or for the given d rows only)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=n_neighbors(int((~d).sum())), weights="uniform", algorithm="auto",
                               leaf_size=30, p=2, metric="minkowski", n_jobs=-1)
    knn.fit(x[~d], predicted[~d])
    return np.asarray(knn.predict(x[d] if rows is None else x[rows]), dtype=bool)


class FlipRows:
    """Feature rows prepared once (as floats, in a spatial order) for the Flip Test of every facet value."""

    def __init__(self, x: np.ndarray):
        self.x = x
        try:
            xf = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            xf = None
        self.xf = xf if xf is not None and np.isfinite(xf).all() else None  # else sklearn raises smclarify's error
        self._order: np.ndarray | None = None

    @property
    def order(self) -> np.ndarray:
        if self._order is None:
            self._order = spatial_order(self.xf)
        return self._order

    def vote(self, d: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """For each d row (in row order), the majority prediction of its k nearest a rows, as sklearn gives it."""
        if self.xf is None:
            return sklearn_vote(self.x, d, predicted)
        from scipy.spatial import cKDTree

        order = self.order
        a_rows, d_rows = order[~d[order]], order[d[order]]
        k = n_neighbors(len(a_rows))
        tree = cKDTree(self.xf[a_rows], leafsize=LEAF_SIZE)
        a_pred = predicted[a_rows]
        vote = np.empty(len(d_rows), dtype=bool)
        undecided: list[np.ndarray] = []
        queries, extra = np.arange(len(d_rows)), 1
        while len(queries):
            kk = min(k + extra, len(a_rows))
            dist, idx = tree.query(self.xf[d_rows[queries]], k=kk, workers=-1)
            dist, idx = dist.reshape(len(queries), kk), idx.reshape(len(queries), kk)
            labels = a_pred[idx]
            kth = dist[:, k - 1:k]
            tied = np.abs(dist - kth) <= TIE_RTOL * kth
            closer = (dist < kth) & ~tied
            r = k - closer.sum(axis=1)  # places the tied rows fill
            pos_in = (labels & closer).sum(axis=1)
            tie_pos, tie_n = (labels & tied).sum(axis=1), tied.sum(axis=1)
            open_tie = tied[:, -1] & (kk < len(a_rows))  # the tie may go on past the last row seen
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
            vote[rest] = sklearn_vote(self.x, d, predicted, rows=d_rows[rest])
        out = np.empty(len(d), dtype=bool)
        out[d_rows] = vote
        return out[d]
