"""The `audio-classification` pipeline for C-TriLoRA: clips at their true length, calibrated probabilities.

The stock `AudioClassificationPipeline` pads every clip to Whisper's 30 s window without a frame mask (85–93 % of the
encoder's work is padding on 2–5 s emotion clips, and a model with a shorter window rejects it), and scores with a
plain softmax. For a `WhisperForTriLoRA` model, `CTriLoRAAudioClassificationPipeline` instead

- reads, checks and resamples audio and extracts log-Mel features with `feature_extraction_ctrilora`, the one
  implementation training uses too: soundfile (no ffmpeg), mono, librosa's soxr to the extractor's rate, the clip's
  true-length log-Mel with the frame rule (an odd frame count gets one masked zero frame) and the frame
  `attention_mask` — or the stock 30 s pad for a model configured with `input_padding="pad_to_30s"`;
- scores with `model.predict_emotion(..., domain=...)`: softmax after the fitted temperature, `"in_domain"` (source
  validation) or `"target"` (domain-adaptive);
- with `chunk_length_s=` (the Hugging Face ASR pipeline's name), scores a recording of any length segment by segment
  and returns its emotion timeline (`modeling_ctrilora.timeline`: segments, whole-file aggregate).

Importing this module registers the class for the `"audio-classification"` task (`register_ctrilora_pipeline`). For
every other model the class runs the stock code unchanged, so registering it does not alter other pipelines.

Example:
    >>> import modeling_ctrilora.pipeline  # done by `import modeling_ctrilora`
    >>> from transformers import pipeline
    >>> classifier = pipeline("audio-classification", model="me/ctrilora-kazemotts")  # doctest: +SKIP
    >>> classifier("clip.wav", domain="target", top_k=2)  # doctest: +SKIP
    [{'score': 0.71, 'label': 'angry'}, {'score': 0.12, 'label': 'neutral'}]
    >>> timeline = classifier("interview.wav", chunk_length_s=5)  # doctest: +SKIP
    >>> timeline["label"], [(s["start"], s["end"], s["label"]) for s in timeline["segments"]][:2]  # doctest: +SKIP
    ('neutral', [(0.0, 5.0, 'neutral'), (5.0, 10.0, 'angry')])
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForAudioClassification
from transformers.pipelines import PIPELINE_REGISTRY, AudioClassificationPipeline

from .feature_extraction_ctrilora import (
    AudioInputError,
    BadAudioError,
    check_audio,
    extract_batch_features,
    extract_features,
    load_audio,
    max_clip_samples,
    resample,
)
from .hardware import warn_if_bf16_is_slow
from .modeling_ctrilora import DOMAINS, WhisperForTriLoRA
from .timeline import Timeline, check_chunking, segment_bounds

TASK = "audio-classification"
# dtypes that run as autocast around the model forward (weights stay fp32); anything else runs in fp32.
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)

logger = std_logging.getLogger(__name__)
# Keyword arguments of a call (and of the constructor) for a C-TriLoRA model; anything else raises instead of being
# dropped silently. The constructor also takes the usual model/feature_extractor/device/dtype arguments.
ACCEPTED_ARGUMENTS = (
    "top_k", "domain", "batch_size", "num_workers", "chunk_length_s", "hop_length_s", "segment_batch_size"
)
# Segments of one recording per model forward (chunked calls): bounded memory on hour-long files.
SEGMENT_BATCH_SIZE = 16


def pcm_to_float(waveform: np.ndarray) -> np.ndarray:
    """A waveform as float32 in [-1, 1]: integer PCM is scaled as WAV readers do, floats are kept as they are.

    Signed integers are divided by ``2**(bits-1)`` (int16: 32768); unsigned ones (8-bit WAV) are centred on half
    their range first. Without this an int16 array read as floats is 32768× too loud, and the log-Mel (normalised to
    the clip's maximum, but floored at an absolute level) changes: a top score of 0.98 instead of 0.39 was seen.

    Example:
        >>> pcm_to_float(np.array([-32768, 0, 16384], dtype=np.int16))
        array([-1. ,  0. ,  0.5], dtype=float32)
    """
    if np.issubdtype(waveform.dtype, np.integer):
        info = np.iinfo(waveform.dtype)
        half = (int(info.max) + 1) // 2 if info.min == 0 else -int(info.min)
        offset = half if info.min == 0 else 0
        return ((waveform.astype(np.float64) - offset) / half).astype(np.float32)
    return np.asarray(waveform, dtype=np.float32)


class CTriLoRAAudioClassificationPipeline(AudioClassificationPipeline):
    """`audio-classification` with calibrated scores for `WhisperForTriLoRA`; the stock pipeline for other models.

    Inputs are those of `AudioClassificationPipeline`: a file path, the file's bytes, a waveform at the feature
    extractor's rate, or `{"raw" | "array": waveform, "sampling_rate": int}` (resampled with librosa). Integer PCM
    arrays (int16, int32, uint8, ...) are scaled to [-1, 1] as a WAV reader would (`pcm_to_float`); every waveform
    passes the audio check training applies (`feature_extraction_ctrilora.check_audio`). Keyword arguments other than
    `ACCEPTED_ARGUMENTS` (`top_k`, `domain`, `batch_size`, `num_workers`) raise `TypeError` for a C-TriLoRA model
    instead of being dropped. Extra call/constructor argument, C-TriLoRA models only:

    domain (`str`, defaults to `"in_domain"`):
        Which fitted temperature turns logits into probabilities: `"in_domain"` for audio like the source corpus,
        `"target"` for audio like the target corpus (falls back to the in-domain one when none was fitted).

    dtype (`torch.dtype` or its name, constructor only; `torch_dtype` is the older name), e.g.
    `pipeline("audio-classification", model=..., dtype=torch.bfloat16)`:
        `torch.bfloat16` / `torch.float16` run the model forward under autocast in that dtype; the weights stay fp32
        (a checkpoint that `pipeline()` loaded in bf16 is reloaded in fp32, since LoRA merges and the standardisation
        statistics need fp32) and the feature extraction stays fp32. A warning is logged when bf16 runs on a CPU
        without native bf16 (`modeling_ctrilora.hardware`), where it is slower than fp32. Default: fp32.

    chunk_length_s (`float`, optional; the name of the ASR pipeline's argument):
        Score the input in segments of this many seconds (at most the model's window, 30 s for Whisper) and return
        its emotion timeline instead of a list: a dict with the whole-file `label`, `score`, `scores` (top-k),
        `probabilities`, and `segments` `[{"start", "end", "label", "score", "probabilities"}]` (seconds), segmented
        and aggregated as `modeling_ctrilora.timeline` documents (the whole-file label is the duration-weighted mean
        of the segment probabilities; a last segment under 0.1 s is merged into the previous one). Needed for
        inputs longer than the window, which otherwise raise `AudioInputError`.

    hop_length_s (`float`, optional, chunked calls only; defaults to `chunk_length_s`):
        Seconds between segment starts; less than `chunk_length_s` gives overlapping segments. (The ASR pipeline's
        `stride_length_s` means the overlap on each side of a chunk, which is not this; it is not accepted.)

    segment_batch_size (`int`, defaults to 16, chunked calls only):
        Segments of one input per model forward, padded in time and masked (no segment's score depends on it).
        `batch_size` (inputs per forward) must stay 1 with chunking: each input is already a batch of segments.

    Scores are `model.predict_emotion` probabilities, best first, `top_k` of them (default 5, capped at the number of
    emotions); `function_to_apply` is not accepted, the probabilities are always the calibrated softmax.
    Batching (`batch_size > 1`) pads clips in time and masks the padding, so no clip's score depends on its batch.

    Example:
        >>> from transformers import pipeline
        >>> classifier = pipeline("audio-classification", model="runs/full/checkpoint-500")  # doctest: +SKIP
        >>> classifier(["a.wav", "b.wav"], batch_size=2, domain="target")  # doctest: +SKIP
    """

    def __init__(self, model, *args, **kwargs):
        requested = _requested_dtype(kwargs.get("dtype"), kwargs.get("torch_dtype"))
        autocast_dtype = requested if requested in AUTOCAST_DTYPES else None
        if isinstance(model, WhisperForTriLoRA) and autocast_dtype is not None:
            model = _fp32_master_weights(model)
        super().__init__(model, *args, **kwargs)
        self.autocast_dtype = autocast_dtype if self._is_ctrilora() else None
        if self.autocast_dtype == torch.bfloat16:
            warn_if_bf16_is_slow(self.device)

    def _is_ctrilora(self) -> bool:
        return isinstance(self.model, WhisperForTriLoRA)

    def _autocast(self):
        """Autocast in `self.autocast_dtype` for the model forward only (preprocessing and scores stay fp32)."""
        if getattr(self, "autocast_dtype", None) is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def __call__(self, inputs, **kwargs):
        chunked = kwargs.get("chunk_length_s", self._preprocess_params.get("chunk_length_s")) is not None
        batch_size = kwargs.get("batch_size") or self._batch_size or 1
        if self._is_ctrilora() and chunked and batch_size > 1:
            raise ValueError(
                f"batch_size={batch_size} with chunk_length_s: each input is already scored as one batch of its "
                "segments; leave batch_size at 1 and set segment_batch_size (segments per forward) instead"
            )
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(
        self, top_k=None, function_to_apply=None, domain=None, chunk_length_s=None, hop_length_s=None,
        segment_batch_size=None, **kwargs,
    ):
        if not self._is_ctrilora():
            for name, value in (("domain", domain), ("chunk_length_s", chunk_length_s), ("hop_length_s", hop_length_s),
                                ("segment_batch_size", segment_batch_size)):
                if value is not None:
                    raise ValueError(f"`{name}` applies to C-TriLoRA models only, not {type(self.model).__name__}")
            return super()._sanitize_parameters(top_k=top_k, function_to_apply=function_to_apply, **kwargs)
        if function_to_apply is not None:
            raise ValueError(
                "C-TriLoRA scores are always the temperature-calibrated softmax; drop `function_to_apply` "
                "(use `domain` to choose the temperature)"
            )
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; a C-TriLoRA model accepts "
                f"{', '.join(ACCEPTED_ARGUMENTS)}"
            )
        preprocess_params, forward_params = {}, {}
        if domain is not None:
            if domain not in DOMAINS:
                raise ValueError(f"domain={domain!r}; expected one of {DOMAINS}")
            forward_params["domain"] = domain
        if chunk_length_s is not None:
            window = max_clip_samples(self.model.config, self.feature_extractor) / self.feature_extractor.sampling_rate
            preprocess_params["chunk_length_s"] = float(chunk_length_s)
            preprocess_params["hop_length_s"] = check_chunking(float(chunk_length_s), hop_length_s, window)
        elif hop_length_s is not None:
            raise ValueError("hop_length_s needs chunk_length_s (the segment length) as well")
        if segment_batch_size is not None:
            if int(segment_batch_size) < 1:
                raise ValueError(f"segment_batch_size={segment_batch_size!r}; expected an integer ≥ 1")
            forward_params["segment_batch_size"] = int(segment_batch_size)
        _, _, postprocess_params = super()._sanitize_parameters(top_k=top_k)
        return preprocess_params, forward_params, postprocess_params

    def _waveform(self, inputs: Any) -> np.ndarray:
        """Any accepted input → mono float32 waveform at the feature extractor's rate."""
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, (str, os.PathLike, bytes)):
            return load_audio(inputs, rate, max_seconds=None)  # the model's window is checked by extract_features
        if isinstance(inputs, dict):
            if "sampling_rate" not in inputs or not ("raw" in inputs or "array" in inputs):
                raise ValueError(
                    'a dict input needs the waveform under "raw" or "array" and its "sampling_rate"'
                )
            waveform = inputs["raw"] if "raw" in inputs else inputs["array"]
            rate_in = inputs["sampling_rate"]
        else:
            waveform, rate_in = inputs, rate
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.cpu().numpy()
        waveform = pcm_to_float(np.asarray(waveform))
        if waveform.ndim != 1:
            raise ValueError(f"expected a mono waveform (1-D), got shape {waveform.shape}")
        return resample(check_audio(waveform, int(rate_in), "<array>"), int(rate_in), rate)

    def preprocess(self, inputs, chunk_length_s=None, hop_length_s=None):
        if not self._is_ctrilora():
            return super().preprocess(inputs)
        waveform = self._waveform(inputs)
        if chunk_length_s is not None:
            return self._segments(waveform, chunk_length_s, hop_length_s)
        try:
            features = extract_features(self.feature_extractor, waveform, self.model.config)
        except AudioInputError as error:
            if len(waveform) > max_clip_samples(self.model.config, self.feature_extractor):
                raise AudioInputError(f"{error}; or pass chunk_length_s= to score it segment by segment") from None
            raise
        # Stored time-major (1, T, n_mels): the stock batch collate pads dimension 1, so for batch_size > 1 it pads in
        # time (with zeros, mask 0) instead of across mel bins.
        return {"frames": features["input_features"].transpose(1, 2), "attention_mask": features["attention_mask"]}

    def _segments(self, waveform: np.ndarray, chunk_length_s: float, hop_length_s: float) -> dict[str, Any]:
        """A chunked input: every segment's features in one padded batch (the one feature path), and the timeline."""
        rate = self.feature_extractor.sampling_rate
        notes: list[str] = []
        bounds = segment_bounds(len(waveform), rate, chunk_length_s, hop_length_s,
                                max_samples=max_clip_samples(self.model.config, self.feature_extractor), notes=notes)
        scored, skipped = [], {}
        for index, (start, end) in enumerate(bounds):
            try:  # a pause of digital silence is refused, as a clip would be; it stays in the timeline unscored
                check_audio(waveform[start:end], rate, f"segment {start / rate:.2f}-{end / rate:.2f} s")
            except BadAudioError as error:
                skipped[index] = error.problem
                continue
            scored.append(index)
        features = extract_batch_features(
            self.feature_extractor, [waveform[bounds[index][0]:bounds[index][1]] for index in scored], self.model.config
        )
        timeline = Timeline(
            labels=[self.model.config.id2label[index] for index in range(len(self.model.config.id2label))],
            bounds=bounds, rate=rate, probabilities={}, chunk_seconds=chunk_length_s, hop_seconds=hop_length_s,
            duration=len(waveform) / rate, skipped=skipped, notes=notes,
        )
        return {"segment_features": features["input_features"], "segment_mask": features["attention_mask"],
                "scored": scored, "timeline": timeline}

    def _forward(self, model_inputs, domain: str = "in_domain", segment_batch_size: int = SEGMENT_BATCH_SIZE):
        if not self._is_ctrilora():
            return super()._forward(model_inputs)
        if "timeline" in model_inputs:
            features, mask = model_inputs["segment_features"], model_inputs["segment_mask"]
            parts = []
            for start in range(0, features.shape[0], segment_batch_size):
                with self._autocast():
                    parts.append(self.model.predict_emotion(
                        features[start:start + segment_batch_size], mask[start:start + segment_batch_size],
                        domain=domain,
                    ).float())
            return {"segment_probabilities": torch.cat(parts), "scored": model_inputs["scored"],
                    "timeline": model_inputs["timeline"]}
        features = model_inputs["frames"].transpose(1, 2)
        with self._autocast():
            probabilities = self.model.predict_emotion(features, model_inputs["attention_mask"], domain=domain)
        return {"probabilities": probabilities.float()}

    def postprocess(self, model_outputs, top_k=5, function_to_apply=None):
        if not self._is_ctrilora():
            return super().postprocess(model_outputs, top_k=top_k, function_to_apply=function_to_apply)
        if "timeline" in model_outputs:
            timeline = model_outputs["timeline"]
            probabilities = model_outputs["segment_probabilities"].cpu().numpy()
            timeline.probabilities = dict(zip(model_outputs["scored"], probabilities))
            return timeline.to_dict(top_k=top_k)
        scores, ids = model_outputs["probabilities"][0].topk(top_k)
        return [
            {"score": score, "label": self.model.config.id2label[index]}
            for score, index in zip(scores.tolist(), ids.tolist())
        ]


def _requested_dtype(dtype: Any, torch_dtype: Any) -> torch.dtype | None:
    """The dtype asked of `pipeline()` (`dtype`, else the older `torch_dtype`); `None` for "auto" or none."""
    for value in (dtype, torch_dtype):
        if isinstance(value, str) and value != "auto":
            value = getattr(torch, value, None)
        if isinstance(value, torch.dtype):
            return value
    return None


def _fp32_master_weights(model: WhisperForTriLoRA) -> WhisperForTriLoRA:
    """`model` with fp32 weights: as it is when it has them, else reloaded in fp32 from where it came from.

    `pipeline(..., dtype=torch.bfloat16)` loads a checkpoint given by name in bf16; C-TriLoRA keeps fp32 weights and
    runs bf16 as autocast, so the checkpoint is read again in fp32 (upcasting the bf16 copy would keep its rounding).
    """
    floating = {parameter.dtype for parameter in model.parameters() if parameter.is_floating_point()}
    if floating <= {torch.float32}:
        return model
    source = getattr(model, "name_or_path", None)
    was_training = model.training
    try:
        if not source:
            raise OSError("the model records no checkpoint to reload")
        reloaded = type(model).from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError) as error:
        logger.warning("C-TriLoRA weights arrived in %s and could not be reloaded in fp32 (%s); upcasting them",
                       sorted(map(str, floating)), error)
        return model.float()
    return reloaded.to(model.device).train(was_training)


def register_ctrilora_pipeline() -> None:
    """Make `transformers.pipeline("audio-classification", ...)` use `CTriLoRAAudioClassificationPipeline`.

    Idempotent. Keeps the task's model classes, default model and type, so other models get the stock behaviour.
    """
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK, {})
    if current.get("impl") is CTriLoRAAudioClassificationPipeline:
        return
    # `register_pipeline` warns that it overwrites a built-in task, which is the point here; keep imports quiet.
    registry_logger = std_logging.getLogger("transformers.pipelines.base")
    level = registry_logger.level
    registry_logger.setLevel(std_logging.ERROR)
    try:
        PIPELINE_REGISTRY.register_pipeline(
            TASK,
            pipeline_class=CTriLoRAAudioClassificationPipeline,
            pt_model=tuple(current.get("pt", ())) or AutoModelForAudioClassification,
            default=current.get("default"),
            type=current.get("type", "audio"),
        )
    finally:
        registry_logger.setLevel(level)


register_ctrilora_pipeline()


__all__ = [
    "ACCEPTED_ARGUMENTS",
    "AudioInputError",
    "CTriLoRAAudioClassificationPipeline",
    "DOMAINS",
    "extract_features",
    "load_audio",
    "max_clip_samples",
    "pcm_to_float",
    "register_ctrilora_pipeline",
]
