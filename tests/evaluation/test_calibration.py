"""Known-answer tests for trainer.evaluation.calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.evaluation.calibration import (
    TEMPERATURE_BOUNDS,
    expected_calibration_error,
    fit_adaptive_temperature,
    fit_temperature,
    importance_weights,
    reliability_diagram_data,
    softmax_with_temperature,
)


def _sample_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row (inverse-CDF, vectorised)."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def test_softmax_with_temperature():
    p = softmax_with_temperature(np.array([[2.0, 0.0], [0.0, 0.0]]), 2.0)
    assert p[0, 0] == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert p[1].tolist() == [0.5, 0.5]
    assert np.allclose(softmax_with_temperature(torch.tensor([[1000.0, 0.0]]), 1.0), [[1.0, 0.0]])  # stable
    with pytest.raises(ValueError, match="temperature"):
        softmax_with_temperature([[1.0, 0.0]], 0.0)


def test_ece_zero_for_perfectly_calibrated_sets():
    # all confidences 1.0 and correct
    assert expected_calibration_error(np.eye(3)[[0, 1, 2, 1]], [0, 1, 2, 1]) == 0.0
    # confidence 0.75 in one bin with exactly 3 of 4 correct; confidence 0.6 with exactly 3 of 5 correct
    probs = np.array([[0.75, 0.25]] * 4 + [[0.4, 0.6]] * 5)
    labels = [0, 0, 0, 1] + [1, 1, 1, 0, 0]
    assert expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_value():
    # bin A: 4 clips at confidence 0.9, 2 correct → |0.5 − 0.9| = 0.4; bin B: 6 clips at 0.6, 3 correct → 0.1.
    # ECE = 4/10 · 0.4 + 6/10 · 0.1 = 0.22
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 6)
    labels = [0, 0, 1, 1] + [0, 0, 0, 1, 1, 1]
    assert expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(0.22)
    data = reliability_diagram_data(probs, labels, n_bins=10)
    assert len(data["bin_edges"]) == 11 and sum(data["bin_count"]) == 10
    assert data["bin_count"][8] == 4 and data["bin_count"][5] == 6  # (0.8, 0.9] and (0.5, 0.6]: upper edge inclusive
    assert data["bin_acc"][8] == pytest.approx(0.5) and data["bin_conf"][8] == pytest.approx(0.9)
    assert data["bin_acc"][5] == pytest.approx(0.5) and data["bin_conf"][5] == pytest.approx(0.6)


def test_calibration_input_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([[2.0, 1.0]], [0])
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error([[0.5, 0.5]], [0, 1])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([[0.5, 0.5]], [0], n_bins=0)
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((2, 3)), [0, 3])


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_temperature_scaling_recovers_planted_temperature(t_true):
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=4.0, size=(5000, 4))
    labels = _sample_labels(rng, softmax_with_temperature(logits, t_true))
    assert fit_temperature(logits, labels) == pytest.approx(t_true, rel=0.05)


def _covariate_shift_set(rng: np.random.Generator, n: int, mean: float):
    """Clips whose feature x decides how over-confident the model is: true T(x) = 1 for x < 0, 3 for x > 0.

    p(y | x, logits) is the same in both domains (covariate shift); only p(x) moves: source x ~ N(−1, 1) (16 % of
    clips over-confident), target x ~ N(+1, 1) (84 %). The source-fitted temperature is pulled towards 1, the
    importance-weighted one towards 3, which is what the target needs.
    """
    x = rng.normal(mean, 1.0, size=n)
    features = np.stack([x, rng.normal(size=n)], axis=1)
    logits = rng.normal(scale=3.0, size=(n, 4))
    t = np.where(x > 0, 3.0, 1.0)[:, None]
    labels = _sample_labels(rng, softmax_with_temperature(logits / t, 1.0))
    return logits, labels, features


def test_adaptive_temperature_improves_target_ece_under_covariate_shift():
    rng = np.random.default_rng(0)
    zs, ys, fs = _covariate_shift_set(rng, 2000, -1.0)
    zt, yt, ft = _covariate_shift_set(rng, 2000, 1.0)
    out = fit_adaptive_temperature(zs, ys, fs, ft, seed=0)
    assert out["discriminator_auc"] > 0.85
    assert out["temperature"] > out["in_domain_temperature"] + 0.5
    ece_in_domain_t = expected_calibration_error(softmax_with_temperature(zt, out["in_domain_temperature"]), yt)
    ece_adaptive = expected_calibration_error(softmax_with_temperature(zt, out["temperature"]), yt)
    assert ece_adaptive < 0.5 * ece_in_domain_t
    summary = out["weights_summary"]
    assert summary["mean"] == pytest.approx(1.0)
    assert summary["n_clipped"] >= 50  # 5 % of 2000 source clips are above the 0.95 quantile
    assert 0 < summary["ess_fraction"] <= 1


def test_importance_weights_without_shift_are_flat():
    rng = np.random.default_rng(0)
    iw = importance_weights(rng.normal(size=(400, 3)), rng.normal(size=(400, 3)), seed=0)
    assert abs(iw["discriminator_auc"] - 0.5) < 0.1
    assert iw["weights"].mean() == pytest.approx(1.0)
    assert iw["summary"]["ess_fraction"] > 0.9
    with pytest.raises(ValueError, match="target_features"):
        importance_weights(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="clip_quantile"):
        importance_weights(np.zeros((4, 3)), np.zeros((4, 3)), clip_quantile=0.0)




def test_a_model_worse_than_chance_gets_the_upper_temperature_bound_not_infinity(caplog):
    """Its NLL falls as T → ∞ (LBFGS reached T ≈ 7e5 on the demo's chance-level model); the fit stops at the bound."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(300, 4))
    wrong = (logits.argmax(-1) + 1) % 4  # every label is a class the model does not pick
    with caplog.at_level("WARNING", logger="trainer.evaluation.calibration"):
        assert fit_temperature(logits, wrong) == TEMPERATURE_BOUNDS[1]
    assert "no better than chance" in caplog.text
