"""C-TriLoRA's loss terms and schedules as pure functions of tensors.

Each function takes batch tensors and returns a scalar tensor (differentiable where the inputs are); none holds
state or reads a config, so each has a numeric test against its formula (`tests/test_losses.py`).

The factor losses compute in fp32 whatever their inputs' dtype, also inside a bf16/fp16 autocast region (mixed
precision training): autocast would otherwise run the covariance and correlation matmuls in bf16, whose 8-bit
mantissa loses the small covariance differences CORAL is made of.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def grl_coefficient(progress: float, gamma: float = 10.0, max_coefficient: float = 1.0) -> float:
    """DANN's gradient-reversal schedule λ(p) = max · (2 / (1 + exp(−γ p)) − 1).

    Args:
        progress: training progress p, clipped to [0, 1] (global step / max steps).
        gamma: steepness γ (10 in Ganin et al. 2016).
        max_coefficient: value approached at p = 1.

    Example:
        >>> round(grl_coefficient(0.5), 4)
        0.9866
    """
    progress = min(max(float(progress), 0.0), 1.0)
    return max_coefficient * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


def _fp32(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """A region where `tensor`'s device runs no autocast, so fp32 inputs give fp32 matmuls."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in fp32 when it is in a narrower float (bf16, fp16); fp32 and fp64 as they are."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def covariance(features: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance (d, d) of `features` (n, d), n ≥ 2 (rows are examples), as in Deep CORAL; in fp32 (or
    fp64) also inside autocast."""
    with _fp32(features):
        features = _wide(features)
        centred = features - features.mean(dim=0, keepdim=True)
        return centred.T @ centred / (features.shape[0] - 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL (Sun & Saenko 2016): ‖C_S − C_T‖²_F / (4 d²).

    Args:
        source: (n_s, d) source features. target: (n_t, d) target features; n_s, n_t ≥ 2.

    Returns:
        A scalar; 0 (still connected to the graph) when either side has fewer than two rows, since a covariance
        needs two.
    """
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"coral_loss needs (n, d) inputs of equal d, got {tuple(source.shape)} and {tuple(target.shape)}")
    if source.shape[0] < 2 or target.shape[0] < 2:
        return (source.sum() + target.sum()) * 0.0
    dim = source.shape[1]
    with _fp32(source):
        difference = covariance(_wide(source)) - covariance(_wide(target))
        return (difference**2).sum() / (4.0 * dim * dim)


def counterfactual_pairs(transcript_ids: torch.Tensor, emotion_labels: torch.Tensor) -> torch.Tensor:
    """Index pairs (P, 2), i < j, of rows with the same transcript (id ≥ 0) and different, known (≥ 0) emotions."""
    same_text = (transcript_ids[:, None] == transcript_ids[None, :]) & (transcript_ids[:, None] >= 0)
    known = (emotion_labels[:, None] >= 0) & (emotion_labels[None, :] >= 0)
    different_emotion = emotion_labels[:, None] != emotion_labels[None, :]
    upper = torch.ones_like(same_text).triu(diagonal=1)
    return torch.nonzero(same_text & known & different_emotion & upper)


def counterfactual_margin_loss(
    z_emo: torch.Tensor,
    z_lex: torch.Tensor | None,
    transcript_ids: torch.Tensor,
    emotion_labels: torch.Tensor,
    margin: float = 0.5,
) -> torch.Tensor:
    """Counterfactual loss over same-transcript / different-emotion pairs, on L2-normalised factors:
    mean over pairs of max(0, m − ‖ẑ_emo,i − ẑ_emo,j‖) + ‖ẑ_lex,i − ẑ_lex,j‖².

    The emotion factor of two readings of one sentence in different emotions must be at least `m` apart, while
    their lexical factor should coincide. Returns 0 (connected to the graph) when the batch has no such pair.

    Args:
        z_emo: (B, d) emotion factors. z_lex: (B, d) lexical factors, or `None` (the lexical pull is dropped).
        transcript_ids: (B,) transcript-group ids, −1 = unknown. emotion_labels: (B,) class ids, −100/−1 = unknown.
        margin: m.
    """
    pairs = counterfactual_pairs(transcript_ids, emotion_labels)
    if pairs.numel() == 0:
        return z_emo.sum() * 0.0
    with _fp32(z_emo):
        emo = F.normalize(_wide(z_emo), dim=-1)
        hinge = F.relu(margin - (emo[pairs[:, 0]] - emo[pairs[:, 1]]).norm(dim=-1))
        if z_lex is not None:
            lex = F.normalize(_wide(z_lex), dim=-1)
            hinge = hinge + ((lex[pairs[:, 0]] - lex[pairs[:, 1]]) ** 2).sum(dim=-1)
        return hinge.mean()


def orthogonality_loss(factors: Sequence[torch.Tensor], eps: float = 1e-6) -> torch.Tensor:
    """Mean squared entry of the batch cross-correlation between each pair of factors, averaged over pairs.

    Each factor (B, d) is centred over the batch and each of its columns scaled to unit norm, so an entry of
    Â_iᵀ Â_j is the correlation of one dimension of factor i with one of factor j; 0 = decorrelated factors.
    Returns 0 for batches of one row (no correlation is defined).
    """
    if len(factors) < 2:
        raise ValueError(f"orthogonality_loss needs at least two factors, got {len(factors)}")
    if factors[0].shape[0] < 2:
        return sum(factor.sum() for factor in factors) * 0.0
    with _fp32(factors[0]):
        normalised = []
        for factor in factors:
            centred = _wide(factor) - _wide(factor).mean(dim=0, keepdim=True)
            normalised.append(centred / (centred.norm(dim=0, keepdim=True) + eps))
        terms = [
            (normalised[i].T @ normalised[j]).pow(2).mean()
            for i in range(len(normalised))
            for j in range(i + 1, len(normalised))
        ]
        return torch.stack(terms).mean()


def class_weights_from_labels(labels: Sequence[int], num_classes: int) -> list[float]:
    """Inverse-frequency class weights with mean 1 over the classes that occur: w_c ∝ 1 / n_c.

    A class absent from `labels` gets weight 0 (it contributes no example to the loss anyway).

    Example:
        >>> class_weights_from_labels([0, 0, 0, 1], 2)
        [0.5, 1.5]
    """
    counts = [0] * num_classes
    for label in labels:
        if not 0 <= int(label) < num_classes:
            raise ValueError(f"label {label} is outside [0, {num_classes})")
        counts[int(label)] += 1
    inverse = [1.0 / count if count else 0.0 for count in counts]
    present = sum(1 for count in counts if count)
    if present == 0:
        raise ValueError("class_weights_from_labels got no labels")
    scale = present / sum(inverse)
    return [weight * scale for weight in inverse]


def weighted_cross_entropy_per_example(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None, ignore_index: int = -100
) -> torch.Tensor:
    """Per-example class-weighted CE, w_{y_i} · (−log p_i(y_i)), for rows whose label is not `ignore_index`.

    Returns a (n_labelled,) tensor; its plain mean is the SER loss (weights already have mean 1 over classes, so
    the mean re-balances classes instead of cancelling the weights as `F.cross_entropy(weight=…)`'s weighted mean
    does within a batch).
    """
    keep = labels != ignore_index
    losses = F.cross_entropy(logits[keep], labels[keep], reduction="none")
    if class_weights is not None:
        losses = losses * class_weights.to(losses.dtype)[labels[keep]]
    return losses


def coral_loss_from_covariances(source_covariance: torch.Tensor, target_covariance: torch.Tensor) -> torch.Tensor:
    """‖C_S − C_T‖²_F / (4 d²) of two given (d, d) covariances (Deep CORAL's distance, Sun & Saenko 2016).

    For a CORAL whose target covariance is a running (moving-average) estimate over many batches, so its rank is not
    capped by the batch size (see `RunningCovariance` in the model).
    """
    if source_covariance.shape != target_covariance.shape or source_covariance.dim() != 2:
        raise ValueError(
            f"need two (d, d) covariances of one shape, got {tuple(source_covariance.shape)} and {tuple(target_covariance.shape)}"
        )
    dim = source_covariance.shape[0]
    with _fp32(source_covariance):
        difference = _wide(source_covariance) - _wide(target_covariance)
        return (difference**2).sum() / (4.0 * dim * dim)


def entropy(probabilities: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Shannon entropy (nats) of each row of `probabilities` (..., K) → (...)."""
    return -(probabilities * torch.log(probabilities + eps)).sum(-1)


def information_maximization_loss(logits: torch.Tensor, diversity_weight: float = 1.0) -> torch.Tensor:
    """SHOT's information maximisation (Liang, Hu & Feng 2020, Eq. 4): mean_i H(p_i) − β · H(mean_i p_i).

    The first term makes each unlabeled target prediction confident, the second (diversity) keeps the batch's
    predictions spread over the classes, so the entropy term cannot be met by putting every clip in one class.
    Its minimum is −β·log K: every row one-hot and the classes used equally often.

    Args:
        logits: (n, K) target logits; n ≥ 1.
        diversity_weight: β (1 in SHOT).
    """
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"information_maximization_loss needs (n ≥ 1, K) logits, got {tuple(logits.shape)}")
    probabilities = torch.softmax(logits.float(), dim=-1)
    return entropy(probabilities).mean() - diversity_weight * entropy(probabilities.mean(0))


def minimum_class_confusion_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum Class Confusion (Jin, Wang, Long & Wang 2020, Eqs. 1–6) on a batch of unlabeled target logits.

    Ŷ = softmax(Z / T); each row weighted by W_ii = n·(1 + e^{−H(ŷ_i)}) / Σ_j (1 + e^{−H(ŷ_j)}) (confident rows
    count more); C = Ŷᵀ W Ŷ (K × K); each row of C normalised to sum 1; loss = Σ_{j ≠ j'} C̃_{jj'} / K — the mass of
    between-class confusion. 0 when every clip is predicted one-hot.

    Args:
        logits: (n, K) target logits, n ≥ 1.
        temperature: T (2.5 in MCC).
    """
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"minimum_class_confusion_loss needs (n ≥ 1, K) logits, got {tuple(logits.shape)}")
    rows, classes = logits.shape
    probabilities = torch.softmax(logits.float() / temperature, dim=-1)
    certainty = 1.0 + torch.exp(-entropy(probabilities.detach()))
    weights = rows * certainty / certainty.sum()
    confusion = (probabilities * weights[:, None]).T @ probabilities
    confusion = confusion / confusion.sum(dim=1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / classes


def uniform_confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """Domain/speaker confusion (Tzeng, Hoffman, Darrell & Saenko 2015, Eq. 3): cross-entropy of the predictions
    against the uniform distribution, −mean_i (1/K) Σ_k log p_ik. Minimised (at log K) when the classifier can say
    nothing: the encoder is pushed towards *speaker-blind*, not towards confidently wrong as a reversed gradient can.
    """
    if logits.dim() != 2 or logits.shape[0] == 0:
        raise ValueError(f"uniform_confusion_loss needs (n ≥ 1, K) logits, got {tuple(logits.shape)}")
    return -torch.log_softmax(logits.float(), dim=-1).mean()


__all__ = [
    "class_weights_from_labels",
    "coral_loss",
    "coral_loss_from_covariances",
    "entropy",
    "information_maximization_loss",
    "minimum_class_confusion_loss",
    "uniform_confusion_loss",
    "counterfactual_margin_loss",
    "counterfactual_pairs",
    "covariance",
    "grl_coefficient",
    "orthogonality_loss",
    "weighted_cross_entropy_per_example",
]
