"""Group counts shared by every bias metric.

All metrics except the Flip Test are functions of one small table of counts, built in a single vectorised
pass over the rows (``np.bincount`` on a combined code):

    table[s, l, p, g]   s: 0 = a (the rest), 1 = d (the sensitive facet value(s))
                        l: label code (for the usual boolean label, 0 = negative, 1 = positive)
                        p: predicted code (0 = negative, 1 = positive; a single slot when there is none)
                        g: group code for CDD (sorted group values; the last slot holds rows with no group)

The facet is coded first (one code per value for one-vs-all; d = 1, a = 0 for facet values or a threshold),
so the pass counts every facet value at once (``joint_counts``); one facet value's d table is a slice of it,
and a = total - d.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


def combined_codes(label_codes: np.ndarray, n_label: int, pred_codes: Optional[np.ndarray],
                   group_codes: Optional[np.ndarray], n_groups: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Row codes for the (label, predicted, group) axes, and the axes' sizes. Group code -1 = no group."""
    n_pred = 2 if pred_codes is not None else 1
    n_g = n_groups + 1
    code = label_codes.astype(np.int64) * (n_pred * n_g)
    if pred_codes is not None:
        code += pred_codes.astype(np.int64) * n_g
    if group_codes is not None:
        code += np.where(group_codes < 0, n_groups, group_codes).astype(np.int64)
    else:
        code += n_groups
    return code, (n_label, n_pred, n_g)


def joint_counts(facet_codes: np.ndarray, n_facet: int, row_codes: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Counts of shape (n_facet, *shape) in one bincount; facet code -1 (missing value) lands in an extra
    slot at the end, so the result has n_facet + 1 rows along the first axis."""
    fc = np.where(facet_codes < 0, n_facet, facet_codes).astype(np.int64)
    stride = shape[0] * shape[1] * shape[2]
    flat = np.bincount(fc * stride + row_codes, minlength=(n_facet + 1) * stride)
    return flat.reshape((n_facet + 1, *shape))


@dataclass
class FacetCounts:
    """Counts for one split of the rows into d and a; what every registered metric receives.

    ``label_is_bool`` is False only for direct calls of the distribution metrics on raw label values.
    ``flip`` computes the Flip Test, the one metric that needs the rows themselves (it is None when the
    caller gave no feature rows). ``n_groups`` is None when no group variable was given.
    """

    table: np.ndarray
    label_is_bool: bool = True
    has_predicted: bool = False
    n_groups: Optional[int] = None
    flip: Optional[Callable[[], float]] = None

    @classmethod
    def from_split(cls, d_table: np.ndarray, total: np.ndarray, **kw) -> "FacetCounts":
        return cls(np.stack([total - d_table, d_table]), **kw)

    # group sizes -----------------------------------------------------------------------------------
    def n(self, s: int) -> int:
        return int(self.table[s].sum())

    @property
    def n_a(self) -> int:
        return self.n(0)

    @property
    def n_d(self) -> int:
        return self.n(1)

    @property
    def n_total(self) -> int:
        return int(self.table.sum())

    def label_hist(self, s: int) -> np.ndarray:
        """Counts per label code in group s (0 = a, 1 = d)."""
        return self.table[s].sum(axis=(1, 2))

    # boolean label / prediction counts -------------------------------------------------------------
    def require_label(self) -> None:
        if not self.label_is_bool:
            raise ValueError("positive_label_index must be of type bool")

    def require_predicted(self) -> None:
        if not self.has_predicted:
            raise ValueError("positive_predicted_label_index is required for this metric")

    def pos(self, s: int) -> int:
        """Observed positives in group s."""
        self.require_label()
        return int(self.table[s, 1].sum())

    def neg(self, s: int) -> int:
        self.require_label()
        return int(self.table[s, 0].sum())

    def pred_pos(self, s: int) -> int:
        """Predicted positives in group s."""
        self.require_predicted()
        return int(self.table[s, :, 1].sum())

    def pred_neg(self, s: int) -> int:
        self.require_predicted()
        return int(self.table[s, :, 0].sum())

    def confusion(self, s: int) -> tuple[int, int, int, int]:
        """(TP, FP, FN, TN) of group s."""
        self.require_label()
        self.require_predicted()
        t = self.table[s].sum(axis=2)
        return int(t[1, 1]), int(t[0, 1]), int(t[1, 0]), int(t[0, 0])

    # per-group (CDD) counts ------------------------------------------------------------------------
    def by_group(self, predicted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For CDD: per group value (sorted; rows without a group left out), the [a, d] counts of positives
        and of negatives, by the observed label or by the prediction. Shapes (2, G)."""
        if predicted:
            self.require_predicted()
            t = self.table.sum(axis=1)  # (2, pred, g)
        else:
            self.require_label()
            t = self.table.sum(axis=2)  # (2, label, g)
        n_g = self.table.sum(axis=(0, 1, 2))
        return t[:, 1, :], t[:, 0, :], n_g
