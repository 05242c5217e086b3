"""Calibrated audio-classification pipeline, greedy transcription and the `ctrilora predict` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
from transformers import (
    AutoFeatureExtractor,
    AutoTokenizer,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForAudioClassification,
    pipeline,
)
from transformers.pipelines import PIPELINE_REGISTRY, AudioClassificationPipeline

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.cli import main
from modeling_ctrilora.pipeline import (
    AudioInputError,
    CTriLoRAAudioClassificationPipeline,
    extract_features,
    load_audio,
    register_ctrilora_pipeline,
)
from modeling_ctrilora.transcribe import loop_start, transcribe
from conftest import CHECKPOINT_EMOTIONS

EMOTIONS = CHECKPOINT_EMOTIONS
RATE = 16000


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, str]:
    """good: 0.6 s mono 16 kHz; stereo: 0.4 s at 44.1 kHz; long: 1.5 s (over the tiny 1 s window); corrupt; missing."""
    folder = tmp_path_factory.mktemp("audio")
    generator = np.random.default_rng(0)
    time = np.arange(int(0.6 * RATE)) / RATE
    good = 0.3 * np.sin(2 * np.pi * 220 * time) + 0.05 * generator.standard_normal(time.size)
    files = {name: str(folder / f"{name}.wav") for name in ("good", "stereo", "long", "corrupt")}
    soundfile.write(files["good"], good.astype(np.float32), RATE)
    soundfile.write(files["stereo"], 0.1 * generator.standard_normal((int(0.4 * 44100), 2)).astype(np.float32), 44100)
    soundfile.write(files["long"], 0.1 * generator.standard_normal(int(1.5 * RATE)).astype(np.float32), RATE)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    files["missing"] = str(folder / "missing.wav")
    return files


def scores_by_label(output: list[dict]) -> dict[str, float]:
    return {item["label"]: item["score"] for item in output}


def test_pipeline_scores_are_calibrated_predict_emotion_probabilities(checkpoint, audio_files):
    classifier = pipeline("audio-classification", model=checkpoint)
    assert isinstance(classifier, CTriLoRAAudioClassificationPipeline)
    model = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    # Independent reference: 0.6 s = 9600 samples = 60 frames, so plain `padding="longest"` is the true length.
    waveform, _ = soundfile.read(audio_files["good"], dtype="float32")
    reference = WhisperFeatureExtractor.from_pretrained(checkpoint)(
        waveform, sampling_rate=RATE, padding="longest", return_attention_mask=True, return_tensors="pt"
    )
    assert reference["input_features"].shape == (1, 80, 60)
    by_domain = {}
    for domain in ("in_domain", "target"):
        output = classifier(audio_files["good"], domain=domain, top_k=None)
        scores = scores_by_label(output)
        assert set(scores) == set(model.config.id2label.values()) and len(output) == len(EMOTIONS)
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert [item["score"] for item in output] == sorted(scores.values(), reverse=True)
        expected = model.predict_emotion(reference["input_features"], reference["attention_mask"], domain=domain)[0]
        for index, label in model.config.id2label.items():
            assert scores[label] == pytest.approx(expected[index].item(), abs=1e-5)
        by_domain[domain] = scores
    # The two temperatures give different distributions; the default is the in-domain one.
    assert max(by_domain["target"].values()) > max(by_domain["in_domain"].values()) + 0.01
    assert scores_by_label(classifier(audio_files["good"], top_k=None)) == by_domain["in_domain"]
    assert len(classifier(audio_files["good"], top_k=2)) == 2


def test_pipeline_inputs_batching_and_errors(checkpoint, audio_files):
    classifier = pipeline("audio-classification", model=checkpoint, top_k=None)
    waveform = load_audio(audio_files["good"])
    from_file = scores_by_label(classifier(audio_files["good"]))
    assert scores_by_label(classifier(waveform)) == pytest.approx(from_file)
    resampled = {"raw": np.interp(np.arange(0, len(waveform), 0.5), np.arange(len(waveform)), waveform),
                 "sampling_rate": 2 * RATE}
    assert len(classifier(resampled)) == len(EMOTIONS)
    clips = [audio_files["good"], audio_files["stereo"]]
    single = [scores_by_label(item) for item in classifier(clips, batch_size=1)]
    batched = [scores_by_label(item) for item in classifier(clips, batch_size=2)]
    for alone, together in zip(single, batched):
        assert together == pytest.approx(alone, abs=1e-5)  # padding in time is masked
    with pytest.raises(ValueError, match="domain"):
        classifier(audio_files["good"], domain="elsewhere")
    with pytest.raises(ValueError, match="function_to_apply"):
        classifier(audio_files["good"], function_to_apply="sigmoid")
    with pytest.raises(AudioInputError, match="at most 1.0 s"):
        classifier(audio_files["long"])


def test_features_at_true_length_with_the_frame_rule(checkpoint):
    model = WhisperForTriLoRA.from_pretrained(checkpoint)
    feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    audio = np.random.default_rng(0).standard_normal(9860).astype(np.float32)  # 9860 // 160 = 61 frames: odd
    features = extract_features(feature_extractor, audio, model.config)
    assert features["input_features"].shape == (1, 80, 62) and int(features["attention_mask"].sum()) == 61
    assert not features["input_features"][0, :, 61].any()  # one zero frame appended, masked (never a crop)
    model.config.input_padding = "pad_to_30s"  # the stock path pads to the whole window (100 frames here)
    features = extract_features(feature_extractor, audio, model.config)
    assert features["input_features"].shape == (1, 80, 100) and int(features["attention_mask"].sum()) == 62
    with pytest.raises(AudioInputError, match="clip is 1.5 s"):
        extract_features(feature_extractor, np.zeros(24000, np.float32), model.config)


def test_load_audio_downmixes_resamples_and_names_bad_files(audio_files):
    audio = load_audio(audio_files["stereo"])
    assert audio.dtype == np.float32 and audio.ndim == 1 and len(audio) == int(0.4 * RATE)
    with pytest.raises(AudioInputError, match="missing.wav: file not found"):
        load_audio(audio_files["missing"])
    with pytest.raises(AudioInputError, match="corrupt.wav: unreadable audio"):
        load_audio(audio_files["corrupt"])


def test_stock_pipeline_is_unchanged_for_other_models(tiny_whisper_30s_dir):
    register_ctrilora_pipeline()  # idempotent
    task = PIPELINE_REGISTRY.supported_tasks["audio-classification"]
    assert task["impl"] is CTriLoRAAudioClassificationPipeline
    assert task["default"]["model"][0] == "superb/wav2vec2-base-superb-ks" and task["type"] == "audio"
    torch.manual_seed(0)
    config = WhisperConfig.from_pretrained(tiny_whisper_30s_dir, num_labels=2)
    other = WhisperForAudioClassification(config).eval()
    feature_extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_30s_dir)
    waveform = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.1
    ours = pipeline("audio-classification", model=other, feature_extractor=feature_extractor)
    stock = AudioClassificationPipeline(model=other, feature_extractor=feature_extractor)
    assert ours(waveform) == stock(waveform)
    with pytest.raises(ValueError, match="C-TriLoRA models only"):
        ours(waveform, domain="target")


def test_transcribe_is_greedy_text_and_independent_of_the_batch(checkpoint, audio_files):
    model = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    feature_extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    clips = [extract_features(feature_extractor, load_audio(audio_files[name]), model.config)
             for name in ("good", "stereo")]
    alone = [transcribe(model, c["input_features"], c["attention_mask"], tokenizer, language="kk", max_new_tokens=6)[0]
             for c in clips]
    frames = clips[0]["input_features"].shape[-1]
    features = torch.cat([clips[0]["input_features"], torch.nn.functional.pad(
        clips[1]["input_features"], (0, frames - clips[1]["input_features"].shape[-1]))])
    mask = torch.cat([clips[0]["attention_mask"], torch.nn.functional.pad(
        clips[1]["attention_mask"], (0, frames - clips[1]["attention_mask"].shape[-1]))])
    assert transcribe(model, features, mask, tokenizer, language="kazakh", max_new_tokens=6) == alone
    detected = transcribe(model, features, mask, tokenizer, max_new_tokens=6)
    assert len(detected) == 2 and all(isinstance(text, str) for text in detected)
    with pytest.raises(ValueError, match="unknown language"):
        transcribe(model, features, mask, tokenizer, language="klingon")
    assert loop_start([7, 1, 2, 3, 1, 2, 3, 1, 2, 3]) == 4 and loop_start([1, 2, 3, 4]) is None


def test_cli_predicts_good_files_and_names_bad_ones(checkpoint, audio_files, capsys):
    files = [audio_files[name] for name in ("good", "corrupt", "missing", "long")]
    status = main(["predict", *files, "--model", checkpoint, "--top_k", "2"])
    out, err = capsys.readouterr()
    assert status == 1
    expected = pipeline("audio-classification", model=checkpoint)(audio_files["good"], top_k=2)
    assert out.splitlines() == [
        f"{audio_files['good']}: " + ", ".join(f"{item['label']} {item['score']:.3f}" for item in expected)
    ]
    errors = err.splitlines()
    assert any(audio_files["corrupt"] in line and "unreadable audio" in line for line in errors), err
    assert any(audio_files["missing"] in line and "file not found" in line for line in errors), err
    assert any(audio_files["long"] in line and "at most 1.0 s" in line for line in errors), err


def test_cli_json_with_transcripts(checkpoint, audio_files, capsys):
    status = main(["predict", audio_files["good"], audio_files["missing"], "--model", checkpoint, "--json",
                   "--domain", "target", "--transcribe", "--language", "kk", "--max_new_tokens", "4"])
    out, err = capsys.readouterr()
    assert status == 1 and "missing.wav: file not found" in err
    good, missing = json.loads(out)
    expected = pipeline("audio-classification", model=checkpoint)(audio_files["good"], domain="target", top_k=1)[0]
    assert good["file"] == audio_files["good"] and good["error"] is None and good["domain"] == "target"
    assert good["emotion"] == expected["label"] and good["confidence"] == pytest.approx(expected["score"])
    assert isinstance(good["transcript"], str)
    assert missing == {"file": audio_files["missing"], "error": f"{audio_files['missing']}: file not found"}
    assert main(["predict", audio_files["good"], "--model", checkpoint, "--json"]) == 0
    assert "transcript" not in json.loads(capsys.readouterr().out)[0]


def test_cli_usage_errors(checkpoint, audio_files, tmp_path, capsys):
    for argv in ([], ["predict", audio_files["good"]], ["predict", audio_files["good"], "--model", checkpoint,
                                                        "--top_k", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    capsys.readouterr()
    assert main(["predict", audio_files["good"], "--model", str(tmp_path / "no-model")]) == 2
    assert "cannot load model" in capsys.readouterr().err
