"""Known-answer tests for trainer.evaluation.significance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trainer.evaluation.significance import holm_adjust, mcnemar, pairwise_mcnemar, wilcoxon_signed_rank


def _predictions(n01: int, n10: int, n_both_right: int = 5, n_both_wrong: int = 3):
    """y, pred_a, pred_b with the requested discordant counts (n01: A wrong & B right, n10: A right & B wrong)."""
    y, a, b = [], [], []
    for count, a_right, b_right in ((n01, False, True), (n10, True, False), (n_both_right, True, True),
                                    (n_both_wrong, False, False)):
        y += [0] * count
        a += [0 if a_right else 1] * count
        b += [0 if b_right else 2] * count
    return y, a, b


def test_mcnemar_exact_hand_computed():
    y, a, b = _predictions(n01=2, n10=8)
    out = mcnemar(y, a, b)
    # 2 · P(X ≤ 2 | n = 10, p = .5) = 2 · (1 + 10 + 45) / 1024
    assert out["p_value"] == pytest.approx(2 * 56 / 1024) == pytest.approx(0.109375)
    assert out["method"] == "exact"
    assert out["n01"] == 2 and out["n10"] == 8 and out["n"] == 18 and out["statistic"] == 2.0
    # symmetric in the two models
    assert mcnemar(y, b, a)["p_value"] == pytest.approx(out["p_value"])


def test_mcnemar_chi2_hand_computed():
    y, a, b = _predictions(n01=10, n10=30)
    out = mcnemar(y, a, b)
    # (|10 − 30| − 1)² / 40 = 361 / 40 = 9.025; df 1 → p = erfc(sqrt(9.025 / 2))
    assert out["method"] == "chi2"
    assert out["statistic"] == pytest.approx(9.025)
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)))
    assert out["p_value"] == pytest.approx(0.0026635, abs=1e-6)


def test_mcnemar_forced_method_and_edge_cases():
    y, a, b = _predictions(n01=10, n10=30)
    exact = mcnemar(y, a, b, exact=True)
    assert exact["method"] == "exact"
    assert exact["p_value"] == pytest.approx(stats.binomtest(10, 40, 0.5).pvalue)
    y, a, b = _predictions(n01=3, n10=4)
    assert mcnemar(y, a, b, exact=False)["statistic"] == 0.0  # (|3 − 4| − 1)² = 0
    same = mcnemar([0, 1, 2], [0, 1, 1], [0, 1, 1])
    assert same["p_value"] == 1.0 and same["n01"] == same["n10"] == 0
    y, a, b = _predictions(n01=15, n10=15)
    assert mcnemar(y, a, b)["p_value"] == 1.0  # floored correction: equal discordant counts are no evidence


def test_mcnemar_errors():
    with pytest.raises(ValueError, match="pred_b"):
        mcnemar([0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        mcnemar([], [], [])


def test_wilcoxon_exact_small_cases():
    # d = [1, 2, 3, −4, 5]: ranks 1..5, W− = 4; P(W ≤ 4) for n = 5 is 7/32 → two-sided 14/32
    out = wilcoxon_signed_rank([1, 2, 3, 0, 5], [0, 0, 0, 4, 0])
    assert out["statistic"] == 4.0
    assert out["p_value"] == pytest.approx(14 / 32)
    assert out["method"] == "exact" and out["n"] == 5
    # five seeds, all better: the smallest attainable two-sided p, 2 / 2⁵, with a note saying so
    out = wilcoxon_signed_rank([0.51, 0.62, 0.73, 0.84, 0.95], [0.5, 0.6, 0.7, 0.8, 0.9])
    assert out["statistic"] == 0.0 and out["p_value"] == pytest.approx(0.0625)
    assert "smallest attainable" in out["note"]


def test_wilcoxon_all_zero_differences_is_not_an_error():
    out = wilcoxon_signed_rank([0.4, 0.5, 0.6], [0.4, 0.5, 0.6])
    assert out["p_value"] == 1.0 and out["method"] == "degenerate"
    assert "zero" in out["note"]


def test_wilcoxon_ties_and_zeros_use_exact_permutation():
    # d = [0.1, 0.1, −0.2, 0.3, 0, 0.4] (float noise rounded away, one zero dropped) → permutation over 2^5 signs
    a = [0.5, 0.7, 0.3, 0.9, 0.6, 1.0]
    b = [0.4, 0.6, 0.5, 0.6, 0.6, 0.6]
    out = wilcoxon_signed_rank(a, b)
    assert out["method"] == "permutation" and out["n_nonzero"] == 5
    # ranks of |d| = [.1,.1,.2,.3,.4] → [1.5, 1.5, 3, 4, 5]; W− = 3. Enumerate all 32 sign patterns by hand:
    ranks = np.array([1.5, 1.5, 3, 4, 5])
    signs = np.array([[1 if (k >> i) & 1 else -1 for i in range(5)] for k in range(32)])
    w_plus = (signs > 0) @ ranks
    w_min = np.minimum(w_plus, ranks.sum() - w_plus)
    assert out["statistic"] == 3.0
    assert out["p_value"] == pytest.approx(np.mean(w_min <= 3.0))
    assert "dropped" in out["note"]


def test_wilcoxon_large_n_is_asymptotic_and_errors():
    rng = np.random.default_rng(0)
    a = rng.normal(size=60)
    out = wilcoxon_signed_rank(a + 0.5, a - rng.normal(scale=0.01, size=60))
    assert out["method"] == "asymptotic" and out["p_value"] < 1e-6
    with pytest.raises(ValueError, match="scores_b"):
        wilcoxon_signed_rank([1, 2], [1])
    with pytest.raises(ValueError, match="zero_method"):
        wilcoxon_signed_rank([1, 2], [0, 1], zero_method="bogus")


def test_pairwise_mcnemar_shapes():
    y, a, b = _predictions(n01=2, n10=8)
    preds = {"full": a, "no_coral": b, "copy": a}
    vs_full = pairwise_mcnemar(y, preds, reference="full")
    assert vs_full["rows"] == ["no_coral", "copy"] and vs_full["columns"] == ["full"]
    assert vs_full["p_values"] == [[pytest.approx(0.109375)], [1.0]]
    full = pairwise_mcnemar(y, preds)
    p = np.array(full["p_values"])
    assert p.shape == (3, 3) and np.allclose(p, p.T) and np.all(np.diag(p) == 1.0)
    with pytest.raises(ValueError, match="reference"):
        pairwise_mcnemar(y, preds, reference="missing")


def test_holm_adjust():
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="p_values"):
        holm_adjust([1.5])
