"""Deterministic train/validation/test and adaptation/test splits, saved with each run.

Every split function returns a plain ``dict[str, list[int]]`` of sorted row indices into the dataset it was
given (``{"train": [...], "validation": [...], "test": [...]}`` for a source corpus,
``{"adaptation": [...], "test": [...]}`` for a target corpus). Index lists are what
:func:`write_splits` stores in the run folder and what :func:`apply_splits` turns into a `datasets.DatasetDict`.
Indices refer to row order, so restrict the corpus (:func:`restrict_to_classes`) *before* splitting; the JSON
records the row count and a hash of the ``path`` column so :func:`read_splits` can refuse a different dataset.

Example:
    >>> from trainer.data.splits import stratified_split, target_split, apply_splits, write_splits
    >>> splits = stratified_split(source, seed=0)  # doctest: +SKIP
    >>> write_splits(splits, "runs/exp1", dataset=source, filename="source_splits.json")  # doctest: +SKIP
    >>> source_dd = apply_splits(source, splits)  # DatasetDict(train/validation/test)  # doctest: +SKIP
    >>> target = target_split(emodb, seed=0, transductive=True)  # adaptation == test  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np

logger = logging.getLogger(__name__)

Splits = dict[str, list[int]]
SOURCE_SPLITS: tuple[str, ...] = ("train", "validation", "test")
TARGET_SPLITS: tuple[str, ...] = ("adaptation", "test")


def _check_fractions(fractions: Sequence[float], names: Sequence[str]) -> np.ndarray:
    values = np.asarray(fractions, dtype=float)
    if values.shape != (len(names),) or (values < 0).any() or not np.isclose(values.sum(), 1.0):
        raise ValueError(
            f"fractions must be {len(names)} non-negative numbers ({'/'.join(names)}) summing to 1, got {fractions}"
        )
    return values


def _allocate(count: int, fractions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split `count` items into integer parts by largest remainder; remainder ties broken at random."""
    exact = count * fractions
    parts = np.floor(exact).astype(int)
    remainders = exact - parts
    # Random tie-breaking: otherwise every class's leftover item would land in the first split listed.
    order = np.lexsort((rng.random(len(fractions)), -remainders))
    parts[order[: count - parts.sum()]] += 1
    return parts


def _finish(parts: Mapping[str, list[int]]) -> Splits:
    return {name: sorted(int(i) for i in indices) for name, indices in parts.items()}


def stratified_split(
    ds: datasets.Dataset,
    seed: int,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    column: str = "emotion",
) -> Splits:
    """Random split keeping each class's proportion in every part (the paper's 80/10/10 source split).

    Each class is shuffled with the seed and cut by largest remainder, so a class of 96 clips gives 77/10/9 or
    76/10/10 (which part gets the leftover is random). Unlabeled rows (``""``) form a class of their own.

    Args:
        ds: the corpus (restricted to its classes already).
        seed: random seed; the same seed and dataset give the same split.
        fractions: train/validation/test fractions, summing to 1 (a zero gives an empty part).
        column: the column to stratify on.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``, disjoint, sorted, covering every row.
    """
    values = _check_fractions(fractions, SOURCE_SPLITS)
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(ds[column]):
        by_class[label].append(index)
    parts: dict[str, list[int]] = {name: [] for name in SOURCE_SPLITS}
    for label in sorted(by_class):
        indices = rng.permutation(by_class[label])
        bounds = np.cumsum(_allocate(len(indices), values, rng))[:-1]
        for name, chunk in zip(SOURCE_SPLITS, np.split(indices, bounds)):
            parts[name].extend(chunk.tolist())
    return _finish(parts)


def _speaker_groups(ds: datasets.Dataset, purpose: str) -> dict[str, list[int]]:
    speakers = list(ds["speaker"])
    unknown = sum(not speaker for speaker in speakers)
    if unknown:
        raise ValueError(f"{purpose} needs a speaker for every row; {unknown} of {len(speakers)} rows have none")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, speaker in enumerate(speakers):
        groups[speaker].append(index)
    return dict(groups)


def _assign_speakers(
    groups: Mapping[str, list[int]], names: Sequence[str], fractions: np.ndarray, seed: int, num_trials: int
) -> Splits:
    """Assign whole speakers to parts so part sizes come close to `fractions` of the clips.

    Each trial takes the speakers in a seeded random order and gives each one to the part furthest below its
    target size; the trial with the smallest squared size error wins (earliest on ties). Parts with a non-zero
    fraction always get at least one speaker.
    """
    if num_trials < 1:
        raise ValueError(f"num_trials must be at least 1, got {num_trials}")
    active = np.flatnonzero(fractions > 0)
    if len(groups) < len(active):
        raise ValueError(
            f"{len(groups)} speaker(s) cannot fill {len(active)} speaker-disjoint parts ({', '.join(names)})"
        )
    speakers = sorted(groups)
    sizes = np.array([len(groups[s]) for s in speakers])
    targets = fractions * sizes.sum()
    rng = np.random.default_rng(seed)
    best_error, best_owner = np.inf, np.zeros(len(speakers), dtype=int)
    for _ in range(num_trials):
        order = rng.permutation(len(speakers))
        totals = np.zeros(len(names))
        owner = np.empty(len(speakers), dtype=int)
        for position, speaker in enumerate(order):
            empty_active = [part for part in active if totals[part] == 0]
            remaining = len(order) - position
            # Keep one speaker back for every still-empty part, so no part with a non-zero fraction ends empty.
            candidates = empty_active if remaining <= len(empty_active) else active
            part = candidates[np.argmax((targets - totals)[candidates])]
            owner[speaker] = part
            totals[part] += sizes[speaker]
        error = float(((totals - targets) ** 2).sum())
        if error < best_error:
            best_error, best_owner = error, owner
    parts: dict[str, list[int]] = {name: [] for name in names}
    for speaker, part in zip(speakers, best_owner):
        parts[names[part]].extend(groups[speaker])
    return _finish(parts)


def speaker_independent_split(
    ds: datasets.Dataset,
    seed: int,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    num_trials: int = 64,
) -> Splits:
    """Train/validation/test with no speaker in two parts, part sizes close to `fractions` of the clips.

    Args:
        ds: the corpus; every row needs a ``speaker``.
        seed: random seed (which speakers land where); same seed, same split.
        fractions: target clip fractions; balanced over whole speakers, so only approximately met
            (RAVDESS, 24 speakers × 60 clips, 80/10/10 → 19-20 / 2-3 / 2-3 speakers).
        num_trials: random speaker orders tried; the best-balanced one is kept.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``, disjoint, sorted, covering every row.

    Raises:
        ValueError: a row has no speaker, or fewer speakers than parts with a non-zero fraction.
    """
    values = _check_fractions(fractions, SOURCE_SPLITS)
    groups = _speaker_groups(ds, "a speaker-independent split")
    return _assign_speakers(groups, SOURCE_SPLITS, values, seed, num_trials)


TARGET_SPLIT_MODES = ("speaker", "stratified")


def target_split(
    ds: datasets.Dataset,
    seed: int,
    *,
    adaptation_fraction: float = 0.5,
    transductive: bool = False,
    by: str = "speaker",
    num_trials: int = 64,
) -> Splits:
    """Split a target corpus into an unlabeled adaptation part (for CORAL) and a labeled test part.

    With ``transductive=True`` both parts are the whole corpus — the paper's protocol, where the same target clips
    feed CORAL (without their labels) and the evaluation. Otherwise the parts are disjoint: by speaker when every
    row has a speaker and there are at least two (no test speaker is seen during adaptation), else by clip,
    stratified by emotion.

    Args:
        ds: the target corpus (restricted to the shared classes for evaluation).
        seed: random seed.
        adaptation_fraction: share of clips (approximately, when splitting by speaker) for adaptation.
        transductive: adaptation == test == every row.
        by: "speaker" (default; falls back to clips when speakers are unknown) or "stratified" (by clip, stratified by
            emotion — for corpora whose speakers are confounded with emotion, where a by-speaker split leaves classes
            out of the test part, e.g. URDU).
        num_trials: as in :func:`speaker_independent_split`.

    Returns:
        ``{"adaptation": [...], "test": [...]}``, sorted. The caller must not feed adaptation labels to the loss.
    """
    if transductive:
        every = list(range(ds.num_rows))
        return {"adaptation": every, "test": list(every)}
    if not 0 < adaptation_fraction < 1:
        raise ValueError(f"adaptation_fraction must be in (0, 1) for a disjoint split, got {adaptation_fraction}")
    if by not in TARGET_SPLIT_MODES:
        raise ValueError(f"target split by={by!r}; expected one of {TARGET_SPLIT_MODES}")
    values = np.array([adaptation_fraction, 1 - adaptation_fraction])
    speakers = set(ds["speaker"])
    if by == "speaker" and "" not in speakers and len(speakers) >= 2:
        return _assign_speakers(_speaker_groups(ds, "a by-speaker target split"), TARGET_SPLITS, values, seed,
                                num_trials)
    logger.info("target split by clip: %s", "fewer than 2 speakers" if "" not in speakers else "unknown speakers")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(ds["emotion"]):
        by_class[label].append(index)
    parts: dict[str, list[int]] = {name: [] for name in TARGET_SPLITS}
    for label in sorted(by_class):
        indices = rng.permutation(by_class[label])
        cut = _allocate(len(indices), values, rng)[0]
        parts["adaptation"].extend(indices[:cut].tolist())
        parts["test"].extend(indices[cut:].tolist())
    return _finish(parts)


def restrict_to_classes(
    ds: datasets.Dataset, classes: Sequence[str], *, keep_unlabeled: bool = False
) -> tuple[datasets.Dataset, dict[str, int]]:
    """Keep only rows whose emotion is in `classes` (e.g. the classes source and target share).

    Args:
        ds: a corpus with an ``emotion`` column.
        classes: emotions to keep.
        keep_unlabeled: also keep rows with no emotion (``""``), e.g. for an unlabeled adaptation corpus.

    Returns:
        ``(restricted_dataset, removed)`` where ``removed`` maps each dropped emotion (``""`` for unlabeled) to
        its row count; every drop is also logged.

    Example:
        >>> ravdess6, removed = restrict_to_classes(ravdess, shared_classes(ravdess["emotion"],
        ...                                         emodb["emotion"]))  # doctest: +SKIP
        >>> removed  # doctest: +SKIP
        {'calm': 192, 'surprise': 192}
    """
    keep = set(classes) | ({""} if keep_unlabeled else set())
    emotions = list(ds["emotion"])
    kept = [index for index, emotion in enumerate(emotions) if emotion in keep]
    removed = dict(sorted(Counter(emotion for emotion in emotions if emotion not in keep).items()))
    if removed:
        corpus = ds["corpus"][0] if "corpus" in ds.column_names and ds.num_rows else "dataset"
        logger.warning(
            "%s: removed %d of %d rows outside classes %s: %s",
            corpus, sum(removed.values()), len(emotions), list(classes),
            ", ".join(f"{name or '<unlabeled>'} {count}" for name, count in removed.items()),
        )
    return ds.select(kept), removed


def expand_splits(splits: Mapping[str, Sequence[int]], clip_rows: Sequence[int]) -> Splits:
    """Clip-level splits → row-level splits of a dataset whose rows are segments of clips (``long_clips="split"``).

    Splits are made (and written) on clips; every segment row goes to the split of its clip (`clip_rows[row]` is the
    clip's index), so no clip has segments on both sides of a split.

    Example:
        >>> expand_splits({"train": [0], "test": [1]}, [0, 0, 1, 1, 1])
        {'train': [0, 1], 'test': [2, 3, 4]}
    """
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, clip in enumerate(clip_rows):
        rows_of[int(clip)].append(row)
    return _finish({name: [row for clip in indices for row in rows_of[int(clip)]] for name, indices in splits.items()})


def apply_splits(ds: datasets.Dataset, splits: Mapping[str, Sequence[int]]) -> datasets.DatasetDict:
    """``DatasetDict`` with one ``ds.select(indices)`` per split name."""
    return datasets.DatasetDict({name: ds.select(list(indices)) for name, indices in splits.items()})


def _paths_digest(ds: datasets.Dataset) -> str:
    digest = hashlib.sha1()
    for path in ds["path"]:
        digest.update(path.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _splits_file(run_dir: str | os.PathLike, filename: str) -> str:
    run_dir = os.fspath(run_dir)
    return run_dir if run_dir.endswith(".json") else os.path.join(run_dir, filename)


def write_splits(
    splits: Mapping[str, Sequence[int]],
    run_dir: str | os.PathLike,
    *,
    filename: str = "splits.json",
    dataset: datasets.Dataset | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Write splits as JSON into the run folder (created if needed).

    The file holds ``{"splits": {name: [indices]}, "num_rows": ..., "paths_sha1": ..., "metadata": {...}}``;
    ``num_rows``/``paths_sha1`` (from `dataset`) let :func:`read_splits` check it is applied to the same rows.

    Args:
        splits: name -> row indices.
        run_dir: run folder (or a path ending in ``.json``).
        filename: file name inside `run_dir`.
        dataset: the dataset the indices refer to (recommended).
        metadata: anything JSON-serialisable to keep beside, e.g. ``{"kind": "speaker_independent", "seed": 0}``.

    Returns:
        The path written.
    """
    payload: dict[str, Any] = {
        "splits": {name: [int(i) for i in indices] for name, indices in splits.items()},
        "metadata": dict(metadata or {}),
    }
    for name, indices in payload["splits"].items():
        if len(set(indices)) != len(indices):
            raise ValueError(f"split {name!r} lists a row more than once")
    if dataset is not None:
        payload["num_rows"] = dataset.num_rows
        payload["paths_sha1"] = _paths_digest(dataset) if "path" in dataset.column_names else None
    path = _splits_file(run_dir, filename)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Written to a temporary file and renamed: in a multi-process run the other ranks may read the file while the
    # main process writes it, and a rename is atomic, so they see either no file or the whole file.
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(temporary, path)
    return path


def read_splits(
    run_dir: str | os.PathLike, *, filename: str = "splits.json", dataset: datasets.Dataset | None = None
) -> Splits:
    """Read splits written by :func:`write_splits`.

    Args:
        run_dir: run folder (or the JSON file itself).
        filename: file name inside `run_dir`.
        dataset: when given, checked against the recorded row count and ``path`` hash.

    Raises:
        ValueError: the file was written for a different dataset, or an index is out of range.
    """
    path = _splits_file(run_dir, filename)
    with open(path, encoding="utf-8") as handle:
        payload = json.load(handle)
    splits = {name: [int(i) for i in indices] for name, indices in payload["splits"].items()}
    if dataset is not None:
        if "num_rows" in payload and payload["num_rows"] != dataset.num_rows:
            raise ValueError(
                f"{path} was written for {payload['num_rows']} rows, the dataset has {dataset.num_rows}"
            )
        if payload.get("paths_sha1") and "path" in dataset.column_names and payload["paths_sha1"] != _paths_digest(
            dataset
        ):
            raise ValueError(f"{path} was written for a dataset with different clips or clip order")
        for name, indices in splits.items():
            if indices and not 0 <= min(indices) <= max(indices) < dataset.num_rows:
                raise ValueError(f"{path}: split {name!r} has indices outside 0..{dataset.num_rows - 1}")
    return splits


__all__ = [
    "SOURCE_SPLITS",
    "TARGET_SPLITS",
    "Splits",
    "apply_splits",
    "expand_splits",
    "read_splits",
    "restrict_to_classes",
    "speaker_independent_split",
    "stratified_split",
    "target_split",
    "write_splits",
]
