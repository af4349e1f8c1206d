"""The bias metrics: smclarify's formulas, signs, edge cases and error messages, on shared group counts.

Naming: d = the sensitive facet value(s) (rows the facet selects), a = the rest. A metric that cannot be
computed raises ``ValueError``; the report turns that into an ``error`` entry and goes on.
"""

from __future__ import annotations

import math

import numpy as np

from clarify.bias.counts import FacetCounts
from clarify.bias.flip import FlipVotes
from clarify.bias.registry import INF, posttraining, pretraining

A, D = 0, 1


def divide(a: float, b: float) -> float:
    """smclarify's division: 0/0 = 0, x/0 = +inf or -inf by the sign of x, else a/b."""
    if b == 0 and a == 0:
        return 0.0
    if b == 0:
        return -INF if a < 0 else INF
    return a / b


def _check_facets(c: FacetCounts, prefix: str = "", d_first: bool = True) -> None:
    checks = [(c.n_d, f"{prefix}Facet set is empty"), (c.n_a, f"{prefix}Negated Facet set is empty")]
    for n, msg in (checks if d_first else checks[::-1]):
        if n == 0:
            raise ValueError(msg)


def _dpl(c: FacetCounts, pos) -> float:
    na, nd = c.n_a, c.n_d
    if na == 0:
        raise ValueError("Negative facet set is empty.")
    if nd == 0:
        raise ValueError("Facet set is empty.")
    return pos(A) / na - pos(D) / nd


def _aligned(c: FacetCounts) -> tuple[np.ndarray, np.ndarray]:
    """Label PMFs of a and d on the label values present (nonzero) in both groups; not renormalised."""
    ha, hd = c.label_hist(A), c.label_hist(D)
    keep = (ha > 0) & (hd > 0)
    if not keep.any():
        raise ValueError("No instance of common facet found, dataset may be too small")
    return ha[keep] / ha.sum(), hd[keep] / hd.sum()


def _cdd(c: FacetCounts, predicted: bool) -> float:
    if c.n_groups is None or c.n_groups == 0:
        raise ValueError("Group variable is empty or not provided")
    pos, neg, n_g = c.by_group(predicted)
    if pos.sum() == 0:
        raise ValueError("No positive labels in set")
    if neg.sum() == 0:
        raise ValueError("No negative labels in set")
    g = slice(0, c.n_groups)  # the last slot holds rows without a group value
    pos_g, neg_g, n_g = pos[:, g].sum(axis=0), neg[:, g].sum(axis=0), n_g[g]
    share_pos = np.divide(pos[D, g], pos_g, out=np.zeros(len(n_g)), where=pos_g != 0)
    share_neg = np.divide(neg[D, g], neg_g, out=np.zeros(len(n_g)), where=neg_g != 0)
    counts = n_g.astype(float)
    return divide(np.sum(counts * (share_neg - share_pos)), np.sum(counts))


def _diff(x_a: float, x_d: float, a_minus_d: bool) -> float:
    """x_a - x_d (or x_d - x_a), with 0 when both sides are +inf, as smclarify."""
    if x_a == x_d == INF:
        return 0.0
    return x_a - x_d if a_minus_d else x_d - x_a


# ---- pre-training ------------------------------------------------------------------------------------

@pretraining(ideal=0.0, lo=-1, hi=1)
def CI(c: FacetCounts) -> float:
    """Class Imbalance (CI)

    (n_a - n_d) / (n_a + n_d): positive when d has fewer rows than a.
    """
    pos, neg = c.n_d, c.n_a
    if neg == 0:
        raise ValueError("CI: negated facet set is empty. Check that x[~facet] has non-zero length.")
    if pos == 0:
        raise ValueError("CI: facet set is empty. Check that x[facet] has non-zero length.")
    return float(neg - pos) / (pos + neg)


@pretraining(ideal=0.0, lo=-1, hi=1)
def DPL(c: FacetCounts) -> float:
    """Difference in Positive Proportions in Labels (DPL)

    q_a - q_d with q = observed positives / rows: positive when a gets positive labels more often.
    """
    c.require_label()
    return _dpl(c, c.pos)


@pretraining(ideal=0.0, lo=0, hi=INF)  # the documented range; smclarify's aligned keys can make it negative
def KL(c: FacetCounts) -> float:
    """Kullback-Liebler Divergence (KL)

    sum_x P_a(x) ln(P_a(x)/P_d(x)) over label values present in both groups (so it can be negative).
    """
    pa, pd_ = _aligned(c)
    return float(np.sum(pa * np.log(pa / pd_)))


@pretraining(ideal=0.0, lo=0, hi=math.log(2))
def JS(c: FacetCounts) -> float:
    """Jensen-Shannon Divergence (JS)

    0.5 [KL(P_a, P) + KL(P_d, P)] with P = (P_a + P_d)/2, over label values present in both groups.
    """
    pa, pd_ = _aligned(c)
    p = 1 / 2 * (pa + pd_)
    return float(0.5 * (np.sum(pa * np.log(pa / p)) + np.sum(pd_ * np.log(pd_ / p))))


@pretraining(ideal=0.0, lo=0, hi=math.sqrt(2))
def LP(c: FacetCounts) -> float:
    """L-p Norm (LP)

    ||P_a - P_d||_2 over label values present in both groups.
    """
    pa, pd_ = _aligned(c)
    return float(np.linalg.norm(pa - pd_, 2))


@pretraining(ideal=0.0, lo=0, hi=1)
def TVD(c: FacetCounts) -> float:
    """Total Variation Distance (TVD)

    0.5 ||P_a - P_d||_1 over label values present in both groups.
    """
    pa, pd_ = _aligned(c)
    return 0.5 * float(np.linalg.norm(pa - pd_, 1))


@pretraining(ideal=0.0, lo=0, hi=1)
def KS(c: FacetCounts) -> float:
    """Kolmogorov-Smirnov Distance (KS)

    max_x |P_a(x) - P_d(x)| over label values present in both groups (on the PMF, as smclarify).
    """
    pa, pd_ = _aligned(c)
    return float(np.linalg.norm(pa - pd_, np.inf))


@pretraining(ideal=0.0, lo=-1, hi=1)
def CDDL(c: FacetCounts) -> float:
    """Conditional Demographic Disparity in Labels (CDDL)

    sum_g n_g (D_g - A_g) / sum_g n_g, with D_g (A_g) = d's share of the negatives (positives) in group g.
    """
    return _cdd(c, predicted=False)


# ---- post-training -----------------------------------------------------------------------------------

@posttraining(ideal=0.0, lo=-1, hi=1)
def DPPL(c: FacetCounts) -> float:
    """Difference in Positive Proportions in Predicted Labels (DPPL)

    q^_a - q^_d with q^ = predicted positives / rows.
    """
    return _dpl(c, c.pred_pos)


@posttraining(ideal=1.0, lo=0, hi=INF)
def DI(c: FacetCounts) -> float:
    """Disparate Impact (DI)

    q^_d / q^_a: below 1 when a is predicted positive more often than d.
    """
    na, nd = c.n_a, c.n_d
    if na == 0:
        raise ValueError("Negated facet set is empty")
    qa = c.pred_pos(A) / na
    if nd == 0:
        raise ValueError("Facet set is empty")
    return divide(c.pred_pos(D) / nd, qa)


def _dco(c: FacetCounts) -> tuple[float, float]:
    c.require_label()
    c.require_predicted()
    _check_facets(c, "DCO: ")
    ca, cd = divide(c.pos(A), c.pred_pos(A)), divide(c.pos(D), c.pred_pos(D))
    ra, rd = divide(c.neg(A), c.pred_neg(A)), divide(c.neg(D), c.pred_neg(D))
    return _diff(ca, cd, True), _diff(ra, rd, False)


@posttraining(ideal=0.0, lo=-INF, hi=INF)
def DCA(c: FacetCounts) -> float:
    """Difference in Conditional Acceptance (DCA)

    c_a - c_d with c = observed positives / predicted positives.
    """
    return _dco(c)[0]


@posttraining(ideal=0.0, lo=-INF, hi=INF)
def DCR(c: FacetCounts) -> float:
    """Difference in Conditional Rejection (DCR)

    r_d - r_a with r = observed negatives / predicted negatives.
    """
    return _dco(c)[1]


def _dla(c: FacetCounts) -> tuple[float, float]:
    c.require_label()
    c.require_predicted()
    _check_facets(c, "DLA: ")
    tp_a, fp_a, fn_a, tn_a = c.confusion(A)
    tp_d, fp_d, fn_d, tn_d = c.confusion(D)
    rd = _diff(divide(tp_a, tp_a + fn_a), divide(tp_d, tp_d + fn_d), True)
    sd = _diff(divide(tn_a, tn_a + fp_a), divide(tn_d, tn_d + fp_d), False)
    return rd, sd


@posttraining(ideal=0.0, lo=-1, hi=1)
def RD(c: FacetCounts) -> float:
    """Recall Difference (RD)

    recall_a - recall_d, recall = TP / (TP + FN).
    """
    return _dla(c)[0]


@posttraining(ideal=0.0, lo=-1, hi=1)
def SD(c: FacetCounts) -> float:
    """Specificity Difference (SD)

    specificity_d - specificity_a, specificity = TN / (TN + FP).
    """
    return _dla(c)[1]


def _dlr(c: FacetCounts) -> tuple[float, float]:
    c.require_label()
    c.require_predicted()
    _check_facets(c, "DLR: ")
    tp_a, fp_a, fn_a, tn_a = c.confusion(A)
    tp_d, fp_d, fn_d, tn_d = c.confusion(D)
    dar = _diff(divide(tp_a, tp_a + fp_a), divide(tp_d, tp_d + fp_d), True)
    drr = _diff(divide(tn_a, tn_a + fn_a), divide(tn_d, tn_d + fn_d), False)
    return dar, drr


@posttraining(ideal=0.0, lo=-1, hi=1)
def DAR(c: FacetCounts) -> float:
    """Difference in Acceptance Rates (DAR)

    precision_a - precision_d, precision = TP / predicted positives.
    """
    return _dlr(c)[0]


@posttraining(ideal=0.0, lo=-1, hi=1)
def DRR(c: FacetCounts) -> float:
    """Difference in Rejection Rates (DRR)

    TN_d / predicted negatives_d - TN_a / predicted negatives_a.
    """
    return _dlr(c)[1]


@posttraining(ideal=0.0, lo=-1, hi=1)
def AD(c: FacetCounts) -> float:
    """Accuracy Difference (AD)

    accuracy_a - accuracy_d.
    """
    c.require_label()
    c.require_predicted()
    _check_facets(c)
    tp_a, fp_a, fn_a, tn_a = c.confusion(A)
    tp_d, fp_d, fn_d, tn_d = c.confusion(D)
    acc_a = divide(tp_a + tn_a, tp_a + tn_a + fp_a + fn_a)
    acc_d = divide(tp_d + tn_d, tp_d + tn_d + fp_d + fn_d)
    return _diff(acc_a, acc_d, True)


@posttraining(ideal=0.0, lo=-INF, hi=INF)
def TE(c: FacetCounts) -> float:
    """Treatment Equality (TE)

    FN_d / FP_d - FN_a / FP_a.
    """
    c.require_label()
    c.require_predicted()
    _check_facets(c)
    _, fp_a, fn_a, _ = c.confusion(A)
    _, fp_d, fn_d, _ = c.confusion(D)
    return _diff(divide(fn_a, fp_a), divide(fn_d, fp_d), False)


@posttraining(ideal=0.0, lo=-1, hi=1)
def CDDPL(c: FacetCounts) -> float:
    """Conditional Demographic Disparity in Predicted Labels (CDDPL)

    CDD on the predicted labels: sum_g n_g (D_g - A_g) / sum_g n_g.
    """
    return _cdd(c, predicted=True)


@posttraining(ideal=0.0, lo=-1, hi=1)
def FT(c: FacetCounts) -> float:
    """Flip Test (FT)

    (F+ - F-) / n_d: a k-NN fitted on a's rows and predictions predicts each d row; F+ counts d rows the model
    predicts positive where the k-NN says negative, F- the reverse (smclarify's direction).
    """
    c.require_predicted()
    _check_facets(c)
    if c.flip is None:
        raise ValueError("FlipTest needs the feature rows")
    return c.flip()


@posttraining(ideal=0.0, lo=0, hi=0.5)
def GE(c: FacetCounts) -> float:
    """Generalized Entropy (GE)

    Generalized entropy index (alpha = 2) of the benefit b = y^ - y + 1 over all rows; independent of the facet.
    """
    c.require_label()
    c.require_predicted()
    n = c.n_total
    if n == 0:
        raise ValueError("dataset must be non-empty")
    t = c.table.sum(axis=(0, 3))  # (label, pred)
    n_fn, n_fp, n_ok = int(t[1, 0]), int(t[0, 1]), int(t[0, 0] + t[1, 1])
    mean_benefit = (n_ok + 2 * n_fp) / n
    if mean_benefit == 0:
        raise ValueError("All predicted labels are false negatives. There should be at least one prediction that "
                         "is not false negative.")
    alpha = 2
    total = n_ok * ((1 / mean_benefit) ** alpha - 1) + n_fp * ((2 / mean_benefit) ** alpha - 1) - n_fn
    return total / (n * alpha * (alpha - 1))


def flip_test(x: np.ndarray, d: np.ndarray, predicted: np.ndarray) -> float:
    """The Flip Test on numeric rows x, d mask and predicted-positive mask, as smclarify computes it."""
    return divide(*FlipVotes(np.asarray(x), predicted, d.astype(np.int64), [1]).flips(1))  # (F+ - F-) / n_d
