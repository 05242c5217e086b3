"""Aggregate per-run `results.json` files into the ablation table, statistics and figures (paper Table I, Figs. 5–8).

Run folders are `<root>/<preset>/seed-<k>/` (`run_folder`; inside, the `hub_cards.run_folder.RunFolder` layout), as
written by `examples/run_ablations.py` (each run is `examples/train_ctrilora.py` or, for the baselines,
`examples/frozen_probe.py`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hub_cards.results import load_results
from hub_cards.run_folder import RunFolder

from .evaluate import mcnemar_against
from .plots import plot_ablation_bars, plot_delta_waterfall, plot_per_class_f1_radar, plot_pvalue_heatmap
from .significance import wilcoxon_signed_rank

REFERENCE = "full"
SPLITS = (("in_domain", "in-domain"), ("cross_corpus", "cross-corpus"))
METRICS = (("macro_f1", "macro-F1"), ("uar", "UAR"))
# The presets that each remove one component from Full, and the component (for the waterfall).
REMOVED_COMPONENT = {
    "no_orthogonality": "orthogonality",
    "no_coral": "CORAL",
    "no_grl": "GRL",
    "no_counterfactual": "counterfactual",
    "ser_only": "all auxiliary losses",
}


def run_folder(root: str | os.PathLike, preset: str, seed: int) -> RunFolder:
    return RunFolder(Path(root) / preset / f"seed-{seed}")


def load_runs(root: str | os.PathLike, presets: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict[str, Any]]]:
    """`{preset: {seed: results}}` for every finished run (missing ones are simply absent)."""
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for preset in presets:
        for seed in seeds:
            path = run_folder(root, preset, seed).evaluation.results
            if path.is_file():
                runs.setdefault(preset, {})[seed] = load_results(path)
    return runs


def _mean_sd(values: Sequence[float]) -> dict[str, Any]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else None, "n": len(array), "values": array.tolist()}


def summarise(runs: Mapping[str, Mapping[int, Mapping[str, Any]]], root: str | os.PathLike) -> dict[str, Any]:
    """Table rows (mean ± sd over seeds), Wilcoxon Full vs each (paired seeds), McNemar Full vs each (per seed)."""
    table = {
        preset: {
            f"{split}_{metric}": _mean_sd([results[split][metric] for results in by_seed.values()])
            for split, _ in SPLITS
            for metric, _ in METRICS
        }
        for preset, by_seed in runs.items()
    }
    wilcoxon, mcnemar_rows, missing, unpaired = {}, [], [], []
    reference = runs.get(REFERENCE, {})
    for preset, by_seed in runs.items():
        if preset == REFERENCE:
            continue
        paired = sorted(set(reference) & set(by_seed))
        if len(paired) >= 2:
            wilcoxon[preset] = wilcoxon_signed_rank(
                [reference[seed]["cross_corpus"]["macro_f1"] for seed in paired],
                [by_seed[seed]["cross_corpus"]["macro_f1"] for seed in paired],
            )
        for seed in paired:
            files = [run_folder(root, variant, seed).evaluation.predictions for variant in (REFERENCE, preset)]
            if not all(path.is_file() for path in files):
                # Runs evaluated before per-clip predictions were written: no McNemar for this pair, said in the report.
                missing.append({"preset": preset, "seed": seed, "missing": [str(p) for p in files if not p.is_file()]})
                continue
            ours, theirs = (json.loads(path.read_text(encoding="utf-8")) for path in files)
            for split, name in (("in_domain", "source_test"), ("cross_corpus", "target_test")):
                if not set(ours[name]["clip_ids"]) & set(theirs[name]["clip_ids"]):
                    # Runs on different splits (e.g. a corpus that changed between them): no paired test, said so.
                    unpaired.append({"preset": preset, "seed": seed, "split": split})
                    continue
                row = mcnemar_against(ours[name], theirs[name], REFERENCE, preset, split)
                mcnemar_rows.append({**row, "seed": seed})
    return {"table": table, "wilcoxon": wilcoxon, "mcnemar": mcnemar_rows, "mcnemar_missing": missing,
            "mcnemar_unpaired": unpaired}


def write_figures(runs, summary: Mapping[str, Any], out_dir: str | os.PathLike) -> dict[str, str]:
    """Ablation bars, waterfall of Δ cross-corpus macro-F1, McNemar heatmap vs Full, per-class F1 radar."""
    out = Path(out_dir)
    table = summary["table"]
    written = {
        "ablation_bars": plot_ablation_bars(
            {preset: {f"{title} macro-F1": row[f"{split}_macro_f1"]["values"] for split, title in SPLITS} for preset, row in table.items()},
            out / "ablation_bars.png", title="Macro-F1 by variant (mean ± sd over seeds)", ylabel="macro-F1",
        )
    }
    if REFERENCE in table:
        removed = {REMOVED_COMPONENT[p]: table[p]["cross_corpus_macro_f1"]["mean"] for p in REMOVED_COMPONENT if p in table}
        if removed:
            written["waterfall"] = plot_delta_waterfall(
                table[REFERENCE]["cross_corpus_macro_f1"]["mean"], removed, out / "waterfall.png",
                metric_name="cross-corpus macro-F1", title="Δ cross-corpus macro-F1 when a component is removed",
            )
    first_seed_rows: dict[str, dict[str, float]] = {}
    for row in summary["mcnemar"]:
        first_seed_rows.setdefault(row["b"], {}).setdefault(row["split"], row["p_value"])
    if first_seed_rows:
        variants = sorted(first_seed_rows)
        written["mcnemar_heatmap"] = plot_pvalue_heatmap(
            [[first_seed_rows[v].get(split, float("nan")) for split, _ in SPLITS] for v in variants],
            variants, [title for _, title in SPLITS], out / "mcnemar_heatmap.png", title="McNemar p-value vs Full (first paired seed)",
        )
    radar = {
        preset: {name: float(np.mean([r["cross_corpus"]["per_class"]["f1"][name] for r in by_seed.values()]))
                 for name in next(iter(by_seed.values()))["emotions"]}
        for preset, by_seed in runs.items()
    }
    written["per_class_radar"] = plot_per_class_f1_radar(radar, out / "per_class_radar.png", title="Cross-corpus per-class F1")
    return {name: path.name for name, path in written.items()}


def _cell(stats: Mapping[str, Any]) -> str:
    if stats["sd"] is None:
        return f"{100 * stats['mean']:.2f}"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['sd']:.2f}"


def render_ablation_report(summary: Mapping[str, Any], failures: Mapping[str, str], plots: Mapping[str, str]) -> str:
    """`ablation.md`: every number is read from `summary`."""
    lines = [
        "# Ablation (Table I)",
        "",
        "Mean ± sd over seeds, % (n = seeds finished).",
        "",
        "| variant | n | in-domain macro-F1 | in-domain UAR | cross-corpus macro-F1 | cross-corpus UAR |",
        "|---|---|---|---|---|---|",
    ]
    for preset, row in summary["table"].items():
        cells = [_cell(row[f"{split}_{metric}"]) for split, _ in SPLITS for metric, _ in METRICS]
        lines.append(f"| {preset} | {row['cross_corpus_macro_f1']['n']} | " + " | ".join(cells) + " |")
    if summary["wilcoxon"]:
        lines += ["", "## Wilcoxon signed-rank, Full vs variant (cross-corpus macro-F1, paired seeds)", "",
                  "| variant | n | statistic | p | method |", "|---|---|---|---|---|"]
        for preset, result in summary["wilcoxon"].items():
            lines.append(f"| {preset} | {result['n']} | {result['statistic']} | {result['p_value']:.4g} | {result['method']} |")
    if summary["mcnemar"]:
        lines += ["", "## McNemar, Full vs variant (per seed)", "", "| variant | seed | split | n | statistic | p | method |",
                  "|---|---|---|---|---|---|---|"]
        for row in summary["mcnemar"]:
            lines.append(f"| {row['b']} | {row['seed']} | {row['split']} | {row['n']} | {row['statistic']:.4f} | {row['p_value']:.4g} | {row['method']} |")
    if summary.get("mcnemar_missing"):
        lines += ["", "McNemar not computed (a run without per-clip `predictions.json`): "
                  + ", ".join(f"{row['preset']} seed {row['seed']}" for row in summary["mcnemar_missing"]) + "."]
    if summary.get("mcnemar_unpaired"):
        lines += ["", "McNemar not computed (the two runs share no test clip on that split: different splits): "
                  + ", ".join(f"{row['preset']} seed {row['seed']} {row['split']}" for row in summary["mcnemar_unpaired"]) + "."]
    if failures:
        lines += ["", "## Runs that failed", ""] + [f"- `{run}`: {reason}" for run, reason in failures.items()]
    lines += ["", "## Figures", ""] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n".join(lines) + "\n"


__all__ = ["REFERENCE", "load_runs", "render_ablation_report", "run_folder", "summarise", "write_figures"]
