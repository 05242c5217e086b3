"""Log-Mel features at true length and the batch collator (trainer.data.features)."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch
from conftest_data import tiny_tokenizer, write_clip
from torch.utils.data import DataLoader
from transformers import WhisperFeatureExtractor

from trainer.data.corpora import BadAudioError, load_audio, load_corpus
from trainer.data.features import COLLATOR_KEYS, WHISPER_MAX_FRAMES, CTriLoRACollator, add_log_mel, log_mel
from trainer.data.labels import make_label_maps, make_speaker_map
from trainer.data.sampler import PairAwareBatchSampler, build_transcript_vocab

CLIPS = [  # (file, seconds, sampling rate, channels, emotion, speaker, transcript)
    ("a.wav", 0.30, 16_000, 1, "neutral", "s1", "Kids are talking"),
    ("b.flac", 0.505, 22_050, 2, "angry", "s1", "kids  are TALKING"),
    ("c.wav", 0.2125, 16_000, 1, "sad", "s2", "Dogs are sitting"),
    ("d.wav", 0.41, 16_000, 2, "fear", "s2", ""),
]


@pytest.fixture(scope="module")
def feature_extractor() -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(feature_size=80)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer("en")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("feat") / "toy"
    lines = ["path,emotion,speaker,transcript"]
    for n, (name, seconds, sr, channels, emotion, speaker, transcript) in enumerate(CLIPS):
        write_clip(root / name, seconds, sr, channels=channels, freq=220.0 * (n + 1), seed=n)
        lines.append(f"{name},{emotion},{speaker},{transcript}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return load_corpus(root, language="en")


@pytest.fixture(scope="module")
def featured(corpus, feature_extractor):
    return add_log_mel(corpus, feature_extractor)


def expected_frames(num_samples: int) -> int:
    return num_samples // 160  # the extractor's own count; an odd one is padded by the collator, never cropped


@pytest.mark.parametrize("num_samples", [320, 4_799, 8_080, 16_000, 16_160 + 60, 8_483])
def test_log_mel_has_the_true_length(feature_extractor, num_samples):
    audio = (0.1 * np.random.default_rng(num_samples).standard_normal(num_samples)).astype(np.float32)
    features = log_mel(audio, feature_extractor)
    assert features.dtype == np.float32 and features.shape == (80, expected_frames(num_samples))
    stock = feature_extractor(audio, sampling_rate=16_000, padding="longest", return_tensors="np")["input_features"]
    np.testing.assert_array_equal(features, stock[0])


def test_add_log_mel_adds_true_length_features_of_the_16k_audio(corpus, featured):
    assert featured.column_names == [*corpus.column_names, "input_features", "num_frames"]
    for row in featured:
        num_samples = load_audio(row["audio"]).shape[0]
        features = np.asarray(row["input_features"], dtype=np.float32)
        assert row["num_frames"] == features.shape[1] == expected_frames(num_samples)
        assert features.shape[0] == 80
    # b.flac: 0.505 s at 22.05 kHz -> 8080 samples at 16 kHz -> 50 frames; c.wav: 3400 samples -> 21 (odd: kept, the collator pads).
    assert featured["num_frames"] == [30, 50, 21, 41]


def test_add_log_mel_is_cached_and_bad_audio_names_the_file(tmp_path, feature_extractor):
    for n in range(2):
        write_clip(tmp_path / "c" / f"{n}.wav", 0.3, seed=n)
    (tmp_path / "c" / "metadata.csv").write_text("path,emotion,speaker,transcript\n0.wav,sad,a,x\n1.wav,sad,b,y\n")
    ds = load_corpus(tmp_path / "c")
    cache = str(tmp_path / "cache" / "features.arrow")
    os.makedirs(os.path.dirname(cache))
    first = add_log_mel(ds, feature_extractor, cache_file_name=cache)
    assert os.path.isfile(cache)
    os.remove(tmp_path / "c" / "1.wav")  # a cache hit must not decode again
    second = add_log_mel(ds, feature_extractor, cache_file_name=cache)
    assert second["input_features"] == first["input_features"]
    with pytest.raises(BadAudioError, match=f"{tmp_path / 'c' / '1.wav'}: file not found"):
        add_log_mel(ds, feature_extractor)


def test_add_log_mel_reuses_the_cache_of_a_saved_dataset(tmp_path, corpus, feature_extractor):
    corpus.save_to_disk(tmp_path / "saved")
    saved = datasets.load_from_disk(tmp_path / "saved")
    first = add_log_mel(saved, feature_extractor)
    again = add_log_mel(saved, WhisperFeatureExtractor(feature_size=80))  # equal settings -> same fingerprint
    other = add_log_mel(saved, WhisperFeatureExtractor(feature_size=64))
    assert again.cache_files == first.cache_files and other.cache_files != first.cache_files
    assert np.asarray(other[0]["input_features"]).shape == (64, 30)


def make_collator(featured, tokenizer, **kwargs) -> CTriLoRACollator:
    label2id, _ = make_label_maps(["neutral", "angry", "sad"])  # "fear" deliberately left out
    return CTriLoRACollator(
        tokenizer, label2id, make_speaker_map(["toy_s1"]), build_transcript_vocab(featured["transcript"]), **kwargs
    )


def test_collator_short_padding(featured, tokenizer):
    rows = [featured[i] for i in range(featured.num_rows)]
    batch = make_collator(featured, tokenizer)(rows)
    assert tuple(batch) == COLLATOR_KEYS
    assert batch["input_features"].shape == (4, 80, 50) and batch["input_features"].dtype == torch.float32
    assert batch["attention_mask"].dtype == torch.long
    assert batch["attention_mask"].sum(dim=1).tolist() == [30, 50, 21, 41]
    for index, row in enumerate(rows):
        frames = row["num_frames"]
        assert torch.equal(batch["input_features"][index, :, :frames], torch.tensor(row["input_features"]))
        assert not batch["input_features"][index, :, frames:].any()  # zero padding
    assert batch["labels"].tolist() == [0, 2, 1, -100]  # canonical order neutral, sad, angry; fear not in label2id
    assert batch["speaker_labels"].tolist() == [0, 0, -100, -100]
    assert batch["transcript_ids"].tolist() == [0, 0, 1, -1]  # same text up to case/spaces -> same id


def test_collator_asr_labels(featured, tokenizer):
    rows = [featured[i] for i in range(featured.num_rows)]
    labels = make_collator(featured, tokenizer)(rows)["asr_labels"]
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    for index, row in enumerate(rows[:3]):
        expected = tokenizer(row["transcript"]).input_ids
        assert expected[0] == start
        length = len(expected) - 1
        assert labels[index, :length].tolist() == expected[1:]  # leading <|startoftranscript|> removed
        assert (labels[index, length:] == -100).all()
    assert labels[0, 0].item() == tokenizer.convert_tokens_to_ids("<|en|>")  # the language prefix comes first
    assert not (labels == start).any()
    assert (labels[3] == -100).all()  # no transcript: ignored by the ASR loss
    assert labels.shape[1] == max(len(tokenizer(row["transcript"]).input_ids) - 1 for row in rows[:3])
    truncated = make_collator(featured, tokenizer, max_asr_length=5)(rows)["asr_labels"]
    assert truncated.shape == (4, 5) and truncated[0].tolist() == labels[0, :5].tolist()
    silent = make_collator(featured, tokenizer)([dict(rows[0], transcript=""), rows[3]])["asr_labels"]
    assert silent.shape == (2, 1) and (silent == -100).all()


def test_collator_pad_to_30s_matches_stock_whisper_padding(featured, tokenizer, feature_extractor):
    rows = [featured[i] for i in range(featured.num_rows)]
    batch = make_collator(featured, tokenizer, padding="pad_to_30s")(rows)
    assert batch["input_features"].shape == (4, 80, WHISPER_MAX_FRAMES)
    assert batch["attention_mask"].shape == (4, WHISPER_MAX_FRAMES)
    assert batch["attention_mask"].sum(dim=1).tolist() == [30, 50, 21, 41]
    for index, row in enumerate(rows):
        stock = feature_extractor(load_audio(row["audio"]), sampling_rate=16_000, return_tensors="np")
        stock = torch.from_numpy(stock["input_features"][0])
        frames = row["num_frames"]
        ours = batch["input_features"][index]
        # Identical away from the clip's end (whose STFT windows see zeros in the stock 30-s version).
        torch.testing.assert_close(ours[:, : frames - 1], stock[:, : frames - 1])
        torch.testing.assert_close(ours[:, frames + 4 :], stock[:, frames + 4 :])


def test_collator_rejects_bad_rows(featured, tokenizer):
    collator = make_collator(featured, tokenizer)
    with pytest.raises(KeyError, match="add_log_mel"):
        collator([{"emotion": "sad"}])
    with pytest.raises(ValueError, match="num_frames 7"):
        collator([dict(featured[0], num_frames=7)])
    with pytest.raises(ValueError, match="padding"):
        make_collator(featured, tokenizer, padding="longest")


def test_dataloader_with_sampler_and_collator(featured, tokenizer):
    sampler = PairAwareBatchSampler.from_dataset(featured, batch_size=3, seed=0)
    loader = DataLoader(featured, batch_sampler=sampler, collate_fn=make_collator(featured, tokenizer))
    batches = list(loader)
    assert len(batches) == len(sampler) == 2
    assert sum(batch["labels"].shape[0] for batch in batches) == featured.num_rows
    assert all(batch["input_features"].shape[-1] % 2 == 0 for batch in batches)
