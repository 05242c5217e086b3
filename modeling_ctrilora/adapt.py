"""Adapt a trained C-TriLoRA checkpoint to unlabeled audio of a new corpus, without its source data.

What someone with a checkpoint and a folder of their own recordings can do without labels (`ctrilora adapt`):

1. **Target statistics** (AdaBN, Li et al. 2016), always: the pooled encoder state of the user's clips is
   standardised with their own mean and variance (`WhisperForTriLoRA.fit_target_statistics`), so predicting with
   `domain="target"` centres the new corpus on itself. No hyper-parameters.
2. **Source-free adaptation of the LoRA weights** when `steps > 0`: SHOT's information maximisation (Liang, Hu & Feng
   2020, "Do we really need to access the source data?"). As in SHOT the classifier ("hypothesis") is frozen — here
   everything but the encoder's LoRA matrices — and the LoRA matrices minimise
   `losses.information_maximization_loss` on batches of the user's clips (each prediction confident, the batch's
   predictions spread over the classes), standardised with the target statistics. The statistics are re-fitted
   before every pass over the clips and once at the end, because the encoder they summarise changes. The same loss
   is the `im` term of training (`CTriLoRAConfig.im_weight`).
3. **Temperature**: the domain-adaptive temperature (`config.target_temperature`, importance-weighted temperature
   scaling) is fitted on *labelled source* clips reweighted towards the target, which a source-free adaptation does
   not have. The adapted checkpoint keeps the trained one's temperatures, and `config.adaptation["temperature"]`
   says so: after information maximisation the model is more confident than the kept temperature assumes.

The adapted checkpoint records what it was adapted to in `config.adaptation` (audio name, clip counts, objective,
steps, the loss at the start and end), and its `README.md` — the trained checkpoint's card when it has one — gets an
"Adaptation" section (:func:`adaptation_markdown`, also used by `hub_cards.model_card`).

Example:
    >>> from modeling_ctrilora.adapt import adapt_to_audio  # doctest: +SKIP
    >>> result = adapt_to_audio("runs/full", "my_recordings/", "runs/full-adapted", steps=50)  # doctest: +SKIP
    >>> result.clips, result.loss_first, result.loss_last  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoFeatureExtractor, AutoTokenizer, FeatureExtractionMixin

from .feature_extraction_ctrilora import AUDIO_EXTENSIONS, BadAudioError, load_audio, log_mel, max_clip_samples, pad_frames
from .losses import information_maximization_loss
from .modeling_ctrilora import WhisperForTriLoRA

OBJECTIVES = ("adabn", "information_maximization")
TEMPERATURE_NOTE = "kept from the trained checkpoint (a source-free adaptation has no labelled clips to refit it)"


@dataclass
class AdaptationResult:
    """What `adapt_to_audio` did.

    Attributes:
        output_dir: the adapted checkpoint.
        clips: clips the adaptation used.
        skipped: ``(file, problem)`` of every clip left out (`on_bad_audio="skip"`).
        objective: "adabn" (statistics only) or "information_maximization" (statistics + LoRA steps).
        steps: optimiser steps taken on the LoRA matrices.
        losses: the information-maximisation loss of every step (empty for "adabn"); `loss_first` / `loss_last`
            are the means of the first and last five steps (one batch's loss is noisy).
    """

    output_dir: str
    clips: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    objective: str = "adabn"
    steps: int = 0
    losses: list[float] = field(default_factory=list)

    @property
    def loss_first(self) -> float | None:
        return float(np.mean(self.losses[:5])) if self.losses else None

    @property
    def loss_last(self) -> float | None:
        return float(np.mean(self.losses[-5:])) if self.losses else None


def audio_files(source: str | os.PathLike) -> list[str]:
    """The clips `source` names: a CSV with a ``path`` column (paths relative to the CSV's folder, as a corpus
    `metadata.csv`), a folder with a `metadata.csv`, or any other folder (every audio file under it, sorted).

    Raises:
        ValueError: `source` does not exist, a CSV without a ``path`` column or with an empty cell, or no audio.
    """
    source = Path(source)
    if source.is_dir() and (source / "metadata.csv").is_file():
        source = source / "metadata.csv"
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise ValueError(f"{source}: expected a folder of audio files or a CSV with a 'path' column")
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "path" not in (reader.fieldnames or []):
                raise ValueError(f"{source}: no 'path' column (columns: {reader.fieldnames}); expected one audio path per row")
            files = []
            for line, row in enumerate(reader, start=2):
                if not (row.get("path") or "").strip():
                    raise ValueError(f"{source}: line {line}: empty 'path' cell")
                files.append(str(source.parent / row["path"].strip()))
    elif source.is_dir():
        files = sorted(str(path) for path in source.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file())
    else:
        raise ValueError(f"{source}: neither a folder nor a CSV file")
    if not files:
        raise ValueError(f"{source}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def load_log_mels(
    files: Sequence[str], feature_extractor: FeatureExtractionMixin, max_samples: int, on_bad_audio: str = "error",
    progress: bool = True,
) -> tuple[list[str], list[np.ndarray], list[tuple[str, str]]]:
    """Decode, check and log-Mel every file (the training/inference path of `feature_extraction_ctrilora`).

    Returns:
        (kept files, their log-Mels, ``(file, problem)`` of the skipped ones).

    Raises:
        BadAudioError: the first bad clip, when `on_bad_audio="error"`.
    """
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio={on_bad_audio!r}; expected 'error' or 'skip'")
    rate = feature_extractor.sampling_rate
    kept, features, skipped = [], [], []
    for path in tqdm(files, desc="adapt: reading audio", unit="clip", disable=not progress):
        try:
            audio = load_audio(path, rate, max_seconds=max_samples / rate)
        except BadAudioError as error:
            if on_bad_audio == "error":
                raise
            skipped.append((path, error.problem))
            continue
        kept.append(path)
        features.append(log_mel(audio, feature_extractor))
    return kept, features, skipped


def _batches(features: Sequence[np.ndarray], order: Sequence[int], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    for start in range(0, len(order), batch_size):
        chunk, mask = pad_frames([features[index] for index in order[start : start + batch_size]])
        yield {"input_features": chunk, "attention_mask": mask}


def _by_length(features: Sequence[np.ndarray]) -> list[int]:
    # Statistics passes batch clips of similar length together: less padding, same statistics.
    return sorted(range(len(features)), key=lambda index: features[index].shape[-1])


def adapt_model(
    model: WhisperForTriLoRA, features: Sequence[np.ndarray], steps: int = 0, learning_rate: float = 1e-4,
    batch_size: int = 16, diversity_weight: float = 1.0, seed: int = 0, progress: bool = True,
) -> list[float]:
    """Adapt `model` in place to the clips' log-Mels: target statistics, then `steps` IM steps on the LoRA matrices.

    Args:
        model: the checkpoint (its device is used).
        features: one ``(n_mels, T)`` log-Mel per clip (:func:`load_log_mels`); at least two clips.
        steps: optimiser steps of information maximisation (0: statistics only).
        learning_rate: AdamW learning rate of the LoRA matrices (no weight decay, constant).
        batch_size: clips per step; the diversity term needs several classes' worth of clips per batch.
        diversity_weight: β of `information_maximization_loss` (1 in SHOT).
        seed: order of the clips in the IM batches.

    Returns:
        The loss of every step.
    """
    if len(features) < 2:
        raise ValueError(f"adaptation needs at least 2 clips (target statistics are a mean and a variance); got {len(features)}")
    if steps < 0 or batch_size < 1 or learning_rate <= 0:
        raise ValueError(f"steps ≥ 0, batch_size ≥ 1 and learning_rate > 0 expected; got {steps}, {batch_size}, {learning_rate}")
    device = next(model.parameters()).device
    sorted_order = _by_length(features)
    if steps == 0:
        model.fit_target_statistics(_batches(features, sorted_order, batch_size))
        return []
    lora = [parameter for name, parameter in model.named_parameters() if "lora_" in name]
    if not lora:
        raise ValueError("the model has no LoRA matrices to adapt (steps > 0 needs them)")
    trainable = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    was_training = model.training
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in lora:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(lora, lr=learning_rate, weight_decay=0.0)
    generator = np.random.default_rng(seed)
    losses: list[float] = []
    bar = tqdm(total=steps, desc="adapt: information maximisation", unit="step", disable=not progress)
    try:
        # Eval mode: no dropout, and the standardisation reads the fitted target statistics (not batch statistics).
        model.eval()
        while len(losses) < steps:
            model.fit_target_statistics(_batches(features, sorted_order, batch_size))
            for batch in _batches(features, generator.permutation(len(features)), batch_size):
                if len(losses) == steps:
                    break
                if batch["input_features"].shape[0] < min(batch_size, len(features)):
                    continue  # a short last batch: its diversity term would be measured on a few clips
                logits = model(
                    batch["input_features"].to(device), attention_mask=batch["attention_mask"].to(device), domain="target"
                ).logits
                loss = information_maximization_loss(logits, diversity_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        model.fit_target_statistics(_batches(features, sorted_order, batch_size))
    finally:
        bar.close()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(trainable[name])
        model.train(was_training)
    return losses


def adaptation_markdown(adaptation: dict) -> str:
    """The model card's "Adaptation" section for `config.adaptation` (one home for the card and `ctrilora adapt`)."""
    lines = [
        "## Adaptation",
        "",
        f"This checkpoint was adapted without labels to **{adaptation['audio']}** ({adaptation['clips']} clips"
        + (f", {adaptation['skipped']} skipped" if adaptation.get("skipped") else "") + ") with `ctrilora adapt`.",
        "",
        "- Target statistics (AdaBN): the pooled encoder state is standardised with the statistics of these clips "
        "when predicting with `domain=\"target\"`.",
    ]
    if adaptation["objective"] == "information_maximization":
        lines.append(
            f"- LoRA matrices adapted source-free for {adaptation['steps']} steps with information maximisation (SHOT, "
            f"Liang et al. 2020; learning rate {adaptation['learning_rate']:g}, batch {adaptation['batch_size']}, "
            f"diversity weight {adaptation['diversity_weight']:g}); loss (mean of the first / last five steps) "
            f"{adaptation['loss_first']:.3f} → {adaptation['loss_last']:.3f}."
        )
    lines.append(f"- Temperature: {adaptation['temperature']}.")
    return "\n".join(lines) + "\n"


def adapt_to_audio(
    model_path: str, audio: str | os.PathLike, output_dir: str | os.PathLike, steps: int = 0,
    learning_rate: float = 1e-4, batch_size: int = 16, diversity_weight: float = 1.0, seed: int = 0,
    on_bad_audio: str = "error", device: str | None = None, progress: bool = True,
) -> AdaptationResult:
    """Load `model_path`, adapt it to the clips of `audio` (:func:`audio_files`) and save it to `output_dir`.

    The feature extractor and tokenizer are saved beside the weights, so `output_dir` loads with
    `WhisperForTriLoRA.from_pretrained`, the pipeline and `ctrilora predict` (use `--domain target`).
    """
    files = audio_files(audio)
    model = WhisperForTriLoRA.from_pretrained(model_path)
    if device is not None:
        model.to(device)
    feature_extractor = AutoFeatureExtractor.from_pretrained(model_path)
    kept, features, skipped = load_log_mels(
        files, feature_extractor, max_clip_samples(model.config, feature_extractor), on_bad_audio, progress
    )
    losses = adapt_model(model, features, steps, learning_rate, batch_size, diversity_weight, seed, progress)
    objective = OBJECTIVES[1] if steps > 0 else OBJECTIVES[0]
    result = AdaptationResult(str(output_dir), len(kept), skipped, objective, len(losses), losses)
    model.config.adaptation = {
        "audio": Path(audio).name or str(audio), "clips": len(kept), "skipped": len(skipped), "objective": objective,
        "steps": len(losses), "learning_rate": learning_rate, "batch_size": batch_size,
        "diversity_weight": diversity_weight, "seed": seed, "temperature": TEMPERATURE_NOTE,
        "loss_first": result.loss_first, "loss_last": result.loss_last,
    }
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    feature_extractor.save_pretrained(output)
    try:
        AutoTokenizer.from_pretrained(model_path).save_pretrained(output)
    except (OSError, ValueError):
        pass  # a checkpoint without a tokenizer predicts emotions; only transcription needs one
    card = Path(model_path) / "README.md"
    text = card.read_text(encoding="utf-8").rstrip() + "\n\n" if card.is_file() else f"# {output.name}\n\n"
    (output / "README.md").write_text(text + adaptation_markdown(model.config.adaptation), encoding="utf-8")
    return result


__all__ = [
    "AdaptationResult", "adapt_model", "adapt_to_audio", "adaptation_markdown", "audio_files", "load_log_mels",
]
