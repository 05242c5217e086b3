"""One audio → log-Mel path (modeling_ctrilora.feature_extraction_ctrilora) and the stock extractor's output.

A clip's features are one array in training and evaluation (the collator over `add_log_mel` rows), the CLI
(`extract_features`) and the pipeline (`preprocess`); the model takes `WhisperFeatureExtractor` output as it comes.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from conftest_data import tiny_tokenizer
from transformers import WhisperFeatureExtractor, pipeline

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.feature_extraction_ctrilora import (
    apply_frame_rule,
    detect_padding,
    extract_features,
    load_audio,
    log_mel,
    pad_frames,
)
from trainer.data.corpora import load_corpus
from trainer.data.features import CTriLoRACollator, add_log_mel

RATE = 16_000


def speech_like(num_samples: int, seed: int = 0, silent_tail: int = 0) -> np.ndarray:
    """A tone in noise with a decaying envelope; the last `silent_tail` samples are exactly zero."""
    rng = np.random.default_rng(seed)
    time = np.arange(num_samples) / RATE
    audio = (0.3 * np.sin(2 * np.pi * (180 + 40 * seed) * time) + 0.05 * rng.standard_normal(num_samples))
    audio *= np.exp(-time)
    if silent_tail:
        audio[-silent_tail:] = 0.0
    return audio.astype(np.float32)


def test_frame_rule_pads_an_odd_count_with_one_masked_zero_frame():
    features, mask = pad_frames([np.ones((80, 7), np.float32)])
    assert features.shape == (1, 80, 8) and mask.tolist() == [[1] * 7 + [0]]
    assert not features[0, :, 7].any()
    padded, padded_mask = apply_frame_rule(torch.ones(2, 80, 7))
    assert padded.shape == (2, 80, 8) and padded_mask.sum(-1).tolist() == [7, 7] and not padded[:, :, 7].any()
    same, none = apply_frame_rule(torch.ones(1, 80, 6))
    assert same.shape == (1, 80, 6) and none is None


def test_a_clips_log_mel_is_one_array_in_training_evaluation_pipeline_and_cli(tiny_whisper_dir, tmp_path):
    feature_extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir)
    # 0.71 s at 22.05 kHz, stereo: resampled to 16 kHz and averaged; 11,360 samples -> 71 frames, an odd count.
    rate_in = 22_050
    stereo = np.stack([speech_like(15_656), speech_like(15_656, seed=1)], axis=1) * 0.5
    soundfile.write(tmp_path / "clip.wav", stereo, rate_in)
    (tmp_path / "metadata.csv").write_text("path,emotion,speaker,transcript\nclip.wav,sad,s1,hello\n")
    audio = load_audio(tmp_path / "clip.wav")
    assert len(audio) // 160 % 2 == 1

    # Training and evaluation: load_corpus -> add_log_mel -> the collator (evaluation batches with the same one).
    row = add_log_mel(load_corpus(tmp_path, language="en"), feature_extractor)[0]
    collator = CTriLoRACollator(tiny_tokenizer("en"), {"sad": 0}, {"toy_s1": 0}, {"hello": 0})
    batch = collator([row])
    # CLI: load_audio + extract_features; pipeline: preprocess of the file.
    model = WhisperForTriLoRA.from_whisper(tiny_whisper_dir, num_emotions=1, num_speakers=1).eval()
    cli = extract_features(feature_extractor, load_audio(str(tmp_path / "clip.wav")), model.config)
    classifier = pipeline("audio-classification", model=model, feature_extractor=feature_extractor)
    piped = classifier.preprocess(str(tmp_path / "clip.wav"))
    piped_features, piped_mask = piped["frames"].transpose(1, 2), piped["attention_mask"]

    frames = len(audio) // 160
    assert row["num_frames"] == frames and batch["input_features"].shape == (1, 80, frames + 1)
    for features, mask in ((cli["input_features"], cli["attention_mask"]), (piped_features, piped_mask)):
        assert torch.equal(features, batch["input_features"])
        assert torch.equal(mask.long(), batch["attention_mask"])
    assert batch["attention_mask"].sum() == frames and not batch["input_features"][0, :, frames].any()


@pytest.fixture(scope="module")
def model_30s(tiny_whisper_30s_dir) -> WhisperForTriLoRA:
    torch.manual_seed(0)
    return WhisperForTriLoRA.from_whisper(tiny_whisper_30s_dir, num_emotions=4, num_speakers=3).eval()


@pytest.fixture(scope="module")
def extractor_30s(tiny_whisper_30s_dir) -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor.from_pretrained(tiny_whisper_30s_dir)


# Clips of k·160 samples ending in 200 samples (one STFT half-window) of digital zeros: then the stock 30 s pad, the
# stock `padding="longest"` and the project's true length compute the same real frames (the last STFT windows see
# zeros either way) and the stock mask counts exactly k frames.
CLIPS = [speech_like(101 * 160, seed=0, silent_tail=200), speech_like(60 * 160, seed=1, silent_tail=200)]


def pooled(model: WhisperForTriLoRA, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).pooled


def own_pooled(model: WhisperForTriLoRA, extractor: WhisperFeatureExtractor, audio: np.ndarray) -> torch.Tensor:
    features, mask = pad_frames([log_mel(audio, extractor)])
    return pooled(model, {"input_features": features, "attention_mask": mask})


@pytest.mark.parametrize(
    "call",
    [
        {"padding": "longest"},  # 101 frames: the odd count gets the frame rule
        {"padding": "longest", "return_attention_mask": True},
        {"return_attention_mask": True},  # 3000 frames + the frame-level mask: run at the true length
        {},  # 3000 frames, no mask: the padding frames are detected
    ],
    ids=["longest", "longest+mask", "30s+mask", "30s"],
)
def test_the_stock_extractor_output_gives_the_project_features_pooled_vector(model_30s, extractor_30s, call):
    audio = CLIPS[0]
    inputs = extractor_30s(audio, sampling_rate=RATE, return_tensors="pt", **call)
    assert inputs["input_features"].shape[-1] == (101 if call.get("padding") == "longest" else 3000)
    if "attention_mask" in inputs:
        assert inputs["attention_mask"].shape == inputs["input_features"].shape[::2]  # frame-level, not samples
    torch.testing.assert_close(pooled(model_30s, inputs), own_pooled(model_30s, extractor_30s, audio), atol=1e-4, rtol=0)


def test_stock_30s_batches_without_a_mask_find_each_clips_padding(model_30s, extractor_30s):
    inputs = extractor_30s(CLIPS, sampling_rate=RATE, return_tensors="pt")
    assert inputs["input_features"].shape == (2, 80, 3000) and "attention_mask" not in inputs
    assert detect_padding(inputs["input_features"]).sum(-1).tolist() == [101, 60]
    expected = torch.cat([own_pooled(model_30s, extractor_30s, audio) for audio in CLIPS])
    torch.testing.assert_close(pooled(model_30s, inputs), expected, atol=1e-4, rtol=0)


def test_padding_detection_keeps_every_frame_of_features_without_floor_padding():
    features = torch.randn(2, 80, 100)
    assert detect_padding(features).sum(-1).tolist() == [100, 100]
    constant = torch.zeros(1, 80, 100)  # constant, but not at the floor max(max - 2, -1.5): real frames
    assert detect_padding(constant).sum().item() == 100
