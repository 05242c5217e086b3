"""Each loss term against its formula, on hand-checkable numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modeling_ctrilora.losses import (
    class_weights_from_labels,
    coral_loss,
    coral_loss_from_covariances,
    counterfactual_margin_loss,
    counterfactual_pairs,
    entropy,
    grl_coefficient,
    information_maximization_loss,
    minimum_class_confusion_loss,
    orthogonality_loss,
    uniform_confusion_loss,
    weighted_cross_entropy_per_example,
)


def test_coral_matches_its_formula_with_numpy_covariances():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(7, 3)), 2.0 * rng.normal(size=(5, 3)) + 1.0
    expected = ((np.cov(source, rowvar=False) - np.cov(target, rowvar=False)) ** 2).sum() / (4 * 3**2)
    got = coral_loss(torch.tensor(source), torch.tensor(target))
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_coral_hand_case_and_degenerate_batches():
    # Source: var 1 in dim 0 only (x = ±1 → unbiased var 2·1/(2−1) = 2); target: constant → covariance 0.
    source = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    target = torch.tensor([[3.0, 3.0], [3.0, 3.0]])
    assert float(coral_loss(source, target)) == pytest.approx(2.0**2 / (4 * 2**2))
    assert float(coral_loss(source[:1], target)) == 0.0
    assert float(coral_loss(source, source + 5.0)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal d"):
        coral_loss(source, torch.zeros(3, 5))


def test_counterfactual_pairs_need_same_transcript_and_different_known_emotion():
    transcripts = torch.tensor([0, 0, 0, 1, -1, -1])
    emotions = torch.tensor([0, 1, 1, 2, 0, 1])
    assert counterfactual_pairs(transcripts, emotions).tolist() == [[0, 1], [0, 2]]
    assert counterfactual_pairs(transcripts, torch.tensor([0, -100, 1, 2, 0, 1])).tolist() == [[0, 2]]


def test_counterfactual_margin_matches_its_formula():
    z_emo = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])  # unit rows
    z_lex = torch.tensor([[1.0, 0.0], [0.0, 2.0], [5.0, 0.0]])  # normalised: (1,0), (0,1), (1,0)
    transcripts, emotions = torch.tensor([0, 0, 0]), torch.tensor([0, 1, 0])
    # pairs (0,1) and (1,2). ‖e0 − e1‖ = sqrt(0.04 + 0.36) = 0.632 > 0.5 → hinge 0; lex distance² = 2.
    # ‖e1 − e2‖ = sqrt(0.64 + 0.16) = 0.894 → hinge 0 with m = 0.5; lex² = 2. With m = 1: hinges 0.368, 0.106.
    assert float(counterfactual_margin_loss(z_emo, z_lex, transcripts, emotions, 0.5)) == pytest.approx(2.0)
    expected = ((1 - math.sqrt(0.4)) + (1 - math.sqrt(0.8)) + 4.0) / 2
    assert float(counterfactual_margin_loss(z_emo, z_lex, transcripts, emotions, 1.0)) == pytest.approx(expected)
    assert float(counterfactual_margin_loss(z_emo, None, transcripts, emotions, 1.0)) == pytest.approx(expected - 2.0)


def test_counterfactual_is_zero_without_pairs_and_keeps_the_graph():
    z = torch.randn(3, 4, requires_grad=True)
    loss = counterfactual_margin_loss(z, z, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    assert float(loss) == 0.0 and loss.requires_grad


def test_orthogonality_matches_its_formula():
    rng = np.random.default_rng(1)
    a, b, c = (rng.normal(size=(6, 3)) for _ in range(3))

    def normalised(x):
        x = x - x.mean(0)
        return x / np.linalg.norm(x, axis=0)

    pairs = [(a, b), (a, c), (b, c)]
    expected = np.mean([((normalised(x).T @ normalised(y)) ** 2).mean() for x, y in pairs])
    got = orthogonality_loss([torch.tensor(a), torch.tensor(b), torch.tensor(c)])
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_orthogonality_extremes():
    x = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    y = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert float(orthogonality_loss([x, y])) == pytest.approx(0.0, abs=1e-10)  # uncorrelated
    assert float(orthogonality_loss([x, 3 * x])) == pytest.approx(1.0, abs=1e-5)  # perfectly correlated
    with pytest.raises(ValueError, match="two factors"):
        orthogonality_loss([x])


def test_class_weights_are_inverse_frequency_with_mean_one():
    weights = class_weights_from_labels([0, 0, 0, 1, 2, 2], 4)
    # inverse counts 1/3, 1, 1/2, 0 → scaled so the three present classes average 1.
    scale = 3 / (1 / 3 + 1 + 1 / 2)
    assert weights == pytest.approx([scale / 3, scale, scale / 2, 0.0])
    assert np.mean(weights[:3]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside"):
        class_weights_from_labels([5], 4)


def test_weighted_cross_entropy_per_example():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, -100])
    got = weighted_cross_entropy_per_example(logits, labels, torch.tensor([0.5, 1.5]))
    expected = [0.5 * -math.log(math.exp(2) / (math.exp(2) + 1)), 1.5 * -math.log(math.e / (math.e + 1))]
    assert got.tolist() == pytest.approx(expected)


def test_grl_schedule_follows_dann():
    assert grl_coefficient(0.0) == 0.0
    assert grl_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_coefficient(0.25, gamma=4.0, max_coefficient=0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-1)) - 1))
    assert grl_coefficient(2.0) == grl_coefficient(1.0)  # progress is clipped


def test_coral_from_covariances_equals_coral_on_the_rows():
    rng = np.random.default_rng(1)
    source, target = torch.tensor(rng.normal(size=(6, 4))), torch.tensor(rng.normal(size=(9, 4)) * 3)
    cs, ct = torch.tensor(np.cov(source.numpy(), rowvar=False)), torch.tensor(np.cov(target.numpy(), rowvar=False))
    assert float(coral_loss_from_covariances(cs, ct)) == pytest.approx(float(coral_loss(source, target)), rel=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        coral_loss_from_covariances(cs, ct[:3, :3])


def test_information_maximization_hand_cases():
    # Two confident rows in different classes: entropy 0, mean (½, ½) → diversity log 2 → loss −log 2.
    confident = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert float(information_maximization_loss(confident)) == pytest.approx(-math.log(2), abs=1e-6)
    # Both rows confident in one class: no diversity → loss 0 (the collapse SHOT's diversity term penalises).
    collapsed = torch.tensor([[50.0, 0.0], [50.0, 0.0]])
    assert float(information_maximization_loss(collapsed)) == pytest.approx(0.0, abs=1e-6)
    # Uniform rows: entropy log 2 each, diversity log 2 → 0; β = 0.5 leaves log 2 − ½ log 2.
    uniform = torch.zeros(3, 2)
    assert float(information_maximization_loss(uniform)) == pytest.approx(0.0, abs=1e-6)
    assert float(information_maximization_loss(uniform, diversity_weight=0.5)) == pytest.approx(0.5 * math.log(2), abs=1e-6)
    p = torch.softmax(torch.tensor([[1.0, 2.0, 0.5]]), -1)
    assert float(entropy(p)[0]) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)


def test_minimum_class_confusion_matches_its_formula():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 3)) * 2
    temperature = 2.5
    probs = np.exp(logits / temperature)
    probs /= probs.sum(1, keepdims=True)
    h = -(probs * np.log(probs + 1e-8)).sum(1)
    weights = 5 * (1 + np.exp(-h)) / (1 + np.exp(-h)).sum()
    confusion = (probs * weights[:, None]).T @ probs
    confusion /= confusion.sum(1, keepdims=True)
    expected = (confusion.sum() - np.trace(confusion)) / 3
    assert float(minimum_class_confusion_loss(torch.tensor(logits))) == pytest.approx(expected, rel=1e-5)
    # One-hot predictions: no confusion.
    one_hot = torch.tensor([[80.0, 0, 0], [0, 80.0, 0], [0, 0, 80.0]])
    assert float(minimum_class_confusion_loss(one_hot)) == pytest.approx(0.0, abs=1e-6)


def test_uniform_confusion_is_minimal_at_a_uniform_posterior():
    assert float(uniform_confusion_loss(torch.zeros(4, 5))) == pytest.approx(math.log(5), rel=1e-6)
    peaked = torch.tensor([[3.0, 0.0, 0.0, 0.0, 0.0]])
    expected = -torch.log_softmax(peaked, -1).mean()
    assert float(uniform_confusion_loss(peaked)) == pytest.approx(float(expected), rel=1e-6)
    assert float(uniform_confusion_loss(peaked)) > math.log(5)
    with pytest.raises(ValueError):
        uniform_confusion_loss(torch.zeros(0, 3))
