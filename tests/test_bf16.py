"""bf16 everywhere: native-bf16 detection, training under `--bf16`, `ctrilora predict --bf16` and the pipeline's dtype.

bf16 is autocast around the model forward: weights (and so the LoRA merge and the standardisation statistics) stay
fp32, the feature extraction stays fp32, and the factor losses (CORAL, orthogonality, counterfactual) compute in fp32.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, pipeline

from modeling_ctrilora import WhisperForTriLoRA, hardware
from modeling_ctrilora.cli import main
from modeling_ctrilora.losses import coral_loss, counterfactual_margin_loss, orthogonality_loss
from modeling_ctrilora.presets import LOGGED_LOSS_TERMS
from trainer import CTriLoRATrainer, CTriLoRATrainingArguments
from trainer.data.sampler import PairAwareBatchSampler
from trainer.evaluation.evaluate import collect_predictions
from trainer.evaluation.metrics import compute_metrics_fn
from trainer.run import DataArguments, prepare_data
from conftest import CHECKPOINT_EMOTIONS

EMOTIONS = CHECKPOINT_EMOTIONS


# ------------------------------------------------------------------------------------------ native bf16 detection
def cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "native"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n", True),  # Zen 4, Cooper Lake
        ("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n", True),  # Sapphire Rapids
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),  # aarch64 with the BF16 extension
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nprocessor\t: 1\nflags\t\t: fpu sse2 avx2 fma\n", False),
        ("processor\t: 0\nflags\t\t: avx512f avx512bw avx512_vnni\n", False),  # AVX-512 without BF16 (Skylake-X)
    ],
)
def test_native_bf16_from_cpuinfo_flags(tmp_path, text, native):
    assert hardware.cpu_has_native_bf16(cpuinfo(tmp_path, text)) is native


def test_native_bf16_asks_torch_when_cpuinfo_is_unreadable(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert hardware.cpu_has_native_bf16(tmp_path / "absent")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not hardware.cpu_has_native_bf16(tmp_path / "absent")


def test_slow_bf16_warning_only_on_a_cpu_without_native_bf16(tmp_path, caplog):
    slow = cpuinfo(tmp_path, "flags\t\t: fpu avx2\n")
    fast = tmp_path / "fast"
    fast.write_text("flags\t\t: fpu avx2 avx512_bf16\n")
    with caplog.at_level(logging.WARNING, logger="modeling_ctrilora.hardware"):
        assert hardware.warn_if_bf16_is_slow("cpu", cpuinfo=slow)
        assert "bf16 would be slower than fp32 here" in caplog.text
        caplog.clear()
        assert not hardware.warn_if_bf16_is_slow("cpu", cpuinfo=fast)
        assert not hardware.warn_if_bf16_is_slow("cuda:0", cpuinfo=slow)  # GPUs are not judged by the CPU's flags
        assert not caplog.text


@pytest.fixture
def slow_cpu(monkeypatch):
    """Pretend this CPU has no native bf16 (whatever the machine running the tests has)."""
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda *args, **kwargs: False)


# ---------------------------------------------------------------------------------------------- factor losses
def test_factor_losses_compute_in_fp32_inside_bf16_autocast():
    generator = torch.Generator().manual_seed(0)
    source, target, third = (torch.randn(8, 6, generator=generator) for _ in range(3))
    transcripts, emotions = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.tensor([0, 1, 0, 1, 2, 3, 2, 3])
    fp32 = (coral_loss(source, target), orthogonality_loss([source, target, third]),
            counterfactual_margin_loss(source, target, transcripts, emotions))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = (coral_loss(source, target), orthogonality_loss([source, target, third]),
                    counterfactual_margin_loss(source, target, transcripts, emotions))
        # Factors that come out of an autocast linear layer are bf16: the losses still compute in fp32.
        from_bf16 = coral_loss(source.bfloat16(), target.bfloat16())
    for reference, value in zip(fp32, autocast):
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, reference, rtol=0, atol=0)  # the same fp32 computation, not a bf16 one
    assert from_bf16.dtype == torch.float32
    torch.testing.assert_close(from_bf16, coral_loss(source.bfloat16().float(), target.bfloat16().float()))


# ------------------------------------------------------------------------------------------------------ training
def test_bf16_training_autocasts_the_forward_keeps_fp32_weights_and_evaluates(
    corpora, tiny_whisper_dir, tmp_path, monkeypatch, slow_cpu, caplog
):
    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    source, target = corpora
    data = prepare_data(DataArguments(source=source, target=target), tiny_whisper_dir, tmp_path / "run", seed=0)
    torch.manual_seed(0)
    model = WhisperForTriLoRA.from_whisper(
        tiny_whisper_dir, id2label=data.id2label, num_speakers=len(data.speaker2id), factor_dim=16, factor_rank=4
    )
    args = CTriLoRATrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2,
        logging_steps=1, eval_strategy="no", save_strategy="no", report_to=[], use_cpu=True, seed=0, bf16=True,
    )
    train = data.source["train"]
    with caplog.at_level(logging.WARNING, logger="modeling_ctrilora.hardware"):
        trainer = CTriLoRATrainer(
            model=model, args=args, train_dataset=train, eval_dataset=data.source["validation"],
            target_dataset=data.target["adaptation"], data_collator=data.collator,
            train_batch_sampler=PairAwareBatchSampler(
                train["transcript"], 8, emotions=train["emotion"], speakers=train["speaker"], seed=0
            ),
            compute_metrics=compute_metrics_fn(data.id2label),
        )
    assert "bf16 would be slower than fp32 here" in caplog.text

    seen = []  # (autocast on, autocast dtype, z_emo dtype, CORAL dtype) per training forward, inside the forward
    evaluation_autocast = []  # autocast on, per evaluation forward
    original = WhisperForTriLoRA.forward

    def recording(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        if self.training:
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
                         output.z_emo.dtype, output.coral_loss.dtype))
        else:
            evaluation_autocast.append(torch.is_autocast_enabled("cpu"))
        return output

    monkeypatch.setattr(WhisperForTriLoRA, "forward", recording)  # before train(), which wraps it in autocast
    lora_before = {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}
    trainer.train()

    assert len(seen) == 3
    for enabled, dtype, z_emo_dtype, coral_dtype in seen:
        assert enabled and dtype == torch.bfloat16  # autocast covers the whole model forward
        assert z_emo_dtype == torch.bfloat16  # the linear layers did run in bf16
        assert coral_dtype == torch.float32  # CORAL's covariances did not
    for name, parameter in model.named_parameters():  # fp32 master weights, the LoRA ones trained
        assert parameter.dtype == torch.float32, name
    assert all(not torch.equal(model.get_parameter(name), before) for name, before in lora_before.items())
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    for entry in logged:
        logged_terms = [key for key in LOGGED_LOSS_TERMS if key in entry]
        assert logged_terms and math.isfinite(entry["loss"]) and all(math.isfinite(entry[key]) for key in logged_terms)

    # Evaluation after training: the Trainer's own and the cross-corpus code path (`evaluate_experiment`'s), both
    # under the same autocast (accelerate wrapped the model's forward), the target statistics in fp32.
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"]) and 0 <= metrics["eval_macro_f1"] <= 1
    model.eval()
    assert model.fit_target_statistics(
        torch.utils.data.DataLoader(data.target["adaptation"], batch_size=8, collate_fn=data.collator)
    ) >= 2
    assert model.pooled_standardization.target_mean.dtype == torch.float32
    predictions = collect_predictions(model, data.target["test"], data.collator, batch_size=8, domain="target")
    assert predictions.logits.dtype == np.float32 and np.isfinite(predictions.logits).all()
    assert len(predictions.clip_ids) == len(data.target["test"])
    assert evaluation_autocast and all(evaluation_autocast)


def test_training_script_with_bf16_trains_and_evaluates(train_script, tmp_path):
    run = tmp_path / "run"
    results = train_script(run, "--max_steps", "2", "--bf16", "--eval_strategy", "no", "--save_strategy", "no",
                           "--logging_steps", "1")
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert all(math.isfinite(entry["loss"]) for entry in state["log_history"] if "loss" in entry)
    for split in ("in_domain", "cross_corpus"):
        assert 0 <= results[split]["macro_f1"] <= 1
    saved = WhisperForTriLoRA.from_pretrained(run)
    assert {parameter.dtype for parameter in saved.parameters()} == {torch.float32}


# ----------------------------------------------------------------------------------------- pipeline and CLI
@pytest.fixture
def forward_log(monkeypatch):
    """Every `WhisperForTriLoRA.forward` call: (autocast on, autocast dtype, input_features dtype, weight dtype)."""
    log = []
    original = WhisperForTriLoRA.forward

    def recording(self, input_features, *args, **kwargs):
        weight = self.emotion_head.weight.dtype
        log.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), input_features.dtype, weight))
        return original(self, input_features, *args, **kwargs)

    monkeypatch.setattr(WhisperForTriLoRA, "forward", recording)
    return log


def assert_same_predictions(bf16: list[list[dict]], fp32: list[list[dict]]) -> None:
    """Top label identical, every probability within 0.05 (bf16 keeps about 3 significant digits)."""
    assert len(bf16) == len(fp32)
    for low, full in zip(bf16, fp32):
        assert low[0]["label"] == full[0]["label"]
        low_scores = {item["label"]: item["score"] for item in low}
        for item in full:
            assert low_scores[item["label"]] == pytest.approx(item["score"], abs=0.05)


@pytest.mark.parametrize("argument", ["dtype", "torch_dtype"])
def test_pipeline_bf16_autocasts_the_forward_only_and_matches_fp32(checkpoint, clips, forward_log, argument, slow_cpu,
                                                                  caplog):
    fp32 = pipeline("audio-classification", model=checkpoint)
    expected = [fp32(clip, top_k=None, domain=domain) for clip in clips for domain in ("in_domain", "target")]
    assert forward_log and all(not enabled for enabled, *_ in forward_log)
    forward_log.clear()

    with caplog.at_level(logging.WARNING, logger="modeling_ctrilora.hardware"):
        bf16 = pipeline("audio-classification", model=checkpoint, **{argument: torch.bfloat16})
    assert "bf16 would be slower than fp32 here" in caplog.text
    # pipeline() reads a named checkpoint in the dtype asked; C-TriLoRA keeps fp32 weights and autocasts instead.
    assert {parameter.dtype for parameter in bf16.model.parameters()} == {torch.float32}
    assert bf16.autocast_dtype == torch.bfloat16
    got = [bf16(clip, top_k=None, domain=domain) for clip in clips for domain in ("in_domain", "target")]
    assert len(forward_log) == len(got)
    for enabled, dtype, features, weights in forward_log:
        assert enabled and dtype == torch.bfloat16
        assert features == torch.float32 and weights == torch.float32  # feature extraction and weights stay fp32
    assert_same_predictions(got, expected)
    assert all(isinstance(item["score"], float) for scores in got for item in scores)
    assert not torch.is_autocast_enabled("cpu")  # nothing leaks out of the forward

    batched = bf16(clips, top_k=None, batch_size=3)
    assert_same_predictions(batched, expected[::2])


def test_pipeline_with_a_model_object_and_fp32_dtype(checkpoint, clips, forward_log):
    model = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    fp32 = pipeline("audio-classification", model=checkpoint, dtype=torch.float32)
    assert fp32.autocast_dtype is None
    feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    bf16 = pipeline("audio-classification", model=model, feature_extractor=feature_extractor, dtype="bfloat16")
    assert bf16.model is model and bf16.autocast_dtype == torch.bfloat16
    forward_log.clear()
    with model.merged_lora():  # merged in fp32 outside the autocast, as `ctrilora predict` does
        got = [bf16(clip, top_k=None) for clip in clips]
    assert all(enabled for enabled, *_ in forward_log)
    assert_same_predictions(got, [fp32(clip, top_k=None) for clip in clips])


def test_cli_bf16_json_matches_fp32(checkpoint, clips, capsys, forward_log, slow_cpu, caplog):
    assert main(["predict", *clips, "--model", checkpoint, "--json", "--top_k", "4", "--domain", "target"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    forward_log.clear()
    with caplog.at_level(logging.WARNING, logger="modeling_ctrilora.hardware"):
        status = main(["predict", *clips, "--model", checkpoint, "--json", "--top_k", "4", "--domain", "target",
                       "--bf16", "--transcribe", "--max_new_tokens", "3"])
    assert status == 0
    assert "bf16 would be slower than fp32 here" in caplog.text
    bf16 = json.loads(capsys.readouterr().out)  # valid JSON: every score a plain float
    assert forward_log and all(enabled and features == torch.float32 for enabled, _, features, _ in forward_log)
    assert [record["file"] for record in bf16] == clips
    for low, full in zip(bf16, fp32):
        assert low["emotion"] == full["emotion"] and low["error"] is None
        assert low["confidence"] == pytest.approx(full["confidence"], abs=0.05)
        assert isinstance(low["confidence"], float) and isinstance(low["transcript"], str)
    assert_same_predictions([record["scores"] for record in bf16], [record["scores"] for record in fp32])
