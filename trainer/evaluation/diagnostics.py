"""Method diagnostics and label-free selection criteria, written to `results.json` under `diagnostics`.

What the cross-corpus method is meant to do, measured without target labels except where said:

- `z_emo_domain_auc`: out-of-fold ROC AUC of a linear source-vs-target classifier on z_emo of the held-out source
  test and target test clips (0.5: the domains are indistinguishable in z_emo; the alignment terms aim there).
- `logits_domain_auc`: the same classifier on the emotion logits, the E-dimensional space the emotion decision is
  read from. The z_emo AUC grows with z_emo's dimension whatever the training did (a random 256-d projection of
  the frozen states already reaches ≈ 0.99: `benchmarks/domain_auc_analysis.py`), so it cannot compare a rank-16
  z_emo with a full-rank one; the logits have E dimensions in every model.
- `mean_gates`: the router's mean gate per factor (lex, emo, spk) on the source and target test clips.
- `target_prediction_histogram`: the share of target test clips predicted as each class (a collapse onto a few
  classes shows here without labels).
- `training`: the last logged values of the per-step diagnostics (`CTriLoRATrainer` logs the gates, the
  adversary's speaker accuracy — against chance 1/num_speakers — and the CORAL/SER gradient-norm ratio).
- `dev_risk`: Deep Embedded Validation (You et al. 2019), the label-free selection criterion of the method study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from modeling_ctrilora.modeling_ctrilora import FACTOR_NAMES

# Keys `CTriLoRATrainer` logs besides the loss terms (see `CTriLoRATrainer._record_diagnostics`).
TRAINING_DIAGNOSTICS = (*(f"gate_{name}" for name in FACTOR_NAMES), "adversary_accuracy", "coral_ser_grad_ratio")


def domain_auc(source: np.ndarray, target: np.ndarray, seed: int = 0, folds: int = 5) -> float:
    """Out-of-fold ROC AUC of a logistic regression separating `source` (N_s, d) from `target` (N_t, d) features.

    Features are z-scored over both domains first; the folds are stratified by domain. 0.5 = indistinguishable.
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"domain_auc needs (N, d) features of one d, got {source.shape} and {target.shape}")
    folds = min(folds, len(source), len(target))
    if folds < 2:
        raise ValueError(f"domain_auc needs at least 2 clips per domain, got {len(source)} and {len(target)}")
    features = np.concatenate([source, target])
    features = (features - features.mean(0)) / (features.std(0) + 1e-8)
    domains = np.concatenate([np.zeros(len(source), dtype=int), np.ones(len(target), dtype=int)])
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    classifier = LogisticRegression(C=1.0, max_iter=2000)
    probability = cross_val_predict(classifier, features, domains, cv=splitter, method="predict_proba")[:, 1]
    return float(roc_auc_score(domains, probability))


def dev_risk(weights: np.ndarray, losses: np.ndarray) -> float:
    """Deep Embedded Validation (You, Wang, Long & Jordan 2019, Eq. 8): the importance-weighted validation risk with
    the weights as a control variate, mean(w·ℓ) + η·mean(w) − η with η = −Cov(w·ℓ, w) / Var(w). Lower is better.

    Args:
        weights: (N,) density ratios p_T(x)/p_S(x) of the labelled source-validation clips (from an unlabeled
            source-vs-target discriminator, e.g. `calibration.importance_weights`).
        losses: (N,) per-clip validation losses.
    """
    weights, losses = np.asarray(weights, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    if weights.shape != losses.shape or weights.ndim != 1 or len(weights) < 2:
        raise ValueError(f"dev_risk needs two (N ≥ 2,) arrays, got {weights.shape} and {losses.shape}")
    weighted = weights * losses
    variance = np.var(weights, ddof=1)
    eta = -np.cov(weighted, weights)[0, 1] / variance if variance > 0 else 0.0
    return float(weighted.mean() + eta * weights.mean() - eta)


def prediction_histogram(logits: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Share of rows whose arg-max is each class."""
    logits = np.asarray(logits)
    if len(logits) == 0:
        return {name: 0.0 for name in classes}
    counts = np.bincount(logits.argmax(1), minlength=len(classes))
    return {name: round(float(count) / len(logits), 4) for name, count in zip(classes, counts)}


def training_diagnostics(log_history: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """The last logged training value of each of `TRAINING_DIAGNOSTICS` that was logged (empty without a history)."""
    found: dict[str, Any] = {}
    for entry in log_history or ():
        if "eval_loss" in entry:
            continue
        for key in TRAINING_DIAGNOSTICS:
            if key in entry:
                found[key] = {"value": round(float(entry[key]), 5), "step": int(entry.get("step", 0))}
    return found


def diagnostics_section(
    predictions: Mapping[str, Any],
    classes: Sequence[str],
    *,
    log_history: Sequence[Mapping[str, Any]] | None = None,
    num_speakers: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The `diagnostics` section of `results.json` from the evaluation's `Predictions` (source/target test)."""
    source, target = predictions["source_test"], predictions["target_test"]
    section: dict[str, Any] = {
        "z_emo_domain_auc": round(domain_auc(source.z_emo, target.z_emo, seed=seed), 4),
        "logits_domain_auc": round(domain_auc(source.logits, target.logits, seed=seed), 4),
        "target_prediction_histogram": prediction_histogram(target.logits, classes),
    }
    gates = {
        split: getattr(predictions[split], "gates", None) for split in ("source_test", "target_test")
    }
    if all(value is not None for value in gates.values()):
        section["mean_gates"] = {
            split: {name: round(float(value), 4) for name, value in zip(FACTOR_NAMES, np.asarray(gate).mean(0))}
            for split, gate in gates.items()
        }
    training = training_diagnostics(log_history)
    if training:
        section["training"] = training
    if num_speakers:
        section["adversary_chance"] = round(1.0 / num_speakers, 5)
    return section


__all__ = [
    "TRAINING_DIAGNOSTICS",
    "diagnostics_section",
    "dev_risk",
    "domain_auc",
    "prediction_histogram",
    "training_diagnostics",
]
