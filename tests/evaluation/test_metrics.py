"""Known-answer tests for trainer.evaluation.metrics and the local evaluate modules in metrics/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.evaluation.metrics import asr_error_rates, classification_report_dict, compute_metrics_fn

REPO = Path(__file__).resolve().parents[2]

# Imbalanced 3-class case: 6 neutral, 3 angry, 1 sad.
Y_TRUE = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
Y_PRED = [0, 0, 0, 0, 0, 1, 1, 0, 0, 2]
ID2LABEL = {0: "neutral", 1: "angry", 2: "sad"}


def test_uar_differs_from_accuracy_on_imbalanced_case():
    r = classification_report_dict(Y_TRUE, Y_PRED, ID2LABEL)
    # recalls: neutral 5/6, angry 1/3, sad 1/1 → UAR = (5/6 + 1/3 + 1) / 3 = 13/18
    assert r["accuracy"] == pytest.approx(7 / 10)
    assert r["uar"] == pytest.approx(13 / 18)
    assert r["per_class_recall"] == pytest.approx({"neutral": 5 / 6, "angry": 1 / 3, "sad": 1.0})
    # precisions: neutral 5/7, angry 1/2, sad 1 → F1 = 2PR/(P+R)
    f1_neutral = 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)
    f1_angry = 2 * 0.5 * (1 / 3) / (0.5 + 1 / 3)
    assert r["per_class_f1"] == pytest.approx({"neutral": f1_neutral, "angry": f1_angry, "sad": 1.0})
    assert r["macro_f1"] == pytest.approx((f1_neutral + f1_angry + 1.0) / 3)
    assert r["confusion_matrix"] == [[5, 1, 0], [2, 1, 0], [0, 0, 1]]
    assert r["support"] == {"neutral": 6, "angry": 3, "sad": 1}
    assert r["n"] == 10 and r["labels"] == ["neutral", "angry", "sad"]


def test_class_never_predicted_counts_as_zero():
    r = classification_report_dict([0, 0, 1, 1], [0, 0, 0, 0], [0, 1], label_names=["neutral", "angry"])
    assert r["per_class_f1"]["angry"] == 0.0
    assert r["per_class_recall"]["angry"] == 0.0
    assert r["uar"] == pytest.approx(0.5)
    assert r["macro_f1"] == pytest.approx((2 * 0.5 * 1.0 / 1.5) / 2)


def test_string_labels_and_restriction_to_class_list():
    y_true = ["happy", "sad", "sad", "fear", "surprise"]
    y_pred = ["happy", "sad", "happy", "surprise", "happy"]
    r = classification_report_dict(y_true, y_pred, ["happy", "sad", "fear"])
    assert r["n"] == 4 and r["n_excluded"] == 1  # the surprise reference is not a shared class
    assert r["n_pred_outside_labels"] == 1  # predicting "surprise" for "fear" is an error
    assert r["uar"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert r["accuracy"] == pytest.approx(0.5)


def test_class_without_support_is_reported_not_averaged():
    r = classification_report_dict([0, 0, 1], [0, 0, 1], {0: "a", 1: "b", 2: "c"})
    assert r["uar"] == 1.0 and r["macro_f1"] == 1.0
    assert r["classes_without_support"] == ["c"]
    assert r["per_class_f1"]["c"] == 0.0


def test_classification_report_errors():
    with pytest.raises(ValueError, match="y_pred"):
        classification_report_dict([0, 1], [0], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        classification_report_dict([0, 1], [0, 1], [])
    with pytest.raises(ValueError, match="label_names"):
        classification_report_dict([0, 1], [0, 1], [0, 1], label_names=["a"])
    with pytest.raises(ValueError, match="nothing to evaluate"):
        classification_report_dict([5, 6], [5, 6], [0, 1])


def test_asr_error_rates_hand_example():
    refs = ["the cat sat", "hello world", "", None]
    hyps = ["the cat sit", "hello", "noise", "more noise"]
    out = asr_error_rates(refs, hyps)
    # words: 1 substitution + 1 deletion over 3 + 2 reference words
    assert out["wer"] == pytest.approx(2 / 5)
    # chars: "sat"→"sit" 1 substitution; "hello world"→"hello" 6 deletions (" world"); 11 + 11 reference chars
    assert out["cer"] == pytest.approx(7 / 22)
    assert out["n"] == 2 and out["n_empty_references"] == 2


def test_asr_error_rates_all_empty_and_mismatch():
    assert asr_error_rates(["", " "], ["a", "b"]) == {"wer": None, "cer": None, "n": 0, "n_empty_references": 2}
    with pytest.raises(ValueError, match="hypotheses"):
        asr_error_rates(["a"], ["a", "b"])


def test_compute_metrics_fn_tuple_predictions_and_ignored_labels():
    from transformers import EvalPrediction

    logits = np.eye(3)[Y_PRED] * 3.0
    speaker_logits = np.zeros((10, 4))
    label_ids = np.array(Y_TRUE + [-100, -100])
    logits = np.concatenate([logits, np.zeros((2, 3))])
    speaker_logits = np.concatenate([speaker_logits, np.zeros((2, 4))])
    fn = compute_metrics_fn(ID2LABEL)
    out = fn(EvalPrediction(predictions=(logits, speaker_logits), label_ids=(label_ids, np.zeros(12))))
    assert set(out) == {"uar", "macro_f1", "accuracy"}
    assert out["uar"] == pytest.approx(13 / 18)
    assert out["accuracy"] == pytest.approx(0.7)
    # already-argmaxed predictions (preprocess_logits_for_metrics) and a plain tuple give the same result
    assert fn((np.array(Y_PRED), np.array(Y_TRUE))) == pytest.approx(out)
    assert fn((list(Y_PRED), list(Y_TRUE))) == pytest.approx(out)  # a list is data, not a tuple of outputs


@pytest.fixture(scope="module")
def offline_evaluate(tmp_path_factory):
    """`evaluate` with the Hub switched off and its module/data caches inside a temp dir."""
    evaluate = pytest.importorskip("evaluate")
    cache = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setattr(evaluate.config, "HF_HUB_OFFLINE", True, raising=False)
        mp.setattr(evaluate.config, "HF_MODULES_CACHE", cache / "modules")
        yield evaluate, cache


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("metrics/uar", "uar"),
        ("metrics/uar/uar.py", "uar"),
        ("metrics/macro_f1", "macro_f1"),
        ("metrics/macro_f1/macro_f1.py", "macro_f1"),
    ],
)
def test_evaluate_modules_load_offline_and_match(offline_evaluate, path, key):
    evaluate, cache = offline_evaluate
    metric = evaluate.load(str(REPO / path), cache_dir=str(cache / "data"))
    expected = classification_report_dict(Y_TRUE, Y_PRED, ID2LABEL)[key]
    assert metric.compute(predictions=Y_PRED, references=Y_TRUE)[key] == pytest.approx(expected)
    # batched use, and the same class restriction as classification_report_dict
    for p, r in zip(Y_PRED, Y_TRUE):
        metric.add(prediction=p, reference=r)
    assert metric.compute()[key] == pytest.approx(expected)
    restricted = classification_report_dict(Y_TRUE, Y_PRED, [0, 1])[key]
    assert metric.compute(predictions=Y_PRED, references=Y_TRUE, labels=[0, 1])[key] == pytest.approx(restricted)
