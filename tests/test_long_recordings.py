"""Long recordings (issue 15 item 5): emotion over time at inference, and over-long clips in training.

Inference: `ctrilora predict --chunk_seconds/--hop_seconds/--plot` and the pipeline's `chunk_length_s` on a generated
75 s file with the tiny 30 s-window checkpoint. Training: `--max_duration` / `--long_clips` on a tiny generated
corpus whose window is the tiny model's 1 s.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from transformers import WhisperFeatureExtractor, pipeline

from conftest import CHECKPOINT_EMOTIONS
from conftest_data import make_csv_corpus, write_clip
from modeling_ctrilora.cli import main
from modeling_ctrilora.feature_extraction_ctrilora import AudioInputError, BadAudioError
from modeling_ctrilora.timeline import aggregate, plot_timeline, segment_bounds
from trainer.data.corpora import load_corpus, long_clip_segments
from trainer.data.features import add_log_mel
from trainer.data.splits import expand_splits, stratified_split

RATE = 16_000


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> str:
    """75 s at 16 kHz: 15 s sections alternating a stepped tone and noise, so segments differ."""
    time = np.arange(75 * RATE) / RATE
    rng = np.random.default_rng(0)
    tone = 0.3 * np.sin(2 * np.pi * (150 + 40 * (time // 5)) * time)
    audio = np.where((time // 15).astype(int) % 2 == 0, tone, 0.1 * rng.standard_normal(time.size))
    path = tmp_path_factory.mktemp("long") / "long.wav"
    soundfile.write(path, (audio + 0.01 * rng.standard_normal(time.size)).astype(np.float32), RATE)
    return str(path)


def test_cli_timeline_of_a_75s_file_with_json_and_plot(checkpoint_30s, long_wav, tmp_path, capsys):
    plots = tmp_path / "plots"
    status = main(["predict", long_wav, "--model", checkpoint_30s, "--chunk_seconds", "5", "--json", "--plot",
                   str(plots), "--segment_batch_size", "4"])
    out, err = capsys.readouterr()
    assert status == 0, err
    (record,) = json.loads(out)
    segments = record["segments"]
    assert len(segments) == 15 and record["duration"] == 75.0 and record["chunk_seconds"] == record["hop_seconds"] == 5
    assert [s["start"] for s in segments] == [5.0 * i for i in range(15)]
    assert [s["end"] for s in segments] == [5.0 * (i + 1) for i in range(15)]
    for segment in segments:
        assert set(segment["probabilities"]) == set(CHECKPOINT_EMOTIONS)
        assert sum(segment["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert segment["label"] == max(segment["probabilities"], key=segment["probabilities"].get)
    # The whole-file label: the duration-weighted mean of the segment probabilities (equal durations here).
    mean = {label: np.mean([s["probabilities"][label] for s in segments]) for label in CHECKPOINT_EMOTIONS}
    assert record["probabilities"] == pytest.approx(mean, abs=1e-6)
    assert record["emotion"] == max(mean, key=mean.get) and record["confidence"] == pytest.approx(max(mean.values()))
    assert "duration-weighted mean" in record["aggregation"]
    png = plots / "long.timeline.png"
    assert record["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The pipeline's chunk_length_s gives the same segment probabilities, and each segment scores as a clip alone.
    classifier = pipeline("audio-classification", model=checkpoint_30s)
    timeline = classifier(long_wav, chunk_length_s=5, top_k=None)
    assert [s["probabilities"] for s in timeline["segments"]] == [
        pytest.approx(s["probabilities"], abs=1e-6) for s in segments
    ]
    waveform, _ = soundfile.read(long_wav, dtype="float32")
    for index in (0, 7):
        alone = {item["label"]: item["score"] for item in classifier(waveform[index * 5 * RATE:(index + 1) * 5 * RATE],
                                                                      top_k=None)}
        assert alone == pytest.approx(segments[index]["probabilities"], abs=1e-5)

    # Text output: the whole-file line, then one line per segment with its times.
    assert main(["predict", long_wav, "--model", checkpoint_30s, "--chunk_seconds", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{long_wav}: {record['emotion']} ") and "15 segments of 5 s" in lines[0]
    assert lines[1].startswith("    0.00-5.00 s: ") and lines[15].startswith("    70.00-75.00 s: ")


def test_overlapping_segments_tail_merge_and_silent_segments(checkpoint_30s, tmp_path):
    classifier = pipeline("audio-classification", model=checkpoint_30s)
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(12 * RATE)).astype(np.float32)
    timeline = classifier(audio, chunk_length_s=5, hop_length_s=2.5)
    bounds = [(s["start"], s["end"]) for s in timeline["segments"]]
    assert bounds == [(0.0, 5.0), (2.5, 7.5), (5.0, 10.0), (7.5, 12.0)]
    assert all(later[0] < earlier[1] for earlier, later in zip(bounds, bounds[1:]))  # overlapping
    durations = [end - start for start, end in bounds]
    expected = aggregate(np.array([[s["probabilities"][label] for label in CHECKPOINT_EMOTIONS]
                                   for s in timeline["segments"]]), durations)
    assert [timeline["probabilities"][label] for label in CHECKPOINT_EMOTIONS] == pytest.approx(expected.tolist())

    # A last segment under 0.1 s is merged into the previous one.
    assert segment_bounds(int(10.05 * RATE), RATE, 5) == [(0, 5 * RATE), (5 * RATE, int(10.05 * RATE))]
    # ... unless that would overflow the model's window: then it is left out, and said so.
    notes: list[str] = []
    assert segment_bounds(int(60.05 * RATE), RATE, 30, max_samples=30 * RATE, notes=notes)[-1] == (30 * RATE, 60 * RATE)
    assert notes and "not scored" in notes[0]

    # A segment of digital silence stays in the timeline, unscored, and out of the whole-file label.
    audio[5 * RATE:10 * RATE] = 0.0
    timeline = classifier(audio, chunk_length_s=5)
    silent = timeline["segments"][1]
    assert silent["label"] is None and "digital silence" in silent["skipped"]
    scored = [timeline["segments"][0], timeline["segments"][2]]
    expected = aggregate(np.array([[s["probabilities"][label] for label in CHECKPOINT_EMOTIONS] for s in scored]),
                         [5.0, 2.0])
    assert [timeline["probabilities"][label] for label in CHECKPOINT_EMOTIONS] == pytest.approx(expected.tolist())
    assert plot_timeline(timeline, tmp_path / "gap.png").stat().st_size > 0  # the unscored segment left blank


def test_long_file_errors_say_what_to_pass(checkpoint_30s, long_wav, tmp_path, capsys):
    assert main(["predict", long_wav, "--model", checkpoint_30s]) == 1
    err = capsys.readouterr().err
    assert f"{long_wav}: clip is 75.0 s; this model takes at most 30.0 s" in err and "pass --chunk_seconds" in err
    for argv, message in (
        (["--chunk_seconds", "31"], "longer than this model's window"),
        (["--chunk_seconds", "5", "--hop_seconds", "6"], "longer than the chunk"),
        (["--plot", str(tmp_path)], "--plot needs --chunk_seconds"),
        (["--hop_seconds", "2"], "--hop_seconds needs --chunk_seconds"),
    ):
        assert main(["predict", long_wav, "--model", checkpoint_30s, *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    classifier = pipeline("audio-classification", model=checkpoint_30s)
    with pytest.raises(AudioInputError, match="chunk_length_s"):
        classifier(long_wav)
    with pytest.raises(ValueError, match="segment_batch_size"):
        classifier([long_wav, long_wav], chunk_length_s=5, batch_size=2)
    with pytest.raises(ValueError, match="needs chunk_length_s"):
        classifier(long_wav, hop_length_s=2)


# ------------------------------------------------------------------------------------------------------ training
def _corpus_with_long_clips(root) -> str:
    """4 speakers × 2 emotions of 0.3 s clips, plus two 2.5 s clips of speaker 01 (over the tiny 1 s window)."""
    extra = []
    for index, emotion in enumerate(("sad", "happy")):
        write_clip(f"{root}/wav/long{index}.wav", seconds=2.5, freq=300.0 + 50 * index, seed=index)
        extra.append({"path": f"wav/long{index}.wav", "emotion": emotion, "speaker": "01", "transcript": "long one",
                      "gender": "F", "language": "en"})
    return make_csv_corpus(root, emotions=("sad", "happy"), transcripts=("x",), extra_rows=extra)


def test_long_clip_policies_count_crop_and_split(tmp_path, tiny_whisper_dir):
    root = _corpus_with_long_clips(tmp_path / "corpus")
    assert long_clip_segments(int(2.5 * RATE), RATE, 1.0, "split") == [(0, 13333), (13333, 26667), (26667, 40000)]
    # Default: an over-long clip is a bad clip (today's behaviour), so on_bad_audio decides.
    with pytest.raises(BadAudioError, match="2.50 s long, over max_duration 1 s"):
        load_corpus(root, max_duration=1.0)
    _, report = load_corpus(root, max_duration=1.0, on_bad_audio="skip", return_report=True)
    assert report.num_skipped == 2 and report.num_loaded == 8
    _, report = load_corpus(root, max_duration=1.0, long_clips="skip", return_report=True)
    assert report.num_skipped == 2 and "long_clips='skip'" in report.skipped[0][1]

    feature_extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir)
    cropped, report = load_corpus(root, max_duration=1.0, long_clips="crop", return_report=True)
    assert cropped.num_rows == 10 and report.num_cropped == 2 and "2 cropped to their first 1 s" in report.summary()
    cropped = add_log_mel(cropped, feature_extractor, max_duration=1.0, long_clips="crop")
    assert cropped.num_rows == 10 and max(cropped["num_frames"]) == 100 and "clip_row" not in cropped.column_names

    clips, report = load_corpus(root, max_duration=1.0, long_clips="split", return_report=True)
    assert (clips.num_rows, report.num_split, report.num_segments) == (10, 2, 6)
    assert "2 longer than 1 s split into 6 segments" in report.summary()
    rows = add_log_mel(clips, feature_extractor, max_duration=1.0, long_clips="split")
    assert rows.num_rows == 14 and max(rows["num_frames"]) <= 100
    segments = [row for row in rows if row["path"].startswith(clips[8]["path"] + "@")]
    assert [row["path"].rsplit("@", 1)[1] for row in segments] == ["0.00-0.83s", "0.83-1.67s", "1.67-2.50s"]
    assert {(row["emotion"], row["speaker"], row["transcript"]) for row in segments} == {("sad", clips[8]["speaker"], "")}
    # Splits are made on clips; each clip's segments all follow it.
    splits = expand_splits(stratified_split(clips, seed=0), rows["clip_row"])
    assert sorted(i for part in splits.values() for i in part) == list(range(14))
    side = {name: {rows[i]["clip_row"] for i in part} for name, part in splits.items()}
    assert not (side["train"] & side["test"]) and not (side["train"] & side["validation"])


def test_prepare_data_splits_long_clips_and_keeps_segments_together(tmp_path, tiny_whisper_dir, monkeypatch):
    import trainer.run as run
    from trainer.run import DataArguments, prepare_data

    monkeypatch.setattr(run, "CACHE_HOME", tmp_path / "cache")
    source = _corpus_with_long_clips(tmp_path / "src")
    target = make_csv_corpus(tmp_path / "tgt", speakers=("11", "12"), emotions=("sad", "happy"), transcripts=("x",))
    with pytest.raises(ValueError, match="longer than the backbone's window"):
        prepare_data(DataArguments(source=source, target=target, max_duration=2.0), tiny_whisper_dir, tmp_path / "r0",
                     seed=0)
    arguments = DataArguments(source=source, target=target, max_duration=1.0, long_clips="split")
    data = prepare_data(arguments, tiny_whisper_dir, tmp_path / "run", seed=0)
    report = data.load_reports["source"]
    assert "2 longer than 1 s split into 6 segments" in (report if isinstance(report, str) else report.summary())
    rows = {name: list(split["path"]) for name, split in data.source.items()}
    assert sum(map(len, rows.values())) == 14
    for index in range(2):
        homes = {name for name, paths in rows.items() for path in paths if f"long{index}.wav@" in path}
        assert len(homes) == 1  # all three segments of a clip in one split
