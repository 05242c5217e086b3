"""Every plot writes a valid, non-empty PNG and returns its path; bad input gives a clear ValueError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.evaluation import plots
from trainer.evaluation.significance import pairwise_mcnemar

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ["neutral", "angry", "happy", "sad", "fear"]


def _assert_png(returned: Path, expected: Path) -> None:
    assert Path(returned) == expected
    data = expected.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC


def test_confusion_matrix(tmp_path):
    cm = [[5, 1, 0, 0, 0], [2, 1, 0, 0, 1], [0, 0, 1, 3, 0], [0, 0, 0, 4, 0], [1, 0, 0, 0, 0]]
    for normalize in (False, True):
        out = tmp_path / "sub" / f"cm_{normalize}.png"  # parent directories are created
        _assert_png(plots.plot_confusion_matrix(cm, CLASSES, out, normalize=normalize), out)
    with pytest.raises(ValueError, match="class_names"):
        plots.plot_confusion_matrix(cm, CLASSES[:2], tmp_path / "x.png")


def test_reliability_diagram(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(200, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = tmp_path / "rel.png"
    _assert_png(plots.plot_reliability_diagram(probs, rng.integers(0, 5, 200), out, title="cross-corpus"), out)


def test_tsne_by_label_and_by_domain(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 8)
    emb = rng.normal(size=(24, 16)) + labels[:, None]
    out = tmp_path / "tsne.png"
    _assert_png(plots.plot_tsne(emb, labels, out, label_names=CLASSES[:3]), out)  # perplexity adapted to n = 24
    out2 = tmp_path / "tsne_domain.png"
    domains = np.array(["source", "target"] * 12)
    _assert_png(plots.plot_tsne(emb, labels, out2, label_names={0: "a", 1: "b", 2: "c"}, domains=domains), out2)
    with pytest.raises(ValueError, match="domains"):
        plots.plot_tsne(emb, labels, tmp_path / "x.png", domains=domains[:3])


def test_radar_single_and_several_series(tmp_path):
    single = {c: f for c, f in zip(CLASSES, [0.8, 0.6, 0.3, 0.2, 0.5])}
    out = tmp_path / "radar1.png"
    _assert_png(plots.plot_per_class_f1_radar(single, out), out)
    several = {"full": single, "shared_head": {c: 0.4 for c in CLASSES}, "no_coral": {"neutral": 0.5}}
    out = tmp_path / "radar3.png"
    _assert_png(plots.plot_per_class_f1_radar(several, out, class_names=CLASSES), out)


def test_training_curves_with_loss_decomposition(tmp_path):
    history = []
    for step in range(10, 110, 10):
        terms = {"loss_ser": 1.0 / step * 50, "loss_asr": 0.3, "loss_coral": 0.001, "loss_orthogonality": 0.02}
        history.append({"step": step, "epoch": step / 100, "loss": sum(terms.values()), **terms})
        if step % 50 == 0:
            history.append({"step": step, "eval_loss": 0.9, "eval_uar": step / 200, "eval_macro_f1": step / 250,
                            "eval_accuracy": step / 180, "eval_runtime": 1.2, "eval_samples_per_second": 30.0})
    history.append({"step": 100, "train_loss": 1.0, "train_runtime": 10.0})  # Trainer's final summary entry
    out = tmp_path / "curves.png"
    _assert_png(plots.plot_training_curves(history, out), out)
    out = tmp_path / "curves_train_only.png"
    _assert_png(plots.plot_training_curves([{"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}], out), out)
    with pytest.raises(ValueError, match="log_history"):
        plots.plot_training_curves([{"train_runtime": 1.0}], tmp_path / "x.png")


def test_ablation_bars_and_waterfall(tmp_path):
    results = {
        "full": {"uar": [0.42, 0.44, 0.43], "macro_f1": [0.41, 0.42, 0.40]},
        "no_coral": {"uar": [0.30, 0.29, 0.33], "macro_f1": [0.25, 0.24, 0.26]},
        "shared_head": {"uar": 0.38, "macro_f1": 0.37},
    }
    out = tmp_path / "ablation.png"
    _assert_png(plots.plot_ablation_bars(results, out), out)
    out = tmp_path / "waterfall.png"
    ablated = {"no_coral": 0.2391, "no_grl": 0.39, "no_orthogonality": 0.42, "shared_head": 0.3734}
    _assert_png(plots.plot_delta_waterfall(0.4144, ablated, out), out)
    with pytest.raises(ValueError, match="ablated_scores"):
        plots.plot_delta_waterfall(0.4, {}, tmp_path / "x.png")


def test_pvalue_heatmap_vs_full_and_all_pairs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    preds = {name: np.where(rng.random(100) < acc, y, (y + 1) % 3)
             for name, acc in {"full": 0.8, "no_coral": 0.6, "no_grl": 0.75}.items()}
    out = tmp_path / "p_vs_full.png"
    _assert_png(plots.plot_pvalue_heatmap(output_path=out, **pairwise_mcnemar(y, preds, reference="full")), out)
    out = tmp_path / "p_pairs.png"
    _assert_png(plots.plot_pvalue_heatmap(output_path=out, **pairwise_mcnemar(y, preds)), out)
    with pytest.raises(ValueError, match="p_values"):
        plots.plot_pvalue_heatmap([[0.5, 0.2]], ["a"], ["b"], tmp_path / "x.png")
