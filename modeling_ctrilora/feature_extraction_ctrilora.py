"""Audio → Whisper log-Mel for C-TriLoRA: one implementation for training, evaluation, the pipeline and the CLI.

Every path from a clip to the model's ``input_features`` runs through this module:

1. **decode** (:func:`read_audio`): a file path, the file's bytes, or a `datasets` ``Audio(decode=False)`` value
   ``{"bytes", "path"}``, read with soundfile (WAV/FLAC/OGG/MP3 without system FFmpeg) as float32;
2. **check** (:func:`check_audio`): the clip-level checks, one function for training and inference; a bad clip
   raises :class:`BadAudioError` ``"<file>: <problem>"``;
3. **resample** (:func:`resample`): channels averaged to mono, librosa's soxr (``soxr_hq``) to 16 kHz;
4. **log-Mel** (:func:`log_mel`): the checkpoint's `WhisperFeatureExtractor` at the clip's true length
   (``padding="longest"`` on one clip = no padding): ``L // hop_length`` frames for ``L`` samples;
5. **the frame rule** (:func:`pad_frames`, :func:`apply_frame_rule`): Whisper's stride-2 convolution needs an even
   frame count, so **an odd count gets one zero frame appended and masked** (padded, never cropped). A 16,240-sample
   clip is 101 real frames + 1 masked frame everywhere.

Example:
    >>> from transformers import WhisperFeatureExtractor
    >>> fe = WhisperFeatureExtractor.from_pretrained("openai/whisper-base")  # doctest: +SKIP
    >>> audio = load_audio("clip.wav")  # float32 mono at 16 kHz  # doctest: +SKIP
    >>> features, mask = pad_frames([log_mel(audio, fe)])  # (1, 80, T even), (1, T)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import librosa
import numpy as np
import soundfile
import torch
from transformers import BatchFeature, FeatureExtractionMixin, PretrainedConfig

SAMPLING_RATE = 16_000
# What a folder of audio expands to (`ctrilora predict`, `ctrilora adapt`): soundfile reads these without FFmpeg.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_SECONDS = 30.0  # Whisper's encoder window; a longer clip cannot be encoded whole.
# Two mel frames (20 ms): Whisper's stride-2 convolution turns them into one encoder position, the minimum.
MIN_SAMPLES = 2 * 160
# Shortest clip given an emotion label (training and inference): 0.1 s is about half a syllable; a shorter clip
# holds too little speech for a label to mean anything, yet the model would still give a confident one.
MIN_SECONDS = 0.1
# Digital silence: every sample below 1e-4 in magnitude (-80 dBFS, about 3 LSB of 16-bit audio, so a recorder's
# dither counts as silence). Speech, even whispered far from the microphone, peaks well above it.
SILENCE_PEAK = 1e-4
# Whisper's log-Mel is clamped at (max - 8) in log10 units then mapped by (x + 4) / 4, so its floor sits 2.0 below
# the clip's maximum, and never below the value of digital silence, log10(1e-10) -> (-10 + 4) / 4.
LOG_MEL_RANGE = 2.0
LOG_MEL_SILENCE = -1.5

AudioSource = str | os.PathLike | bytes | Mapping[str, Any]


class AudioInputError(ValueError):
    """An audio input the model cannot take: missing, unreadable, empty, or longer than the model's window."""


class BadAudioError(AudioInputError):
    """A clip that cannot be used; ``str(error)`` is ``"<file>: <problem>"``.

    Attributes:
        path: the file (or the name of embedded audio bytes / an array).
        problem: what is wrong, e.g. ``"file not found"``.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def source_name(source: AudioSource) -> str:
    """How errors name `source`: the path, or ``<bytes>`` / ``<embedded audio bytes>`` for bytes without one."""
    if isinstance(source, bytes):
        return "<bytes>"
    if isinstance(source, Mapping):
        return str(source.get("path") or "<embedded audio bytes>")
    return os.fspath(source)


def read_audio(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode `source` to ``(frames, channels)`` float32 at the file's own rate (bytes win over a path).

    Raises:
        BadAudioError: ``"<file>: file not found"`` or ``"<file>: unreadable audio (<reason>)"``.
    """
    name = source_name(source)
    payload = source if isinstance(source, bytes) else source.get("bytes") if isinstance(source, Mapping) else None
    if payload is None:
        if not name or not os.path.isfile(name):
            raise BadAudioError(name, "file not found")
        handle: Any = name
    else:
        handle = io.BytesIO(payload)
    try:
        data, sampling_rate = soundfile.read(handle, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise BadAudioError(name, f"unreadable audio ({error})") from error
    return data, int(sampling_rate)


def check_audio(samples: np.ndarray, sample_rate: int, source: str) -> np.ndarray:
    """Every clip-level check of training and inference; returns the mono mix (channel mean) as float32.

    Args:
        samples: ``(num_samples,)`` mono or ``(num_samples, channels)`` audio.
        sample_rate: its rate in Hz.
        source: how the error names the clip (a path, ``"<array>"``).

    Raises:
        BadAudioError: not 1-D/2-D, empty, shorter than :data:`MIN_SECONDS` (0.1 s), NaN/inf samples, or digital
            silence (every sample below :data:`SILENCE_PEAK`, 1e-4, in magnitude); the message names `source` and
            the problem.
    """
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise BadAudioError(source, f"expected (samples,) or (samples, channels) audio, got shape {samples.shape}")
    if samples.size == 0:
        raise BadAudioError(source, "empty audio (0 samples)")
    data = samples.reshape(samples.shape[0], -1)
    num_samples = data.shape[0]
    if num_samples < MIN_SECONDS * sample_rate:
        duration_ms = num_samples / sample_rate * 1000
        raise BadAudioError(source, f"clip is too short ({duration_ms:.1f} ms; at least {MIN_SECONDS * 1000:.0f} ms)")
    if not np.isfinite(data).all():
        raise BadAudioError(source, "audio contains NaN or infinite samples")
    mono = data.astype(np.float32, copy=False).mean(axis=1)
    peak = float(np.abs(mono).max())  # of what the model hears: the mono mix
    if peak < SILENCE_PEAK:
        raise BadAudioError(
            source, f"digital silence: every sample is below {SILENCE_PEAK:g} in magnitude (peak {peak:.1e})"
        )
    return mono


def check_duration(num_samples: int, sample_rate: int, source: str, max_seconds: float = MAX_SECONDS) -> None:
    """Raise :class:`BadAudioError` when the clip is longer than `max_seconds` (Whisper's 30 s window)."""
    duration = num_samples / sample_rate
    if duration > max_seconds:
        raise BadAudioError(source, f"clip is {duration:.2f} s long; Whisper encodes at most {max_seconds:.0f} s")


def resample(audio: np.ndarray, rate: int, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mono `audio` at `rate` → contiguous float32 at `sampling_rate` (librosa's soxr, ``soxr_hq``)."""
    if rate != sampling_rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sampling_rate, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_audio(
    source: AudioSource, sampling_rate: int = SAMPLING_RATE, max_seconds: float | None = MAX_SECONDS
) -> np.ndarray:
    """Decode, check and resample a clip: ``(num_samples,)`` float32 mono at `sampling_rate`.

    Args:
        source: a file path, the file's bytes, or an ``Audio(decode=False)`` value ``{"bytes": ..., "path": ...}``.
        sampling_rate: output rate.
        max_seconds: longest clip accepted (`None`: no limit, e.g. for audio that is split into segments later).

    Raises:
        BadAudioError: as :func:`read_audio`, :func:`check_audio` and :func:`check_duration`; the message names the file.

    Example:
        >>> load_audio("clip_22k_stereo.wav").shape  # 1 s at 22.05 kHz -> (16000,)  # doctest: +SKIP
    """
    data, rate = read_audio(source)
    name = source_name(source)
    mono = check_audio(data, rate, name)
    if max_seconds is not None:
        check_duration(data.shape[0], rate, name, max_seconds)
    return resample(mono, rate, sampling_rate)


# ------------------------------------------------------------------------------------------------ log-Mel, frames
def log_mel(audio: np.ndarray, feature_extractor: FeatureExtractionMixin) -> np.ndarray:
    """Whisper log-Mel of one clip at its true length: ``(n_mels, L // hop_length)`` float32 (the count may be odd).

    Args:
        audio: ``(L,)`` float32 mono at ``feature_extractor.sampling_rate`` (see :func:`load_audio`).
        feature_extractor: the checkpoint's `WhisperFeatureExtractor`.
    """
    features = feature_extractor(
        audio,
        sampling_rate=feature_extractor.sampling_rate,
        padding="longest",
        return_attention_mask=False,
        return_tensors="np",
    )["input_features"][0]
    return np.ascontiguousarray(features, dtype=np.float32)


def even_frames(num_frames: int) -> int:
    """The frame rule: an odd count gets one (masked, zero) frame more; Whisper's stride-2 conv needs an even count."""
    return num_frames + num_frames % 2


def pad_frames(features: Sequence[np.ndarray], total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(n_mels, T_i)`` log-Mels into one batch and its frame mask (the frame rule for the batch).

    Args:
        features: one float32 array per clip, each at its true length.
        total: padded frame count; default the longest clip's count, rounded up to even (:func:`even_frames`).

    Returns:
        ``(B, n_mels, total)`` float32 features, zero after each clip, and the ``(B, total)`` long frame mask, 1 on
        real frames.
    """
    lengths = [feature.shape[-1] for feature in features]
    total = even_frames(max(lengths)) if total is None else total
    # A data-side batch (collator, pipeline preprocessing): built on the CPU, moved with the rest of the batch.
    batch = torch.zeros((len(features), features[0].shape[0], total), dtype=torch.float32, device="cpu")
    mask = torch.zeros((len(features), total), dtype=torch.long, device="cpu")
    for index, (feature, length) in enumerate(zip(features, lengths)):
        batch[index, :, :length] = torch.from_numpy(np.asarray(feature, dtype=np.float32))
        mask[index, :length] = 1
    return batch, mask


def apply_frame_rule(
    input_features: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A ``(B, n_mels, T)`` batch with odd ``T`` gets one zero frame appended, masked out (mask created if `None`)."""
    frames = input_features.shape[-1]
    if frames % 2 == 0:
        return input_features, attention_mask
    if attention_mask is None:
        attention_mask = torch.ones(input_features.shape[0], frames, dtype=torch.long, device=input_features.device)
    return torch.nn.functional.pad(input_features, (0, 1)), torch.nn.functional.pad(attention_mask, (0, 1))


def padding_floor(input_features: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the value Whisper's extractor gives zero-padded audio in each clip: ``max(clip max − 2, −1.5)``."""
    return torch.clamp(input_features.amax(dim=(1, 2)) - LOG_MEL_RANGE, min=LOG_MEL_SILENCE)


def detect_padding(input_features: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` long frame mask of features padded by the stock extractor without a mask (1 = real frame).

    The stock `WhisperFeatureExtractor` pads the *waveform* with zeros, so every frame whose STFT window holds only
    padding has one value in every mel bin: the clip's floor ``max(clip max − 2, −1.5)``. The trailing run of
    frames that are constant across mel bins and equal to the last frame, when that value is the floor, is
    padding. Frames straddling the clip's end are not constant and stay real. A clip that itself ends in digital
    silence (every bin at the floor) loses that silent tail; a clip with no trailing floor frame keeps every frame.
    At least one frame per clip stays real.
    """
    input_features = input_features.float()
    last = input_features[:, :, -1:]
    constant = (input_features == last).all(dim=1)  # (B, T): frame equals the last frame in every bin
    at_floor = (last[:, 0, 0] - padding_floor(input_features)).abs() <= 1e-4
    constant = constant & at_floor[:, None]
    # Length of the trailing run of constant frames: reverse, cumulative product, sum.
    trailing = constant.flip(-1).long().cumprod(-1).sum(-1)
    real = (input_features.shape[-1] - trailing).clamp_min(1)
    return (torch.arange(input_features.shape[-1], device=input_features.device)[None, :] < real[:, None]).long()


def max_clip_samples(config: PretrainedConfig, feature_extractor: FeatureExtractionMixin) -> int:
    """Longest clip (in samples) the encoder takes: 2·max_source_positions mel frames (30 s for real Whisper)."""
    return 2 * int(config.max_source_positions) * int(feature_extractor.hop_length)


def pad_to_window(
    feature_extractor: FeatureExtractionMixin, clips: Sequence[np.ndarray], max_samples: int
) -> BatchFeature:
    """Stock Whisper input: each waveform zero-padded to `max_samples` (30 s) by the extractor, with its frame mask.

    Returns:
        `input_features` (B, n_mels, max_samples // hop_length) and the long `attention_mask` (B, frames), 1 on the
        ``ceil(L / hop_length)`` frames that overlap clip ``L``.
    """
    encoded = feature_extractor(
        list(clips),
        sampling_rate=feature_extractor.sampling_rate,
        padding="max_length",
        max_length=max_samples,
        return_attention_mask=True,
        return_tensors="pt",
    )
    encoded["attention_mask"] = encoded["attention_mask"].long()
    return encoded


def extract_features(
    feature_extractor: FeatureExtractionMixin, audio: np.ndarray, config: PretrainedConfig
) -> BatchFeature:
    """Whisper log-Mel features of one clip as `WhisperForTriLoRA` takes them: :func:`log_mel` + the frame rule.

    `input_padding="short"` (default): the clip's true-length log-Mel, one masked zero frame appended when the
    count is odd — the same array as training's (:func:`pad_frames`). `"pad_to_30s"`: the stock path, the waveform
    zero-padded to the full window by the extractor; the mask marks the clip's frames.

    Args:
        feature_extractor: the checkpoint's `WhisperFeatureExtractor`.
        audio: mono waveform at `feature_extractor.sampling_rate`.
        config: the model's config (`max_source_positions`, `input_padding`).

    Returns:
        `input_features` (1, n_mels, T) and `attention_mask` (1, T) tensors.

    Raises:
        AudioInputError: the clip is empty or longer than the model's window (Whisper: 30 s) — split it first.

    Example:
        >>> features = extract_features(feature_extractor, np.ones(16000, np.float32), model.config)  # doctest: +SKIP
        >>> features["input_features"].shape, int(features["attention_mask"].sum())  # doctest: +SKIP
        (torch.Size([1, 80, 100]), 100)
    """
    return extract_batch_features(feature_extractor, [audio], config)


def extract_batch_features(
    feature_extractor: FeatureExtractionMixin, clips: Sequence[np.ndarray], config: PretrainedConfig
) -> BatchFeature:
    """:func:`extract_features` for several clips at once: one padded batch and its frame mask.

    Each clip gets exactly the features it gets alone (its own true-length log-Mel, normalised to its own maximum);
    the batch pads in time with masked zero frames (:func:`pad_frames`), so no clip's score depends on its batch.
    Used for the segments of a long recording (`modeling_ctrilora.timeline`).

    Returns:
        `input_features` (B, n_mels, T) and `attention_mask` (B, T) tensors.

    Raises:
        AudioInputError: a clip is empty or longer than the model's window.
    """
    if not len(clips):
        raise AudioInputError("no clip to extract features from")
    limit = max_clip_samples(config, feature_extractor)
    rate = feature_extractor.sampling_rate
    for audio in clips:
        if len(audio) > limit:
            raise AudioInputError(
                f"clip is {len(audio) / rate:.1f} s; this model takes at most {limit / rate:.1f} s (split the clip first)"
            )
        if len(audio) == 0:
            raise AudioInputError("clip holds no audio samples")
    if getattr(config, "input_padding", "short") == "pad_to_30s":
        return pad_to_window(feature_extractor, clips, limit)
    features, mask = pad_frames([log_mel(audio, feature_extractor) for audio in clips])
    return BatchFeature({"input_features": features, "attention_mask": mask})


__all__ = [
    "AUDIO_EXTENSIONS",
    "LOG_MEL_RANGE",
    "LOG_MEL_SILENCE",
    "MAX_SECONDS",
    "MIN_SAMPLES",
    "MIN_SECONDS",
    "SAMPLING_RATE",
    "SILENCE_PEAK",
    "AudioInputError",
    "BadAudioError",
    "apply_frame_rule",
    "check_audio",
    "check_duration",
    "detect_padding",
    "even_frames",
    "extract_batch_features",
    "extract_features",
    "load_audio",
    "log_mel",
    "max_clip_samples",
    "pad_frames",
    "pad_to_window",
    "padding_floor",
    "read_audio",
    "resample",
    "source_name",
]
