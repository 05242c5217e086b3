"""Report figures (paper Figs. 3–9): each function takes data and an output path, writes one PNG, returns the path.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas rather than through ``pyplot``: nothing is
registered in pyplot's global figure manager, no backend is switched for the caller, nothing leaks when called
thousands of times in a sweep, and it works on headless machines and in worker processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from modeling_ctrilora.presets import LOGGED_LOSS_TERMS
from trainer.evaluation.calibration import expected_calibration_error, reliability_diagram_data

PathLike = str | os.PathLike

_DPI = 120


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, output_path: PathLike) -> Path:
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    # Figure objects outside pyplot are freed by garbage collection; clearing drops the artists right away.
    fig.clear()
    return path


def plot_confusion_matrix(
    confusion: Sequence[Sequence[float]] | np.ndarray,
    class_names: Sequence[str],
    output_path: PathLike,
    *,
    normalize: bool = False,
    title: str | None = None,
) -> Path:
    """Confusion matrix heatmap, rows = true class, columns = predicted class.

    Args:
        confusion: `(C, C)` counts, e.g. ``classification_report_dict(...)["confusion_matrix"]``.
        class_names: `(C,)` names in matrix order.
        output_path: PNG destination (parent directories are created).
        normalize: show row-normalised rates (each row = recall distribution of a true class); rows with no
            samples stay 0.
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"`confusion` must be a non-empty square matrix, got shape {cm.shape}.")
    if len(class_names) != cm.shape[0]:
        raise ValueError(
            f"`class_names` has {len(class_names)} entries but `confusion` is {cm.shape[0]}×{cm.shape[0]}."
        )
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = cm.shape[0]
    fig = _new_figure(1.2 + 0.7 * n, 1.0 + 0.6 * n)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = (1 if normalize else cm.max()) / 2
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    ax.set_title(title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix"))
    return _save(fig, output_path)


def plot_reliability_diagram(
    probs: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    output_path: PathLike,
    *,
    n_bins: int = 15,
    title: str | None = None,
) -> Path:
    """Reliability diagram: per-bin accuracy bars, the gap to the bin's mean confidence, the diagonal, ECE in title.

    Args:
        probs: `(N, C)` probabilities (after any temperature scaling).
        labels: `(N,)` class ids.
        output_path: PNG destination.
        n_bins: equal-width confidence bins (as for ECE).
        title: prefix of the title; the ECE is appended.

    Returns:
        ``Path(output_path)``.
    """
    data = reliability_diagram_data(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    edges = np.asarray(data["bin_edges"])
    acc, conf, count = (np.asarray(data[k]) for k in ("bin_acc", "bin_conf", "bin_count"))
    width = edges[1:] - edges[:-1]
    filled = count > 0
    fig = _new_figure(5, 5)
    ax = fig.add_subplot()
    ax.bar(edges[:-1][filled], acc[filled], width=width[filled], align="edge", color="tab:blue", edgecolor="black",
           label="accuracy")
    # The gap bar spans accuracy → confidence: above the bar = over-confident, inside it = under-confident.
    ax.bar(edges[:-1][filled], conf[filled] - acc[filled], bottom=acc[filled], width=width[filled], align="edge",
           color="tab:red", alpha=0.35, edgecolor="tab:red", hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    ax.set_title(f"{title + ' — ' if title else ''}ECE = {100 * ece:.2f} %")
    return _save(fig, output_path)


def _tsne(embeddings: np.ndarray, perplexity: float | None, seed: int) -> np.ndarray:
    n = len(embeddings)
    # sklearn requires perplexity < n; the usual 30 only suits n ≳ 100, so shrink it for small evaluation sets.
    perplexity = perplexity if perplexity is not None else float(min(30.0, max(1.0, (n - 1) / 3)))
    if not 0 < perplexity < n:
        raise ValueError(f"`perplexity` must be in (0, {n}), got {perplexity}.")
    x = embeddings.astype(np.float64)
    if x.shape[1] > 50 and n > 50:
        # Standard t-SNE practice: PCA to 50 dims first removes noise and makes the neighbour search cheaper.
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    # One OpenMP thread: on busy cores sklearn's multi-threaded Barnes-Hut loop spends its time in thread barriers
    # (measured: 12 s vs 0.1 s for 24 points with the other core loaded); report-sized sets need no parallelism.
    with threadpool_limits(limits=1, user_api="openmp"):
        return tsne.fit_transform(x)



def _palette(k: int) -> list[Any]:
    # Qualitative maps keep neighbouring classes distinguishable; beyond 20 groups fall back to a continuous map.
    if k <= 10:
        return list(colormaps["tab10"].colors[:k])
    if k <= 20:
        return list(colormaps["tab20"].colors[:k])
    return [colormaps["turbo"](i / max(k - 1, 1)) for i in range(k)]


def _namer(names: Mapping[Any, str] | Sequence[str] | None) -> Any:
    if names is None:
        return str
    if isinstance(names, Mapping):
        return lambda g: str(names.get(g, g))
    names = list(names)
    return lambda g: names[g] if isinstance(g, (int, np.integer)) and 0 <= g < len(names) else str(g)


def _scatter_by(ax: Any, xy: np.ndarray, colour_by: np.ndarray, name: Any, marker_by: np.ndarray | None = None,
                marker_name: Any = str) -> None:
    groups = sorted(set(colour_by.tolist()), key=str)
    marker_groups = [None] if marker_by is None else sorted(set(marker_by.tolist()), key=str)
    markers = ["o", "^", "s", "D", "v", "P", "X"]
    for colour, g in zip(_palette(len(groups)), groups):
        for k, m in enumerate(marker_groups):
            mask = colour_by == g if m is None else (colour_by == g) & (marker_by == m)
            if mask.any():
                label = name(g) if m is None else f"{name(g)} / {marker_name(m)}"
                ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color=colour, marker=markers[k % len(markers)], alpha=0.8,
                           label=label, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.2, loc="best", framealpha=0.8)


def plot_tsne(
    embeddings: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    output_path: PathLike,
    *,
    label_names: Mapping[Any, str] | Sequence[str] | None = None,
    domains: Sequence[Any] | np.ndarray | None = None,
    domain_names: Mapping[Any, str] | Sequence[str] | None = None,
    perplexity: float | None = None,
    seed: int = 0,
    title: str | None = None,
) -> Path:
    """t-SNE of embeddings (e.g. z_emo), coloured by emotion; with ``domains``, a second panel coloured by domain.

    With ``domains`` the figure has two panels sharing one embedding: left, colour = emotion and marker = domain
    (are classes kept apart across corpora?); right, colour = domain (are the corpora mixed — the CORAL question?).

    Args:
        embeddings: `(N, D)` vectors; N >= 3. PCA to 50 dims is applied first when D > 50 and N > 50.
        labels: `(N,)` class ids or names.
        output_path: PNG destination.
        label_names: names for ``labels`` (``{id: name}`` or a list indexed by id).
        domains: `(N,)` domain ids/names (e.g. "source"/"target"), optional.
        domain_names: names for ``domains``.
        perplexity: t-SNE perplexity; default min(30, (N − 1) / 3) so small evaluation sets work.
        seed: t-SNE random state (fixed → the same picture every run).
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    x = np.asarray(embeddings)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"`embeddings` must have shape (N, D) with N >= 3, got {x.shape}.")
    if y.shape != (len(x),):
        raise ValueError(f"`labels` must have shape ({len(x)},), got {y.shape}.")
    dom = None if domains is None else np.asarray(domains)
    if dom is not None and dom.shape != (len(x),):
        raise ValueError(f"`domains` must have shape ({len(x)},), got {dom.shape}.")
    xy = _tsne(x, perplexity, seed)
    fig = _new_figure(11 if dom is not None else 6, 5)
    if dom is None:
        ax = fig.add_subplot()
        _scatter_by(ax, xy, y, _namer(label_names))
        ax.set_title(title or "t-SNE by emotion")
    else:
        left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        _scatter_by(left, xy, y, _namer(label_names), dom, _namer(domain_names))
        left.set_title("by emotion (marker = domain)")
        _scatter_by(right, xy, dom, _namer(domain_names))
        right.set_title("by domain")
        if title:
            fig.suptitle(title)
    return _save(fig, output_path)


def plot_per_class_f1_radar(
    series: Mapping[str, Mapping[str, float]] | Mapping[str, float],
    output_path: PathLike,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Radar (spider) plot of per-class F1, one polygon per system (paper Fig. 8).

    Args:
        series: ``{system: {class: F1}}``, or a single ``{class: F1}`` (e.g. ``report["per_class_f1"]``).
        output_path: PNG destination.
        class_names: axis order; default the classes of the first series. Missing values plot as 0.
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    if not series:
        raise ValueError("`series` is empty.")
    if all(isinstance(v, (int, float, np.floating, np.integer)) for v in series.values()):
        series = {"F1": series}  # a single per-class dict
    classes = list(class_names) if class_names is not None else list(next(iter(series.values())))
    if not classes:
        raise ValueError("no class names: pass `class_names` or non-empty per-class dicts.")
    angles = np.linspace(0, 2 * np.pi, len(classes), endpoint=False).tolist()
    fig = _new_figure(6, 6)
    ax = fig.add_subplot(projection="polar")
    for colour, (name, values) in zip(_palette(len(series)), series.items()):
        r = [float(values.get(c, 0.0)) for c in classes]
        ax.plot(angles + angles[:1], r + r[:1], color=colour, linewidth=1.5, label=name)
        ax.fill(angles + angles[:1], r + r[:1], color=colour, alpha=0.12)
    ax.set_xticks(angles, labels=classes)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    ax.set_title(title or "Per-class F1", pad=20)
    return _save(fig, output_path)


_EVAL_NON_METRICS = ("loss", "runtime", "per_second", "epoch", "step")


def plot_training_curves(
    log_history: Sequence[Mapping[str, Any]],
    output_path: PathLike,
    *,
    loss_terms: Sequence[str] = LOGGED_LOSS_TERMS,
    title: str | None = None,
) -> Path:
    """Training curves with the per-term loss decomposition (stacked areas) and eval metrics.

    Reads the format of ``trainer.state.log_history``: training entries carry ``"loss"`` plus the *weighted* loss
    terms (``loss_ser``, ``loss_asr``, ...; whichever are present are stacked, so the stack's top follows the total
    when every term is logged — the terms are non-negative losses); evaluation entries carry ``eval_*`` keys.
    A term missing from an individual entry counts as 0 there. The x axis is ``"step"`` (entry index if absent).

    Panels: (1) stacked train terms, the total train loss and ``eval_loss`` (dashed) if logged; (2) only if evaluation
    entries exist — every ``eval_*`` metric that is not a loss, runtime, throughput or counter (e.g. ``eval_uar``,
    ``eval_macro_f1``, ``eval_accuracy``).

    Args:
        log_history: list of log dicts.
        output_path: PNG destination.
        loss_terms: term keys to stack, bottom to top.
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    entries = list(log_history)
    train = [(e.get("step", i), e) for i, e in enumerate(entries) if "loss" in e]
    evals = [(e.get("step", i), e) for i, e in enumerate(entries) if any(k.startswith("eval_") for k in e)]
    if not train and not evals:
        raise ValueError("`log_history` has no training entry (key 'loss') and no evaluation entry (keys 'eval_*').")
    metric_keys = sorted(
        {k for _, e in evals for k in e if k.startswith("eval_") and not any(s in k for s in _EVAL_NON_METRICS)}
    )
    fig = _new_figure(8, 7 if metric_keys else 4)
    ax = fig.add_subplot(2, 1, 1) if metric_keys else fig.add_subplot()
    if train:
        steps = np.array([s for s, _ in train], dtype=float)
        present = [t for t in loss_terms if any(t in e for _, e in train)]
        if present:
            stacked = np.array([[float(e.get(t, 0.0)) for _, e in train] for t in present])
            ax.stackplot(steps, stacked, labels=present, colors=_palette(len(present)), alpha=0.7)
        ax.plot(steps, [float(e["loss"]) for _, e in train], color="black", linewidth=1.5, label="loss (total)")
    eval_loss = [(s, float(e["eval_loss"])) for s, e in evals if "eval_loss" in e]
    if eval_loss:
        ax.plot(*zip(*eval_loss), "--o", color="dimgray", markersize=3, label="eval_loss")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    ax.set_title(title or "Training loss decomposition")
    if metric_keys:
        ax2 = fig.add_subplot(2, 1, 2)
        for colour, key in zip(_palette(len(metric_keys)), metric_keys):
            points = [(s, float(e[key])) for s, e in evals if key in e]
            ax2.plot(*zip(*points), "-o", color=colour, markersize=3, label=key)
        ax2.set_xlabel("step")
        ax2.set_ylabel("eval metric")
        ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, output_path)


def plot_training_diagnostics(
    log_history: Sequence[Mapping[str, Any]],
    output_path: PathLike,
    *,
    adversary_chance: float | None = None,
    title: str | None = None,
) -> Path:
    """The method's training diagnostics over steps (keys `CTriLoRATrainer` logs): mean router gate per factor
    (``gate_lex``, ``gate_emo``, ``gate_spk``), the adversary's speaker accuracy against chance, and the CORAL/SER
    gradient-norm ratio (log scale). Panels without logged values are left out.

    Returns:
        ``Path(output_path)``.
    """
    train = [(e.get("step", i), e) for i, e in enumerate(log_history) if "eval_loss" not in e]
    panels = [
        ("router gates", [k for k in ("gate_lex", "gate_emo", "gate_spk") if any(k in e for _, e in train)]),
        ("adversary speaker accuracy", [k for k in ("adversary_accuracy",) if any(k in e for _, e in train)]),
        ("CORAL / SER gradient norm", [k for k in ("coral_ser_grad_ratio",) if any(k in e for _, e in train)]),
    ]
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels:
        raise ValueError("`log_history` holds no training diagnostics (gate_*, adversary_accuracy, coral_ser_grad_ratio)")
    fig = _new_figure(8, 2.6 * len(panels))
    for index, (name, keys) in enumerate(panels, start=1):
        ax = fig.add_subplot(len(panels), 1, index)
        for key in keys:
            points = [(step, e[key]) for step, e in train if key in e]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
        if keys == ["adversary_accuracy"] and adversary_chance:
            ax.axhline(adversary_chance, color="grey", linestyle="--", label="chance")
        if keys == ["coral_ser_grad_ratio"]:
            ax.set_yscale("log")
            ax.axhline(1.0, color="grey", linestyle="--", label="equal")
        ax.set_ylabel(name)
        ax.legend(fontsize=8)
    fig.axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    return _save(fig, output_path)


def _mean_sd(value: float | Sequence[float]) -> tuple[float, float]:
    values = np.atleast_1d(np.asarray(value, dtype=float))
    if len(values) == 0:
        return math.nan, 0.0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def plot_ablation_bars(
    results: Mapping[str, Mapping[str, float | Sequence[float]]],
    output_path: PathLike,
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
    ylabel: str = "score",
) -> Path:
    """Grouped bar chart: variants (x) × metrics (bars), mean ± sd over seeds (paper Fig. 4).

    Args:
        results: ``{variant: {metric: value or per-seed values}}``; a list of values gives mean and sample sd
            (ddof = 1) as error bar, a scalar gives no error bar.
        output_path: PNG destination.
        metrics: which metrics and in which order; default all, in order of first appearance.
        title: figure title.
        ylabel: y-axis label.

    Returns:
        ``Path(output_path)``.
    """
    if not results:
        raise ValueError("`results` is empty.")
    variants = list(results)
    if metrics is None:
        metrics = list(dict.fromkeys(m for v in variants for m in results[v]))
    if not metrics:
        raise ValueError("`results` holds no metric values.")
    width = 0.8 / len(metrics)
    x = np.arange(len(variants))
    fig = _new_figure(max(6, 1.1 * len(variants) * max(1, len(metrics) / 2)), 4.5)
    ax = fig.add_subplot()
    for k, (colour, metric) in enumerate(zip(_palette(len(metrics)), metrics)):
        stats = [_mean_sd(results[v][metric]) if metric in results[v] else (math.nan, 0.0) for v in variants]
        means, sds = np.array([s[0] for s in stats]), np.array([s[1] for s in stats])
        bars = ax.bar(x + (k - (len(metrics) - 1) / 2) * width, means, width, yerr=sds, capsize=3, color=colour,
                      label=metric, error_kw={"linewidth": 1})
        ax.bar_label(bars, labels=["" if np.isnan(m) else f"{m:.3f}" for m in means], fontsize=6, padding=2)
    ax.set_xticks(x, labels=variants, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title or "Ablation")
    return _save(fig, output_path)


def plot_delta_waterfall(
    full_score: float,
    ablated_scores: Mapping[str, float],
    output_path: PathLike,
    *,
    reference_name: str = "Full",
    metric_name: str = "macro-F1",
    percent: bool = True,
    title: str | None = None,
) -> Path:
    """Waterfall of Δ metric when each component is removed, relative to the full model (paper Fig. 6).

    The first bar is the full model's score; each following bar floats from that level to the ablated score and is
    annotated with Δ = ablated − full (red = drop, green = gain), largest drop first. The bars all start from the
    full score instead of accumulating: every ablation is a separate run, so the Δs are not additive.

    Args:
        full_score: score of the reference (full) model, in [0, 1] (or already in points if ``percent=False``).
        ablated_scores: ``{variant: score}``.
        output_path: PNG destination.
        reference_name: label of the first bar.
        metric_name: y-axis label.
        percent: multiply scores by 100 for display (Δ shown in percentage points).
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    if not ablated_scores:
        raise ValueError("`ablated_scores` is empty.")
    scale = 100.0 if percent else 1.0
    full = float(full_score) * scale
    deltas = sorted(((name, float(v) * scale - full) for name, v in ablated_scores.items()), key=lambda t: t[1])
    fig = _new_figure(max(6, 0.9 * (len(deltas) + 1)), 4.5)
    ax = fig.add_subplot()
    ax.bar(0, full, color="tab:blue", width=0.6)
    ax.text(0, full, f"{full:.2f}", ha="center", va="bottom", fontsize=8)
    for i, (name, delta) in enumerate(deltas, start=1):
        ax.bar(i, delta, bottom=full, width=0.6, color="tab:red" if delta < 0 else "tab:green")
        ax.text(i, full + delta, f"{delta:+.2f}", ha="center", va="top" if delta < 0 else "bottom", fontsize=8)
    ax.axhline(full, color="gray", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(deltas) + 1), labels=[reference_name] + [n for n, _ in deltas], rotation=30, ha="right")
    ax.set_ylabel(f"{metric_name}{' (%)' if percent else ''}")
    ax.set_title(title or f"Δ {metric_name} per removed component vs {reference_name}")
    return _save(fig, output_path)


def plot_pvalue_heatmap(
    p_values: Sequence[Sequence[float]] | np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    output_path: PathLike,
    *,
    alpha: float = 0.05,
    title: str | None = None,
) -> Path:
    """Heatmap of (McNemar) p-values on a log colour scale, significant cells starred (paper Fig. 5).

    Takes the output of :func:`trainer.evaluation.significance.pairwise_mcnemar` directly:
    ``plot_pvalue_heatmap(output_path=path, **pairwise_mcnemar(y, preds, reference="full"))``.

    Args:
        p_values: `(R, K)` p-values.
        rows: `(R,)` row names; columns: `(K,)` column names.
        output_path: PNG destination.
        alpha: significance level for the star (apply :func:`trainer.evaluation.significance.holm_adjust`
            beforehand to control the family-wise error).
        title: figure title.

    Returns:
        ``Path(output_path)``.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 2 or p.size == 0:
        raise ValueError(f"`p_values` must be a non-empty 2-D matrix, got shape {p.shape}.")
    if p.shape != (len(rows), len(columns)):
        raise ValueError(f"`p_values` has shape {p.shape} but `rows`×`columns` is {len(rows)}×{len(columns)}.")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("`p_values` must lie in [0, 1].")
    floor = 1e-4
    fig = _new_figure(2.0 + 1.1 * len(columns), 1.2 + 0.5 * len(rows))
    ax = fig.add_subplot()
    im = ax.imshow(np.clip(p, floor, 1.0), cmap="viridis", norm=LogNorm(vmin=floor, vmax=1.0), aspect="auto")
    fig.colorbar(im, ax=ax, label="p-value (log scale)")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            text = "<.001" if p[i, j] < 1e-3 else f"{p[i, j]:.3f}"
            star = "*" if p[i, j] < alpha else ""
            ax.text(j, i, text + star, ha="center", va="center", fontsize=8,
                    color="white" if p[i, j] < 0.03 else "black")
    ax.set_title(title or f"McNemar p-values (* p < {alpha:g})")
    return _save(fig, output_path)


__all__ = [
    "plot_ablation_bars",
    "plot_confusion_matrix",
    "plot_delta_waterfall",
    "plot_per_class_f1_radar",
    "plot_pvalue_heatmap",
    "plot_reliability_diagram",
    "plot_training_curves",
    "plot_training_diagnostics",
    "plot_tsne",
]
