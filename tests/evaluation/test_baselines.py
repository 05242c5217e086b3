"""Frozen-encoder probe baselines: CORAL algebra, the encoder features, the probe, and the example script end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import WhisperModel

from conftest_data import make_csv_corpus
from trainer.evaluation.baselines import (
    SPLITS,
    coral_transform,
    fit_frozen_probe,
    load_frozen_encoder,
    pooled_layer_states,
    symmetric_matrix_power,
)
from trainer.evaluation.evaluate import mcnemar_against
from trainer.evaluation.metrics import classification_report_dict
from trainer.run import DataArguments, protocol

REPO = Path(__file__).resolve().parents[2]


def random_covariance(rng: np.random.Generator, d: int, scale: float = 1.0) -> np.ndarray:
    factor = rng.normal(size=(d, d)) * scale
    return factor @ factor.T + 0.1 * np.eye(d)


def correlated_samples(rng: np.random.Generator, n: int, covariance: np.ndarray, mean: float = 0.0) -> np.ndarray:
    return mean + rng.normal(size=(n, len(covariance))) @ np.linalg.cholesky(covariance).T


# -------------------------------------------------------------------------------------------- CORAL algebra
def test_symmetric_matrix_power_roots_and_inverse_roots():
    matrix = random_covariance(np.random.default_rng(0), 5)
    root, inverse_root = symmetric_matrix_power(matrix, 0.5), symmetric_matrix_power(matrix, -0.5)
    np.testing.assert_allclose(root @ root, matrix, atol=1e-10)
    np.testing.assert_allclose(inverse_root @ matrix @ inverse_root, np.eye(5), atol=1e-10)
    with pytest.raises(ValueError, match="singular"):
        symmetric_matrix_power(np.diag([1.0, 0.0]), -0.5)
    with pytest.raises(ValueError, match="positive semi-definite"):
        symmetric_matrix_power(np.diag([1.0, -1.0]), 0.5)


def test_coral_without_regulariser_gives_source_the_target_covariance():
    rng = np.random.default_rng(1)
    source = correlated_samples(rng, 400, random_covariance(rng, 4), mean=2.0)
    target = correlated_samples(rng, 300, random_covariance(rng, 4, scale=3.0), mean=-1.0)
    recoloured = source @ coral_transform(source, target, regularizer=0.0)
    # Exact for the sample covariances: A^T C_S A = C_T^(1/2) C_S^(-1/2) C_S C_S^(-1/2) C_T^(1/2) = C_T.
    np.testing.assert_allclose(np.cov(recoloured, rowvar=False), np.cov(target, rowvar=False), rtol=1e-8, atol=1e-8)


def test_coral_with_the_papers_regulariser():
    """With C_S' = C_S + I and C_T' = C_T + I, cov(source @ A) = C_T'^(1/2) (I − C_S'^(-1)) C_T'^(1/2); for a source
    whose variance dwarfs the +I, that is C_T' = C_T + I — the paper's recoloured covariance."""
    rng = np.random.default_rng(2)
    d = 4
    source = correlated_samples(rng, 500, random_covariance(rng, d))
    target = correlated_samples(rng, 500, random_covariance(rng, d, scale=2.0))
    source_cov = np.cov(source, rowvar=False) + np.eye(d)
    target_cov = np.cov(target, rowvar=False) + np.eye(d)
    recoloured = source @ coral_transform(source, target, regularizer=1.0)
    target_root = symmetric_matrix_power(target_cov, 0.5)
    expected = target_root @ (np.eye(d) - np.linalg.inv(source_cov)) @ target_root
    np.testing.assert_allclose(np.cov(recoloured, rowvar=False), expected, rtol=1e-8, atol=1e-8)

    loud = 1000.0 * source
    np.testing.assert_allclose(np.cov(loud @ coral_transform(loud, target), rowvar=False), target_cov, rtol=1e-4, atol=1e-4)


def test_coral_refuses_bad_inputs():
    with pytest.raises(ValueError, match="same d"):
        coral_transform(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        coral_transform(np.zeros((1, 3)), np.zeros((5, 3)))


# ------------------------------------------------------------------------------------------------ the probe
def shifted_gaussians(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Three Gaussian classes; the target sees the same clips through an anisotropic rotation-and-scale (an SPD
    mixing) plus an offset — a covariance shift that a source-fitted scaler cannot undo and CORAL can."""
    rng = np.random.default_rng(seed)
    d, k = 6, 3
    means = rng.normal(scale=1.5, size=(k, d))
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    mixing = rotation @ np.diag([8.0, 0.15, 5.0, 0.3, 1.0, 2.0]) @ rotation.T
    features, labels = {}, {}
    for name, n in zip(SPLITS, (300, 90, 90, 300, 300)):
        y = np.arange(n) % k
        x = means[y] + rng.normal(size=(n, d))
        features[name], labels[name] = (x @ mixing + 3.0 if name.startswith("target") else x), y
    return features, labels, k


def target_macro_f1(fit, labels, k: int) -> float:
    return classification_report_dict(labels["target_test"], fit.logits["target_test"].argmax(1), list(range(k)))["macro_f1"]


def test_coral_probe_beats_the_plain_probe_under_covariance_shift():
    features, labels, k = shifted_gaussians()
    plain = fit_frozen_probe(features, labels, k, preset="frozen_probe")
    coral = fit_frozen_probe(features, labels, k, preset="frozen_probe_coral")
    # A huge λ makes the CORAL map ≈ identity: what is left is the per-domain standardisation alone.
    standardised_only = fit_frozen_probe(features, labels, k, preset="frozen_probe_coral", coral_regularizer=1e6)
    assert not np.array_equal(plain.logits["target_test"].argmax(1), coral.logits["target_test"].argmax(1))
    assert target_macro_f1(plain, labels, k) < 0.6
    assert target_macro_f1(coral, labels, k) > target_macro_f1(plain, labels, k) + 0.3
    assert target_macro_f1(coral, labels, k) > target_macro_f1(standardised_only, labels, k) + 0.02
    for fit in (plain, coral):
        assert fit.C in fit.validation_macro_f1 and fit.validation_macro_f1[fit.C] == max(fit.validation_macro_f1.values())
        assert all(fit.logits[name].shape == (len(labels[name]), k) for name in SPLITS)
    # Target features reach the classifier only standardised (with target-adaptation statistics), not re-coloured.
    adaptation = features["target_adaptation"]
    np.testing.assert_allclose(
        coral.inputs["target_test"], (features["target_test"] - adaptation.mean(0)) / adaptation.std(0), atol=1e-10
    )


def test_probe_refuses_a_class_missing_from_source_train_and_unknown_presets():
    features, labels, k = shifted_gaussians()
    labels = {**labels, "source_train": np.where(labels["source_train"] == 2, -100, labels["source_train"])}
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        fit_frozen_probe(features, labels, k)
    with pytest.raises(ValueError, match="preset"):
        fit_frozen_probe(features, labels, k, preset="linear")


def test_two_class_probe_logits_match_the_classifier_probabilities():
    features, labels, _ = shifted_gaussians()
    keep = {name: labels[name] < 2 for name in SPLITS}
    fit = fit_frozen_probe({n: features[n][keep[n]] for n in SPLITS}, {n: labels[n][keep[n]] for n in SPLITS}, 2)
    logits = fit.logits["target_test"]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, fit.classifier.predict_proba(fit.inputs["target_test"]), atol=1e-10)


# ------------------------------------------------------------------------------------------ encoder features
def test_layer_states_are_the_pretrained_encoders_and_independent_of_batch_mates(tiny_whisper_dir):
    model = load_frozen_encoder(tiny_whisper_dir)
    stock = WhisperModel.from_pretrained(tiny_whisper_dir).encoder.eval()
    torch.manual_seed(0)
    full = torch.randn(2, 80, 100)  # the tiny checkpoint's whole window: the stock encoder's only accepted length
    with torch.inference_mode():
        hidden_states = stock(full, output_hidden_states=True).hidden_states
        pooled = pooled_layer_states(model, full, torch.ones(2, 100, dtype=torch.long))
        layers = len(model.model.encoder.layers)
        assert pooled.shape == (2, layers, 32)
        # transformers' hidden_states = (embeddings, layer 1, ..., final layer norm of layer L).
        for index in range(layers):
            torch.testing.assert_close(pooled[:, index], hidden_states[index + 1].mean(1), atol=1e-5, rtol=1e-5)

        short = torch.randn(1, 80, 40)
        alone = pooled_layer_states(model, short, torch.ones(1, 40, dtype=torch.long))
        batch = torch.zeros(2, 80, 100)
        batch[0, :, :40], batch[1] = short[0], full[0]
        mask = torch.zeros(2, 100, dtype=torch.long)
        mask[0, :40], mask[1] = 1, 1
        torch.testing.assert_close(pooled_layer_states(model, batch, mask)[0], alone[0], atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in model.parameters())


# -------------------------------------------------------------------------------------------- end to end
def test_frozen_probe_script_end_to_end(tiny_whisper_dir, tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "examples"))
    import frozen_probe

    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    source = make_csv_corpus(tmp_path / "src", speakers=("01", "02", "03", "04"), seconds=0.5)
    target = make_csv_corpus(tmp_path / "tgt", speakers=("11", "12", "13", "14"), seconds=0.4)
    common = ["--base_model", tiny_whisper_dir, "--source", source, "--target", target, "--source_split", "speaker_independent",
              "--seed", "0", "--batch_size", "4"]
    runs = {}
    for preset, extra in (("frozen_probe", []), ("frozen_probe_coral", ["--coral"])):
        runs[preset] = tmp_path / preset
        results = frozen_probe.main([*common, "--output_dir", str(runs[preset]), *extra])
        evaluation = runs[preset] / "evaluation"
        on_disk = json.loads((evaluation / "results.json").read_text())
        assert on_disk == json.loads(json.dumps(results))
        assert on_disk["model"]["preset"] == preset and on_disk["schema_version"] == 1
        assert {"emotions", "corpora", "protocol", "in_domain", "cross_corpus", "calibration", "plots", "probe"} <= set(on_disk)
        assert on_disk["protocol"] == protocol(DataArguments(source=source, target=target, source_split="speaker_independent"), 0)
        assert {"seed": 0, "source_split": "speaker_independent", "transductive": False}.items() <= on_disk["protocol"].items()
        assert on_disk["emotions"] == ["neutral", "happy", "angry", "fear"]
        for section in ("in_domain", "cross_corpus"):
            assert 0 <= on_disk[section]["uar"] <= 1 and 0 <= on_disk[section]["macro_f1"] <= 1
            assert on_disk[section]["n"] == on_disk["corpora"]["source" if section == "in_domain" else "target"]["n_test"]
        assert on_disk["calibration"]["temperatures"]["in_domain"] > 0
        assert 0 < on_disk["model"]["trainable_fraction"] < 0.05
        assert on_disk["wall_time_s"] > 0
        assert on_disk["probe"]["num_layers"] == 2 and on_disk["probe"]["feature_dim"] == 32
        assert on_disk["probe"]["C"] in [float(c) for c in on_disk["probe"]["validation_macro_f1_by_C"]]
        assert (on_disk["probe"]["coral"] is not None) == (preset == "frozen_probe_coral")
        report = (evaluation / "report.md").read_text()
        assert f"preset `{preset}`" in report and f"{100 * on_disk['cross_corpus']['macro_f1']:.2f}" in report
        for plot in on_disk["plots"].values():
            assert (evaluation / plot).stat().st_size > 1000
        for name in ("source_splits.json", "target_splits.json"):
            assert (runs[preset] / name).is_file()
    # The second preset reused the first one's encoder features; both ran on the same splits.
    assert results["probe"]["features_cached"] == {"source": True, "target": True}
    for name in ("source_splits.json", "target_splits.json"):
        assert json.loads((runs["frozen_probe"] / name).read_text()) == json.loads((runs["frozen_probe_coral"] / name).read_text())

    per_clip = {preset: json.loads((run / "evaluation" / "predictions.json").read_text()) for preset, run in runs.items()}
    target_test = json.loads((runs["frozen_probe"] / "target_splits.json").read_text())["splits"]["test"]
    for clips in per_clip.values():
        assert set(clips) == {"source_test", "target_test"}
        assert len(clips["target_test"]["clip_ids"]) == len(target_test) == results["corpora"]["target"]["n_test"]
        assert set(clips["target_test"]["predictions"]) <= set(results["emotions"])
        assert all(Path(clip).is_file() for clip in clips["target_test"]["clip_ids"])
    comparison = mcnemar_against(per_clip["frozen_probe_coral"]["target_test"], per_clip["frozen_probe"]["target_test"],
                                 "frozen_probe_coral", "frozen_probe", "cross_corpus")
    assert comparison["n"] == results["corpora"]["target"]["n_test"] and 0 <= comparison["p_value"] <= 1
