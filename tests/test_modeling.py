"""WhisperForTriLoRA: shapes, short-clip masking, LoRA/freezing, GRL, presets, save/load, Auto classes, errors."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, WhisperForConditionalGeneration

from transformers.models.whisper.modeling_whisper import WhisperModel

from modeling_ctrilora import ABLATION_PRESETS, CTriLoRAConfig, CTriLoRADecoder, CTriLoRAEncoder, WhisperForTriLoRA
from modeling_ctrilora.losses import grl_coefficient
from modeling_ctrilora.presets import PAPER_LOSS_TERMS
from conftest import trained_looking_lora


def batch_inputs(frames=(100, 60, 40), mel_bins=80, seed=0):
    """Features padded to the longest clip plus the frame mask."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(frames)
    features = torch.zeros(len(frames), mel_bins, longest)
    mask = torch.zeros(len(frames), longest, dtype=torch.long)
    for row, length in enumerate(frames):
        features[row, :, :length] = torch.randn(mel_bins, length, generator=generator)
        mask[row, :length] = 1
    return features, mask


def all_labels(batch=3, frames=(100, 60, 40)):
    features, mask = batch_inputs(frames)
    return {
        "input_features": features,
        "attention_mask": mask,
        "labels": torch.tensor([0, 1, 2])[:batch],
        "speaker_labels": torch.tensor([0, 1, 2])[:batch],
        "asr_labels": torch.tensor([[40, 41, 42, 256], [40, 43, 256, -100], [44, 256, -100, -100]])[:batch],
        "transcript_ids": torch.tensor([0, 0, 1])[:batch],
        "target_input_features": batch_inputs((80, 50), seed=1)[0],
        "target_attention_mask": batch_inputs((80, 50), seed=1)[1],
    }


def test_forward_returns_every_output_and_term(make_model):
    model = make_model()
    output = model(**all_labels())
    assert output.logits.shape == (3, 4) and output.emotion_logits is output.logits
    assert output.speaker_logits.shape == (3, 3) and output.adversary_logits.shape == (3, 3)
    assert output.asr_logits.shape == (3, 4, model.config.vocab_size)
    assert output.routing_weights.shape == (3, 3)
    torch.testing.assert_close(output.routing_weights.sum(-1), torch.ones(3))
    assert output.pooled.shape == (3, model.config.d_model)
    for factor in (output.z_lex, output.z_emo, output.z_spk):
        assert factor.shape == (3, 16)
    assert output.target_z_emo.shape == (2, 16)
    weights = {name: weight for name, weight in model.config.active_loss_weights.items() if weight > 0}
    terms = {name: getattr(output, f"{name}_loss") for name in weights}
    assert all(value is not None and torch.isfinite(value) for value in terms.values()), terms
    expected = sum(weights[name] * value for name, value in terms.items())
    torch.testing.assert_close(output.loss, expected)
    assert output.ser_loss_per_example.shape == (3,)


def test_no_labels_gives_no_loss(make_model):
    features, mask = batch_inputs()
    output = make_model()(features, attention_mask=mask)
    assert output.loss is None and output.ser_loss is None and output.asr_logits is None


def test_pooled_vector_is_independent_of_batch_composition(make_model):
    model = make_model()
    features, mask = batch_inputs((100, 60, 40))
    batched = model(features, attention_mask=mask)
    for row, length in enumerate((100, 60, 40)):
        alone = model(features[row : row + 1, :, :length])
        torch.testing.assert_close(alone.pooled, batched.pooled[row : row + 1], atol=1e-4, rtol=0)
        torch.testing.assert_close(alone.logits, batched.logits[row : row + 1], atol=1e-4, rtol=0)


def test_odd_true_length_inside_a_batch_matches_the_clip_run_alone_with_its_mask(make_model):
    model = make_model()
    features, mask = batch_inputs((100, 58))
    mask[1, 57] = 0  # a clip whose true length is odd (57 frames)
    batched = model(features, attention_mask=mask).pooled[1]
    alone = model(features[1:, :, :58], attention_mask=mask[1:, :58]).pooled[0]
    torch.testing.assert_close(alone, batched, atol=1e-4, rtol=0)


def test_an_odd_frame_count_gets_the_frame_rule_instead_of_an_error(make_model):
    model = make_model()
    features, _ = batch_inputs((57,))
    odd = model(features).pooled
    padded = torch.nn.functional.pad(features, (0, 1))
    masked = model(padded, attention_mask=(torch.arange(58) < 57).long()[None]).pooled
    torch.testing.assert_close(odd, masked, atol=0, rtol=0)


def test_backbone_subclasses_keep_whispers_state_dict_keys(make_model):
    model = make_model()
    assert isinstance(model.model.encoder, CTriLoRAEncoder) and isinstance(model.model.decoder, CTriLoRADecoder)
    assert isinstance(model.model, WhisperModel)
    # peft moves each adapted projection's weight under `base_layer`; everything else keeps the stock name.
    ours = {key.replace(".base_layer", "") for key in model.model.state_dict() if "lora_" not in key}
    assert ours == set(WhisperModel(model.config).state_dict())


def test_asr_logits_are_independent_of_batch_composition(make_model):
    model = make_model()
    features, mask = batch_inputs((100, 40))
    tokens = torch.tensor([[40, 41, 42], [43, 44, 45]])
    batched = model(features, attention_mask=mask, decoder_input_ids=tokens).asr_logits
    alone = model(features[1:, :, :40], decoder_input_ids=tokens[1:]).asr_logits
    torch.testing.assert_close(alone[0], batched[1], atol=1e-4, rtol=0)


def test_fresh_model_reproduces_the_pretrained_whisper(make_model, tiny_whisper_dir):
    """LoRA B and FiLM start at zero, so before training the decoder is exactly the pretrained Whisper."""
    model = make_model()
    whisper = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    features, _ = batch_inputs((100, 100))
    tokens = torch.tensor([[40, 41, 42], [43, 44, 45]])
    ours = model(features, decoder_input_ids=tokens).asr_logits
    stock = whisper(input_features=features, decoder_input_ids=tokens).logits
    torch.testing.assert_close(ours, stock, atol=1e-4, rtol=1e-4)


def test_a_model_built_from_a_config_starts_with_film_at_zero_and_fan_in_heads(tiny_whisper_dir):
    config = CTriLoRAConfig.from_pretrained(tiny_whisper_dir, num_speakers=3, factor_dim=16, factor_rank=4)
    model = WhisperForTriLoRA(config)
    for layer in (model.film.scale, model.film.shift):
        assert not layer.weight.any() and not layer.bias.any()
    for layer in (model.router.down["spk"], model.router.up["spk"], model.speaker_head, model.emotion_head):
        assert layer.weight.std().item() == pytest.approx(layer.in_features**-0.5, rel=0.3)


def test_pooled_standardization_uses_the_step_statistics_and_survives_a_one_clip_batch(make_model):
    model = make_model().train()
    pooled = torch.randn(8, model.config.d_model) * 0.1 + torch.linspace(-10, 10, model.config.d_model)
    standardized = model.pooled_standardization(pooled)
    torch.testing.assert_close(standardized.mean(0), torch.zeros(model.config.d_model), atol=1e-4, rtol=0)
    model.pooled_standardization.reset_running_stats()
    assert torch.isfinite(model.factorise(pooled[:1])[1]).all()  # one clip: running statistics, no error
    assert not hasattr(make_model(pooled_normalization="none"), "pooled_standardization")


def test_centered_normalization_keeps_the_relative_spread_of_the_dimensions(make_model):
    model = make_model(pooled_normalization="centered").train()
    dim = model.config.d_model
    spread = torch.linspace(0.01, 1.0, dim)
    pooled = torch.randn(64, dim) * spread + torch.linspace(-10, 10, dim)
    centered = model.pooled_standardization(pooled)
    torch.testing.assert_close(centered.mean(0), torch.zeros(dim), atol=1e-4, rtol=0)
    assert centered.var(0, unbiased=False).mean().item() == pytest.approx(1.0, rel=1e-3)
    # One shared scale: each dimension's spread relative to the others is what it was.
    ratio = centered.std(0) / pooled.std(0)
    torch.testing.assert_close(ratio, ratio.mean().expand(dim), rtol=1e-3, atol=0)
    # Running statistics moved toward the batch and serve evaluation.
    assert model.pooled_standardization.num_batches_tracked.item() == 1
    assert torch.isfinite(model.eval().pooled_standardization(pooled[:1])).all()


def test_target_statistics_standardise_target_clips_on_themselves_and_survive_save(make_model, tmp_path):
    model = make_model(pooled_normalization="centered")
    standardization = model.pooled_standardization
    assert int(standardization.target_clips) == 0  # built from a config: none fitted
    features, mask = batch_inputs((100, 60, 40, 80))
    plain = model(features, attention_mask=mask)
    # Without target statistics "target" falls back to the training statistics.
    torch.testing.assert_close(model(features, attention_mask=mask, domain="target").logits, plain.logits)
    shifted = features + 3.0  # another channel: the pooled state moves
    assert model.fit_target_statistics([{"input_features": shifted, "attention_mask": mask}]) == 4
    target_output = model(shifted, attention_mask=mask, domain="target")
    pooled = target_output.pooled
    torch.testing.assert_close(standardization(pooled, domain="target").mean(0), torch.zeros(pooled.shape[1]), atol=1e-4, rtol=0)
    assert not torch.allclose(target_output.logits, model(shifted, attention_mask=mask).logits)
    model.save_pretrained(tmp_path)
    reloaded = WhisperForTriLoRA.from_pretrained(tmp_path).eval()
    assert int(reloaded.pooled_standardization.target_clips) == 4
    torch.testing.assert_close(reloaded(shifted, attention_mask=mask, domain="target").logits, target_output.logits)
    with pytest.raises(ValueError, match="domain='source'"):
        model(features, attention_mask=mask, domain="source")
    with pytest.raises(ValueError, match="pooled_normalization='none'"):
        make_model(pooled_normalization="none").fit_target_statistics([{"input_features": features}])


@pytest.mark.parametrize("normalization", ["batch", "centered"])
def test_speaker_head_learns_when_the_pooled_state_has_large_constant_dimensions(make_model, normalization):
    """Whisper's pooled state has a few large constant dimensions beside small per-clip variation; on real
    whisper-base the speaker term stayed at ln(speakers) before the pooled state was standardised and the factor
    layers got fan-in init. Here: 4 speakers, an emotion task competing for the gates, 150 Adam steps
    (without the standardisation this setting ends at ≈ 1.2 and the gates collapse onto the emotion stream)."""
    torch.manual_seed(0)
    model = make_model(num_emotions=4, num_speakers=4, pooled_normalization=normalization).train()
    dim = model.config.d_model
    offset = torch.zeros(dim)
    offset[:2] = torch.tensor([11.0, -6.0])
    speaker_centres, emotion_centres = torch.randn(4, dim) * 0.1, torch.randn(4, dim) * 0.1
    modules = [model.router, model.emotion_head, model.speaker_head]
    optimizer = torch.optim.Adam([p for module in modules for p in module.parameters()], lr=2e-3)
    for _ in range(150):
        speakers, emotions = torch.randint(0, 4, (16,)), torch.randint(0, 4, (16,))
        pooled = offset + speaker_centres[speakers] + emotion_centres[emotions] + 0.02 * torch.randn(16, dim)
        _, z_emo, z_spk, _ = model.factorise(pooled)
        speaker_loss = torch.nn.functional.cross_entropy(model.speaker_head(z_spk), speakers)
        loss = torch.nn.functional.cross_entropy(model.emotion_head(z_emo), emotions) + 0.5 * speaker_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert speaker_loss.item() < 0.25 * math.log(4)


def test_stock_30s_path_runs_3000_frames(tiny_whisper_30s_dir):
    for padding in ("pad_to_30s", "short"):
        model = WhisperForTriLoRA.from_whisper(
            tiny_whisper_30s_dir, num_emotions=3, num_speakers=2, factor_dim=8, input_padding=padding
        ).eval()
        features, mask = batch_inputs((3000, 400))
        output = model(features, attention_mask=mask, labels=torch.tensor([0, 1]))
        assert output.pooled.shape == (2, 32) and torch.isfinite(output.loss)
    with pytest.raises(ValueError, match="exactly 3000"):
        model.config.input_padding = "pad_to_30s"
        model(batch_inputs((400,))[0])


def test_backbone_frozen_and_every_trainable_part_gets_gradient(make_model):
    model = make_model().train()
    model.gradient_reversal.set_progress(5, 10)
    with torch.no_grad():  # LoRA B starts at 0, which leaves A without gradient until B has moved once
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.01)
    model(**all_labels()).loss.backward()
    for name, parameter in model.named_parameters():
        if name.startswith("model.") and "lora_" not in name:
            assert not parameter.requires_grad and parameter.grad is None, name
        else:
            assert parameter.requires_grad, name
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    lora_targets = {name.split(".")[-4] for name, _ in model.named_parameters() if "lora_A" in name}
    assert lora_targets == {"q_proj", "k_proj", "v_proj", "out_proj"}
    assert any("encoder_attn" in name and "lora_A" in name for name, _ in model.named_parameters())


def test_trainable_fraction_is_reported(make_model, capsys):
    model = make_model()
    report = model.trainable_parameter_report()
    assert report["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < report["fraction"] < 1
    model.print_trainable_parameters()
    assert "trainable%" in capsys.readouterr().out


def test_gradient_reversal_flips_the_gradient_sign(make_model):
    model = make_model()
    coefficient = model.gradient_reversal.set_progress(3, 10)
    schedule = (model.config.grl_gamma, model.config.grl_max_coefficient)
    assert coefficient == pytest.approx(grl_coefficient(0.3, *schedule))
    inputs = torch.randn(4, 16, requires_grad=True)
    (model.gradient_reversal(inputs) * torch.arange(16.0)).sum().backward()
    torch.testing.assert_close(inputs.grad, -coefficient * torch.arange(16.0).expand(4, 16))
    torch.testing.assert_close(model.gradient_reversal(inputs), inputs)


def test_adversary_cannot_push_z_emo_to_grow(make_model):
    """The adversary reads layer-normed GRL(z_emo): its gradient on z_emo has no radial part, so it cannot ask the
    router to inflate z_emo (which collapsed the gates on real whisper-base)."""
    model = make_model().train()
    model.gradient_reversal.set_progress(5, 10)
    features, mask = batch_inputs()
    output = model(features, attention_mask=mask, speaker_labels=torch.tensor([0, 1, 2]))
    output.z_emo.retain_grad()
    output.adversary_loss.backward()
    assert output.z_emo.grad.abs().max() > 0
    # d adversary / d(scale of each z_emo row), relative to the gradient's size: 0 up to layer norm's eps.
    cosine = torch.nn.functional.cosine_similarity(output.z_emo.grad, output.z_emo.detach(), dim=-1)
    assert cosine.abs().max() < 1e-2


def test_save_load_round_trip_is_exact(make_model, tmp_path):
    model = make_model()
    model.gradient_reversal.set_progress(7, 10)
    model.config.in_domain_temperature = 1.7
    with torch.no_grad():  # make LoRA and heads non-trivial so the round trip is meaningful
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path)
    reloaded, info = WhisperForTriLoRA.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    reloaded.eval()
    inputs = all_labels()
    before, after = model(**inputs), reloaded(**inputs)
    for field in ("loss", "logits", "speaker_logits", "asr_logits", "pooled", "z_emo", "routing_weights"):
        torch.testing.assert_close(getattr(before, field), getattr(after, field), atol=0, rtol=0)
    schedule = (model.config.grl_gamma, model.config.grl_max_coefficient)
    assert float(reloaded.gradient_reversal.coefficient) == pytest.approx(grl_coefficient(0.7, *schedule))
    assert int(reloaded.gradient_reversal.step) == 7
    assert reloaded.config.in_domain_temperature == 1.7
    assert all(p.requires_grad == ("lora_" in n) for n, p in reloaded.named_parameters() if n.startswith("model."))


def test_auto_classes_resolve(make_model, tmp_path):
    make_model().save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CTriLoRAConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), WhisperForTriLoRA)
    assert isinstance(AutoModelForAudioClassification.from_pretrained(tmp_path), WhisperForTriLoRA)


@pytest.mark.parametrize("preset", ABLATION_PRESETS)
def test_every_preset_builds_runs_and_trains(make_model, preset):
    model = make_model(preset=preset).train()
    output = model(**all_labels())
    for term, weight in model.config.active_loss_weights.items():
        value = getattr(output, f"{term}_loss")
        assert (value is not None) == (weight > 0), (preset, term)
        # A preset's paper terms are on at their weight; a term it removes is off; IM / MCC are on at a weight > 0.
        if term not in model.preset.losses:
            assert weight == 0, (preset, term)
        elif term in PAPER_LOSS_TERMS:
            assert weight > 0, (preset, term)
    assert (output.routing_weights is not None) == model.preset.router
    assert (output.adversary_logits is not None) == model.preset.gradient_reversal
    output.loss.backward()
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_predict_emotion_applies_the_stored_temperature(make_model):
    model = make_model()
    features, mask = batch_inputs()
    logits = model(features, attention_mask=mask).logits
    model.config.in_domain_temperature, model.config.target_temperature = 2.0, 0.5
    torch.testing.assert_close(model.predict_emotion(features, mask), torch.softmax(logits / 2.0, -1))
    torch.testing.assert_close(model.predict_emotion(features, mask, domain="target"), torch.softmax(logits / 0.5, -1))
    with pytest.raises(ValueError, match="domain"):
        model.predict_emotion(features, mask, domain="elsewhere")


def test_class_weights_from_config_weight_the_ser_loss(make_model):
    model = make_model(ser_class_weights=[2.0, 1.0, 0.5, 0.5])
    inputs = all_labels()
    output = model(input_features=inputs["input_features"], attention_mask=inputs["attention_mask"], labels=inputs["labels"])
    plain = torch.nn.functional.cross_entropy(output.logits, inputs["labels"], reduction="none")
    torch.testing.assert_close(output.ser_loss_per_example, plain * torch.tensor([2.0, 1.0, 0.5]))


@pytest.mark.parametrize(
    "features, mask, message",
    [
        (torch.zeros(1, 80, 102), None, "at most 100"),
        (torch.zeros(1, 64, 40), None, "64 mel bins; this model expects 80"),
        (torch.zeros(80, 40), None, "batch, mel_bins, frames"),
        (torch.zeros(2, 80, 40), torch.ones(2, 38), "attention_mask"),
        (torch.zeros(1, 80, 40), torch.zeros(1, 40), "no real frame"),
    ],
)
def test_bad_inputs_raise_clear_errors(make_model, features, mask, message):
    with pytest.raises(ValueError, match=message):
        make_model()(features, attention_mask=mask)


def test_label_ids_out_of_range_raise(make_model):
    features, mask = batch_inputs()
    model = make_model()
    with pytest.raises(ValueError, match=r"labels \[7\].*outside \[0, 4\)"):
        model(features, attention_mask=mask, labels=torch.tensor([0, 7, -100]))
    with pytest.raises(ValueError, match="speaker_labels"):
        model(features, attention_mask=mask, speaker_labels=torch.tensor([0, 1, 3]))


def test_config_rejects_bad_knobs():
    with pytest.raises(Exception, match="preset"):
        CTriLoRAConfig(preset="nonsense")
    with pytest.raises(Exception, match="input_padding"):
        CTriLoRAConfig(input_padding="pad_to_10s")
    with pytest.raises(Exception, match="pooled_normalization"):
        CTriLoRAConfig(pooled_normalization="layer")
    with pytest.raises(Exception, match="ser_class_weights"):
        CTriLoRAConfig(ser_class_weights=[1.0, 2.0])


def test_merged_lora_gives_the_unmerged_outputs_and_restores_the_weights_exactly(make_model):
    model = trained_looking_lora(make_model())
    features, mask = batch_inputs()
    base_weights = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith("base_layer.weight")}
    unmerged = model(features, attention_mask=mask)
    with model.merged_lora():
        changed = [name for name, p in model.named_parameters() if name in base_weights and not torch.equal(p, base_weights[name])]
        assert len(changed) == len(base_weights) > 0  # every adapted projection now holds W + s·BA
        with model.merged_lora():  # nested: a no-op, not a second merge
            merged = model(features, attention_mask=mask)
    torch.testing.assert_close(merged.logits, unmerged.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(merged.z_emo, unmerged.z_emo, rtol=1e-4, atol=1e-5)
    for name, parameter in model.named_parameters():
        if name in base_weights:
            assert torch.equal(parameter, base_weights[name]), name
    assert not any(getattr(m, "merged_adapters", []) for m in model.modules())
    torch.testing.assert_close(model(features, attention_mask=mask).logits, unmerged.logits, rtol=0, atol=0)


def test_merged_lora_refuses_training_mode_and_restores_after_an_error(make_model):
    model = trained_looking_lora(make_model())
    base_weights = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith("base_layer.weight")}
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        with model.merged_lora():
            pass
    model.eval()
    with pytest.raises(KeyError):
        with model.merged_lora():
            raise KeyError("inference failed half-way")
    assert all(torch.equal(p, base_weights[n]) for n, p in model.named_parameters() if n in base_weights)
    assert not any(getattr(module, "merged", False) for module in model.modules())


def test_merged_lora_folds_the_update_in_fp32_inside_bf16_autocast(make_model):
    model = trained_looking_lora(make_model())
    projection = model.model.encoder.layers[0].self_attn.q_proj
    weight = projection.get_base_layer().weight.detach().clone()
    expected = weight + projection.scaling["default"] * (projection.lora_B["default"].weight @ projection.lora_A["default"].weight)
    with torch.autocast("cpu", dtype=torch.bfloat16), model.merged_lora():
        merged = projection.get_base_layer().weight.detach().clone()
    assert merged.dtype == torch.float32
    torch.testing.assert_close(merged, expected.detach(), rtol=0, atol=1e-6)
    assert torch.equal(projection.get_base_layer().weight, weight)


def test_generate_is_refused_with_a_pointer_to_transcribe(make_model):
    """`GenerationMixin` would read the emotion logits as next-token scores (see the class docstring): `generate`
    raises and names the API that transcribes, and the model does not claim it can generate."""
    model = make_model()
    with pytest.raises(NotImplementedError, match=r"modeling_ctrilora\.transcribe\.transcribe\(model, input_features"):
        model.generate(torch.zeros(1, 80, 20))
    assert not WhisperForTriLoRA.can_generate()
