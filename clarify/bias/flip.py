"""The Flip Test's k-nearest-neighbour votes, exact and fast.

smclarify fits sklearn's ``KNeighborsClassifier`` (k = 5, or 1 when a has at most 9 rows; a KD-tree on the raw
features) on a's rows and predictions and asks it about d's rows, once per facet value. Ferry finds the same
neighbours with pykdtree's KD-tree (its queries run on every core):

- each facet value's rows are put in a spatial order of their own (a KD-tree's leaf order; the values' orders are
  built two at once), so consecutive queries walk the same nodes (3-4x faster than in row order);
- the ordered rows are laid out once as [v1 .. vm, rest, v1 .. v(m-1)] (the largest value last, not repeated), so
  each value's rows and its others are each one contiguous slice: each value's tree (over its others, built two
  at once before the queries) and its queries read the layout without a copy;
- each value's rows are queried in that order for their k + 1 nearest in one pass (squared distances): the vote
  is the k nearest's majority unless the (k+1)-th distance ties the k-th, and only those rows look further.

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
THREADS = 2  # orders and trees are built two at once (cKDTree and pykdtree builds release the GIL)


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


def leaf_order(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The positions of ``rows`` in a KD-tree's leaf order, leaves of 16 (finer orders make faster queries; cKDTree's
    build releases the GIL)."""
    from scipy.spatial import cKDTree

    return cKDTree(np.take(x, rows, axis=0), leafsize=16, balanced_tree=False, compact_nodes=False).indices


def _in_order(pool: ThreadPoolExecutor, fn, items: list, size) -> list:
    """fn of each item, run on the pool largest first (the two threads end together), in the items' order."""
    futures = {i: pool.submit(fn, items[i]) for i in sorted(range(len(items)), key=lambda i: -size(items[i]))}
    return [futures[i].result() for i in range(len(items))]


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
        with np.errstate(over="ignore", invalid="ignore"):  # a finite sum means all are finite; else look closer
            finite = xf is not None and bool(np.isfinite(xf.sum()) or np.isfinite(xf).all())
        self.xf = xf if finite else None  # else sklearn raises smclarify's error
        self._votes: dict[int, np.ndarray] = {}

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

        n = len(self.codes)
        rows_of = {c: np.flatnonzero(self.codes == c) for c in dict.fromkeys(codes)}
        codes = sorted((c for c, r in rows_of.items() if 0 < len(r) < n), key=lambda c: len(rows_of[c]))
        if not codes:
            return
        rest = np.flatnonzero(~np.isin(self.codes, codes))  # rows of no queried value: always among the others
        blocks = [rows_of[c] for c in codes] + ([rest] if len(rest) else [])
        with ThreadPoolExecutor(THREADS) as pool:
            # each value's rows in a spatial order of their own (its queries run along it: 3-4x faster than in row
            # order; the trees' own row order does not matter to the queries, only to their builds)
            perms = _in_order(pool, lambda rows: leaf_order(self.xf, rows), blocks, size=len)
            ordered = [rows[perm] for rows, perm in zip(blocks, perms)]
            # the blocks laid out as [v1 .. vm, rest, v1 .. v(m-1)]: each value's rows, and its others (the blocks
            # after it, round the end), are each one contiguous slice, so no value's rows are copied again
            layout = np.concatenate(ordered + ordered[:len(codes) - 1])
            xl = np.empty((len(layout), self.xf.shape[1]))
            halves = (slice(0, len(layout) // 2), slice(len(layout) // 2, None))
            list(pool.map(lambda h: np.take(self.xf, layout[h], axis=0, out=xl[h]), halves))
            pl = self.predicted[layout]
            starts = np.cumsum([0] + [len(rows) for rows in ordered])
            spans = [(starts[i], starts[i + 1], starts[i + 1] + n - len(ordered[i])) for i in range(len(codes))]
            # every value's tree is built (two at once) before the queries take both cores
            trees = _in_order(pool, lambda span: KDTree(xl[span[1]:span[2]], leafsize=LEAF_SIZE), spans,
                              size=lambda span: span[2] - span[1])
        for i, c in enumerate(codes):
            s, e, a_end = spans[i]
            vote = self._knn_vote(trees[i], pl[e:a_end], xl[s:e], c, ordered[i])
            self._votes[c] = np.empty(len(vote), dtype=bool)
            self._votes[c][perms[i]] = vote  # back to row order

    def _knn_vote(self, tree, a_pred: np.ndarray, xd: np.ndarray, code: int, d_rows: np.ndarray) -> np.ndarray:
        """Votes for the rows xd (d_rows, in that order) from the tree over the others, whose predictions are
        a_pred."""
        k = n_neighbors(len(a_pred))
        kk = min(k + 1, len(a_pred))
        d2, idx = tree.query(xd, k=kk, sqr_dists=True)
        d2, idx = d2.reshape(len(xd), kk), idx.reshape(len(xd), kk)
        vote = 2 * np.count_nonzero(a_pred[idx[:, :k]], axis=1) > k
        if kk == k:  # a has k rows: every row is a neighbour
            return vote
        # the k nearest are unique unless the (k+1)-th distance ties the k-th: only those rows look further
        # (on squared distances: a relative gap of 2.5 * TIE_RTOL there is more than TIE_RTOL on distances)
        edge = np.flatnonzero(d2[:, k] - d2[:, k - 1] <= 2.5 * TIE_RTOL * d2[:, k - 1])
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
