"""Corpus loading, label harmonisation and audio validation (trainer.data.labels, trainer.data.corpora)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from conftest_data import make_csv_corpus, make_disk_dataset, make_kazemotts, write_bad_clip, write_clip

from trainer.data.corpora import (
    CORPUS_COLUMNS,
    BadAudioError,
    detect_format,
    load_audio,
    load_corpus,
)
from trainer.data.labels import EMOTIONS, build_alias_map, harmonize_label, make_label_maps, shared_classes

# --- labels -----------------------------------------------------------------------------------------------------


def test_harmonize_label_defaults_are_case_insensitive():
    assert harmonize_label("Scared") == "fear"
    assert harmonize_label(" FEARFUL ") == "fear"
    assert harmonize_label("joy") == "happy"
    assert harmonize_label("Anger") == "angry"
    assert harmonize_label("surprised") == "surprise"
    assert harmonize_label("bored") == "boredom"
    assert harmonize_label("") == ""
    assert all(harmonize_label(name.upper()) == name for name in EMOTIONS)


def test_harmonize_label_user_aliases_override_defaults():
    assert harmonize_label("Pleasant Surprise", {"pleasant surprise": "surprise"}) == "surprise"
    assert harmonize_label("scared", {"Scared": "surprise"}) == "surprise"  # user map wins
    assert build_alias_map({"x": "Scared"})["x"] == "fear"  # a target may itself be an alias
    with pytest.raises(ValueError, match="not an emotion of the canonical vocabulary"):
        build_alias_map({"x": "frustration"})


def test_harmonize_label_unknown_names_the_place_and_the_known_names():
    with pytest.raises(ValueError) as info:
        harmonize_label("frustrated", where="meta.csv, line 7")
    message = str(info.value)
    assert "meta.csv, line 7" in message and "'frustrated'" in message
    assert "neutral, calm, happy" in message and "label_aliases" in message


def test_shared_classes_and_label_maps_follow_canonical_order():
    source = ["calm", "fear", "neutral", "surprise", "", "happy"]
    target = ["boredom", "happy", "fear", "neutral", "disgust"]
    assert shared_classes(source, target) == ["neutral", "happy", "fear"]
    assert make_label_maps(["fear", "neutral"]) == ({"neutral": 0, "fear": 1}, {0: "neutral", 1: "fear"})
    with pytest.raises(ValueError, match="share no emotion"):
        shared_classes(["calm"], ["boredom"])
    with pytest.raises(ValueError, match="harmonise"):
        shared_classes(["scared"], ["fear"])


# --- csv ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_corpus(tmp_path_factory) -> str:
    return make_csv_corpus(tmp_path_factory.mktemp("corpora") / "toy")


def test_load_csv_corpus_schema_and_values(csv_corpus):
    ds, report = load_corpus(csv_corpus, language="en", return_report=True)
    assert ds.column_names == list(CORPUS_COLUMNS)
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].decode is False
    assert ds.num_rows == 4 * 2 * 4 and report.num_loaded == ds.num_rows and report.num_skipped == 0
    assert set(ds["emotion"]) == {"neutral", "happy", "fear", "angry"}
    assert set(ds["speaker"]) == {"toy_01", "toy_02", "toy_03", "toy_04"}
    assert set(ds["gender"]) == {"male", "female"}
    assert set(ds["language"]) == {"en"} and set(ds["corpus"]) == {"toy"}
    row = ds[0]
    assert os.path.isabs(row["path"]) and os.path.isfile(row["path"])
    assert row["audio"] == {"bytes": None, "path": row["path"]}
    assert row["transcript"] == "Kids are talking by the door"
    assert "32 of 32 clips loaded, 0 skipped" in ds.info.description


def test_csv_language_column_wins_over_the_argument(tmp_path):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad",),
                           columns=("path", "emotion", "speaker", "transcript", "language"))
    ds = load_corpus(root, language="de", corpus_name="mine")
    assert set(ds["language"]) == {"en"} and set(ds["corpus"]) == {"mine"} and set(ds["speaker"]) == {"mine_a"}
    assert set(ds["gender"]) == {""}


def test_speaker_already_prefixed_is_kept(tmp_path):
    root = make_csv_corpus(tmp_path / "ravdess", speakers=("ravdess_01", "02"), emotions=("calm",), transcripts=("x",))
    assert sorted(load_corpus(root)["speaker"]) == ["ravdess_01", "ravdess_02"]


def test_csv_file_path_and_label_aliases(tmp_path):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("ps",), transcripts=("x",))
    ds = load_corpus(os.path.join(root, "metadata.csv"), label_aliases={"PS": "surprise"})
    assert ds["emotion"] == ["surprise"]


def test_csv_missing_columns_is_an_error(tmp_path):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), columns=("path", "emotion", "transcript"))
    with pytest.raises(ValueError) as info:
        load_corpus(root)
    assert "metadata.csv" in str(info.value) and "missing column(s) speaker" in str(info.value)


@pytest.mark.parametrize("on_bad_audio", ["error", "skip"])
def test_csv_unknown_emotion_always_raises(tmp_path, on_bad_audio):
    root = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("neutral", "frustrated"), transcripts=("x",))
    with pytest.raises(ValueError) as info:
        load_corpus(root, on_bad_audio=on_bad_audio)
    assert "metadata.csv, line 3" in str(info.value) and "wav/a/0_1.flac" in str(info.value)
    assert "'frustrated'" in str(info.value)


# --- bad audio --------------------------------------------------------------------------------------------------

BAD_CASES = {
    "missing": "file not found",
    "corrupt": "unreadable audio",
    "empty": "empty audio",
    "silent": "digital silence",
    "nan": "NaN or infinite",
    "long": "31.00 s long",
    "short": "too short",
}


@pytest.mark.parametrize("problem", sorted(BAD_CASES))
def test_load_audio_rejects_bad_clips_naming_the_file(tmp_path, problem):
    path = str(tmp_path / f"{problem}.wav")
    if problem != "missing":
        write_bad_clip(path, problem)
    with pytest.raises(BadAudioError) as info:
        load_audio(path)
    assert str(info.value).startswith(path) and BAD_CASES[problem] in str(info.value)
    assert info.value.path == path


@pytest.fixture()
def corpus_with_bad_clips(tmp_path) -> tuple[str, list[str]]:
    root = tmp_path / "bad"
    bad = []
    for problem in sorted(BAD_CASES):
        rel = f"wav/bad_{problem}.wav"
        if problem != "missing":
            write_bad_clip(root / rel, problem)
        bad.append({"path": rel, "emotion": "sad", "speaker": "z", "transcript": ""})
    make_csv_corpus(root, speakers=("a",), emotions=("sad", "happy"), transcripts=("x",), extra_rows=bad)
    return str(root), [str(root / row["path"]) for row in bad]


def test_bad_clip_raises_under_error(corpus_with_bad_clips):
    root, bad_paths = corpus_with_bad_clips
    with pytest.raises(BadAudioError) as info:
        load_corpus(root)
    assert info.value.path in bad_paths


def test_bad_clips_are_skipped_counted_and_reported(corpus_with_bad_clips, caplog):
    root, bad_paths = corpus_with_bad_clips
    with caplog.at_level(logging.WARNING, logger="trainer.data.corpora"):
        ds, report = load_corpus(root, on_bad_audio="skip", return_report=True)
    assert ds.num_rows == 2 and report.num_rows == 2 + len(BAD_CASES)
    assert report.num_skipped == len(BAD_CASES) and report.num_loaded == 2
    assert sorted(path for path, _ in report.skipped) == sorted(bad_paths)
    assert {problem for _, problem in report.skipped} >= {"file not found", "audio contains NaN or infinite samples"}
    logged = caplog.text
    assert f"skipped {len(BAD_CASES)} of {2 + len(BAD_CASES)}" in logged
    assert all(path in logged for path in bad_paths)
    assert f"2 of {2 + len(BAD_CASES)} clips loaded, {len(BAD_CASES)} skipped" in ds.info.description
    assert all(path in ds.info.description for path in bad_paths)


def test_every_clip_bad_is_an_error(tmp_path):
    write_bad_clip(tmp_path / "c" / "a.wav", "silent")
    (tmp_path / "c" / "metadata.csv").write_text("path,emotion,speaker,transcript\na.wav,sad,s,\n")
    with pytest.raises(ValueError, match="every clip was skipped"):
        load_corpus(tmp_path / "c", on_bad_audio="skip")
    with pytest.raises(ValueError, match="on_bad_audio"):
        load_corpus(tmp_path / "c", on_bad_audio="ignore")


# --- duplicates (issue 15, item 2) ---------------------------------------------------------------------------------


def _with_duplicate_rows(root: Path) -> Path:
    """A corpus whose metadata.csv repeats its 2nd and 3rd rows at the end (lines 6 and 7 repeat lines 3 and 4)."""
    make_csv_corpus(root, speakers=("a", "b"), emotions=("sad", "happy"), transcripts=("x",))
    lines = (root / "metadata.csv").read_text().splitlines()
    (root / "metadata.csv").write_text("\n".join(lines + lines[2:4]) + "\n")
    return root


def test_duplicate_metadata_rows_are_an_error_naming_file_rows_and_path(tmp_path):
    root = _with_duplicate_rows(tmp_path / "c")
    with pytest.raises(ValueError) as info:
        load_corpus(root)
    message = str(info.value)
    assert str(root / "metadata.csv") in message and "lines 3 and 6" in message and "wav/a/0_1.flac" in message
    assert "on_bad_audio" in message  # says how to drop them instead


def test_duplicate_rows_are_dropped_counted_and_reported_under_skip(tmp_path, caplog):
    root = _with_duplicate_rows(tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="trainer.data.corpora"):
        ds, report = load_corpus(root, on_bad_audio="skip", return_report=True)
    assert ds.num_rows == 4 and len(set(ds["path"])) == 4
    assert report.num_rows == 6 and report.num_skipped == 2 and report.num_duplicates == 2
    assert sorted(path for path, _ in report.skipped) == sorted(str(root / p) for p in ("wav/a/0_1.flac", "wav/b/0_0.wav"))
    assert all("duplicate" in problem and "line" in problem for _, problem in report.skipped)
    assert "4 of 6 clips loaded, 2 skipped (2 of them duplicates)" in ds.info.description
    assert "skipped 2 of 6" in caplog.text


def test_the_same_audio_under_two_paths_is_an_error_or_a_counted_drop(tmp_path):
    root = tmp_path / "c"
    make_csv_corpus(root, speakers=("a", "b"), emotions=("sad", "happy"), transcripts=("x",))
    original = root / "wav" / "b" / "0_0.wav"
    (root / "copy").mkdir()
    (root / "copy" / "again.wav").write_bytes(original.read_bytes())
    with open(root / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("copy/again.wav,sad,c,x,F\n")
    with pytest.raises(ValueError) as info:
        load_corpus(root)
    assert "copy/again.wav" in str(info.value) and str(original) in str(info.value) and "same audio" in str(info.value)
    ds, report = load_corpus(root, on_bad_audio="skip", return_report=True)
    assert ds.num_rows == 4 and report.num_duplicates == 1
    assert report.skipped[0][0] == str(root / "copy" / "again.wav") and str(original) in report.skipped[0][1]


# --- decoding -----------------------------------------------------------------------------------------------------


def test_load_audio_stereo_22k_becomes_16k_mono(tmp_path):
    path = write_clip(tmp_path / "st.flac", seconds=0.5, sr=22_050, channels=2)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape == (8_000,)  # 11025 samples at 22.05 kHz -> 0.5 s at 16 kHz


def test_load_audio_stereo_is_the_channel_mean(tmp_path):
    path = write_clip(tmp_path / "st.wav", seconds=0.25, sr=16_000, channels=2, subtype="FLOAT")
    stereo, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(load_audio(path), stereo.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(load_audio(path), 0.75 * stereo[:, 0], atol=1e-6)


def test_load_audio_accepts_embedded_bytes(tmp_path):
    path = write_clip(tmp_path / "b.wav", seconds=0.25)
    payload = Path(path).read_bytes()
    np.testing.assert_array_equal(load_audio({"bytes": payload, "path": "b.wav"}), load_audio(path))
    with pytest.raises(BadAudioError, match="name.wav: unreadable"):
        load_audio({"bytes": b"garbage" * 20, "path": "name.wav"})


def test_corpus_clips_decode_to_16k_mono(csv_corpus):
    ds = load_corpus(csv_corpus)
    for row in ds.select([0, ds.num_rows - 1]):
        audio = load_audio(row["audio"])
        assert audio.ndim == 1 and audio.dtype == np.float32
        assert abs(audio.shape[0] - 0.3 * 16_000) <= 1


# --- kazemotts ----------------------------------------------------------------------------------------------------


def test_load_kazemotts_layout(tmp_path):
    root = make_kazemotts(tmp_path / "KazEmo", per_emotion=2)
    write_clip(tmp_path / "KazEmo" / "123" / "eval" / "123_sad_0.wav", 0.3, 22_050)  # unknown narrator, no .txt
    ds = load_corpus(root)
    assert ds.column_names == list(CORPUS_COLUMNS)
    assert ds.num_rows == 3 * 3 * 2 + 1
    assert set(ds["emotion"]) == {"neutral", "fear", "surprise", "sad"}
    assert set(ds["language"]) == {"kk"} and set(ds["corpus"]) == {"kazemotts"}
    genders = dict(zip(ds["speaker"], ds["gender"]))
    assert genders == {"kazemotts_805570882": "female", "kazemotts_1263201035": "male",
                       "kazemotts_399172782": "male", "kazemotts_123": ""}
    transcripts = dict(zip(ds["path"], ds["transcript"]))
    assert transcripts[os.path.join(root, "805570882", "eval", "805570882_scared_1.wav")] == "Сәлем әлем 1"
    assert transcripts[os.path.join(root, "123", "eval", "123_sad_0.wav")] == ""
    assert load_audio(ds[0]["audio"]).shape == (4_800,)  # 0.3 s at 22.05 kHz -> 16 kHz


def test_kazemotts_bad_file_name_is_an_error(tmp_path):
    root = make_kazemotts(tmp_path / "k", speakers=("805570882",))
    write_clip(tmp_path / "k" / "805570882" / "train" / "oops.wav")
    with pytest.raises(ValueError, match="oops.wav: KazEmoTTS file names"):
        load_corpus(root)
    os.remove(tmp_path / "k" / "805570882" / "train" / "oops.wav")
    write_clip(tmp_path / "k" / "805570882" / "train" / "111_sad_0.wav")
    with pytest.raises(ValueError, match="file name says speaker '111'"):
        load_corpus(root, format="kazemotts")


# --- save_to_disk -------------------------------------------------------------------------------------------------


def test_load_disk_dataset_with_audio_column(tmp_path):
    root = make_disk_dataset(tmp_path / "disk", tmp_path / "clips", gender=["f", "f", "m", "m"])
    ds = load_corpus(root, language="en")
    assert ds.column_names == list(CORPUS_COLUMNS)
    assert ds["emotion"] == ["neutral", "sad", "sad", "happy"]
    assert ds["speaker"] == ["disk_1", "disk_1", "disk_2", "disk_2"]
    assert ds["gender"] == ["female", "female", "male", "male"] and set(ds["language"]) == {"en"}
    assert ds["transcript"][2] == ""
    # save_to_disk embedded the clips: the path names the clip inside the dataset folder.
    assert ds[0]["audio"]["bytes"] is not None and ds["path"][0] == os.path.join(root, "clip0.wav")


def test_load_disk_dataset_with_path_column_and_class_labels(tmp_path):
    paths = [write_clip(tmp_path / "clips" / f"{i}.wav", 0.3, seed=i) for i in range(3)]
    ds = datasets.Dataset.from_dict(
        {"path": [os.path.relpath(p, tmp_path / "disk") for p in paths], "label": [0, 1, 0],
         "speaker_id": ["a", "b", "a"], "text": ["x", "y", "x"]},
        features=datasets.Features({"path": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["Anger", "Joy"]),
                                    "speaker_id": datasets.Value("string"), "text": datasets.Value("string")}),
    )
    ds.save_to_disk(tmp_path / "disk")
    loaded = load_corpus(tmp_path / "disk", format="disk", corpus_name="c")
    assert loaded["emotion"] == ["angry", "happy", "angry"] and loaded["speaker"] == ["c_a", "c_b", "c_a"]
    assert loaded["path"] == [os.path.normpath(p) for p in paths]


def test_load_corpus_output_round_trips_through_save_to_disk(tmp_path, csv_corpus):
    original = load_corpus(csv_corpus, language="en")
    original.save_to_disk(tmp_path / "saved")
    reloaded = load_corpus(tmp_path / "saved")
    # save_to_disk embeds the audio files as bytes; everything else is unchanged.
    assert reloaded.remove_columns("audio").to_dict() == original.remove_columns("audio").to_dict()
    assert reloaded[0]["audio"]["bytes"] is not None
    np.testing.assert_array_equal(load_audio(reloaded[5]["audio"]), load_audio(original[5]["audio"]))


def test_disk_dataset_dict_and_missing_columns_are_errors(tmp_path):
    paths = [write_clip(tmp_path / "clips" / "0.wav", 0.3)]
    plain = datasets.Dataset.from_dict({"audio": paths, "emotion": ["sad"], "speaker": ["a"], "transcript": [""]})
    datasets.DatasetDict({"train": plain}).save_to_disk(tmp_path / "dd")
    with pytest.raises(ValueError, match="DatasetDict with splits"):
        load_corpus(tmp_path / "dd")
    plain.remove_columns("speaker").save_to_disk(tmp_path / "nospk")
    with pytest.raises(ValueError, match="no speaker column"):
        load_corpus(tmp_path / "nospk")


# --- format detection ---------------------------------------------------------------------------------------------


def test_detect_format(tmp_path, csv_corpus):
    assert detect_format(csv_corpus) == "csv"
    assert detect_format(os.path.join(csv_corpus, "metadata.csv")) == "csv"
    assert detect_format(make_kazemotts(tmp_path / "k", speakers=("805570882",))) == "kazemotts"
    assert detect_format(make_disk_dataset(tmp_path / "d", tmp_path / "clips")) == "disk"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the corpus format"):
        load_corpus(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_corpus(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown corpus format"):
        load_corpus(csv_corpus, format="parquet")


# --- real corpora (optional) --------------------------------------------------------------------------------------

DATA_DIR = Path(os.environ.get("CTRILORA_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA_DIR / "ravdess").is_dir(), reason=f"no real corpora in {DATA_DIR}")
def test_real_corpora_load_as_documented():
    ravdess = load_corpus(DATA_DIR / "ravdess", language="en")
    emodb = load_corpus(DATA_DIR / "emodb_2s", language="de", corpus_name="emodb")
    assert ravdess.num_rows == 1440 and emodb.num_rows == 535
    assert len(set(ravdess["speaker"])) == 24 and len(set(emodb["speaker"])) == 10
    assert len(set(ravdess["transcript"])) == 2
    assert shared_classes(ravdess["emotion"], emodb["emotion"]) == [
        "neutral", "happy", "sad", "angry", "fear", "disgust"]
