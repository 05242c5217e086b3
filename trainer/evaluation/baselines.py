"""Baselines a user tries first: a linear probe on the frozen pretrained Whisper encoder, with and without CORAL.

Two presets, both on the *same* splits as a C-TriLoRA run (``trainer.run.prepare_data``) and written in the
same `results.json` / `report.md` / `predictions.json` format, so the numbers and McNemar tests line up:

- ``frozen_probe``: the pretrained encoder (no LoRA, no training) runs each clip at its true length with padding
  masked (``WhisperForTriLoRA.encode``); every layer's output is mean-pooled over the clip's real frames, the L
  layer vectors are averaged (:func:`combine_layers`), standardised with source-train statistics and fed to a
  class-balanced ``LogisticRegression`` whose ``C`` is picked on source validation.
- ``frozen_probe_coral``: the same, after feature-level CORAL (Sun, Feng & Saenko 2016, "Return of Frustratingly
  Easy Domain Adaptation"): each domain is standardised with its own statistics (source: source train; target: the
  *unlabeled* target adaptation clips — the paper's protocol, which z-scores every domain separately), then the
  source features are whitened with (C_S + I)^(-1/2) and re-coloured with (C_T + I)^(1/2)
  (:func:`coral_transform`). The classifier is trained on re-coloured source; target features enter as they are.
  The same map is applied to source validation/test (it is the map of the *source* domain), so in-domain numbers
  are those of the classifier as trained.

Layer pooling per clip is cached (``~/.cache/ctrilora/probe-features/<key>.npz``, keyed by the clip paths, the
feature-extractor settings and a digest of the encoder weights), so every preset and protocol of one corpus pair
and backbone costs one encoder pass.

Example:
    >>> from trainer.evaluation.baselines import run_frozen_probe
    >>> data = prepare_data(DataArguments(source=src, target=tgt), base, "runs/probe", seed=0)  # doctest: +SKIP
    >>> results = run_frozen_probe(data, base, "runs/probe", preset="frozen_probe_coral",
    ...                            protocol=protocol(data_args, seed=0))  # doctest: +SKIP
    >>> results["cross_corpus"]["macro_f1"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from hub_cards.run_folder import RunFolder
from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.modeling_ctrilora import IGNORE_INDEX

from trainer import run
from trainer.data.fingerprints import clip_fingerprint
from .evaluate import Predictions, write_report_from_predictions
from .metrics import classification_report_dict

logger = logging.getLogger(__name__)

PRESETS: tuple[str, ...] = ("frozen_probe", "frozen_probe_coral")
SPLITS: tuple[str, ...] = ("source_train", "source_validation", "source_test", "target_adaptation", "target_test")
# Inverse L2 strengths tried on source validation: from strongly regularised (a few hundred training clips against
# d_model = 512 features) to nearly unregularised.
DEFAULT_C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
# Part of the feature-cache key: change it whenever what is extracted per clip changes.
FEATURE_VERSION = "whisper-encoder-layer-masked-mean-v2"  # v2: keyed on clip content, not paths only


# ------------------------------------------------------------------------------------------------------- CORAL
def symmetric_matrix_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """M^p of a symmetric positive semi-definite matrix through its eigendecomposition.

    Eigenvalues a rounding error below zero are clipped to 0 first; a negative `power` of a singular matrix is
    refused, because it has no finite value (CORAL's +I regulariser is what keeps its matrices invertible).

    Args:
        matrix: (d, d) symmetric PSD.
        power: e.g. 0.5 or −0.5.

    Returns:
        (d, d) symmetric M^p.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {matrix.shape}")
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    tolerance = 1e-10 * max(1.0, float(np.abs(eigenvalues).max()))
    if eigenvalues.min() < -tolerance:
        raise ValueError(f"matrix is not positive semi-definite (smallest eigenvalue {eigenvalues.min():.3g})")
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    if power < 0 and eigenvalues.min() <= tolerance:
        raise ValueError(f"matrix is singular (smallest eigenvalue {eigenvalues.min():.3g}); cannot raise it to {power}")
    return (eigenvectors * eigenvalues**power) @ eigenvectors.T


def coral_transform(source: np.ndarray, target: np.ndarray, regularizer: float = 1.0) -> np.ndarray:
    """CORAL's linear map A = (C_S + λI)^(-1/2) (C_T + λI)^(1/2); re-coloured source = source @ A.

    Sun, Feng & Saenko 2016, Algorithm 1 (λ = 1 there, on standardised features). With λ = 0 the covariance of
    `source @ A` equals that of `target` exactly; with λ > 0 it is (C_T + λI)^(1/2) (I − λ(C_S + λI)^(-1)) (C_T + λI)^(1/2)
    — the regulariser keeps both matrices invertible when there are fewer clips than dimensions.

    Args:
        source: (N_s, d) source features (rows = samples).
        target: (N_t, d) target features, unlabeled.
        regularizer: λ ≥ 0 added to both covariances' diagonal.

    Returns:
        (d, d) float64 map A.
    """
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target must be (N, d) with the same d, got {source.shape} and {target.shape}")
    if len(source) < 2 or len(target) < 2:
        raise ValueError(f"CORAL needs at least 2 rows per domain, got {len(source)} source and {len(target)} target")
    if regularizer < 0:
        raise ValueError(f"regularizer must be >= 0, got {regularizer}")
    identity = regularizer * np.eye(source.shape[1])
    source_cov = np.cov(source, rowvar=False) + identity
    target_cov = np.cov(target, rowvar=False) + identity
    return symmetric_matrix_power(source_cov, -0.5) @ symmetric_matrix_power(target_cov, 0.5)


# -------------------------------------------------------------------------------------------- frozen encoder
def load_frozen_encoder(base_model: str | os.PathLike) -> WhisperForTriLoRA:
    """The pretrained Whisper as a `WhisperForTriLoRA` in eval mode with every LoRA adapter disabled.

    Loading through `WhisperForTriLoRA` (rather than running a stock encoder) reuses its `encode`: true-length
    inputs, padded frames masked in the convolutions and in self-attention, so a clip's features do not depend on
    its batch-mates. Disabled adapters make every layer exactly the pretrained one (no LoRA path is run at all).
    """
    model = WhisperForTriLoRA.from_whisper(base_model, num_emotions=2, num_speakers=1, input_padding="short")
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(False)
    model.requires_grad_(False)
    return model.eval()


def encoder_parameter_count(model: WhisperForTriLoRA) -> int:
    """Parameters of the pretrained encoder (LoRA weights excluded: they are disabled)."""
    return sum(p.numel() for name, p in model.model.encoder.named_parameters() if "lora_" not in name)


def encoder_fingerprint(model: WhisperForTriLoRA) -> str:
    """SHA-256 of the encoder's pretrained weights, so a cache entry never outlives a change of backbone."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.model.encoder.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def pooled_layer_states(model: WhisperForTriLoRA, input_features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over real positions of every encoder layer's output: (B, n_mels, T) → (B, L, d).

    The layers come from `model.encode(..., output_layers=True)`, so the encoder's masking logic exists once. As in
    `transformers`' `hidden_states` of a Whisper encoder, the last entry is taken after the final layer norm (it is
    exactly the state C-TriLoRA pools); the others are the raw residual stream after each layer.
    """
    _, position_mask, states = model.encode(input_features, attention_mask, output_layers=True)
    return torch.stack([model.masked_mean(state, position_mask) for state in states], dim=1)


def extract_layer_features(
    model: WhisperForTriLoRA, dataset: datasets.Dataset, collator: Any, *, batch_size: int = 16
) -> np.ndarray:
    """(N, L, d) float32 pooled layer states of every row of `dataset` (rows the `collator` takes), in row order.

    Rows are batched by length: padding is masked, so this only saves compute and changes no value.
    """
    if len(dataset) == 0:
        raise ValueError("cannot extract features from an empty dataset")
    lengths = np.asarray(dataset["num_frames"]) if "num_frames" in dataset.column_names else np.zeros(len(dataset))
    order = np.argsort(lengths, kind="stable")
    features: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            batch = collator([dataset[int(index)] for index in indices])
            pooled = pooled_layer_states(model, batch["input_features"], batch["attention_mask"]).float().cpu().numpy()
            if features is None:
                features = np.empty((len(dataset), *pooled.shape[1:]), dtype=np.float32)
            features[indices] = pooled
    return features


def cached_layer_features(
    model: WhisperForTriLoRA,
    splits: Mapping[str, datasets.Dataset],
    collator: Any,
    feature_extractor_settings: str,
    *,
    batch_size: int = 16,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Pooled layer states of the splits of one corpus, extracted once per clip and cached on disk.

    The cache holds the union of the splits' clips (a transductive target uses each clip twice), keyed by the
    sorted clip paths and their content (`trainer.data.fingerprints.clip_fingerprint`), `feature_extractor_settings` (its
    JSON), the encoder-weight digest and `FEATURE_VERSION` —
    so stratified / speaker-independent, transductive or not, with or without CORAL all reuse one file.

    Args:
        splits: {name: dataset with `path` and `input_features`} of one corpus.
        cache_dir: default `<CTRILORA_CACHE>/probe-features`.

    Returns:
        ({name: (N_name, L, d)}, the cache file, whether it was already there).
    """
    for name, dataset in splits.items():
        if "path" not in dataset.column_names:
            raise KeyError(f"split {name!r} has no 'path' column to key the feature cache on")
    paths_by_split = {name: [str(path) for path in dataset["path"]] for name, dataset in splits.items()}
    union = sorted({path for paths in paths_by_split.values() for path in paths})
    # Each clip's content too (size, mtime, sha256 of the file): a clip fixed at the same path gets a new key.
    audio_by_path = {}
    for dataset in splits.values():
        if "audio" in dataset.column_names:
            audio_by_path.update(zip((str(path) for path in dataset["path"]), dataset["audio"]))
    digest = hashlib.sha256()
    for path in union:
        content = clip_fingerprint(audio_by_path[path]) if path in audio_by_path else "no-audio-column"
        digest.update(f"{path}\t{content}\n".encode("utf-8"))
    digest.update(feature_extractor_settings.encode("utf-8"))
    digest.update(encoder_fingerprint(model).encode("utf-8"))
    digest.update(FEATURE_VERSION.encode("utf-8"))
    folder = Path(cache_dir) if cache_dir is not None else run.CACHE_HOME / "probe-features"
    cache_file = folder / f"{digest.hexdigest()[:24]}.npz"
    hit = cache_file.is_file()
    if hit:
        with np.load(cache_file, allow_pickle=False) as stored:
            if list(stored["paths"]) != union:
                raise ValueError(f"{cache_file} does not hold the clips its key names; delete it and run again")
            features = stored["features"]
        logger.info("probe features: reusing %s", cache_file)
    else:
        # One row per clip: splits are stacked, then each clip's first row kept.
        columns = [name for name in ("path", "input_features", "num_frames") if name in next(iter(splits.values())).column_names]
        stacked = datasets.concatenate_datasets([dataset.select_columns(columns) for dataset in splits.values()])
        first_row = {}
        for index, path in enumerate(stacked["path"]):
            first_row.setdefault(str(path), index)
        unique = stacked.select([first_row[path] for path in union])
        logger.info("probe features: encoding %d clips", len(unique))
        features = extract_layer_features(model, unique, collator, batch_size=batch_size)
        folder.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(cache_file.stem + f".{os.getpid()}.partial.npz")
        np.savez(partial, paths=np.asarray(union), features=features)
        os.replace(partial, cache_file)  # atomic: a concurrent run never reads half a file
    row = {path: index for index, path in enumerate(union)}
    return {name: features[[row[path] for path in paths]] for name, paths in paths_by_split.items()}, cache_file, hit


def combine_layers(layer_features: np.ndarray) -> np.ndarray:
    """(N, L, d) → (N, d): the uniform average of the layers' pooled states.

    Why average rather than concatenate: emotion cues are spread over middle and upper layers (SUPERB's learnable
    layer weighting, which starts from this uniform average, is the usual probe for this), and averaging keeps the
    probe at d = d_model. That matters for CORAL: its d × d target covariance is estimated from the unlabeled
    target adaptation clips — a few hundred for EmoDB — and at L·d = 3072 dimensions (whisper-base) the estimate
    would be almost all regulariser. It also keeps the logistic regression's ~E·d weights well below the number of
    source training clips.
    """
    if layer_features.ndim != 3:
        raise ValueError(f"expected (N, layers, d) features, got shape {layer_features.shape}")
    return layer_features.mean(axis=1)


# ------------------------------------------------------------------------------------------------ the probe
@dataclass
class ProbeFit:
    """A fitted probe's outputs.

    Attributes:
        preset: "frozen_probe" or "frozen_probe_coral".
        logits: {split: (N, E) decision values}; softmax of them is the classifier's predicted probability.
        inputs: {split: (N, d) features the classifier saw} (standardised; source re-coloured under CORAL).
        C: the chosen inverse L2 strength. validation_macro_f1: {C: source-validation macro-F1} over the grid.
        classifier: the fitted `LogisticRegression`.
    """

    preset: str
    logits: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    C: float
    validation_macro_f1: dict[float, float]
    classifier: LogisticRegression


def _known(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = labels != IGNORE_INDEX
    return features[keep], labels[keep]


def _logits(classifier: LogisticRegression, features: np.ndarray) -> np.ndarray:
    scores = classifier.decision_function(features)
    if scores.ndim == 1:
        # Two classes: sklearn returns one score s with P(class 1) = sigmoid(s) = softmax([-s/2, s/2])[1].
        scores = np.stack([-scores / 2, scores / 2], axis=1)
    return scores.astype(np.float64)


def fit_frozen_probe(
    features: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    num_classes: int,
    *,
    preset: str = "frozen_probe",
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    coral_regularizer: float = 1.0,
    max_iter: int = 5000,
    seed: int = 0,
) -> ProbeFit:
    """Standardise (and, for `frozen_probe_coral`, CORAL-align), then fit and select the logistic regression.

    Args:
        features: {split: (N, d)} for every name in `SPLITS`.
        labels: {"source_train": (N,), "source_validation": (N,)} class ids in [0, num_classes), −100 = unknown.
        num_classes: E; every class must occur in source train.
        preset: one of `PRESETS`.
        c_grid: inverse L2 strengths; the best source-validation macro-F1 wins, ties going to the smaller C.
        coral_regularizer: λ of :func:`coral_transform`.
        max_iter: LBFGS iterations (high: standardised 512-d features with a large C converge slowly).
        seed: the classifier's random state.

    Returns:
        A `ProbeFit` with logits and classifier inputs for every split.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: expected one of {PRESETS}")
    missing = [name for name in SPLITS if name not in features]
    if missing:
        raise KeyError(f"features are missing splits {missing}")
    if not c_grid:
        raise ValueError("c_grid is empty")
    train_x, train_y = _known(np.asarray(features["source_train"]), np.asarray(labels["source_train"]))
    absent = sorted(set(range(num_classes)) - set(train_y.tolist()))
    if absent:
        raise ValueError(f"classes {absent} have no labelled source-train clip; the probe cannot learn them")
    source_scaler = StandardScaler().fit(train_x)
    if preset == "frozen_probe":
        inputs = {name: source_scaler.transform(features[name]) for name in SPLITS}
    else:
        # CORAL compares covariances of centred domains, so each domain is z-scored with its own statistics
        # (the paper's protocol); the target's come from unlabeled adaptation clips only.
        target_scaler = StandardScaler().fit(features["target_adaptation"])
        inputs = {
            name: (source_scaler if name.startswith("source") else target_scaler).transform(features[name]) for name in SPLITS
        }
        recolour = coral_transform(source_scaler.transform(train_x), inputs["target_adaptation"], coral_regularizer)
        for name in SPLITS:
            if name.startswith("source"):
                inputs[name] = inputs[name] @ recolour
    train_x, train_y = _known(inputs["source_train"], np.asarray(labels["source_train"]))
    val_x, val_y = _known(inputs["source_validation"], np.asarray(labels["source_validation"]))
    if len(val_y) == 0:
        raise ValueError("source validation has no labelled clip to choose C on")
    class_ids = list(range(num_classes))
    best: tuple[float, float, LogisticRegression] | None = None
    scores: dict[float, float] = {}
    for c in sorted(float(value) for value in c_grid):
        classifier = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter, random_state=seed)
        classifier.fit(train_x, train_y)
        scores[c] = classification_report_dict(val_y, classifier.predict(val_x), class_ids)["macro_f1"]
        if best is None or scores[c] > best[1]:
            best = (c, scores[c], classifier)
    chosen, _, classifier = best
    logger.info("%s: C = %g (source-validation macro-F1 by C: %s)", preset, chosen, scores)
    logits = {name: _logits(classifier, inputs[name]) for name in SPLITS}
    return ProbeFit(preset, logits, inputs, chosen, scores, classifier)


# ------------------------------------------------------------------------------------------------ reporting
def _split_datasets(data: Any) -> dict[str, datasets.Dataset]:
    return {
        "source_train": data.source["train"],
        "source_validation": data.source["validation"],
        "source_test": data.source["test"],
        "target_adaptation": data.target["adaptation"],
        "target_test": data.target["test"],
    }


def run_frozen_probe(
    data: Any,
    base_model: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    preset: str,
    protocol: Mapping[str, Any],
    seed: int = 0,
    batch_size: int = 16,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    coral_regularizer: float = 1.0,
    started: float | None = None,
) -> dict[str, Any]:
    """Extract (or reuse) features, fit the probe and write `<output_dir>/evaluation/`.

    Args:
        data: `ExperimentData` from `prepare_data(..., run_dir=output_dir, seed=seed)`.
        base_model: the Whisper checkpoint the data was featurised for.
        preset: "frozen_probe" or "frozen_probe_coral".
        protocol: `trainer.run.protocol(data_args, seed)`, for the results and the report.
        c_grid, coral_regularizer: see :func:`fit_frozen_probe`.
        started: `time.perf_counter()` at the start of the run (data preparation included); default: now.

    Returns:
        The results dict, with `wall_time_s` and a `probe` section (C, grid scores, feature cache, timings).
    """
    started = time.perf_counter() if started is None else started
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: expected one of {PRESETS}")
    splits = _split_datasets(data)
    model = load_frozen_encoder(base_model)
    settings = data.feature_extractor.to_json_string()
    tic = time.perf_counter()
    layer_features, cache_files, cached = {}, {}, {}
    for role in ("source", "target"):
        own = {name: dataset for name, dataset in splits.items() if name.startswith(role)}
        found, cache_files[role], cached[role] = cached_layer_features(model, own, data.collator, settings, batch_size=batch_size)
        layer_features.update(found)
    extraction_s = time.perf_counter() - tic
    label2id = data.label2id
    labels = {
        name: np.asarray([label2id.get(emotion or "", IGNORE_INDEX) for emotion in dataset["emotion"]])
        for name, dataset in splits.items()
    }
    tic = time.perf_counter()
    fit = fit_frozen_probe(
        {name: combine_layers(value) for name, value in layer_features.items()}, labels, len(data.classes),
        preset=preset, c_grid=c_grid, coral_regularizer=coral_regularizer, seed=seed,
    )
    fit_s = time.perf_counter() - tic
    predictions = {
        name: Predictions(
            logits=fit.logits[name], labels=labels[name], z_emo=fit.inputs[name],
            clip_ids=[str(path) for path in splits[name]["path"]],
        )
        for name in SPLITS
        if name != "source_train"
    }
    num_layers, feature_dim = layer_features["source_train"].shape[1:]
    head = fit.classifier.coef_.size + fit.classifier.intercept_.size
    folder = RunFolder(output_dir)
    model_info = {
        "base_model": str(base_model),
        "preset": preset,
        # Only the logistic regression is fitted; the whole frozen encoder counts in the denominator.
        "trainable_fraction": head / (head + encoder_parameter_count(model)),
        "checkpoint": str(folder.root),
    }
    probe = {
        "layer_pooling": f"masked mean over real frames of each of the {num_layers} encoder layers, averaged over layers",
        "num_layers": int(num_layers),
        "feature_dim": int(feature_dim),
        "classifier": "LogisticRegression(class_weight='balanced'), standardised features",
        "C": fit.C,
        "validation_macro_f1_by_C": {f"{c:g}": value for c, value in fit.validation_macro_f1.items()},
        "coral": (
            {"regularizer": coral_regularizer, "target_statistics": "target adaptation clips (unlabeled)",
             "standardisation": "per domain (source train / target adaptation)"}
            if preset == "frozen_probe_coral" else None
        ),
        "n_train": int((labels["source_train"] != IGNORE_INDEX).sum()),
        "feature_cache": {role: str(path) for role, path in cache_files.items()},
        "features_cached": cached,
        "timings_s": {"features": round(extraction_s, 3), "fit": round(fit_s, 3)},
    }
    results = write_report_from_predictions(
        predictions, data, folder.evaluation, model_info=model_info, protocol=protocol, extra={"probe": probe}, started=started,
    )
    logger.info(
        "%s: in-domain UAR %.3f macro-F1 %.3f | cross-corpus UAR %.3f macro-F1 %.3f | %.1f s | %s",
        preset, results["in_domain"]["uar"], results["in_domain"]["macro_f1"], results["cross_corpus"]["uar"],
        results["cross_corpus"]["macro_f1"], results["wall_time_s"], folder.evaluation.report,
    )
    return results


__all__ = [
    "DEFAULT_C_GRID",
    "FEATURE_VERSION",
    "PRESETS",
    "SPLITS",
    "ProbeFit",
    "cached_layer_features",
    "combine_layers",
    "coral_transform",
    "encoder_fingerprint",
    "encoder_parameter_count",
    "extract_layer_features",
    "fit_frozen_probe",
    "load_frozen_encoder",
    "pooled_layer_states",
    "run_frozen_probe",
    "symmetric_matrix_power",
]
