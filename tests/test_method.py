"""The cross-corpus recipe's knobs: presets `paper` / `full`, old checkpoints, layer pooling, DSBN, the running and
scale-free CORAL, target clips without encoder gradients, the confusion adversary, IM / MCC, diagnostics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modeling_ctrilora import CTriLoRAConfig, WhisperForTriLoRA
from modeling_ctrilora.losses import information_maximization_loss, minimum_class_confusion_loss
from modeling_ctrilora.modeling_ctrilora import PooledStandardization
from modeling_ctrilora.presets import CROSS_CORPUS_RECIPE, PAPER_RECIPE
from trainer.evaluation.baselines import pooled_layer_states
from trainer.evaluation.diagnostics import dev_risk, domain_auc, prediction_histogram, training_diagnostics

from test_modeling import all_labels, batch_inputs


def test_presets_give_their_recipe_and_explicit_values_win():
    full, paper = CTriLoRAConfig(), CTriLoRAConfig(preset="paper")
    assert full.preset == "full"
    assert {name: getattr(full, name) for name in CROSS_CORPUS_RECIPE} == CROSS_CORPUS_RECIPE
    assert {name: getattr(paper, name) for name in PAPER_RECIPE} == PAPER_RECIPE
    assert CTriLoRAConfig(preset="ser_only").layer_pooling == "last"  # baselines keep the measured recipe
    assert CTriLoRAConfig(preset="no_coral").layer_pooling == "mean"  # ablations of Full keep Full's
    assert CTriLoRAConfig(adversary_weight=0.7, layer_pooling="learned").adversary_weight == 0.7
    with pytest.raises(Exception, match="layer_pooling"):
        CTriLoRAConfig(layer_pooling="max")


def test_a_checkpoint_from_before_the_recipe_knobs_loads_as_the_paper_recipe(make_model, tmp_path):
    """Old checkpoints have no method knobs and say preset 'full', which then meant the published recipe."""
    model = make_model(preset="paper")
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    stored = json.loads(config_file.read_text())
    # factor_rank is a recipe knob now but every checkpoint has always stored it.
    added_later = [name for name in PAPER_RECIPE if name != "factor_rank"]
    for name in [*added_later, "im_weight", "mcc_weight", "coral_momentum", "mcc_temperature"]:
        stored.pop(name, None)
    stored["preset"] = "full"
    config_file.write_text(json.dumps(stored))
    reloaded = WhisperForTriLoRA.from_pretrained(tmp_path).eval()
    assert reloaded.config.preset == "paper"
    assert {name: getattr(reloaded.config, name) for name in added_later} == {name: PAPER_RECIPE[name] for name in added_later}
    assert reloaded.config.factor_rank == model.config.factor_rank
    inputs = all_labels()
    before, after = model(**inputs), reloaded(**inputs)
    for field in ("loss", "logits", "pooled", "z_emo"):
        torch.testing.assert_close(getattr(before, field), getattr(after, field), atol=0, rtol=0)


@pytest.mark.parametrize("pooling", ["last", "mean", "learned"])
def test_layer_pooling_matches_the_per_layer_states(make_model, pooling):
    model = make_model(layer_pooling=pooling)
    features, mask = batch_inputs()
    pooled, _, _ = model.pooled_state(features, mask)
    layers = pooled_layer_states(model, features, mask)  # (B, L, d), the frozen probe's per-layer pooling
    expected = {"last": layers[:, -1], "mean": layers.mean(1), "learned": layers.mean(1)}[pooling]
    torch.testing.assert_close(pooled, expected)
    assert hasattr(model, "layer_weights") == (pooling == "learned")


def test_domain_specific_normalization_uses_each_domains_statistics():
    norm = PooledStandardization(3, per_dimension=True).train()
    source, target = torch.randn(5, 3), 4 + 3 * torch.randn(4, 3)
    out = norm(torch.cat([source, target]), num_source=5)

    def standardised(x):
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + norm.eps)

    torch.testing.assert_close(out[:5], standardised(source))
    torch.testing.assert_close(out[5:], standardised(target))
    # Only the source rows move the running statistics (they serve the in-domain evaluation).
    torch.testing.assert_close(norm.running_mean, 0.1 * source.mean(0))


def test_target_clips_without_encoder_gradients_give_the_same_factors_and_leave_lora_alone(make_model):
    inputs = all_labels()
    # With DSBN: joint statistics would tie the target rows' standardisation to the source rows (and their graph).
    together = make_model(target_encoder_gradients=True, domain_specific_normalization=True).train()
    separate = make_model(target_encoder_gradients=False, domain_specific_normalization=True).train()
    a, b = together(**inputs), separate(**inputs)
    torch.testing.assert_close(a.target_z_emo, b.target_z_emo, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.z_emo, b.z_emo, atol=1e-5, rtol=1e-4)
    # A loss on the target rows alone reaches the router but not the encoder's LoRA weights.
    b.target_z_emo.sum().backward()
    lora = [p for n, p in separate.named_parameters() if "lora_" in n]
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in lora)
    assert separate.router.up["emo"].weight.grad is not None


def test_running_coral_is_a_moving_average_of_target_covariances(make_model):
    model = make_model(coral_covariance="running", coral_input="standardized_z_emo", coral_momentum=0.25).train()
    first, second = all_labels(), all_labels()
    second["target_input_features"] = batch_inputs((70, 30), seed=5)[0]
    second["target_attention_mask"] = batch_inputs((70, 30), seed=5)[1]
    covariances = []
    for inputs in (first, second):
        output = model(**inputs)
        assert output.coral_loss is not None and torch.isfinite(output.coral_loss)
        covariances.append(model.coral_target_covariance.clone())
    assert int(model.coral_target_steps) == 2
    # The second step's buffer is 0.75·(first) + 0.25·(second batch's covariance); recover the batch part.
    batch_part = (covariances[1] - 0.75 * covariances[0]) / 0.25
    assert torch.linalg.matrix_rank(batch_part.double(), atol=1e-5) <= 1  # two target clips: rank ≤ 1
    assert not torch.allclose(covariances[0], covariances[1])


def test_scale_free_coral_does_not_shrink_with_the_stream(make_model):
    model = make_model(coral_input="standardized_z_emo", coral_covariance="batch").train()
    inputs = all_labels()
    base = model(**inputs).coral_loss
    with torch.no_grad():
        model.router.up["emo"].weight.mul_(10.0)
        model.router.up["emo"].bias.mul_(10.0)
    scaled = model(**inputs).coral_loss
    torch.testing.assert_close(base, scaled, rtol=1e-3, atol=1e-6)


def test_confusion_adversary_pushes_towards_a_uniform_speaker_posterior(make_model):
    model = make_model(adversary_objective="confusion").train()
    output = model(**all_labels())
    # The head part is an ordinary CE on detached z_emo; the encoder part is ≥ 0 (0 at a uniform posterior).
    head_ce = torch.nn.functional.cross_entropy(output.adversary_logits, all_labels()["speaker_labels"])
    assert float(output.adversary_loss) >= float(head_ce) - 1e-6
    output.adversary_loss.backward()
    assert model.adversary_head.weight.grad is not None and model.router.up["emo"].weight.grad is not None


def test_target_side_objectives_are_computed_on_the_target_logits(make_model):
    model = make_model(im_weight=0.3, mcc_weight=0.2).train()
    output = model(**all_labels())
    torch.testing.assert_close(output.im_loss, information_maximization_loss(output.target_logits))
    torch.testing.assert_close(output.mcc_loss, minimum_class_confusion_loss(output.target_logits, 2.5))
    assert model.config.uses_target_batch
    assert not CTriLoRAConfig(preset="ser_only").uses_target_batch


def test_diagnostics_helpers():
    rng = np.random.default_rng(0)
    same = domain_auc(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)))
    apart = domain_auc(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 3)
    assert 0.3 < same < 0.7 and apart > 0.95
    # DEV with equal weights is the plain mean loss; the control variate corrects a weight–loss correlation.
    assert dev_risk(np.ones(4), np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(2.5)
    weights, losses = np.array([0.5, 1.5, 0.5, 1.5]), np.array([1.0, 3.0, 1.0, 3.0])
    weighted = weights * losses
    eta = -np.cov(weighted, weights)[0, 1] / np.var(weights, ddof=1)
    assert dev_risk(weights, losses) == pytest.approx(weighted.mean() + eta * weights.mean() - eta)
    assert prediction_histogram(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]), ["a", "b"]) == {"a": 0.6667, "b": 0.3333}
    history = [{"gate_emo": 0.4, "step": 10}, {"eval_loss": 1.0, "gate_emo": 0.9}, {"gate_emo": 0.5, "step": 20}]
    assert training_diagnostics(history) == {"gate_emo": {"value": 0.5, "step": 20}}


def test_diagnostics_section_reports_the_domain_auc_of_z_emo_and_of_the_logits():
    from trainer.evaluation.diagnostics import diagnostics_section
    from trainer.evaluation.evaluate import Predictions

    rng = np.random.default_rng(0)

    def split(shift: float) -> Predictions:
        # z_emo carries the domain (shifted), the logits do not.
        return Predictions(logits=rng.normal(size=(30, 3)), labels=np.zeros(30, dtype=int),
                           z_emo=rng.normal(size=(30, 8)) + shift, clip_ids=[str(i) for i in range(30)])

    section = diagnostics_section({"source_test": split(0.0), "target_test": split(3.0)}, ["a", "b", "c"])
    assert section["z_emo_domain_auc"] > 0.95
    assert section["logits_domain_auc"] < 0.8
    assert abs(sum(section["target_prediction_histogram"].values()) - 1.0) < 1e-3


def test_training_diagnostics_plot(tmp_path):
    from trainer.evaluation.plots import plot_training_diagnostics

    history = [
        {"loss": 1.0, "step": step, "gate_lex": 0.3, "gate_emo": 0.4, "gate_spk": 0.3, "adversary_accuracy": 0.1 * step,
         **({"coral_ser_grad_ratio": 0.05} if step % 2 else {})}
        for step in range(1, 5)
    ]
    path = plot_training_diagnostics(history, tmp_path / "diagnostics.png", adversary_chance=0.05)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="no training diagnostics"):
        plot_training_diagnostics([{"loss": 1.0, "step": 1}], tmp_path / "none.png")
