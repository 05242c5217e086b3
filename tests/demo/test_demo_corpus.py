"""The embedded demo corpus: eSpeak NG Kazakh speech in two domains (offline, no ../shared)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from trainer.data.labels import EMOTIONS
from trainer.demo.channel import TargetChannel
from trainer.demo.corpus import DEMO_EMOTIONS, DEMO_SENTENCES, MANIFEST_FILE, build_demo_corpus
from trainer.demo.espeak import ESpeakError, ESpeakSynthesizer, _load_engine

SENTENCES = list(DEMO_SENTENCES[:2])
N_SOURCE, N_TARGET = 2, 1


def read_metadata(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(folder / "metadata.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def read_all(folder: Path) -> dict[str, np.ndarray]:
    _, rows = read_metadata(folder)
    return {row["path"]: sf.read(folder / row["path"], dtype="int16")[0] for row in rows}


def high_band_share(audio: np.ndarray, sample_rate: int, cutoff_hz: float = 4000.0) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float(power[np.fft.rfftfreq(audio.size, 1 / sample_rate) > cutoff_hz].sum() / power.sum())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """2 sentences × 6 emotions × 2 source speakers (24 clips) and × 1 target speaker (12 clips)."""
    return build_demo_corpus(
        tmp_path_factory.mktemp("demo"), sentences=SENTENCES, n_source_speakers=N_SOURCE, n_target_speakers=N_TARGET
    )


def test_demo_emotions_are_canonical_project_labels():
    assert set(DEMO_EMOTIONS) <= set(EMOTIONS)
    assert len(DEMO_EMOTIONS) == 6


def test_metadata_columns_and_values(corpus):
    assert set(corpus) == {"source", "target"}
    speakers = {}
    for domain, n_speakers in (("source", N_SOURCE), ("target", N_TARGET)):
        columns, rows = read_metadata(corpus[domain])
        assert columns == ["path", "emotion", "speaker", "transcript", "gender", "language"]
        assert len(rows) == len(SENTENCES) * len(DEMO_EMOTIONS) * n_speakers
        assert {row["emotion"] for row in rows} == set(DEMO_EMOTIONS)
        assert {row["transcript"] for row in rows} == set(SENTENCES)
        assert {row["language"] for row in rows} == {"kk"}
        assert {row["gender"] for row in rows} <= {"female", "male"}
        speakers[domain] = {row["speaker"] for row in rows}
        assert len(speakers[domain]) == n_speakers
        prefix = "demo_src_" if domain == "source" else "demo_tgt_"
        assert all(speaker.startswith(prefix) for speaker in speakers[domain])
        assert all(not Path(row["path"]).is_absolute() for row in rows)
        assert len({row["path"] for row in rows}) == len(rows)
    assert not speakers["source"] & speakers["target"]  # target speakers are unseen voices


def test_every_clip_is_16k_mono_pcm16_nonsilent_and_1_to_3_seconds(corpus):
    for folder in corpus.values():
        _, rows = read_metadata(folder)
        for row in rows:
            path = folder / row["path"]
            assert path.is_file(), path
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            audio, _ = sf.read(path, dtype="float32")
            assert np.all(np.isfinite(audio))
            assert 1.0 <= audio.size / 16000 <= 3.0, (path, audio.size / 16000)
            assert np.sqrt(np.mean(audio**2)) > 0.01, path
            assert 0.8 < np.max(np.abs(audio)) <= 1.0  # peak-normalised


def test_each_transcript_is_spoken_in_every_emotion_by_every_speaker(corpus):
    for folder in corpus.values():
        _, rows = read_metadata(folder)
        emotions_per_utterance: dict[tuple[str, str], set[str]] = {}
        for row in rows:
            emotions_per_utterance.setdefault((row["speaker"], row["transcript"]), set()).add(row["emotion"])
        assert all(emotions == set(DEMO_EMOTIONS) for emotions in emotions_per_utterance.values())


def test_target_channel_is_band_limited_and_noisy(corpus):
    source, target = read_all(corpus["source"]), read_all(corpus["target"])
    source_share = np.mean([high_band_share(a.astype(np.float64), 16000) for a in source.values()])
    target_share = np.mean([high_band_share(a.astype(np.float64), 16000) for a in target.values()])
    assert target_share < 0.25 * source_share, (source_share, target_share)

    def quietest_frames_db(audio: np.ndarray) -> float:
        frames = librosa.util.frame(audio.astype(np.float64) / 32768.0, frame_length=400, hop_length=400)
        return float(10 * np.log10(np.percentile(np.mean(frames**2, axis=0), 5) + 1e-12))

    # The source's pauses are silent; the target's carry the background noise.
    assert np.median([quietest_frames_db(a) for a in target.values()]) > np.median(
        [quietest_frames_db(a) for a in source.values()]
    ) + 20


def test_prosody_profiles_change_the_audio(corpus):
    folder = corpus["source"]
    _, rows = read_metadata(folder)
    seconds: dict[str, float] = {}
    for row in rows:
        seconds[row["emotion"]] = seconds.get(row["emotion"], 0.0) + sf.info(folder / row["path"]).duration
    assert seconds["sad"] > 1.2 * seconds["angry"]  # the same sentences, spoken slower

    speaker, transcript = rows[0]["speaker"], rows[0]["transcript"]
    clips = {
        row["emotion"]: sf.read(folder / row["path"], dtype="float32")[0]
        for row in rows
        if (row["speaker"], row["transcript"]) == (speaker, transcript)
    }

    def median_f0(audio: np.ndarray) -> float:
        return float(np.median(librosa.yin(audio, fmin=60, fmax=500, sr=16000)))

    assert median_f0(clips["angry"]) > 1.15 * median_f0(clips["sad"])  # the same sentence, spoken higher
    assert median_f0(clips["surprise"]) > median_f0(clips["neutral"])


def test_rebuild_is_idempotent_and_deterministic(corpus, tmp_path):
    manifest_before = (corpus["source"] / MANIFEST_FILE).read_text(encoding="utf-8")
    stamps_before = {path: path.stat().st_mtime_ns for path in corpus["source"].rglob("*")}
    again = build_demo_corpus(
        corpus["source"].parent, sentences=SENTENCES, n_source_speakers=N_SOURCE, n_target_speakers=N_TARGET
    )
    assert again == corpus
    assert (corpus["source"] / MANIFEST_FILE).read_text(encoding="utf-8") == manifest_before
    assert {path: path.stat().st_mtime_ns for path in corpus["source"].rglob("*")} == stamps_before

    fresh = build_demo_corpus(tmp_path, sentences=SENTENCES, n_source_speakers=N_SOURCE, n_target_speakers=N_TARGET)
    for domain in ("source", "target"):
        assert read_metadata(fresh[domain]) == read_metadata(corpus[domain])
        original, rebuilt = read_all(corpus[domain]), read_all(fresh[domain])
        assert all(np.array_equal(original[path], rebuilt[path]) for path in original)


def test_other_seed_or_parameters_rebuild_with_different_audio(tmp_path):
    kwargs = dict(sentences=SENTENCES[:1], emotions=("angry", "sad"), n_source_speakers=1, n_target_speakers=1)
    first = read_all(build_demo_corpus(tmp_path, seed=0, **kwargs)["target"])
    manifest = json.loads((tmp_path / "target" / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["params"]["seed"] == 0
    # Same folder, new seed: the manifest no longer matches, so the corpus is replaced.
    second = read_all(build_demo_corpus(tmp_path, seed=1, **kwargs)["target"])
    assert json.loads((tmp_path / "target" / MANIFEST_FILE).read_text(encoding="utf-8"))["params"]["seed"] == 1
    assert first.keys() == second.keys()
    assert all(not np.array_equal(first[path], second[path]) for path in first)
    # A different channel is a different corpus too.
    build_demo_corpus(tmp_path, seed=1, channel=TargetChannel(snr_db=30.0), **kwargs)
    manifest = json.loads((tmp_path / "target" / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["params"]["channel"]["snr_db"] == 30.0


def test_unknown_emotion_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="joyful"):
        build_demo_corpus(tmp_path / "demo", emotions=("neutral", "joyful"))
    assert not (tmp_path / "demo").exists()  # rejected before any work


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": -1}, "seed"),
        ({"emotions": "angry"}, "sequence of names"),
        ({"emotions": ("angry", "angry")}, "distinct"),
        ({"sentences": []}, "non-empty"),
        ({"sentences": ["Сәлем.", "Сәлем."]}, "duplicates"),
        ({"n_source_speakers": 0}, "n_source_speakers"),
        ({"n_target_speakers": 99}, "n_target_speakers"),
        ({"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_demo_corpus(tmp_path, **kwargs)


def test_sentence_too_long_for_a_clip_is_a_clear_error(tmp_path):
    long_sentence = " ".join(["Біз ертең ауылдағы әжеміздің үйіне барамыз."] * 4)
    with pytest.raises(ValueError, match="shorter sentences"):
        build_demo_corpus(
            tmp_path, sentences=[long_sentence], emotions=("sad", "angry"), n_source_speakers=1, n_target_speakers=1
        )


def test_refuses_to_overwrite_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "precious.flac").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        build_demo_corpus(tmp_path, sentences=SENTENCES[:1], emotions=("angry", "sad"))
    assert (tmp_path / "source" / "precious.flac").read_bytes() == b"not ours"


def test_synthesizer_speaks_kazakh_and_reports_missing_voices():
    synthesizer = ESpeakSynthesizer("kk")
    assert synthesizer.sample_rate == 22050
    assert {"f1", "m1", "f2", "m2"} <= set(synthesizer.variants())
    audio = synthesizer.synthesize(DEMO_SENTENCES[0], variant="f1", rate=175)
    assert audio.dtype == np.int16 and 0.5 < audio.size / synthesizer.sample_rate < 5
    assert np.abs(audio).max() > 1000
    with pytest.raises(ESpeakError, match="variant 'nope'"):
        synthesizer.synthesize("Сәлем", variant="nope")
    with pytest.raises(ESpeakError, match="'zz-no-such-language'"):
        ESpeakSynthesizer("zz-no-such-language")
    with pytest.raises(ValueError, match="rate=10"):
        synthesizer.synthesize("Сәлем", rate=10)


def test_missing_library_or_data_is_a_clear_error(tmp_path):
    with pytest.raises(ESpeakError, match="libespeak-ng not found"):
        _load_engine(str(tmp_path / "libespeak-ng.so"), str(tmp_path))
    (tmp_path / "libespeak-ng.so").write_bytes(b"")
    with pytest.raises(ESpeakError, match="not an espeak-ng-data folder"):
        _load_engine(str(tmp_path / "libespeak-ng.so"), str(tmp_path))
