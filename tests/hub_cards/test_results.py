"""hub_cards.results, the one results.json schema: what evaluation writes is complete, loads back unchanged, and the
model card reads its per-class F1; validation names what is wrong and leaves unknown optional sections alone."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
from huggingface_hub import ModelCard

from hub_cards import SCHEMA_VERSION, RunFolder, build_model_card, load_results, validate_results, write_results
from hub_cards.results import REQUIRED
from trainer.evaluation.evaluate import Predictions, write_report_from_predictions

CLASSES = ["neutral", "happy", "sad"]


def _predictions(seed: int, n: int = 30, accuracy: float = 0.7) -> Predictions:
    generator = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    guessed = np.where(generator.random(n) < accuracy, labels, generator.integers(0, len(CLASSES), n))
    logits = 2.0 * np.eye(len(CLASSES))[guessed] + 0.3 * generator.standard_normal((n, len(CLASSES)))
    return Predictions(logits=logits, labels=labels, z_emo=generator.standard_normal((n, 4)).astype(np.float32),
                       clip_ids=[f"clip-{seed}-{index}.wav" for index in range(n)])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A run folder whose evaluation/ was written by the evaluation's own writer, with a `diagnostics` section."""
    run = RunFolder(tmp_path_factory.mktemp("run"))
    splits = ("source_validation", "source_test", "target_adaptation", "target_test")
    predictions = {name: _predictions(seed) for seed, name in enumerate(splits)}
    data = SimpleNamespace(id2label=dict(enumerate(CLASSES)), classes=CLASSES,
                           names={"source": "src-corpus", "target": "tgt-corpus"}, languages={"source": "kk", "target": "kk"})
    results = write_report_from_predictions(
        predictions, data, run.evaluation,
        model_info={"base_model": "tiny", "preset": "full", "trainable_fraction": 0.02, "checkpoint": str(run.root)},
        protocol={"seed": 0, "source_split": "stratified", "transductive": False},
        extra={"diagnostics": {"note": "free-form"}},
    )
    return run, results


def test_what_evaluation_writes_is_complete_and_loads_back_unchanged(evaluated):
    run, results = evaluated
    loaded = load_results(run.evaluation.results, complete=True)
    assert loaded == json.loads(json.dumps(results))
    assert loaded["schema_version"] == SCHEMA_VERSION and set(REQUIRED) <= set(loaded)
    assert loaded["diagnostics"] == {"note": "free-form"}
    assert set(loaded["in_domain"]["per_class"]) == {"f1", "recall"}
    assert run.evaluation.report.is_file() and run.evaluation.predictions.is_file()


def test_write_load_validate_round_trip(evaluated, tmp_path):
    _, results = evaluated
    path = write_results(results, tmp_path / "copy" / "results.json")
    validate_results(load_results(path, complete=True))
    assert load_results(path) == json.loads(json.dumps(results))


def test_the_card_reads_per_class_f1_where_evaluation_writes_it(evaluated):
    run, _ = evaluated
    results = load_results(run.evaluation.results)
    text = ModelCard(str(build_model_card(results))).text
    assert "| Emotion | F1 (in-domain) | Recall (in-domain) | F1 (cross-corpus) | Recall (cross-corpus) |" in text
    for name in CLASSES:
        cells = [results[section]["per_class"][metric][name]
                 for section in ("in_domain", "cross_corpus") for metric in ("f1", "recall")]
        assert f"| {name} | " + " | ".join(f"{100 * value:.1f} %" for value in cells) + " |" in text


def test_validation_names_what_is_wrong(evaluated, tmp_path):
    _, results = evaluated
    with pytest.raises(ValueError, match="schema_version 2"):
        validate_results({**results, "schema_version": 2})
    incomplete = {key: value for key, value in results.items() if key != "calibration"}
    with pytest.raises(ValueError, match='"calibration" is missing'):
        validate_results(incomplete)
    validate_results(incomplete, complete=False)  # partial results are fine where asked for
    with pytest.raises(ValueError, match='"calibration" is missing'):
        write_results(incomplete, tmp_path / "results.json")
    assert not (tmp_path / "results.json").exists()
    flat = copy.deepcopy(results)
    flat["cross_corpus"]["per_class"] = flat["cross_corpus"]["per_class"]["f1"]["happy"]
    with pytest.raises(ValueError, match="cross_corpus.per_class"):
        validate_results(flat, complete=False)
    with pytest.raises(ValueError, match="lacks"):
        validate_results({**results, "protocol": {"seed": 0}})
    with pytest.raises(ValueError, match='"diagnostics" must be a Mapping'):
        validate_results({**results, "diagnostics": [1, 2]})
    # Sections this code does not know are left alone: a newer writer may add them.
    validate_results({**results, "diagnostics": {}, "something_new": [1, 2]})
    validate_results({"model": {"preset": "full"}}, complete=False)


def test_skipped_clips_section_is_optional_and_checked_where_present(evaluated):
    _, results = evaluated
    assert "skipped_clips" not in results  # data without loader reports: results as written before the field existed
    validate_results(results)  # ... still complete, at the same schema version
    listed = {"source": [{"path": "/c/a.wav", "problem": "unreadable audio"}], "target": []}
    validate_results({**results, "skipped_clips": listed})
    with pytest.raises(ValueError, match='"skipped_clips.source" must be a list of'):
        validate_results({**results, "skipped_clips": {"source": ["/c/a.wav"]}}, complete=False)
    with pytest.raises(ValueError, match='"skipped_clips" must be a Mapping'):
        validate_results({**results, "skipped_clips": []})
