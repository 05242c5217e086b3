"""int8 CPU inference (`modeling_ctrilora.quantization`): the quantised copy, `ctrilora predict --int8`, the pipeline
with a quantised model, and the errors for what int8 cannot do."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
from peft.tuners.lora import LoraLayer
from transformers import AutoFeatureExtractor, pipeline

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.cli import main
from modeling_ctrilora.quantization import is_quantized_for_inference, quantize_for_inference
from conftest import trained_looking_lora

QUANTIZED_LINEAR = torch.ao.nn.quantized.dynamic.Linear


@pytest.fixture
def trained_lora(checkpoint) -> WhisperForTriLoRA:
    """The tiny checkpoint with non-zero LoRA updates (fresh adapters are zero, so merging would be invisible)."""
    return trained_looking_lora(WhisperForTriLoRA.from_pretrained(checkpoint).eval())


def features(model: WhisperForTriLoRA, batch: int = 3, frames: int = 80) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, frames, dtype=torch.long)
    mask[0, frames // 2:] = 0  # one shorter clip: the frame mask must survive quantisation
    return {
        "input_features": torch.randn(batch, model.config.num_mel_bins, frames, generator=generator),
        "attention_mask": mask,
    }


def test_quantized_copy_merges_lora_quantizes_every_linear_and_leaves_the_model_alone(trained_lora):
    before = {name: tensor.clone() for name, tensor in trained_lora.state_dict().items()}
    inputs = features(trained_lora)
    with torch.inference_mode():
        expected = trained_lora(**inputs).logits

    quantized = quantize_for_inference(trained_lora)

    assert is_quantized_for_inference(quantized) and not is_quantized_for_inference(trained_lora)
    # Every Whisper projection (type exactly nn.Linear) is int8; the router and heads (nn.Linear subclasses) stay fp32.
    assert not any(type(module) is torch.nn.Linear for module in quantized.modules())
    assert sum(isinstance(module, QUANTIZED_LINEAR) for module in quantized.modules()) > 0
    assert quantized.emotion_head.weight.dtype == torch.float32
    assert all(layer.merged for layer in quantized.modules() if isinstance(layer, LoraLayer))
    # The original: adapters unmerged, every tensor bit-for-bit what it was.
    assert not any(layer.merged for layer in trained_lora.modules() if isinstance(layer, LoraLayer))
    after = trained_lora.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)

    with torch.inference_mode():
        got = quantized(**inputs).logits
    # int8 per-channel weights and per-batch activations: logits within a few per cent of their spread, and with the
    # LoRA update merged (not dropped): the copy is closer to the adapted model than to the bare backbone.
    spread = float(expected.abs().max())
    assert float((got - expected).abs().max()) < 0.1 * spread
    with torch.inference_mode(), zero_lora(trained_lora):
        bare = trained_lora(**inputs).logits
    assert float((got - expected).abs().mean()) < float((bare - expected).abs().mean())


@contextlib.contextmanager
def zero_lora(model: WhisperForTriLoRA):
    """The model with every LoRA B matrix zeroed (its backbone alone) inside the block, restored on exit."""
    saved = {name: parameter.detach().clone() for name, parameter in model.named_parameters() if "lora_B" in name}
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in saved:
            parameters[name].zero_()
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                parameters[name].copy_(value)


def test_quantized_copy_refuses_to_be_saved_and_the_original_still_saves(trained_lora, tmp_path):
    quantized = quantize_for_inference(trained_lora)
    with pytest.raises(TypeError, match="save the fp32 model"):
        quantized.save_pretrained(tmp_path / "int8")
    assert not any(parameter.requires_grad for parameter in quantized.parameters())
    trained_lora.save_pretrained(tmp_path / "fp32")
    assert (tmp_path / "fp32" / "config.json").is_file()


def test_quantize_refuses_training_mode(trained_lora):
    trained_lora.train()
    with pytest.raises(ValueError, match="model.eval"):
        quantize_for_inference(trained_lora)


def test_pipeline_takes_a_quantized_model(checkpoint, clips):
    model = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    fp32 = pipeline("audio-classification", model=model, feature_extractor=feature_extractor)
    int8 = pipeline("audio-classification", model=quantize_for_inference(model), feature_extractor=feature_extractor)
    for clip in clips:
        expected, got = fp32(clip, top_k=None, domain="target"), int8(clip, top_k=None, domain="target")
        scores = {item["label"]: item["score"] for item in got}
        assert set(scores) == {item["label"] for item in expected}
        for item in expected:
            assert scores[item["label"]] == pytest.approx(item["score"], abs=0.05)


def test_cli_int8_json_matches_fp32(checkpoint, clips, capsys):
    arguments = ["predict", *clips, "--model", checkpoint, "--json", "--top_k", "4", "--domain", "target"]
    assert main(arguments) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert main([*arguments, "--int8", "--transcribe", "--max_new_tokens", "3"]) == 0
    int8 = json.loads(capsys.readouterr().out)
    assert [record["file"] for record in int8] == clips
    for low, full in zip(int8, fp32):
        assert low["error"] is None and isinstance(low["transcript"], str)
        assert low["confidence"] == pytest.approx(full["confidence"], abs=0.05)
        scores = {item["label"]: item["score"] for item in low["scores"]}
        for item in full["scores"]:
            assert scores[item["label"]] == pytest.approx(item["score"], abs=0.05)


@pytest.mark.parametrize(
    "extra, message",
    [(["--bf16"], "--int8 and --bf16"), (["--device", "meta"], "--int8 runs on the CPU")],
)
def test_cli_int8_usage_errors(checkpoint, clips, capsys, extra, message):
    assert main(["predict", clips[0], "--model", checkpoint, "--int8", *extra]) == 2
    assert message in capsys.readouterr().err
