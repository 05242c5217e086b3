"""Probabilistic calibration: temperature scaling, ECE, reliability data and domain-adaptive temperature scaling.

Three temperatures are compared in the report (DESIGN.md, "Protocol and evaluation"):

1. none (T = 1);
2. in-domain (:func:`fit_temperature` on the labelled source validation set, Guo et al. 2017);
3. domain-adaptive (:func:`fit_adaptive_temperature`: importance-weighted temperature scaling from *unlabelled*
   target data, Park et al. 2020 / Wang et al. 2020).

`trainer.evaluation.evaluate.calibration_section` fits all three and reports their ECEs on the test splits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

# A model no better than chance on the fitting clips has its NLL minimised by T → ∞ (uniform scores); the fitted
# temperature is kept within these bounds so the stored value stays finite and meaningful.
TEMPERATURE_BOUNDS = (0.05, 100.0)

ArrayLike = Sequence[Any] | np.ndarray | torch.Tensor


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_logits_labels(logits: ArrayLike, labels: ArrayLike, name: str = "logits") -> tuple[np.ndarray, np.ndarray]:
    z = _to_numpy(logits).astype(np.float64)
    y = _to_numpy(labels)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"`{name}` must have shape (N, C) with N >= 1 and C >= 2, got {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"`{name}` contains non-finite values.")
    if y.ndim != 1 or len(y) != len(z):
        raise ValueError(f"`labels` must have shape ({len(z)},) to match `{name}`, got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"`labels` must be integer class ids in [0, {z.shape[1] - 1}].")
    return z, y.astype(np.int64)


def _check_probs_labels(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(probs).astype(np.float64)
    y = _to_numpy(labels)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"`probs` must have shape (N, C) with N >= 1, got {p.shape}.")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("`probs` rows must be non-negative and sum to 1 (pass softmax outputs, not logits).")
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"`labels` must have shape ({len(p)},) to match `probs`, got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"`labels` must be integer class ids in [0, {p.shape[1] - 1}].")
    return p, y.astype(np.int64)


def softmax_with_temperature(logits: ArrayLike, temperature: float) -> np.ndarray:
    """Class probabilities softmax(logits / T).

    Args:
        logits: `(N, C)` (or `(C,)`) unnormalised scores.
        temperature: T > 0; T > 1 softens (less confident), T < 1 sharpens. Argmax is unchanged.

    Returns:
        `(N, C)` float64 probabilities, rows summing to 1.

    Example:
        >>> softmax_with_temperature([[2.0, 0.0]], 2.0).round(4)
        array([[0.7311, 0.2689]])
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"`temperature` must be a positive finite number, got {temperature}.")
    z = _to_numpy(logits).astype(np.float64)
    return softmax(z / temperature, axis=-1)


def _fit_log_temperature(z: np.ndarray, y: np.ndarray, weights: np.ndarray | None, max_iter: int) -> float:
    """argmin over T of the (weighted) mean NLL of softmax(z / T), by LBFGS on log T.

    Optimising log T keeps T > 0 without constraints and makes the problem better conditioned (T = 0.5 and T = 2 are
    equally far from 1). The NLL is convex in 1/T, so the single-parameter problem has one minimum. T is confined to
    `TEMPERATURE_BOUNDS`; hitting a bound is logged (at the upper one the scores are close to uniform).
    """
    logits = torch.as_tensor(z, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.long)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        nll = torch.nn.functional.cross_entropy(logits / log_t.clamp(low, high).exp(), target, reduction="none")
        loss = nll.mean() if w is None else (w * nll).sum() / w.sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = min(max(float(log_t.detach().exp()), TEMPERATURE_BOUNDS[0]), TEMPERATURE_BOUNDS[1])
    if temperature in TEMPERATURE_BOUNDS:
        logger.warning(
            "temperature fit hit its bound T = %g: the model is %s on the fitting clips", temperature,
            "no better than chance" if temperature == TEMPERATURE_BOUNDS[1] else "right on (nearly) all",
        )
    return temperature


def fit_temperature(logits: ArrayLike, labels: ArrayLike, max_iter: int = 100) -> float:
    """Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks", ICML): the single T > 0
    minimising the NLL of softmax(logits / T) on held-out labelled data (the source validation set).

    Args:
        logits: `(N, C)` validation logits.
        labels: `(N,)` integer class ids.
        max_iter: LBFGS iterations (the problem is one-dimensional and converges in a handful).

    Returns:
        The fitted temperature T.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(scale=4.0, size=(4000, 4))
        >>> y = np.array([rng.choice(4, p=p) for p in softmax_with_temperature(z, 2.0)])
        >>> abs(fit_temperature(z, y) - 2.0) < 0.2
        True
    """
    z, y = _check_logits_labels(logits, labels)
    return _fit_log_temperature(z, y, None, max_iter)


def _bin_statistics(probs: ArrayLike, labels: ArrayLike, n_bins: int) -> dict[str, np.ndarray]:
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer, got {n_bins!r}.")
    p, y = _check_probs_labels(probs, labels)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bins are (lo, hi] as in Guo et al.; searchsorted on the inner edges avoids float error from conf * n_bins.
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(index, minlength=n_bins)
    safe = np.maximum(count, 1)
    return {
        "bin_edges": edges,
        "bin_acc": np.bincount(index, weights=correct, minlength=n_bins) / safe,
        "bin_conf": np.bincount(index, weights=confidence, minlength=n_bins) / safe,
        "bin_count": count,
    }


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (Naeini et al. 2015; Guo et al. 2017).

    ECE = Σ_b (|B_b| / N) · |acc(B_b) − conf(B_b)|, where conf is the top-class probability and bins are
    ((b−1)/n_bins, b/n_bins].

    Args:
        probs: `(N, C)` probabilities (rows sum to 1).
        labels: `(N,)` integer class ids.
        n_bins: number of bins (15 as in the paper and Guo et al.).

    Returns:
        ECE in [0, 1].

    Example:
        >>> expected_calibration_error([[0.8, 0.2], [0.8, 0.2]], [0, 1], n_bins=10)   # conf .8, acc .5
        0.30000000000000004
    """
    b = _bin_statistics(probs, labels, n_bins)
    weight = b["bin_count"] / b["bin_count"].sum()
    return float(np.sum(weight * np.abs(b["bin_acc"] - b["bin_conf"])))


def reliability_diagram_data(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15
) -> dict[str, list[float] | list[int]]:
    """Per-bin accuracy and confidence for a reliability diagram (same bins as :func:`expected_calibration_error`).

    Args:
        probs: `(N, C)` probabilities (rows sum to 1).
        labels: `(N,)` integer class ids.
        n_bins: number of equal-width confidence bins.

    Returns:
        JSON-serialisable ``{"bin_edges": (n_bins + 1,), "bin_acc": (n_bins,), "bin_conf": (n_bins,),
        "bin_count": (n_bins,)}``; empty bins have ``bin_count`` 0 and accuracy/confidence 0.0.
    """
    b = _bin_statistics(probs, labels, n_bins)
    return {
        "bin_edges": b["bin_edges"].tolist(),
        "bin_acc": b["bin_acc"].tolist(),
        "bin_conf": b["bin_conf"].tolist(),
        "bin_count": b["bin_count"].astype(int).tolist(),
    }


def importance_weights(
    source_features: ArrayLike,
    target_features: ArrayLike,
    *,
    clip_quantile: float = 0.95,
    n_folds: int = 5,
    discriminator_c: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Density-ratio weights w(x) = p_T(x) / p_S(x) for source points, from a source-vs-target discriminator.

    A logistic regression (standardised features, L2, ``C = discriminator_c``) separates source (0) from target
    (1); by Bayes, p_T(x)/p_S(x) = [p(t|x) / p(s|x)] · (n_s / n_t). The discriminator probabilities are
    out-of-fold (``n_folds``-fold cross-fitting), so a source point's weight never comes from a model that saw it —
    an in-sample discriminator overfits high-dimensional embeddings and inflates exactly the weights that matter.

    Raw density ratios are heavy-tailed and their variance is what makes importance-weighted calibration unstable
    (Wang et al. 2020); two standard fixes are applied: weights above the ``clip_quantile`` quantile are clipped to
    it (truncated importance sampling), then the weights are self-normalised to mean 1 over the source set.

    Args:
        source_features: `(N_s, D)` features of the labelled source validation clips (e.g. pooled z_emo).
        target_features: `(N_t, D)` features of unlabelled target clips.
        clip_quantile: quantile of the raw weights used as the upper clip (1.0 disables clipping).
        n_folds: cross-fitting folds (reduced automatically for tiny sets, at least 2).
        discriminator_c: inverse L2 strength of the logistic regression.
        seed: fold shuffling seed.

    Returns:
        ``{"weights": (N_s,) float64 mean-1 weights, "discriminator_auc": out-of-fold ROC AUC (0.5 = domains
        indistinguishable), "summary": {min, max, mean, median, ess, ess_fraction, clip_value, n_clipped}}`` where
        ``ess`` = (Σw)² / Σw² is Kish's effective sample size.
    """
    xs = _to_numpy(source_features).astype(np.float64)
    xt = _to_numpy(target_features).astype(np.float64)
    for name, x in (("source_features", xs), ("target_features", xt)):
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"`{name}` must have shape (N, D) with N >= 2, got {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"`{name}` contains non-finite values.")
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(f"`source_features` has {xs.shape[1]} dims but `target_features` has {xt.shape[1]}.")
    if not 0.0 < clip_quantile <= 1.0:
        raise ValueError(f"`clip_quantile` must be in (0, 1], got {clip_quantile}.")
    n_s, n_t = len(xs), len(xt)
    x = np.concatenate([xs, xt])
    d = np.concatenate([np.zeros(n_s, dtype=int), np.ones(n_t, dtype=int)])
    folds = max(2, min(n_folds, n_s, n_t))
    discriminator = make_pipeline(StandardScaler(), LogisticRegression(C=discriminator_c, max_iter=2000))
    p_target = cross_val_predict(
        discriminator, x, d, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), method="predict_proba"
    )[:, 1]
    auc = float(roc_auc_score(d, p_target))
    p = np.clip(p_target[:n_s], 1e-6, 1 - 1e-6)
    raw = p / (1 - p) * (n_s / n_t)
    clip_value = float(np.quantile(raw, clip_quantile))
    w = np.minimum(raw, clip_value)
    w = w / w.mean()
    ess = float(w.sum() ** 2 / np.sum(w**2))
    return {
        "weights": w,
        "discriminator_auc": auc,
        "summary": {
            "min": float(w.min()),
            "max": float(w.max()),
            "mean": float(w.mean()),
            "median": float(np.median(w)),
            "ess": ess,
            "ess_fraction": ess / n_s,
            "clip_value": clip_value,
            "n_clipped": int(np.sum(raw > clip_value)),
        },
    }


def fit_adaptive_temperature(
    source_logits: ArrayLike,
    source_labels: ArrayLike,
    source_features: ArrayLike,
    target_features: ArrayLike,
    *,
    clip_quantile: float = 0.95,
    n_folds: int = 5,
    discriminator_c: float = 1.0,
    max_iter: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Domain-adaptive temperature from unlabelled target data: importance-weighted temperature scaling.

    Why: a temperature fitted on source validation calibrates the *source* distribution; under corpus shift the
    model is more over-confident on the target, and the paper found the in-domain T made cross-corpus ECE worse
    (19.4 % → 23.1 %). Target labels are not available for fitting, but under covariate shift (p(y|x) shared,
    p(x) different) the target NLL equals the source NLL re-weighted by w(x) = p_T(x)/p_S(x). So:

    1. estimate w on the source validation clips with a source-vs-target discriminator on features
       (:func:`importance_weights`: cross-fitted logistic regression, weights clipped at a quantile and
       self-normalised);
    2. fit T by minimising Σ w_i · NLL(softmax(z_i / T), y_i) / Σ w_i on the labelled source validation set
       (LBFGS over log T, as in :func:`fit_temperature`).

    This is the importance-weighted temperature scaling of Park et al. 2020 ("Calibrated prediction with covariate
    shift via unsupervised domain adaptation", AISTATS) and the importance-weighted calibration objective of
    Wang et al. 2020 ("Transferable Calibration with Lower Bias and Variance in Domain Adaptation" — TransCal,
    NeurIPS); TransCal's additional control-variate variance reduction is not implemented — clipping and
    self-normalisation play that role here. It can only correct the part of the shift that the features see: if the
    discriminator AUC is ≈ 0.5 the weights are ≈ 1 and the result equals the in-domain temperature.

    Args:
        source_logits: `(N_s, C)` source-validation logits.
        source_labels: `(N_s,)` source-validation class ids.
        source_features: `(N_s, D)` source-validation features (e.g. z_emo or the pooled encoder state).
        target_features: `(N_t, D)` unlabelled target features from the same model.
        clip_quantile, n_folds, discriminator_c, seed: see :func:`importance_weights`.
        max_iter: LBFGS iterations.

    Returns:
        ``{"temperature": float, "in_domain_temperature": float (unweighted fit, for comparison),
        "discriminator_auc": float, "weights_summary": dict, "weights": (N_s,) array}``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
        >>> out = fit_adaptive_temperature(z, y, rng.normal(size=(200, 4)), rng.normal(size=(150, 4)))
        >>> sorted(out)
        ['discriminator_auc', 'in_domain_temperature', 'temperature', 'weights', 'weights_summary']
    """
    z, y = _check_logits_labels(source_logits, source_labels, "source_logits")
    if len(_to_numpy(source_features)) != len(z):
        raise ValueError(
            f"`source_features` has {len(_to_numpy(source_features))} rows but `source_logits` has {len(z)}."
        )
    iw = importance_weights(
        source_features,
        target_features,
        clip_quantile=clip_quantile,
        n_folds=n_folds,
        discriminator_c=discriminator_c,
        seed=seed,
    )
    return {
        "temperature": _fit_log_temperature(z, y, iw["weights"], max_iter),
        "in_domain_temperature": _fit_log_temperature(z, y, None, max_iter),
        "discriminator_auc": iw["discriminator_auc"],
        "weights_summary": iw["summary"],
        "weights": iw["weights"],
    }


__all__ = [
    "TEMPERATURE_BOUNDS",
    "expected_calibration_error",
    "fit_adaptive_temperature",
    "fit_temperature",
    "importance_weights",
    "reliability_diagram_data",
    "softmax_with_temperature",
]
