"""Whisper log-Mel features at true clip length, and the batch collator of `WhisperForTriLoRA`.

Stock Whisper pads every clip to 30 s (3000 frames); emotion clips last 2–5 s. :func:`add_log_mel` stores the
features of each clip at its own length instead, computed by the one audio → log-Mel implementation of
:mod:`modeling_ctrilora.feature_extraction_ctrilora` that evaluation, the pipeline and the CLI use too: ``L // 160``
frames for ``L`` samples at 16 kHz, e.g. 2.0 s -> 200 frames, 1.015 s (16240 samples) -> 101.

:class:`CTriLoRACollator` pads a batch of such rows into the tensors the model's ``forward`` takes, with the frame
rule of that module: Whisper's stride-2 convolution needs an even frame count, so an odd count gets one zero frame,
masked out (padded, never cropped).

Example:
    >>> from transformers import WhisperFeatureExtractor, WhisperTokenizer
    >>> fe = WhisperFeatureExtractor.from_pretrained(base_model)  # doctest: +SKIP
    >>> train = add_log_mel(train, fe)  # adds input_features (80, T) and num_frames = T  # doctest: +SKIP
    >>> collator = CTriLoRACollator(tokenizer, label2id, speaker2id, transcript2id)  # doctest: +SKIP
    >>> batch = collator([train[i] for i in range(8)])  # doctest: +SKIP
    >>> batch["input_features"].shape  # (8, 80, longest clip's num_frames rounded up to even)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, WhisperFeatureExtractor

from modeling_ctrilora.feature_extraction_ctrilora import LOG_MEL_RANGE, LOG_MEL_SILENCE, load_audio, log_mel, pad_frames
from modeling_ctrilora.modeling_ctrilora import IGNORE_INDEX
from trainer.data.corpora import MAX_SECONDS, long_clip_segments
from trainer.data.sampler import normalize_transcript

WHISPER_MAX_FRAMES = 3000  # 30 s at a 10 ms hop: the stock encoder's only accepted length.

COLLATOR_KEYS: tuple[str, ...] = (
    "input_features",
    "attention_mask",
    "labels",
    "speaker_labels",
    "asr_labels",
    "transcript_ids",
)


def _log_mel_row(row: dict[str, Any], feature_extractor: WhisperFeatureExtractor) -> dict[str, Any]:
    features = log_mel(load_audio(row["audio"], feature_extractor.sampling_rate), feature_extractor)
    return {"input_features": features, "num_frames": features.shape[-1]}


def _log_mel_segments(
    rows: dict[str, list[Any]], indices: list[int], feature_extractor: WhisperFeatureExtractor, max_duration: float,
    long_clips: str,
) -> dict[str, list[Any]]:
    """Batched map: each clip → its rows under `long_clips` (crop: one, the first `max_duration` s; split: one per
    segment, ``path`` suffixed ``@<start>-<end>s`` so every row keeps a unique clip id; ``clip_row`` = clip's index)."""
    rate = feature_extractor.sampling_rate
    out: dict[str, list[Any]] = {name: [] for name in [*rows, "input_features", "num_frames", "clip_row"]}
    for position, index in enumerate(indices):
        audio = load_audio(rows["audio"][position], rate, max_seconds=None)
        bounds = long_clip_segments(len(audio), rate, max_duration, long_clips)
        for start, end in bounds:
            features = log_mel(audio[start:end], feature_extractor)
            for name in rows:
                out[name].append(rows[name][position])
            if len(bounds) > 1:
                out["path"][-1] = f"{rows['path'][position]}@{start / rate:.2f}-{end / rate:.2f}s"
            if (start, end) != (0, len(audio)) and "transcript" in out:
                out["transcript"][-1] = ""  # the clip's transcript does not align with a part of it: no ASR target
            out["input_features"].append(features)
            out["num_frames"].append(features.shape[-1])
            out["clip_row"].append(index)
    return out


def add_log_mel(
    ds: datasets.Dataset,
    feature_extractor: WhisperFeatureExtractor,
    *,
    max_duration: float = MAX_SECONDS,
    long_clips: str = "bad_audio",
    num_proc: int | None = None,
    cache_file_name: str | None = None,
    load_from_cache_file: bool = True,
) -> datasets.Dataset:
    """Add ``input_features`` (``(n_mels, T)`` float32) and ``num_frames`` (``T``) to every row.

    Audio is decoded with :func:`~modeling_ctrilora.feature_extraction_ctrilora.load_audio` (a bad clip raises its
    `BadAudioError`, naming the file), features come from its :func:`log_mel`. The result is cached by `datasets`: a dataset backed by cache
    files (``load_from_disk``, or after any earlier cached ``map``) is reused on the next call with the same
    extractor; an in-memory dataset (as returned by ``load_corpus``) is cached when `cache_file_name` is given.

    Clips longer than `max_duration` follow `long_clips` (:data:`trainer.data.corpora.LONG_CLIP_POLICIES`, as given
    to ``load_corpus``): ``"crop"`` keeps their first `max_duration` seconds; ``"split"`` turns each into its equal
    segments (:func:`~trainer.data.corpora.long_clip_segments`), one row each, and adds ``clip_row`` (the clip's
    row index in `ds`) to every row, for :func:`trainer.data.splits.expand_splits`; a segment row's ``path`` is the
    clip's with ``@<start>-<end>s`` appended (a unique clip id for evaluation and caches; ``audio`` stays the
    clip's). A cropped or split row keeps the clip's emotion and speaker but gets an empty ``transcript`` (no ASR
    loss): the clip's transcript cannot be aligned to a part of it. Other policies leave a longer clip to
    :func:`load_audio`'s 30 s check.

    Args:
        ds: a corpus dataset with an ``audio`` column (``Audio(decode=False)``).
        feature_extractor: the backbone's `WhisperFeatureExtractor`.
        max_duration: longest clip kept whole, in seconds; long_clips: the policy for longer ones.
        num_proc: worker processes for the map.
        cache_file_name: Arrow cache file for the result.
        load_from_cache_file: reuse a matching cache file when there is one.

    Returns:
        The dataset with two more columns (three under ``"split"``); ``num_frames`` is the clip's true frame count
        (odd or even).
    """
    features = ds.features.copy()
    # Sequence (not List) keeps datasets 3.x working; on datasets >= 4 it is the same List(List(float32)) type.
    features["input_features"] = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    features["num_frames"] = datasets.Value("int32")
    if long_clips in ("crop", "split"):
        features["clip_row"] = datasets.Value("int64")
        mapped = ds.map(
            _log_mel_segments,
            fn_kwargs={"feature_extractor": feature_extractor, "max_duration": max_duration, "long_clips": long_clips},
            batched=True,
            batch_size=16,
            with_indices=True,
            features=features,
            num_proc=num_proc,
            cache_file_name=cache_file_name,
            load_from_cache_file=load_from_cache_file,
            desc=f"log-Mel features ({long_clips} clips over {max_duration:g} s)",
        )
        # A crop keeps one row per clip: row i is clip i, so the column would say nothing.
        return mapped.remove_columns("clip_row") if long_clips == "crop" else mapped
    return ds.map(
        _log_mel_row,
        fn_kwargs={"feature_extractor": feature_extractor},
        features=features,
        num_proc=num_proc,
        cache_file_name=cache_file_name,
        load_from_cache_file=load_from_cache_file,
        desc="log-Mel features",
    )


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
        padding: ``"short"`` pads to the longest clip of the batch, rounded up to even (the frame rule), with
            zeros — padded frames are masked out, so their value is irrelevant. ``"pad_to_30s"`` pads to `max_frames` the way stock
            Whisper does: each clip's padding takes that clip's log-Mel floor ``max(clip_max - 2.0, -1.5)``, the
            exact value the feature extractor gives zero-padded audio, without re-decoding the audio. It differs
            from running the extractor on the audio padded to 30 s only around the clip's end: the last real
            frame when its STFT window overhangs the end, and the first two to four padded frames, which in the
            stock version still see the clip's last samples.
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
                batch[index, :, length:] = max(float(feature.max()) - LOG_MEL_RANGE, LOG_MEL_SILENCE)
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
