"""The one `results.json` schema: its version, validation, reading and writing.

Evaluation (`trainer.evaluation.evaluate`, the baselines) writes a run's results through `write_results`; the model
card (`hub_cards.model_card`), the Hub push and the ablation table (`trainer.evaluation.ablation`) read them through
`load_results`. Numbers are fractions.

Schema (version 1)::

    {"schema_version": 1,
     "model": {"base_model", "preset", "trainable_fraction", "checkpoint",
               "target_statistics_clips"},               # optional: clips of the target statistics (AdaBN); null: unused
     "emotions": [class names evaluated — the classes both corpora share],
     "corpora": {"source": {"name", "language", "n_test"}, "target": {"name", "language", "n_test"}},
     "protocol": {"seed", "source_split", "transductive", …},   # trainer.run.protocol: the seed and every data
                                                                # argument that decides the splits
     "in_domain" / "cross_corpus": {"uar", "macro_f1", "accuracy", "per_class": {"f1": {cls: v}, "recall": {cls: v}},
                                    "confusion_matrix": [[int]], "labels": [cls], "n"},
     "calibration": {"temperatures": {"in_domain", "target_adaptive"},
                     "ece": {"in_domain": {"raw", "in_domain_T", "adaptive_T"}, "cross_corpus": {...}},
                     "discriminator_auc"},
     "plots": {name: file name relative to the evaluation folder},
     # optional sections:
     "asr": {"in_domain": {"wer", "cer", "n"}, "cross_corpus": {...}},     (when transcripts were decoded)
     "comparisons": {"mcnemar": [{"a", "b", "split", "statistic", "p_value", "n", "method"}]},
     "wall_time_s": seconds,                                              (baselines: the whole run)
     "skipped_clips": {"source": [{"path", "problem"}], "target": [...]},  (every clip the corpus loaders dropped —
                                                                           bad audio under --on_bad_audio skip,
                                                                           duplicate rows — with its problem; [] for
                                                                           none; absent in results written before)
     "diagnostics": {…},                                                  (free-form)
     "probe": {…}}                                                        (baselines: the probe's settings)

Other top-level keys are allowed (a newer writer may add sections): validation checks the sections it knows and leaves
the rest alone. A *complete* results dict — what evaluation writes — has every required section and key; a *partial*
one (hand-made, or an in-domain-only run) has any subset of them, each still of the right shape, and the model card
renders whatever is there.

Example:
    >>> validate_results({"schema_version": 1, "model": {"preset": "full"}}, complete=False)
    >>> validate_results({"schema_version": 2})
    Traceback (most recent call last):
    ...
    ValueError: results.json has schema_version 2; this code reads version 1
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_CLASSIFICATION = ("uar", "macro_f1", "accuracy", "per_class", "confusion_matrix", "labels", "n")
# Required section → its required keys (a complete results dict has all of them).
REQUIRED: dict[str, tuple[str, ...]] = {
    "model": ("base_model", "preset", "trainable_fraction", "checkpoint"),
    "emotions": (),
    "corpora": ("source", "target"),
    "protocol": ("seed", "source_split", "transductive"),
    "in_domain": _CLASSIFICATION,
    "cross_corpus": _CLASSIFICATION,
    "calibration": ("temperatures", "ece", "discriminator_auc"),
    "plots": (),
}
OPTIONAL: tuple[str, ...] = ("asr", "comparisons", "wall_time_s", "diagnostics", "probe", "skipped_clips")
# The type each known section has, where present.
_TYPES: dict[str, type | tuple[type, ...]] = {
    **{section: Mapping for section in (*REQUIRED, *OPTIONAL)},
    "emotions": list,
    "wall_time_s": numbers.Real,
}
_NESTED: dict[str, tuple[str, ...]] = {
    "corpora": ("name", "language", "n_test"),
    "per_class": ("f1", "recall"),
    "skipped_clips": ("path", "problem"),
}


def _fail(message: str) -> None:
    raise ValueError(f"results.json: {message}")


def _check_classification(name: str, section: Mapping[str, Any], complete: bool) -> None:
    per_class = section.get("per_class")
    if per_class is None:
        return
    if not isinstance(per_class, Mapping):
        _fail(f'"{name}.per_class" must be a mapping {{"f1": {{class: value}}, "recall": {{…}}}}')
    for metric in _NESTED["per_class"]:
        if complete and metric not in per_class:
            _fail(f'"{name}.per_class" lacks "{metric}"')
        if metric in per_class and not isinstance(per_class[metric], Mapping):
            _fail(f'"{name}.per_class.{metric}" must be a mapping {{class: value}}')


def validate_results(results: Mapping[str, Any], *, complete: bool = True) -> None:
    """Check `results` against the schema.

    Args:
        complete: every required section and key must be present (what evaluation writes). With `False`, a missing
            section or key is fine; the version and the shape of what is there are still checked.

    Raises:
        ValueError: a newer or unknown `schema_version`, a section of the wrong type, or (complete) a missing one.
    """
    if not isinstance(results, Mapping):
        _fail(f"expected a JSON object, got {type(results).__name__}")
    version = results.get("schema_version", None if complete else SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ValueError(f"results.json has schema_version {version!r}; this code reads version {SCHEMA_VERSION}")
    for section, kind in _TYPES.items():
        if section in results and not isinstance(results[section], kind):
            _fail(f'"{section}" must be a {getattr(kind, "__name__", kind)}, got {type(results[section]).__name__}')
    for section, keys in REQUIRED.items():
        if section not in results:
            if complete:
                _fail(f'the section "{section}" is missing')
            continue
        missing = [key for key in keys if key not in results[section]] if complete else []
        if missing:
            _fail(f'"{section}" lacks {missing}')
    for role, corpus in (results.get("corpora") or {}).items():
        missing = [key for key in _NESTED["corpora"] if key not in corpus] if complete else []
        if not isinstance(corpus, Mapping) or missing:
            _fail(f'"corpora.{role}" must be a mapping with {list(_NESTED["corpora"])}')
    for name in ("in_domain", "cross_corpus"):
        if name in results:
            _check_classification(name, results[name], complete)
    for role, clips in (results.get("skipped_clips") or {}).items():
        keys = _NESTED["skipped_clips"]
        if not isinstance(clips, list) or not all(isinstance(clip, Mapping) and all(key in clip for key in keys) for clip in clips):
            _fail(f'"skipped_clips.{role}" must be a list of {{"path": file, "problem": why it was skipped}}')


def load_results(path: str | os.PathLike, *, complete: bool = False) -> dict[str, Any]:
    """Read and validate a `results.json` (`complete`: as in `validate_results`; partial results are accepted by
    default, as the model card renders whatever is there)."""
    with open(path, encoding="utf-8") as handle:
        results = json.load(handle)
    validate_results(results, complete=complete)
    return results


def write_results(results: Mapping[str, Any], path: str | os.PathLike, *, complete: bool = True) -> Path:
    """Validate `results` (`complete`: as in `validate_results`) and write them as `path` (indented UTF-8 JSON)."""
    validate_results(results, complete=complete)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["OPTIONAL", "REQUIRED", "SCHEMA_VERSION", "load_results", "validate_results", "write_results"]
