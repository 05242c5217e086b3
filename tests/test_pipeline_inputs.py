"""Pipeline inputs (issue 15, item 4): integer PCM arrays are rescaled to [-1, 1]; unknown keyword arguments raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline_cli import RATE, audio_files, scores_by_label  # noqa: F401  (module fixture; `checkpoint` is in conftest)
from transformers import pipeline

from modeling_ctrilora.feature_extraction_ctrilora import load_audio


@pytest.fixture(scope="module")
def classifier(checkpoint):  # noqa: F811
    return pipeline("audio-classification", model=checkpoint, top_k=None)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8])
def test_integer_pcm_is_rescaled_like_a_wav_reader_would(classifier, audio_files, dtype):  # noqa: F811
    waveform = load_audio(audio_files["good"])
    info = np.iinfo(dtype)
    offset = (int(info.max) + 1) // 2 if info.min == 0 else 0  # unsigned PCM is centred on half its range
    scale = (int(info.max) + 1) // 2 if info.min == 0 else -int(info.min)
    pcm = np.clip(np.round(waveform.astype(np.float64) * scale) + offset, info.min, info.max).astype(dtype)
    expected = classifier.preprocess(waveform)["frames"]
    tolerance = 0.05 if dtype == np.uint8 else 1e-3  # log-Mel units; 8-bit PCM is coarse
    for inputs in (pcm, {"raw": pcm, "sampling_rate": RATE}, {"array": torch.from_numpy(pcm), "sampling_rate": RATE}):
        frames = classifier.preprocess(inputs)["frames"]
        assert frames.shape == expected.shape and (frames - expected).abs().mean() < tolerance
    assert scores_by_label(classifier(pcm)) == pytest.approx(scores_by_label(classifier(waveform)), abs=0.01)


def test_float_arrays_are_taken_as_they_are(classifier, audio_files):  # noqa: F811
    waveform = load_audio(audio_files["good"])
    assert scores_by_label(classifier(waveform.astype(np.float64))) == pytest.approx(scores_by_label(classifier(waveform)))


def test_unknown_keyword_arguments_raise_and_list_the_accepted_ones(checkpoint, classifier, audio_files):  # noqa: F811
    with pytest.raises(TypeError) as info:
        classifier(audio_files["good"], topk=2)
    message = str(info.value)
    assert "topk" in message and "top_k" in message and "domain" in message
    with pytest.raises(TypeError, match="topk"):
        pipeline("audio-classification", model=checkpoint, topk=2)
    assert len(classifier(audio_files["good"], top_k=2, domain="target", batch_size=1)) == 2
