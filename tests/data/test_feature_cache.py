"""The log-Mel cache of `trainer.run` is keyed on the clips' content, not only on their paths (issue 15, item 1)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import soundfile as sf
from conftest_data import make_csv_corpus
from transformers import WhisperFeatureExtractor

from trainer import run
from trainer.data.corpora import load_audio, load_corpus
from trainer.data.features import log_mel


@pytest.fixture()
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    return tmp_path / "cache"


def _features(corpus_dir, extractor):
    return run._cached_log_mel(load_corpus(corpus_dir), extractor)


def test_a_clip_rewritten_at_the_same_path_is_featurised_again(tmp_path, cache_home, caplog):
    # Speaker "b" is recorded as 16 kHz WAV (conftest_data), whose size does not depend on the samples.
    corpus = make_csv_corpus(tmp_path / "c", speakers=("a", "b"), emotions=("sad",), transcripts=("x",))
    extractor = WhisperFeatureExtractor(feature_size=80)
    first = _features(corpus, extractor)
    index = first["path"].index(next(path for path in first["path"] if path.endswith(".wav")))
    clip = first[index]["path"]
    stat = os.stat(clip)
    # Same path, same size, same mtime: only the samples differ (a clip fixed in place, its timestamp kept).
    data, rate = sf.read(clip, dtype="float32", always_2d=True)
    sf.write(clip, np.ascontiguousarray(data[::-1] * 0.5), rate, subtype=sf.info(clip).subtype)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(clip).st_size == stat.st_size

    second = _features(corpus, extractor)
    expected = log_mel(load_audio(clip), extractor)
    assert np.allclose(np.asarray(second[index]["input_features"]), expected, atol=1e-5)
    assert not np.allclose(np.asarray(first[index]["input_features"]), expected, atol=1e-3)
    assert len(list(cache_home.joinpath("features").glob("*.arrow"))) == 2


def test_the_cache_is_reused_for_unchanged_clips_and_the_log_says_so(tmp_path, cache_home, caplog):
    corpus = make_csv_corpus(tmp_path / "c", speakers=("a",), emotions=("sad", "happy"), transcripts=("x",))
    extractor = WhisperFeatureExtractor(feature_size=80)
    with caplog.at_level(logging.INFO, logger="trainer.run"):
        first = _features(corpus, extractor)
    assert "log-Mel cache: reusing" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trainer.run"):
        second = _features(corpus, extractor)
    files = list(cache_home.joinpath("features").glob("*.arrow"))
    assert len(files) == 1
    assert f"log-Mel cache: reusing {files[0]} for {first.num_rows} clips" in caplog.text
    assert second["input_features"] == first["input_features"]


def test_the_probe_feature_cache_is_keyed_on_content_too(tmp_path, monkeypatch):
    from trainer.evaluation import baselines

    corpus = make_csv_corpus(tmp_path / "c", speakers=("b",), emotions=("sad", "happy"), transcripts=("x",))
    monkeypatch.setattr(baselines, "encoder_fingerprint", lambda model: "encoder")
    calls = []

    def fake_extract(model, dataset, collator, batch_size):
        calls.append(dataset.num_rows)
        return np.zeros((dataset.num_rows, 1, 2), np.float32)

    monkeypatch.setattr(baselines, "extract_layer_features", fake_extract)

    def probe():
        dataset = load_corpus(corpus).add_column("input_features", [[[0.0]]] * 2).add_column("num_frames", [2, 2])
        return baselines.cached_layer_features(None, {"train": dataset}, None, "{}", cache_dir=tmp_path / "probe")[2]

    assert probe() is False and probe() is True
    clip = load_corpus(corpus)[0]["path"]
    stat = os.stat(clip)
    data, rate = sf.read(clip, dtype="float32")
    sf.write(clip, data[::-1].copy(), rate, subtype=sf.info(clip).subtype)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert probe() is False and calls == [2, 2]
