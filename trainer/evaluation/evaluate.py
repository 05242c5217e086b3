"""Cross-corpus evaluation of a trained `WhisperForTriLoRA`: predictions → `results.json`, `report.md` and plots.

`results.json`'s schema, its version and its writer are `hub_cards.results`; every number in `report.md` is rendered
from that dict, and the folder's file names are `hub_cards.run_folder.EvaluationFolder`'s.

Temperatures are fitted on source validation (in-domain) and, for the target, from *unlabeled* target adaptation
clips by importance-weighted temperature scaling (`trainer.evaluation.calibration.fit_adaptive_temperature`); target labels
are used only to measure ECE. ECE is measured on the test splits. With a pooled standardisation, the target splits
are run with `domain="target"`: the pooled state standardised by statistics of the unlabeled target adaptation
clips (AdaBN; `WhisperForTriLoRA.fit_target_statistics`), their number in "target_statistics_clips" (null: not used).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hub_cards.results import SCHEMA_VERSION, write_results
from hub_cards.run_folder import EvaluationFolder

from .calibration import expected_calibration_error, fit_adaptive_temperature, fit_temperature, softmax_with_temperature
from .diagnostics import diagnostics_section, training_diagnostics
from .metrics import asr_error_rates, classification_report_dict
from .plots import (
    plot_confusion_matrix,
    plot_per_class_f1_radar,
    plot_reliability_diagram,
    plot_training_curves,
    plot_training_diagnostics,
    plot_tsne,
)
from .significance import mcnemar


@dataclass
class Predictions:
    """Per-clip model outputs over one split.

    Attributes:
        logits: (N, E) emotion logits. labels: (N,) emotion ids, −100 where unknown. z_emo: (N, d_z).
        clip_ids: (N,) clip identifiers (paths), to align two models' predictions for McNemar.
        transcripts / hypotheses: reference transcripts and decoded ones (empty when not decoded).
        gates: (N, 3) router gates (lex, emo, spk), `None` for models without a router.
    """

    logits: np.ndarray
    labels: np.ndarray
    z_emo: np.ndarray
    clip_ids: list[str]
    transcripts: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    gates: np.ndarray | None = None

    def to_json(self, id2label: Mapping[int, str]) -> dict[str, Any]:
        """Per-clip predictions as JSON (for McNemar against another run)."""
        return {
            "clip_ids": self.clip_ids,
            "labels": [id2label.get(int(label), None) if label >= 0 else None for label in self.labels],
            "predictions": [id2label[int(index)] for index in self.logits.argmax(-1)],
        }


@torch.no_grad()
def collect_predictions(
    model: torch.nn.Module,
    dataset,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    *,
    batch_size: int = 16,
    clip_id_column: str = "path",
    transcriber: Callable[[dict[str, torch.Tensor]], list[str]] | None = None,
    domain: str = "in_domain",
    group_by_length: bool = True,
) -> Predictions:
    """Run `model` over `dataset` (rows the `collator` takes) and keep logits, labels, z_emo and clip ids.

    Args:
        transcriber: optional `batch → decoded transcripts` used for WER/CER (the reference comes from the
            `transcript` column).
        domain: passed to the model when not `"in_domain"` (`"target"`: the stored target statistics).
        group_by_length: batch clips of similar length together (by the `num_frames` column, when the dataset has
            one), so batches carry little padding; every output is still returned in dataset order. The model masks
            padding, so a clip's output does not depend on its batch beyond float rounding.
    """
    model.eval()
    device = next(model.parameters()).device
    logits, labels, z_emo, gates, hypotheses = [], [], [], [], []
    order = length_order(dataset) if group_by_length else np.arange(len(dataset))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order.tolist(), collate_fn=collator)
    domain_argument = {} if domain == "in_domain" else {"domain": domain}
    for batch in tqdm(loader, desc=f"predicting ({domain})", unit="batch", disable=len(loader) < 5 or None):
        inputs = {key: batch[key].to(device) for key in ("input_features", "attention_mask")}
        output = model(**inputs, **domain_argument)
        logits.append(output.logits.float().cpu().numpy())
        z_emo.append(output.z_emo.float().cpu().numpy())
        if output.routing_weights is not None:
            gates.append(output.routing_weights.float().cpu().numpy())
        labels.append(batch["labels"].cpu().numpy())
        if transcriber is not None:
            hypotheses.extend(transcriber(inputs))
    # Row k of the batched outputs is dataset row order[k]; `restore` puts them back in dataset order.
    restore = np.argsort(order, kind="stable")
    columns = dataset.column_names
    clip_ids = [str(value) for value in dataset[clip_id_column]] if clip_id_column in columns else []
    transcripts = list(dataset["transcript"]) if "transcript" in columns else []
    return Predictions(
        logits=np.concatenate(logits)[restore],
        labels=np.concatenate(labels)[restore],
        z_emo=np.concatenate(z_emo)[restore],
        clip_ids=clip_ids or [str(index) for index in range(len(dataset))],
        transcripts=transcripts,
        hypotheses=[hypotheses[index] for index in restore] if hypotheses else [],
        gates=np.concatenate(gates)[restore] if gates else None,
    )


def length_order(dataset) -> np.ndarray:
    """Row indices of `dataset` by clip length (`num_frames`, stable for ties); dataset order without the column."""
    columns = getattr(dataset, "column_names", None) or []
    if "num_frames" not in columns:
        return np.arange(len(dataset))
    return np.argsort(np.asarray(dataset["num_frames"]), kind="stable")


def classification_section(predictions: Predictions, id2label: Mapping[int, str], classes: Sequence[str]) -> dict[str, Any]:
    """UAR, macro-F1, accuracy, per-class F1/recall and confusion over `classes` (rows with other labels are left
    out; predictions are restricted to `classes` too, so a model with extra classes is scored fairly)."""
    label2id = {name: index for index, name in id2label.items()}
    class_ids = [label2id[name] for name in classes]
    restricted = predictions.logits[:, class_ids]
    predicted = np.asarray(class_ids)[restricted.argmax(-1)]
    report = classification_report_dict(predictions.labels, predicted, {index: id2label[index] for index in class_ids})
    return {
        "uar": report["uar"],
        "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"],
        "per_class": {"f1": report["per_class_f1"], "recall": report["per_class_recall"]},
        "confusion_matrix": report["confusion_matrix"],
        "labels": report["labels"],
        "n": report["n"],
    }


def calibration_section(
    source_validation: Predictions, source_test: Predictions, target_test: Predictions, target_adaptation: Predictions
) -> dict[str, Any]:
    """Temperatures (in-domain from source validation; adaptive from unlabeled target adaptation clips) and ECE
    (15 bins) raw / in-domain T / adaptive T on source test and target test."""
    validation = source_validation.labels >= 0
    logits, labels = source_validation.logits[validation], source_validation.labels[validation]
    in_domain_t = fit_temperature(logits, labels)
    adaptive = fit_adaptive_temperature(logits, labels, source_validation.z_emo[validation], target_adaptation.z_emo)
    temperatures = {"raw": 1.0, "in_domain_T": in_domain_t, "adaptive_T": adaptive["temperature"]}

    def ece(predictions: Predictions) -> dict[str, float]:
        known = predictions.labels >= 0
        return {
            name: expected_calibration_error(softmax_with_temperature(predictions.logits[known], value), predictions.labels[known])
            for name, value in temperatures.items()
        }

    return {
        "temperatures": {"in_domain": in_domain_t, "target_adaptive": adaptive["temperature"]},
        "ece": {"in_domain": ece(source_test), "cross_corpus": ece(target_test)},
        "discriminator_auc": adaptive["discriminator_auc"],
    }


def mcnemar_against(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], name_ours: str, name_theirs: str, split: str
) -> dict[str, Any]:
    """McNemar between two runs' per-clip predictions (`Predictions.to_json` dicts) on the clips both scored."""
    theirs_by_clip = dict(zip(theirs["clip_ids"], theirs["predictions"]))
    rows = [
        (label, prediction, theirs_by_clip[clip])
        for clip, label, prediction in zip(ours["clip_ids"], ours["labels"], ours["predictions"])
        if clip in theirs_by_clip and label is not None
    ]
    if not rows:
        raise ValueError(f"the two runs share no labelled clip on split {split!r}; compare runs on the same corpora")
    truth, first, second = zip(*rows)
    result = mcnemar(list(truth), list(first), list(second))
    return {"a": name_ours, "b": name_theirs, "split": split, **{key: result[key] for key in ("statistic", "p_value", "n", "method")}}


def asr_section(predictions: Predictions) -> dict[str, Any] | None:
    if not predictions.hypotheses:
        return None
    return asr_error_rates(predictions.transcripts, predictions.hypotheses)


def skipped_clips_section(data: Any) -> dict[str, list[dict[str, str]]] | None:
    """results.json's "skipped_clips": per corpus role, every clip its loader dropped (bad audio under
    `--on_bad_audio skip`, duplicate rows) with the problem, from `data.load_reports` (`trainer.data.corpora.LoadReport`);
    `None` for data without loader reports. Written even when nothing was skipped ([]), so a reader can tell "none"
    from "not recorded"."""
    reports = getattr(data, "load_reports", None)
    if not reports:
        return None
    return {role: [{"path": str(path), "problem": problem} for path, problem in report.skipped] for role, report in reports.items()}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def render_report(results: Mapping[str, Any]) -> str:
    """`report.md` from a results dict: every number shown is read from `results`."""
    corpora, protocol = results["corpora"], results["protocol"]
    lines = [
        f"# C-TriLoRA evaluation — preset `{results['model']['preset']}`",
        "",
        f"Source **{corpora['source']['name']}** ({corpora['source']['language']}) → target "
        f"**{corpora['target']['name']}** ({corpora['target']['language']}); base model `{results['model']['base_model']}`; "
        f"trainable parameters {_percent(results['model']['trainable_fraction'])} %.",
        f"Source split: {protocol['source_split']}; transductive target: {protocol['transductive']}; seed {protocol['seed']}. "
        f"Classes evaluated (shared by both corpora): {', '.join(results['emotions'])}.",
    ]
    target_clips = results["model"].get("target_statistics_clips")
    if target_clips:
        lines.append(
            f"Target splits run with pooled-state statistics of {target_clips} unlabeled target adaptation clips (AdaBN)."
        )
    lines += [
        "",
        "## Emotion recognition (%)",
        "",
        "| split | n | UAR | macro-F1 | accuracy |",
        "|---|---|---|---|---|",
    ]
    for key, title in (("in_domain", "in-domain (source test)"), ("cross_corpus", "cross-corpus (target test)")):
        section = results[key]
        lines.append(
            f"| {title} | {section['n']} | {_percent(section['uar'])} | {_percent(section['macro_f1'])} | {_percent(section['accuracy'])} |"
        )
    lines += ["", "### Per-class F1 (%)", "", "| class | in-domain | cross-corpus |", "|---|---|---|"]
    for name in results["emotions"]:
        lines.append(
            f"| {name} | {_percent(results['in_domain']['per_class']['f1'].get(name))} | "
            f"{_percent(results['cross_corpus']['per_class']['f1'].get(name))} |"
        )
    calibration = results.get("calibration")
    if calibration:
        temperatures = calibration["temperatures"]
        lines += [
            "",
            "## Calibration (ECE %, 15 bins)",
            "",
            f"In-domain temperature {temperatures['in_domain']:.3f} (source validation); target-adaptive temperature "
            f"{temperatures['target_adaptive']:.3f} (importance-weighted, from unlabeled target clips; "
            f"domain-discriminator AUC {calibration['discriminator_auc']:.3f}).",
            "",
            "| split | raw | in-domain T | adaptive T |",
            "|---|---|---|---|",
        ]
        for key, title in (("in_domain", "source test"), ("cross_corpus", "target test")):
            ece = calibration["ece"][key]
            lines.append(f"| {title} | {_percent(ece['raw'])} | {_percent(ece['in_domain_T'])} | {_percent(ece['adaptive_T'])} |")
    asr = results.get("asr")
    if asr:
        lines += ["", "## ASR head (%)", "", "| split | n | WER | CER |", "|---|---|---|---|"]
        for key, title in (("in_domain", "source test"), ("cross_corpus", "target test")):
            if asr.get(key):
                lines.append(f"| {title} | {asr[key]['n']} | {_percent(asr[key]['wer'])} | {_percent(asr[key]['cer'])} |")
    comparisons = results.get("comparisons", {}).get("mcnemar", [])
    if comparisons:
        lines += ["", "## McNemar tests", "", "| A | B | split | n | statistic | p | method |", "|---|---|---|---|---|---|---|"]
        for row in comparisons:
            lines.append(
                f"| {row['a']} | {row['b']} | {row['split']} | {row['n']} | {row['statistic']:.4f} | {row['p_value']:.4g} | {row['method']} |"
            )
    skipped = results.get("skipped_clips")
    if skipped is not None:
        lines += ["", "## Clips skipped at loading", ""]
        total = sum(len(clips) for clips in skipped.values())
        if not total:
            lines.append("None: every clip listed by both corpora loaded.")
        else:
            lines.append("; ".join(
                f"{corpora.get(role, {}).get('name', role)} ({role}): {len(clips)}" for role, clips in skipped.items()
            ) + ". These clips are in no split.")
            lines += ["", "| corpus | file | problem |", "|---|---|---|"]
            for role, clips in skipped.items():
                lines += [f"| {role} | `{clip['path']}` | {clip['problem']} |" for clip in clips]
    plots = results.get("plots", {})
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({path})" for name, path in plots.items()]
    diagnostics = results.get("diagnostics") or {}
    diagnostic_lines = []
    if "z_emo_domain_auc" in diagnostics:
        diagnostic_lines.append(f"- z_emo domain AUC (source test vs target test, out-of-fold linear classifier; 0.5 = "
                                f"aligned): {diagnostics['z_emo_domain_auc']:.3f}")
    if "logits_domain_auc" in diagnostics:
        diagnostic_lines.append(f"- emotion-logit domain AUC (the same classifier on the E-dimensional logits the "
                                f"decision is read from): {diagnostics['logits_domain_auc']:.3f}")
    if "target_prediction_histogram" in diagnostics:
        diagnostic_lines.append("- target test predictions per class: " + ", ".join(
            f"{name} {share:.2f}" for name, share in diagnostics["target_prediction_histogram"].items()))
    for split, gates in diagnostics.get("mean_gates", {}).items():
        diagnostic_lines.append(f"- mean router gates, {split.replace('_', ' ')}: "
                                + ", ".join(f"{name} {value:.3f}" for name, value in gates.items()))
    for key, entry in diagnostics.get("training", {}).items():
        chance = f" (chance {diagnostics['adversary_chance']:.3f})" if key == "adversary_accuracy" and "adversary_chance" in diagnostics else ""
        diagnostic_lines.append(f"- last logged {key} (step {entry['step']}): {entry['value']:.4g}{chance}")
    if diagnostic_lines:
        lines += ["", "## Diagnostics", "", *diagnostic_lines]
    return "\n".join(lines) + "\n"


def write_results_and_report(results: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write `results.json` (checked against the schema) and `report.md` into `out_dir`; returns both paths."""
    folder = EvaluationFolder(out_dir)
    write_results(results, folder.results)
    folder.report.write_text(render_report(results), encoding="utf-8")
    return folder.results, folder.report


def write_plots(
    results: Mapping[str, Any],
    predictions: Mapping[str, Predictions],
    temperatures: Mapping[str, float],
    out_dir: str | os.PathLike,
    log_history: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """The paper's per-run figures; returns {name: file name relative to `out_dir`}."""
    out = Path(out_dir)
    emotions = list(results["emotions"])
    written: dict[str, Path] = {}
    for key, split, title in (("in_domain", "source_test", "in-domain"), ("cross_corpus", "target_test", "cross-corpus")):
        section = results[key]
        written[f"confusion_{key}"] = plot_confusion_matrix(
            section["confusion_matrix"], section["labels"], out / f"confusion_{key}.png", normalize=True,
            title=f"Confusion matrix, {title} (row-normalised)",
        )
        known = predictions[split].labels >= 0
        for name, value in (("raw", 1.0), ("in_domain_T", temperatures["in_domain"]), ("adaptive_T", temperatures["target_adaptive"])):
            written[f"reliability_{key}_{name}"] = plot_reliability_diagram(
                softmax_with_temperature(predictions[split].logits[known], value), predictions[split].labels[known],
                out / f"reliability_{key}_{name}.png", title=f"Reliability, {title}, {name} (T = {value:.2f})",
            )
    source, target = predictions["source_test"], predictions["target_test"]
    embeddings = np.concatenate([source.z_emo, target.z_emo])
    emotion_ids = np.concatenate([source.labels, target.labels])
    domains = np.array([0] * len(source.labels) + [1] * len(target.labels))
    id2label = dict(enumerate(emotions))
    written["tsne_emotion"] = plot_tsne(embeddings, emotion_ids, out / "tsne_emotion.png", label_names=id2label,
                                        title="t-SNE of z_emo by emotion (source + target test)")
    written["tsne_domain"] = plot_tsne(embeddings, domains, out / "tsne_domain.png", label_names={0: "source", 1: "target"},
                                       title="t-SNE of z_emo by domain")
    written["f1_radar"] = plot_per_class_f1_radar(
        {"in-domain": results["in_domain"]["per_class"]["f1"], "cross-corpus": results["cross_corpus"]["per_class"]["f1"]},
        out / "f1_radar.png", class_names=emotions, title="Per-class F1",
    )
    if log_history:
        written["training_curves"] = plot_training_curves(log_history, out / "training_curves.png", title="Training loss by term")
        if training_diagnostics(log_history):
            written["training_diagnostics"] = plot_training_diagnostics(
                log_history, out / "training_diagnostics.png", adversary_chance=results.get("diagnostics", {}).get("adversary_chance"),
                title="Method diagnostics during training",
            )
    return {name: path.name for name, path in written.items()}


def evaluate_experiment(
    model: torch.nn.Module,
    data: Any,
    out_dir: str | os.PathLike,
    *,
    protocol: Mapping[str, Any],
    log_history: Sequence[Mapping[str, Any]] | None = None,
    compare_with: Mapping[str, str | os.PathLike] | None = None,
    transcriber: Callable[[dict[str, torch.Tensor]], list[str]] | None = None,
    batch_size: int = 16,
    store_temperatures: bool = True,
    target_statistics: bool = True,
) -> dict[str, Any]:
    """Evaluate `model` on an `trainer.run.ExperimentData` and write the report folder.

    Args:
        out_dir: gets `results.json`, `report.md`, `predictions.json` (per clip, for McNemar) and the PNGs.
        protocol: `trainer.run.protocol(data_args, seed)` (the seed and the data arguments that decide the splits).
        log_history: `trainer.state.log_history`, for the training-curve plot.
        compare_with: `{name: another evaluation folder}` — McNemar of this model vs each on the same clips.
        transcriber: batch → decoded transcripts, for WER/CER of the ASR head.
        store_temperatures: write the fitted temperatures into `model.config` (`predict_emotion` applies them).
        target_statistics: with a pooled standardisation, fit the target statistics on the target adaptation split
            (they stay in the model, for `domain="target"`) and run the target splits with them.

    Returns:
        The results dict (also written as `results.json`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    splits = {
        "source_validation": data.source["validation"],
        "source_test": data.source["test"],
        "target_adaptation": data.target["adaptation"],
        "target_test": data.target["test"],
    }
    target_clips = None
    was_training = model.training
    model.eval()
    # Every split runs with the LoRA updates merged into the base projections (fewer matmuls per forward); the
    # trained weights are restored bit-for-bit afterwards, so evaluating mid-training changes nothing.
    merged = model.merged_lora() if hasattr(model, "merged_lora") else contextlib.nullcontext()
    try:
        with merged:
            if target_statistics and getattr(config, "pooled_normalization", "none") != "none":
                adaptation = splits["target_adaptation"]
                loader = DataLoader(
                    adaptation, batch_size=batch_size, sampler=length_order(adaptation).tolist(), collate_fn=data.collator
                )
                target_clips = model.fit_target_statistics(loader)
            predictions = {
                name: collect_predictions(
                    model, dataset, data.collator, batch_size=batch_size,
                    transcriber=transcriber if name in ("source_test", "target_test") else None,
                    domain="target" if target_clips and name.startswith("target") else "in_domain",
                )
                for name, dataset in splits.items()
            }
    finally:
        model.train(was_training)
    report_model = model.trainable_parameter_report() if hasattr(model, "trainable_parameter_report") else {"fraction": None}
    model_info = {
        "base_model": str(getattr(config, "_name_or_path", "")),
        "preset": config.preset,
        "trainable_fraction": report_model["fraction"],
        "checkpoint": str(out.parent),
        "target_statistics_clips": target_clips,
    }
    results = write_report_from_predictions(
        predictions, data, out, model_info=model_info, protocol=protocol, log_history=log_history,
        compare_with=compare_with,
    )
    if store_temperatures:
        config.in_domain_temperature = results["calibration"]["temperatures"]["in_domain"]
        config.target_temperature = results["calibration"]["temperatures"]["target_adaptive"]
    return results


def write_report_from_predictions(
    predictions: Mapping[str, Predictions],
    data: Any,
    out_dir: str | os.PathLike,
    *,
    model_info: Mapping[str, Any],
    protocol: Mapping[str, Any],
    log_history: Sequence[Mapping[str, Any]] | None = None,
    compare_with: Mapping[str, str | os.PathLike] | None = None,
    extra: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """`results.json`, `report.md`, `predictions.json` and the plots from the predictions on the four splits.

    Shared by `evaluate_experiment` (a `WhisperForTriLoRA`) and the baselines (`trainer.evaluation.baselines`), so every run's
    folder has the same schema and report.

    Args:
        predictions: `Predictions` for "source_validation", "source_test", "target_adaptation", "target_test".
        data: the run's `trainer.run.ExperimentData`.
        model_info: the results' "model" section ({"base_model", "preset", "trainable_fraction", "checkpoint"}).
        protocol: `trainer.run.protocol(data_args, seed)`.
        log_history / compare_with: as for `evaluate_experiment`.
        extra: more top-level keys for `results.json` (e.g. a probe's settings).
        started: `time.perf_counter()` at the start of the run; when given, `wall_time_s` (up to the moment the
            files are written, plots included) is added to the results.

    Returns:
        The results dict, as written.
    """
    out = EvaluationFolder(out_dir)
    out.path.mkdir(parents=True, exist_ok=True)
    id2label = data.id2label
    calibration = calibration_section(
        predictions["source_validation"], predictions["source_test"], predictions["target_test"], predictions["target_adaptation"]
    )
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": dict(model_info),
        "emotions": list(data.classes),
        "corpora": {
            role: {"name": data.names[role], "language": data.languages[role], "n_test": len(predictions[f"{role}_test"].labels)}
            for role in ("source", "target")
        },
        "protocol": dict(protocol),
        "in_domain": classification_section(predictions["source_test"], id2label, data.classes),
        "cross_corpus": classification_section(predictions["target_test"], id2label, data.classes),
        "calibration": calibration,
    }
    asr = {key: asr_section(predictions[split]) for key, split in (("in_domain", "source_test"), ("cross_corpus", "target_test"))}
    if any(asr.values()):
        results["asr"] = asr
    per_clip = {split: predictions[split].to_json(id2label) for split in ("source_test", "target_test")}
    out.predictions.write_text(json.dumps(per_clip, ensure_ascii=False) + "\n", encoding="utf-8")
    comparisons = []
    for name, folder in (compare_with or {}).items():
        theirs = json.loads(EvaluationFolder(folder).predictions.read_text(encoding="utf-8"))
        for key, split in (("in_domain", "source_test"), ("cross_corpus", "target_test")):
            comparisons.append(mcnemar_against(per_clip[split], theirs[split], model_info["preset"], name, key))
    if comparisons:
        results["comparisons"] = {"mcnemar": comparisons}
    results["diagnostics"] = diagnostics_section(
        predictions, data.classes, log_history=log_history, num_speakers=len(getattr(data, "speaker2id", {})) or None
    )
    skipped = skipped_clips_section(data)
    if skipped is not None:
        results["skipped_clips"] = skipped
    results["plots"] = write_plots(results, predictions, calibration["temperatures"], out.path, log_history)
    results.update(extra or {})
    if started is not None:
        results["wall_time_s"] = round(time.perf_counter() - started, 3)
    write_results_and_report(results, out)
    return results


__all__ = [
    "Predictions",
    "asr_section",
    "calibration_section",
    "classification_section",
    "collect_predictions",
    "evaluate_experiment",
    "length_order",
    "mcnemar_against",
    "render_report",
    "skipped_clips_section",
    "write_plots",
    "write_report_from_predictions",
    "write_results_and_report",
]
