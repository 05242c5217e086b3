"""One audio check for training and inference (issue 15, item 3): non-finite samples, digital silence and clips
shorter than the minimum duration are refused by `check_audio`, the training loader, the pipeline and the CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile
from conftest_data import make_csv_corpus
from test_pipeline_cli import EMOTIONS, RATE, audio_files  # noqa: F401  (module fixture; `checkpoint` is in conftest)
from transformers import pipeline

from modeling_ctrilora.cli import main
from modeling_ctrilora.feature_extraction_ctrilora import (
    MIN_SECONDS,
    SILENCE_PEAK,
    AudioInputError,
    BadAudioError,
    check_audio,
)
from trainer.data.corpora import load_corpus


def _tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    time = np.arange(int(round(seconds * RATE))) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * time)).astype(np.float32)


def _dither(seconds: float = 0.5) -> np.ndarray:
    """'Silence' as a 16-bit recorder writes it: +-1 LSB of dither, far below any speech."""
    return (np.random.default_rng(0).integers(-1, 2, int(seconds * RATE)) / 32768).astype(np.float32)


BAD = {  # name -> (samples, what the error says)
    "nan": (np.where(np.arange(8000) == 10, np.nan, _tone(0.5)).astype(np.float32), "NaN or infinite"),
    "inf": (np.where(np.arange(8000) == 10, np.inf, _tone(0.5)).astype(np.float32), "NaN or infinite"),
    "zeros": (np.zeros(8000, np.float32), "digital silence"),
    "dither": (_dither(), "digital silence"),
    "1ms": (_tone(0.001), "too short"),
    "50ms": (_tone(0.05), "too short"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_check_audio_refuses_what_no_model_should_label(name):
    samples, problem = BAD[name]
    with pytest.raises(BadAudioError, match=problem) as info:
        check_audio(samples, RATE, f"{name}.wav")
    assert str(info.value).startswith(f"{name}.wav: ") and isinstance(info.value, AudioInputError)


def test_check_audio_accepts_short_quiet_speech():
    assert MIN_SECONDS == pytest.approx(0.1) and SILENCE_PEAK == pytest.approx(1e-4)
    assert check_audio(_tone(MIN_SECONDS, amplitude=1e-3), RATE, "quiet.wav").shape == (int(MIN_SECONDS * RATE),)
    stereo = np.stack([_tone(0.2), np.zeros(int(0.2 * RATE), np.float32)], axis=1)
    assert check_audio(stereo, RATE, "stereo.wav").shape == (int(0.2 * RATE),)


@pytest.fixture()
def bad_files(tmp_path) -> dict[str, str]:
    files = {}
    for name, (samples, _) in BAD.items():
        files[name] = str(tmp_path / "bad" / f"{name}.wav")
        (tmp_path / "bad").mkdir(exist_ok=True)
        soundfile.write(files[name], samples, RATE, subtype="FLOAT")
    return files


def test_training_loader_refuses_or_skips_and_counts(tmp_path, bad_files, caplog):
    rows = [{"path": path, "emotion": "sad", "speaker": "z", "transcript": ""} for path in bad_files.values()]
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad", "happy"), transcripts=("x",), extra_rows=rows)
    with pytest.raises(BadAudioError):
        load_corpus(root)
    with caplog.at_level(logging.WARNING, logger="trainer.data.corpora"):
        dataset, report = load_corpus(root, on_bad_audio="skip", return_report=True)
    assert dataset.num_rows == 2 and report.num_skipped == len(BAD)
    problems = dict(report.skipped)
    for name, path in bad_files.items():
        assert BAD[name][1] in problems[path], (name, problems[path])
        assert path in caplog.text


@pytest.mark.parametrize("name", sorted(BAD))
def test_pipeline_refuses_bad_arrays_and_files(checkpoint, bad_files, name):  # noqa: F811
    classifier = pipeline("audio-classification", model=checkpoint)
    samples, problem = BAD[name]
    with pytest.raises(AudioInputError, match=problem):
        classifier(samples)
    with pytest.raises(AudioInputError, match=problem):
        classifier({"raw": samples, "sampling_rate": RATE})
    with pytest.raises(AudioInputError, match=problem):
        classifier(bad_files[name])


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_predict_reports_each_bad_file_and_exits_non_zero(checkpoint, audio_files, bad_files, capsys):  # noqa: F811
    files = [audio_files["good"], *bad_files.values()]
    status = main(["predict", *files, "--model", checkpoint, "--json"])
    out, err = capsys.readouterr()
    assert status == 1
    records = {record["file"]: record for record in _strict_json(out)}
    assert records[audio_files["good"]]["error"] is None
    assert records[audio_files["good"]]["emotion"] in EMOTIONS
    for name, path in bad_files.items():
        assert set(records[path]) == {"file", "error"} and BAD[name][1] in records[path]["error"], records[path]
        assert any(path in line and BAD[name][1] in line for line in err.splitlines()), (name, err)
