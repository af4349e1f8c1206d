"""The Flip Test's k-nearest-neighbour votes, exact and fast.

smclarify fits sklearn's ``KNeighborsClassifier`` (k = 5, or 1 when a has at most 9 rows; a KD-tree on the raw
features) on a's rows and predictions and asks it about d's rows, once per facet value. Ferry finds the same
neighbours with its own compiled KD-tree (clarify/bias/knn.py):

- each facet value's tree is built over its others (two at once, the smallest first) and hands back its leaf
  order;
- each value's rows are asked in a spatial order taken from another value's tree, which holds them all (3x
  faster queries than in row order; with one value only, a tree over its own rows gives the order);
- each value's rows are asked for their k + 1 nearest in one pass (squared distances, two threads): the vote is
  the k nearest's majority unless the (k+1)-th distance ties the k-th, and only those rows look further;
- each value's votes and flip counts are taken as its queries finish, while the next value's queries run.

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
import pandas as pd

from clarify.bias._knn import rows_of_columns
from clarify.bias.knn import THREADS, KDTree

log = logging.getLogger(__name__)
TIE_RTOL = 1e-9  # distances this close to the k-th count as tied (far above any rounding difference)


def n_neighbors(n_a: int) -> int:
    """smclarify's k: 5, or 1 when a has at most 9 rows."""
    return 5 if n_a > 9 else 1


def feature_rows(features: pd.DataFrame) -> tuple[np.ndarray, bool | None]:
    """The feature columns as an array of rows, what ``np.array(features)`` gives, and whether all are finite (None:
    not known). When every column is bool, integer or float64 (all float64 to sklearn and to the kernel), float64
    in C order straight from the columns, in one pass that also tells whether they are finite: pandas' own array
    is column-major, and the kernel's C-order copy of it would be a second pass, the finiteness check a third."""
    if not len(features.columns) or not all(isinstance(t, np.dtype) and (t.kind in "biu" or t == np.float64)
                                            for t in features.dtypes):
        return np.array(features), None
    cols = [features.iloc[:, j].to_numpy() for j in range(features.shape[1])]
    cols = [np.ascontiguousarray(c, dtype=np.float64 if c.dtype.kind != "i" or c.itemsize != 8 else None)
            for c in cols]
    x = np.empty((len(features), len(cols)))
    return x, rows_of_columns(cols, x)


def flip_counts(y_model: np.ndarray, y_knn: np.ndarray) -> tuple[int, int]:
    """The Flip Test's counts for a facet value's rows: F+ - F- (rows the model predicts positive and their
    neighbours negative, less the other way round) and the number of rows."""
    return int(np.count_nonzero(y_model & ~y_knn)) - int(np.count_nonzero(~y_model & y_knn)), len(y_model)


def sklearn_vote(x: np.ndarray, d: np.ndarray, predicted: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """What smclarify's classifier predicts for d's rows (or for the given rows only)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=n_neighbors(int((~d).sum())), weights="uniform", algorithm="auto",
                               leaf_size=30, p=2, metric="minkowski", n_jobs=-1)
    knn.fit(x[~d], predicted[~d])
    return np.asarray(knn.predict(x[d] if rows is None else x[rows]), dtype=bool)


class FlipVotes:
    """The k-NN votes of one facet split: for the rows of each facet value (codes == code), the majority
    prediction of their k nearest rows among the others (codes != code), as sklearn gives it."""

    def __init__(self, x: np.ndarray, predicted: np.ndarray, codes: np.ndarray, query_codes: list[int],
                 finite: bool | None = None):
        """finite: whether every value of x is finite, when known (``feature_rows`` tells)."""
        self.x, self.predicted, self.codes, self.query_codes = x, predicted, codes, list(query_codes)
        try:
            xf = np.ascontiguousarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            xf = None
        if finite is None:
            with np.errstate(over="ignore", invalid="ignore"):  # a finite sum means all are finite; else look closer
                finite = xf is not None and bool(np.isfinite(xf.sum()) or np.isfinite(xf).all())
        self.xf = xf if finite else None  # else sklearn raises smclarify's error
        self._votes: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # code: its rows in query order, their votes
        self._flips: dict[int, tuple[int, int]] = {}

    def vote(self, code: int) -> np.ndarray:
        """The votes for the rows of ``code``, in row order."""
        if self.xf is None or not self._computed(code):  # no rows, or no others: sklearn says what is wrong
            return sklearn_vote(self.x, self.codes == code, self.predicted)
        d_rows, vote = self._votes[code]
        in_rows = np.empty(len(self.codes), dtype=bool)
        in_rows[d_rows] = vote
        return in_rows[self.codes == code]  # back to row order

    def flips(self, code: int) -> tuple[int, int]:
        """``flip_counts`` for the rows of ``code``."""
        if self.xf is not None and self._computed(code):
            return self._flips[code]
        return flip_counts(self.predicted[self.codes == code], self.vote(code))

    def _computed(self, code: int) -> bool:
        if code not in self._votes:
            self._run([c for c in [*self.query_codes, code] if c not in self._votes])
        return code in self._votes

    def _run(self, codes: list[int]) -> None:
        n = len(self.codes)
        size = {c: np.count_nonzero(self.codes == c) for c in dict.fromkeys(codes)}
        codes = sorted((c for c, s in size.items() if 0 < s < n), key=lambda c: size[c])
        if not codes:
            return
        # each value's tree over its others; another value's tree holds all its rows and gives their order: the
        # largest value's from the second largest's tree, every other value's from the largest's (with one value,
        # a tree over its own rows). The smallest trees (of the largest values) are built first, and their queries
        # run while the larger trees build. Each task finds its tree's rows itself (on the pool's threads).
        m = len(codes)
        tree_of = [(c, False) for c in codes] + ([(codes[0], True)] if m == 1 else [])
        source = [len(tree_of) - 1] * (m - 1) + [m - 2 if m > 1 else 1]

        def build(c: int, own: bool) -> KDTree:
            return KDTree(self.xf, np.flatnonzero(self.codes == c if own else self.codes != c))

        with ThreadPoolExecutor(THREADS) as pool:
            trees = {i: pool.submit(build, *tree_of[i]) for i in reversed(range(len(tree_of)))}
            running: list[tuple] = []  # values whose queries run: each finished once the next value's are queued
            for i in reversed(range(m)):
                tree, order = trees[i].result(), trees[source[i]].result().order
                d_rows = order[(self.codes == codes[i])[order]]  # a gather from a bool mask: fits in cache
                running.append((tree, d_rows, codes[i], self._knn_start(tree, d_rows, pool)))
                if len(running) > 1:
                    self._finish(*running.pop(0), pool)
            while running:
                self._finish(*running.pop(0), pool)

    def _knn_start(self, tree: KDTree, d_rows: np.ndarray, pool: ThreadPoolExecutor):
        """Queues the queries of d_rows on the tree over the others: returns what waits for their counts."""
        if tree.n == n_neighbors(tree.n):  # a has k rows: every row is a neighbour
            return None
        # the k nearest are unique unless the (k+1)-th distance ties the k-th (count -1): only those rows look
        # further (on squared distances: a relative gap of 2.5 * TIE_RTOL there is more than TIE_RTOL on distances)
        return tree.votes_start(d_rows, self.predicted, n_neighbors(tree.n), 2.5 * TIE_RTOL, pool)

    def _finish(self, tree: KDTree, d_rows: np.ndarray, code: int, counts, pool: ThreadPoolExecutor) -> None:
        """The votes of code's rows d_rows (in that order) from their counts, and its flips."""
        k = n_neighbors(tree.n)
        if counts is None:
            vote = np.full(len(d_rows), 2 * np.count_nonzero(self.predicted[tree.order]) > k)
        else:
            count = counts()
            vote = 2 * count > k
            edge = np.flatnonzero(count < 0)
            if len(edge):
                vote[edge] = self._tied_vote(tree, d_rows[edge], code, k, pool)
        self._flips[code] = flip_counts(np.asarray(self.predicted[d_rows], dtype=bool), vote)
        self._votes[code] = d_rows, vote

    def _tied_vote(self, tree: KDTree, rows: np.ndarray, code: int, k: int, pool: ThreadPoolExecutor) -> np.ndarray:
        """Votes for the rows (of code) whose k-th nearest distance is tied: kept where no choice of the tied rows
        changes the vote, else sklearn's classifier decides."""
        n_a = tree.n
        vote = np.empty(len(rows), dtype=bool)
        undecided: list[np.ndarray] = []
        queries, extra = np.arange(len(rows)), 4
        while len(queries):
            kk = min(k + extra, n_a)
            d2, idx = tree.query(rows[queries], kk, pool)
            dist, labels = np.sqrt(d2), self.predicted[idx]
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
            log.debug("Flip Test: %d of %d rows tie at the k-th neighbour, asked of sklearn", len(rest),
                      np.count_nonzero(self.codes == code))
            vote[rest] = sklearn_vote(self.x, self.codes == code, self.predicted, rows=rows[rest])
        return vote
