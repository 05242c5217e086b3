"""Whisper log-Mel features at true clip length, and the batch collator of `WhisperForTriLoRA`.

Stock Whisper pads every clip to 30 s (3000 frames); emotion clips last 2–5 s. :func:`add_log_mel` computes the
features of each clip at its own length instead, with Whisper's own `WhisperFeatureExtractor`
(``padding="longest"`` on a single clip = no padding). For ``L`` samples at 16 kHz the extractor returns
``L // 160`` frames (the STFT's ``L // 160 + 1`` frames minus the last one, as in Whisper); Whisper's encoder halves
the frame rate with a stride-2 convolution and rejects odd counts, so an odd count drops its last frame:

    num_frames = 2 * ((L // 160) // 2)        # e.g. 2.0 s -> 200 frames, 1.005 s (16080 samples) -> 100

:class:`CTriLoRACollator` pads a batch of such rows into the tensors the model's ``forward`` takes.

Example:
    >>> from transformers import WhisperFeatureExtractor, WhisperTokenizer
    >>> fe = WhisperFeatureExtractor.from_pretrained(base_model)  # doctest: +SKIP
    >>> train = add_log_mel(train, fe)  # adds input_features (80, T) and num_frames  # doctest: +SKIP
    >>> collator = CTriLoRACollator(tokenizer, label2id, speaker2id, transcript2id)  # doctest: +SKIP
    >>> batch = collator([train[i] for i in range(8)])  # doctest: +SKIP
    >>> batch["input_features"].shape  # (8, 80, longest clip's num_frames)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, WhisperFeatureExtractor

from modeling_ctrilora.modeling_ctrilora import IGNORE_INDEX
from trainer.data.corpora import load_audio
from trainer.data.sampler import normalize_transcript

WHISPER_MAX_FRAMES = 3000  # 30 s at a 10 ms hop: the stock encoder's only accepted length.
# Whisper's log-Mel is clamped at (max - 8) in log10 units then mapped by (x + 4) / 4, so its floor sits 2.0 below
# the clip's maximum, and never below the value of digital silence, log10(1e-10) -> (-10 + 4) / 4.
_LOG_MEL_RANGE = 2.0
_LOG_MEL_SILENCE = -1.5

COLLATOR_KEYS: tuple[str, ...] = (
    "input_features",
    "attention_mask",
    "labels",
    "speaker_labels",
    "asr_labels",
    "transcript_ids",
)


def log_mel(audio: np.ndarray, feature_extractor: WhisperFeatureExtractor) -> np.ndarray:
    """Whisper log-Mel of one clip at its true length, cropped to an even frame count.

    Args:
        audio: ``(num_samples,)`` float32 mono at ``feature_extractor.sampling_rate`` (see
            :func:`trainer.data.corpora.load_audio`).
        feature_extractor: a `WhisperFeatureExtractor` (its ``feature_size`` gives ``n_mels``).

    Returns:
        ``(n_mels, T)`` float32 with ``T = 2 * ((num_samples // hop_length) // 2)``.
    """
    features = feature_extractor(
        audio,
        sampling_rate=feature_extractor.sampling_rate,
        padding="longest",
        return_attention_mask=False,
        return_tensors="np",
    )["input_features"][0]
    even = features.shape[-1] - features.shape[-1] % 2
    return np.ascontiguousarray(features[:, :even], dtype=np.float32)


def _log_mel_row(row: dict[str, Any], feature_extractor: WhisperFeatureExtractor) -> dict[str, Any]:
    features = log_mel(load_audio(row["audio"], feature_extractor.sampling_rate), feature_extractor)
    return {"input_features": features, "num_frames": features.shape[-1]}


def add_log_mel(
    ds: datasets.Dataset,
    feature_extractor: WhisperFeatureExtractor,
    *,
    num_proc: int | None = None,
    cache_file_name: str | None = None,
    load_from_cache_file: bool = True,
) -> datasets.Dataset:
    """Add ``input_features`` (``(n_mels, T)`` float32) and ``num_frames`` (``T``) to every row.

    Audio is decoded with :func:`trainer.data.corpora.load_audio` (a bad clip raises its `BadAudioError`, naming the
    file), features come from :func:`log_mel`. The result is cached by `datasets`: a dataset backed by cache
    files (``load_from_disk``, or after any earlier cached ``map``) is reused on the next call with the same
    extractor; an in-memory dataset (as returned by ``load_corpus``) is cached when `cache_file_name` is given.

    Args:
        ds: a corpus dataset with an ``audio`` column (``Audio(decode=False)``).
        feature_extractor: the backbone's `WhisperFeatureExtractor`.
        num_proc: worker processes for the map.
        cache_file_name: Arrow cache file for the result.
        load_from_cache_file: reuse a matching cache file when there is one.

    Returns:
        The dataset with two more columns; ``num_frames`` is even (see the module docstring).
    """
    features = ds.features.copy()
    # Sequence (not List) keeps datasets 3.x working; on datasets >= 4 it is the same List(List(float32)) type.
    features["input_features"] = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    features["num_frames"] = datasets.Value("int32")
    return ds.map(
        _log_mel_row,
        fn_kwargs={"feature_extractor": feature_extractor},
        features=features,
        num_proc=num_proc,
        cache_file_name=cache_file_name,
        load_from_cache_file=load_from_cache_file,
        desc="log-Mel features",
    )


def pad_frames(features: Sequence[np.ndarray], total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(n_mels, T_i)`` log-Mels into one batch and its frame mask.

    Args:
        features: one float32 array per clip.
        total: padded frame count; default the longest clip, rounded up to even (Whisper's stride-2 convolution).

    Returns:
        ``(B, n_mels, total)`` float32 features, zero after each clip, and the ``(B, total)`` long frame mask, 1 on
        real frames.
    """
    lengths = [feature.shape[-1] for feature in features]
    total = max(lengths) + max(lengths) % 2 if total is None else total
    batch = torch.zeros((len(features), features[0].shape[0], total), dtype=torch.float32)
    mask = torch.zeros((len(features), total), dtype=torch.long)
    for index, (feature, length) in enumerate(zip(features, lengths)):
        batch[index, :, :length] = torch.from_numpy(np.asarray(feature, dtype=np.float32))
        mask[index, :length] = 1
    return batch, mask


@dataclass
class CTriLoRACollator:
    """Pad rows of :func:`add_log_mel` datasets into the keyword arguments of the model's ``forward``.

    Args:
        tokenizer: Whisper tokenizer with the language/task prefix set (e.g.
            ``WhisperTokenizer.from_pretrained(base, language="kazakh", task="transcribe")``).
        label2id: emotion -> class id; an emotion outside it (or ``""``, unlabeled) gives label ``-100``.
        speaker2id: speaker -> id of the speaker head; unknown speakers give ``-100``.
        transcript2id: normalised transcript -> group id, built once over the data
            (:func:`trainer.data.sampler.build_transcript_vocab`); missing or empty transcripts give ``-1``.
        padding: ``"short"`` pads to the longest clip of the batch (rounded up to even) with zeros — padded frames
            are masked out, so their value is irrelevant. ``"pad_to_30s"`` pads to `max_frames` the way stock
            Whisper does: each clip's padding takes that clip's log-Mel floor ``max(clip_max - 2.0, -1.5)``, the
            exact value the feature extractor gives zero-padded audio, without re-decoding the audio. It differs
            from running the extractor on the audio padded to 30 s only around the clip's end: the last real
            frame when its STFT window overhangs the end, and the first two to four padded frames, which in the
            stock version still see the clip's last samples (including the frame dropped to make ``T`` even).
            ``attention_mask`` still marks only the real frames.
        max_frames: frame count of ``"pad_to_30s"``.
        max_asr_length: truncate ASR label sequences to this many tokens (e.g. the decoder's
            ``max_target_positions``); ``None`` keeps them whole.

    Returns (from ``__call__``), a dict with exactly these keys:
        - ``input_features``: ``(B, n_mels, T)`` float32.
        - ``attention_mask``: ``(B, T)`` long, 1 on real frames.
        - ``labels``: ``(B,)`` long emotion ids, ``-100`` unlabeled.
        - ``speaker_labels``: ``(B,)`` long, ``-100`` unknown.
        - ``asr_labels``: ``(B, L)`` long, ``tokenizer(transcript).input_ids`` without the leading
          ``<|startoftranscript|>`` (the model prepends it when shifting right), padded with ``-100``; rows
          without a transcript are all ``-100``; ``L = 1`` when no row has one.
        - ``transcript_ids``: ``(B,)`` long transcript-group ids, ``-1`` none.

    Example:
        >>> collator = CTriLoRACollator(tokenizer, {"neutral": 0, "angry": 1}, {"spk_a": 0},
        ...                             {"hello": 0})  # doctest: +SKIP
        >>> batch = collator([{"input_features": np.zeros((80, 4)), "num_frames": 4, "emotion": "angry",
        ...                    "speaker": "spk_a", "transcript": "Hello"}])  # doctest: +SKIP
        >>> batch["labels"], batch["transcript_ids"]  # doctest: +SKIP
        (tensor([1]), tensor([0]))
    """

    tokenizer: PreTrainedTokenizerBase
    label2id: Mapping[str, int]
    speaker2id: Mapping[str, int]
    transcript2id: Mapping[str, int]
    padding: Literal["short", "pad_to_30s"] = "short"
    max_frames: int = WHISPER_MAX_FRAMES
    max_asr_length: int | None = None

    def __post_init__(self) -> None:
        if self.padding not in ("short", "pad_to_30s"):
            raise ValueError(f"padding must be 'short' or 'pad_to_30s', got {self.padding!r}")
        if self.max_frames % 2:
            raise ValueError(f"max_frames must be even (Whisper's stride-2 convolution), got {self.max_frames}")
        self._decoder_start_id = self.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")

    def _asr_labels(self, transcripts: Sequence[str]) -> torch.Tensor:
        sequences: list[list[int]] = []
        texts = [text for text in transcripts if text]
        encoded = iter(self.tokenizer(texts).input_ids if texts else [])
        for text in transcripts:
            ids = list(next(encoded)) if text else []
            if ids and ids[0] == self._decoder_start_id:
                ids = ids[1:]
            sequences.append(ids[: self.max_asr_length] if self.max_asr_length is not None else ids)
        labels = torch.full((len(sequences), max(1, *map(len, sequences))), IGNORE_INDEX, dtype=torch.long)
        for row, ids in enumerate(sequences):
            labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return labels

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        if "input_features" not in rows[0]:
            raise KeyError("rows have no 'input_features'; run trainer.data.features.add_log_mel on the dataset first")
        features = [np.asarray(row["input_features"], dtype=np.float32) for row in rows]
        for row, feature in zip(rows, features):
            if "num_frames" in row and row["num_frames"] != feature.shape[-1]:
                raise ValueError(f"{row.get('path', 'row')}: num_frames {row['num_frames']} but features have "
                                 f"{feature.shape[-1]} frames")
        lengths = [feature.shape[-1] for feature in features]
        if self.padding == "short":
            batch, mask = pad_frames(features)
        else:
            if max(lengths) > self.max_frames:
                raise ValueError(f"a clip has {max(lengths)} frames, more than max_frames={self.max_frames}")
            batch, mask = pad_frames(features, self.max_frames)
            for index, (feature, length) in enumerate(zip(features, lengths)):
                batch[index, :, length:] = max(float(feature.max()) - _LOG_MEL_RANGE, _LOG_MEL_SILENCE)
        transcripts = [(row.get("transcript") or "").strip() for row in rows]
        return {
            "input_features": batch,
            "attention_mask": mask,
            "labels": torch.tensor([self.label2id.get(row.get("emotion") or "", IGNORE_INDEX) for row in rows]),
            "speaker_labels": torch.tensor(
                [self.speaker2id.get(row.get("speaker") or "", IGNORE_INDEX) for row in rows]
            ),
            "asr_labels": self._asr_labels(transcripts),
            "transcript_ids": torch.tensor(
                [self.transcript2id.get(normalize_transcript(text), -1) if text else -1 for text in transcripts]
            ),
        }


__all__ = [
    "COLLATOR_KEYS", "IGNORE_INDEX", "WHISPER_MAX_FRAMES", "CTriLoRACollator", "add_log_mel", "log_mel", "pad_frames"
]
