"""Classification and ASR metrics for cross-corpus speech emotion recognition.

UAR (unweighted average recall, i.e. the macro mean of per-class recalls, scikit-learn's "balanced accuracy") is the
primary SER metric; macro-F1 and accuracy are reported beside it, with per-class F1/recall, support and the confusion
matrix. Evaluation is restricted to a given class list (the emotions both corpora share after harmonisation).

Averaging convention (applies to UAR and macro-F1): the mean is taken over the classes of ``labels`` that occur in
``y_true`` (support > 0). A class that is absent from the references has an undefined recall; counting it as 0 would
punish a model for a gap in the test set, which is what :func:`sklearn.metrics.balanced_accuracy_score` avoids too.
Such classes still get per-class entries (0.0, ``zero_division=0``) and are listed under ``"classes_without_support"``.
Classes that are never predicted get precision 0 and hence F1 0 (``zero_division=0``) — that *is* counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jiwer
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def _as_1d(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {array.shape}.")
    return array


def _resolve_labels(
    labels: Sequence[str] | Sequence[int] | Mapping[int, str], label_names: Sequence[str] | None
) -> tuple[list[Any], list[str]]:
    """Return (label values as they appear in y_true/y_pred, display names)."""
    if isinstance(labels, Mapping):
        if label_names is not None:
            raise ValueError("`label_names` must not be given when `labels` is an id2label mapping.")
        ids = sorted(labels)
        return ids, [str(labels[i]) for i in ids]
    values = list(labels)
    if not values:
        raise ValueError("`labels` must name at least one class.")
    if len(set(values)) != len(values):
        raise ValueError(f"`labels` contains duplicates: {values}.")
    if label_names is None:
        return values, [str(v) for v in values]
    names = [str(n) for n in label_names]
    if len(names) != len(values):
        raise ValueError(f"`label_names` has {len(names)} entries but `labels` has {len(values)}.")
    return values, names


def classification_report_dict(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    labels: Sequence[str] | Sequence[int] | Mapping[int, str],
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Full SER report restricted to the classes in ``labels``.

    Args:
        y_true: `(N,)` reference labels (class ids or class-name strings).
        y_pred: `(N,)` predicted labels, same type as ``y_true``.
        labels: the evaluated classes — either the label values themselves (names or ids), or an ``id2label``
            mapping ``{id: name}``. Rows whose reference is not in this list are excluded (counted in
            ``n_excluded``); predictions outside the list stay in and count as errors (``n_pred_outside_labels``).
        label_names: display names for ``labels`` when they are ids (default: ``str(label)``).

    Returns:
        JSON-serialisable dict with ``uar``, ``macro_f1``, ``accuracy`` (floats), ``per_class_f1``,
        ``per_class_recall``, ``per_class_precision``, ``support`` (dicts keyed by class name), ``confusion_matrix``
        (list of lists, rows = true class, columns = predicted class, in ``labels`` order), ``labels`` (names),
        ``n`` (evaluated rows), ``n_excluded``, ``n_pred_outside_labels``, ``classes_without_support``.

    Example:
        >>> r = classification_report_dict([0, 0, 0, 1], [0, 0, 0, 0], {0: "neutral", 1: "angry"})
        >>> r["accuracy"], r["uar"], r["per_class_recall"]["angry"]
        (0.75, 0.5, 0.0)
    """
    true = _as_1d(y_true, "y_true")
    pred = _as_1d(y_pred, "y_pred")
    if len(true) != len(pred):
        raise ValueError(f"`y_true` has {len(true)} entries but `y_pred` has {len(pred)}.")
    values, names = _resolve_labels(labels, label_names)

    keep = np.isin(true, np.asarray(values))
    true, pred = true[keep], pred[keep]
    if len(true) == 0:
        raise ValueError("`y_true` has no entry belonging to `labels`; nothing to evaluate.")

    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=values, average=None, zero_division=0
    )
    present = support > 0
    cm = confusion_matrix(true, pred, labels=values)
    return {
        "uar": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "accuracy": float(np.mean(true == pred)),
        "per_class_f1": {n: float(v) for n, v in zip(names, f1)},
        "per_class_recall": {n: float(v) for n, v in zip(names, recall)},
        "per_class_precision": {n: float(v) for n, v in zip(names, precision)},
        "support": {n: int(v) for n, v in zip(names, support)},
        "confusion_matrix": cm.astype(int).tolist(),
        "labels": names,
        "n": int(len(true)),
        "n_excluded": int((~keep).sum()),
        "n_pred_outside_labels": int((~np.isin(pred, np.asarray(values))).sum()),
        "classes_without_support": [n for n, p in zip(names, present) if not p],
    }


def asr_error_rates(references: Sequence[str | None], hypotheses: Sequence[str]) -> dict[str, float | int | None]:
    """Corpus-level word and character error rates with jiwer.

    Rates are total edit operations over total reference words/characters (not a mean of per-utterance rates).
    Strings are compared as given (jiwer's default transforms only strip and collapse whitespace): apply the
    tokenizer's normaliser (e.g. Whisper's ``BasicTextNormalizer``) beforehand if the report should be
    case/punctuation-insensitive. Rows whose reference is ``None`` or blank have no transcript (e.g. emotion
    corpora without text) and are skipped — jiwer would otherwise count every hypothesis word as an insertion.

    Args:
        references: `(N,)` reference transcripts; ``None``/blank entries are skipped.
        hypotheses: `(N,)` decoded transcripts.

    Returns:
        ``{"wer", "cer", "n", "n_empty_references"}``; ``wer``/``cer`` are ``None`` when no reference is left.

    Example:
        >>> asr_error_rates(["the cat sat", "hello world"], ["the cat sit", "hello"])["wer"]
        0.4
    """
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"`references` has {len(references)} entries but `hypotheses` has {len(hypotheses)}.")
    pairs = [(r, "" if h is None else h) for r, h in zip(references, hypotheses) if r is not None and r.strip()]
    n_empty = len(references) - len(pairs)
    if not pairs:
        return {"wer": None, "cer": None, "n": 0, "n_empty_references": n_empty}
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "wer": float(jiwer.wer(refs, hyps)),
        "cer": float(jiwer.cer(refs, hyps)),
        "n": len(pairs),
        "n_empty_references": n_empty,
    }


def _first(value: Any) -> Any:
    # Models returning several outputs (emotion logits, speaker logits, gates, ...) reach compute_metrics as a tuple
    # (Trainer keeps tuples, never lists); the emotion logits / labels come first by convention.
    return value[0] if isinstance(value, tuple) else value


def compute_metrics_fn(id2label: Mapping[int, str]) -> Callable[[Any], dict[str, float]]:
    """Build a ``compute_metrics`` callable for :class:`transformers.Trainer`.

    The callable accepts an ``EvalPrediction`` (or a ``(predictions, label_ids)`` pair). ``predictions`` may be a
    tuple whose first element is the `(N, E)` emotion logits, or already-argmaxed `(N,)` ids (when
    ``preprocess_logits_for_metrics`` reduced them); ``label_ids`` may likewise be a tuple (first element used).
    Rows labelled -100 are ignored, and so are rows whose label is not a key of ``id2label`` (evaluation restricted
    to the shared classes).

    Args:
        id2label: ``{class id: class name}`` of the evaluated classes, e.g. ``model.config.id2label``.

    Returns:
        ``fn(eval_pred) -> {"uar", "macro_f1", "accuracy"}``.

    Example:
        >>> fn = compute_metrics_fn({0: "neutral", 1: "angry"})
        >>> fn((np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), np.array([0, 1, -100])))["uar"]
        1.0
    """
    id2label = {int(k): str(v) for k, v in id2label.items()}
    if not id2label:
        raise ValueError("`id2label` must contain at least one class.")

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        if hasattr(eval_pred, "predictions"):
            predictions, label_ids = eval_pred.predictions, eval_pred.label_ids
        else:
            predictions, label_ids = eval_pred[0], eval_pred[1]
        predictions = np.asarray(_first(predictions))
        label_ids = np.asarray(_first(label_ids)).reshape(-1)
        pred_ids = predictions.argmax(axis=-1) if predictions.ndim == 2 else predictions.reshape(-1)
        if len(pred_ids) != len(label_ids):
            raise ValueError(f"`predictions` has {len(pred_ids)} rows but `label_ids` has {len(label_ids)}.")
        valid = label_ids != -100
        report = classification_report_dict(label_ids[valid], pred_ids[valid], id2label)
        return {"uar": report["uar"], "macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}

    return compute_metrics


__all__ = ["asr_error_rates", "classification_report_dict", "compute_metrics_fn"]
