"""Significance tests for comparing SER systems (paper, Sec. IV: McNemar and Wilcoxon signed-rank).

* :func:`mcnemar` — two models' predictions on the *same* clips (one run each): is one right more often where they
  disagree?
* :func:`wilcoxon_signed_rank` — one score per seed/fold for each model, paired: is the difference consistently
  positive?
* :func:`pairwise_mcnemar` — the p-value matrix behind the paper's Fig. 5 heatmap (variants vs Full, or all pairs).
* :func:`holm_adjust` — Holm–Bonferroni correction, since an ablation table runs one test per variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

# Below this many discordant pairs the χ² approximation is poor (Rosner's / statsmodels' rule of thumb is 25);
# the exact binomial test is used instead.
_MCNEMAR_EXACT_BELOW = 25
# scipy's own thresholds for the Wilcoxon null distribution (see scipy.stats.wilcoxon, method="auto").
_WILCOXON_EXACT_MAX_N = 50
_WILCOXON_PERMUTATION_MAX_N = 13


def _paired_arrays(a: Any, b: Any, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"`{name_a}` and `{name_b}` must be one-dimensional, got shapes {a.shape} and {b.shape}.")
    if len(a) != len(b):
        raise ValueError(f"`{name_a}` has {len(a)} entries but `{name_b}` has {len(b)}.")
    if len(a) == 0:
        raise ValueError(f"`{name_a}` and `{name_b}` are empty.")
    return a, b


def mcnemar(
    y_true: Sequence[Any] | np.ndarray,
    pred_a: Sequence[Any] | np.ndarray,
    pred_b: Sequence[Any] | np.ndarray,
    exact: bool | None = None,
) -> dict[str, Any]:
    """McNemar's test between two classifiers evaluated on the same clips.

    Only the discordant clips matter: ``n01`` = A wrong and B right, ``n10`` = A right and B wrong
    (Dietterich 1998's notation). Under H0 (equal error rates) each discordant clip is a fair coin.

    * exact (default when ``n01 + n10 < 25``, or ``exact=True``): two-sided binomial test,
      p = min(1, 2 · P(X ≤ min(n01, n10))), X ~ Bin(n01 + n10, 1/2); ``statistic`` = min(n01, n10).
    * χ² (default otherwise, or ``exact=False``): Edwards' continuity-corrected
      statistic (|n01 − n10| − 1)² / (n01 + n10), 1 degree of freedom. The corrected difference is floored at 0 so
      that ``n01 == n10`` gives statistic 0 and p = 1 rather than a spurious positive value.

    With no discordant pair at all the two models agree on every clip: statistic 0, p = 1.

    Args:
        y_true: `(N,)` reference labels.
        pred_a: `(N,)` predictions of model A.
        pred_b: `(N,)` predictions of model B.
        exact: force the exact (``True``) or χ² (``False``) version; ``None`` chooses by the discordant count.

    Returns:
        ``{"statistic", "p_value", "n", "n01", "n10", "method"}`` with ``method`` ∈ {"exact", "chi2"}.

    Example:
        >>> y = [0] * 10
        >>> a = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]   # wrong on 8 clips
        >>> b = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]   # wrong on the other 2
        >>> round(mcnemar(y, a, b)["p_value"], 6)
        0.109375
    """
    y, a = _paired_arrays(y_true, pred_a, "y_true", "pred_a")
    _, b = _paired_arrays(y_true, pred_b, "y_true", "pred_b")
    correct_a, correct_b = a == y, b == y
    n01 = int(np.sum(~correct_a & correct_b))
    n10 = int(np.sum(correct_a & ~correct_b))
    discordant = n01 + n10
    use_exact = discordant < _MCNEMAR_EXACT_BELOW if exact is None else bool(exact)
    if discordant == 0:
        statistic, p_value = 0.0, 1.0
    elif use_exact:
        statistic = float(min(n01, n10))
        p_value = float(stats.binomtest(min(n01, n10), discordant, 0.5, alternative="two-sided").pvalue)
    else:
        statistic = max(abs(n01 - n10) - 1, 0) ** 2 / discordant
        p_value = float(stats.chi2.sf(statistic, df=1))
    return {
        "statistic": float(statistic),
        "p_value": min(p_value, 1.0),
        "n": int(len(y)),
        "n01": n01,
        "n10": n10,
        "method": "exact" if use_exact else "chi2",
    }


def wilcoxon_signed_rank(
    scores_a: Sequence[float] | np.ndarray,
    scores_b: Sequence[float] | np.ndarray,
    zero_method: str = "wilcox",
) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test on paired scores (e.g. macro-F1 per seed or fold), d = a − b.

    ``statistic`` is min(W+, W−), the smaller signed-rank sum, as in scipy. The p-value method is chosen like
    scipy's ``method="auto"`` but made explicit and reported:

    * ``"exact"``: n ≤ 50 differences, no ties and no zeros — the exact null distribution of W.
    * ``"permutation"``: ties or zeros with n ≤ 13 — all 2ⁿ sign flips enumerated, so still exact.
    * ``"asymptotic"``: otherwise, normal approximation with tie correction and continuity correction.
    * ``"degenerate"``: every difference is 0 — no evidence either way; p = 1.0 and a note (scipy would return
      NaN or raise).

    Few pairs are legal but weak, and the result carries a note: with n paired seeds and all differences of one
    sign the smallest attainable two-sided p is 2/2ⁿ, so n ≤ 5 can never reach p < 0.05 (n = 5 gives 0.0625).

    Differences are rounded to 12 decimals first so that float noise (0.3 − 0.2 vs 0.2 − 0.1) does not break ties
    that are real.

    Args:
        scores_a: `(n,)` scores of model A, one per seed/fold.
        scores_b: `(n,)` scores of model B, same seeds/folds in the same order.
        zero_method: scipy's handling of zero differences: ``"wilcox"`` (drop them, default), ``"pratt"``,
            ``"zsplit"``.

    Returns:
        ``{"statistic", "p_value", "n", "n_nonzero", "method", "note"}`` (``note`` is ``None`` unless a caveat
        applies).

    Example:
        >>> wilcoxon_signed_rank([0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.5, 0.6, 0.7, 0.8])["p_value"]
        0.0625
    """
    a, b = _paired_arrays(scores_a, scores_b, "scores_a", "scores_b")
    if zero_method not in {"wilcox", "pratt", "zsplit"}:
        raise ValueError(f"`zero_method` must be 'wilcox', 'pratt' or 'zsplit', got {zero_method!r}.")
    d = np.round(a.astype(float) - b.astype(float), 12)
    if not np.all(np.isfinite(d)):
        raise ValueError("`scores_a` and `scores_b` must be finite.")
    n, nonzero = len(d), d[d != 0]
    if len(nonzero) == 0:
        return {
            "statistic": 0.0,
            "p_value": 1.0,
            "n": n,
            "n_nonzero": 0,
            "method": "degenerate",
            "note": "all paired differences are zero: the two systems scored identically on every seed/fold",
        }

    has_zeros = len(nonzero) < n
    has_ties = len(np.unique(np.abs(nonzero))) < len(nonzero)
    if n > _WILCOXON_EXACT_MAX_N:
        method, scipy_method = "asymptotic", "asymptotic"
    elif not (has_zeros or has_ties):
        method, scipy_method = "exact", "exact"
    elif n <= _WILCOXON_PERMUTATION_MAX_N:
        # 2**13 sign patterns < scipy's default 9999 resamples, so the permutation test enumerates them all.
        method, scipy_method = "permutation", stats.PermutationMethod()
    else:
        method, scipy_method = "asymptotic", "asymptotic"
    result = stats.wilcoxon(
        d,
        zero_method=zero_method,
        correction=method == "asymptotic",
        alternative="two-sided",
        method=scipy_method,
    )
    notes = []
    if has_zeros and zero_method == "wilcox":
        notes.append(f"{n - len(nonzero)} zero difference(s) dropped (zero_method='wilcox')")
    min_p = 2.0 / 2 ** len(nonzero)
    if min_p >= 0.05:
        notes.append(f"only {len(nonzero)} non-zero pair(s): the smallest attainable two-sided p is {min_p:.4g}")
    return {
        "statistic": float(result.statistic),
        "p_value": float(min(result.pvalue, 1.0)),
        "n": n,
        "n_nonzero": int(len(nonzero)),
        "method": method,
        "note": "; ".join(notes) or None,
    }


def pairwise_mcnemar(
    y_true: Sequence[Any] | np.ndarray,
    predictions: Mapping[str, Sequence[Any] | np.ndarray],
    reference: str | None = None,
    exact: bool | None = None,
) -> dict[str, Any]:
    """McNemar p-values for a set of systems, as a matrix ready for a heatmap.

    Args:
        y_true: `(N,)` reference labels.
        predictions: ``{system name: (N,) predictions}`` on the same clips.
        reference: compare every other system against this one (rows = the others, one column = ``reference``),
            as in the paper's "each ablation vs Full"; ``None`` compares all pairs (square, symmetric matrix,
            diagonal 1.0).
        exact: passed to :func:`mcnemar`.

    Returns:
        ``{"rows": [names], "columns": [names], "p_values": list of lists (rows × columns)}``.

    Example:
        >>> out = pairwise_mcnemar([0, 1, 1], {"full": [0, 1, 1], "no_coral": [0, 0, 1]}, reference="full")
        >>> out["rows"], out["columns"], out["p_values"]
        (['no_coral'], ['full'], [[1.0]])
    """
    names = list(predictions)
    if len(names) < 2:
        raise ValueError("`predictions` must hold at least two systems.")
    if reference is not None and reference not in predictions:
        raise ValueError(f"`reference` {reference!r} is not a key of `predictions` ({names}).")
    rows = [n for n in names if n != reference] if reference is not None else names
    columns = [reference] if reference is not None else names
    p_values = [
        [1.0 if r == c else mcnemar(y_true, predictions[r], predictions[c], exact=exact)["p_value"] for c in columns]
        for r in rows
    ]
    return {"rows": rows, "columns": columns, "p_values": p_values}


def holm_adjust(p_values: Sequence[float] | np.ndarray) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values (family-wise error control, order preserved).

    Sorted ascending, p_(i) is multiplied by (m − i) (i from 0), made monotone with a running maximum and
    capped at 1. Compare the adjusted values with α directly.

    Example:
        >>> [round(p, 6) for p in holm_adjust([0.01, 0.04, 0.03])]
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or len(p) == 0:
        raise ValueError(f"`p_values` must be a non-empty one-dimensional sequence, got shape {p.shape}.")
    if np.any((p < 0) | (p > 1) | ~np.isfinite(p)):
        raise ValueError("`p_values` must lie in [0, 1].")
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return [float(v) for v in adjusted]


__all__ = ["holm_adjust", "mcnemar", "pairwise_mcnemar", "wilcoxon_signed_rank"]
