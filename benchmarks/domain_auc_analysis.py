#!/usr/bin/env python
"""What the z_emo domain AUC measures, and what lowering it costs (the alignment item of the method study).

    python benchmarks/domain_auc_analysis.py --base_model ~/.cache/ctrilora-weights/whisper-base \\
        --source ../shared/data/ravdess --target ../shared/data/urdu --source_language en --target_language ur \\
        --target_split stratified --source_split speaker_independent --on_bad_audio skip --split_seed 0 \\
        --seeds 0 1 2 --run_dir runs/screening/urdu --output_dir benchmarks/method_study/domain_auc/urdu \\
        --screening_jsonl benchmarks/method_study/screening/urdu.jsonl benchmarks/method_study/screening/urdu-v2.jsonl \\
        --lora_results benchmarks/method_study/urdu/*/seed-*/evaluation/results.json

`diagnostics.domain_auc` (the number `results.json` reports as `z_emo_domain_auc`) is the out-of-fold AUC of a
linear classifier telling the *source test* clips (a few held-out source speakers) from the *target test* clips.
On the frozen encoder's cached states (`trainer.screening`, the same cache as the frozen probe) this script measures:

1. `frozen`: the AUC of the pooled states themselves, before any trained head, standardised as the default model
   does at test (source rows with the joint source + target training statistics, target rows with target statistics)
   and per domain (DSBN / AdaBN: each domain with its own statistics);
2. `projection`: the AUC after a random Gaussian projection of the per-domain standardised states to k dimensions —
   how the AUC grows with the dimension of a representation that was not trained to carry the domain;
3. `emotion_subspace`: the AUC in the (C − 1)-dimensional linear discriminant space of the source-train emotions;
4. `rank_sweep`: screening runs of the default `full` recipe (`trainer.screening.DEFAULT_FULL_RECIPE`) with router
   rank r_f ∈ `--ranks`, joint or domain-specific normalisation: source-validation F1 (the selection criterion),
   cross-corpus F1 (reported only) and the AUC of the trained z_emo and of the emotion logits (E dimensions in
   every model, so comparable across ranks);
5. `screening_correlation` (with `--screening_jsonl`): Spearman's ρ between the z_emo AUC and the cross-corpus
   F1 over every (recipe, seed) row of committed screening files;
6. `lora_runs` (with `--lora_results`): the same over LoRA runs' `evaluation/results.json` files (the runs whose
   `diagnostics` carry `z_emo_domain_auc`; the others are listed as not recording it).

Target labels are read for reporting only (cross-corpus F1); nothing here selects a recipe.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from transformers import HfArgumentParser

from trainer.evaluation.diagnostics import domain_auc
from trainer.run import DataArguments
from trainer.screening import (
    DEFAULT_FULL_RECIPE,
    RECIPES,
    CachedStatesArguments,
    ScreeningData,
    load_cached_states,
    train_screening_run,
)

logger = logging.getLogger("domain_auc_analysis")


@dataclass(kw_only=True)
class AnalysisArguments(CachedStatesArguments):
    """The seeds, the settings of each section and where to write; the encoder and the splits: `CachedStatesArguments`."""

    output_dir: str = field(metadata={"help": "results.json and report.md are written here."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of projections and runs."})
    dimensions: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256, 512],
                                  metadata={"help": "Random-projection sizes."})
    ranks: list[int] = field(default_factory=lambda: [16, 32, 64, 256], metadata={"help": "Router ranks of the sweep."})
    screening_jsonl: list[str] = field(default_factory=list, metadata={"help": "Screening files for the correlation."})
    lora_results: list[str] = field(default_factory=list, metadata={"help": "LoRA runs' evaluation/results.json files."})


def _standardise(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (features - reference.mean(0)) / (reference.std(0) + 1e-8)


def _per_domain_standardised(data: ScreeningData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All-layer mean states of source train, source test and target test: the source splits on the source-train
    statistics, the target test on the target-adaptation statistics (DSBN / AdaBN)."""
    train, adaptation = data.features["source_train"].mean(1), data.features["target_adaptation"].mean(1)
    return (_standardise(train, train), _standardise(data.features["source_test"].mean(1), train),
            _standardise(data.features["target_test"].mean(1), adaptation))


def _mean_sd(values: list[float]) -> list[float]:
    return [round(float(np.mean(values)), 4), round(float(np.std(values)), 4)]


def frozen_state_auc(data: ScreeningData, seed: int = 0) -> dict[str, float]:
    """AUC of the frozen pooled states (all-layer mean and last layer) under the two standardisations."""
    found = {}
    for pooling, pool in (("mean_layers", lambda x: x.mean(1)), ("last_layer", lambda x: x[:, -1])):
        train, adaptation = pool(data.features["source_train"]), pool(data.features["target_adaptation"])
        source, target = pool(data.features["source_test"]), pool(data.features["target_test"])
        joint = np.concatenate([train, adaptation])
        target_standardised = _standardise(target, adaptation)
        found[f"{pooling}/joint_statistics"] = round(domain_auc(_standardise(source, joint), target_standardised, seed), 4)
        found[f"{pooling}/per_domain_statistics"] = round(domain_auc(_standardise(source, train), target_standardised, seed), 4)
    return found


def projection_auc(data: ScreeningData, dimensions: list[int], seeds: list[int]) -> dict[str, list[float]]:
    """AUC of random Gaussian projections of the per-domain standardised all-layer states, mean ± sd over seeds."""
    _, source, target = _per_domain_standardised(data)
    found = {}
    for k in dimensions:
        values = []
        for seed in seeds:
            projection = np.random.default_rng(seed).normal(size=(source.shape[1], k))
            values.append(domain_auc(source @ projection, target @ projection, seed))
        found[str(k)] = _mean_sd(values)
    return found


def emotion_subspace_auc(data: ScreeningData, seed: int = 0) -> dict[str, float]:
    """AUC in the linear discriminant space of the source-train emotions (C − 1 dimensions)."""
    train, source, target = _per_domain_standardised(data)
    labels = data.labels["source_train"]
    keep = labels >= 0
    lda = LinearDiscriminantAnalysis().fit(train[keep], labels[keep])
    source, target = lda.transform(source), lda.transform(target)
    return {"dimensions": int(source.shape[1]), "auc": round(domain_auc(source, target, seed), 4)}


def rank_sweep(data: ScreeningData, ranks: list[int], seeds: list[int]) -> list[dict]:
    """The default recipe with each router rank, joint and domain-specific normalisation, over `seeds`."""
    base = RECIPES[DEFAULT_FULL_RECIPE]
    rows = []
    for normalization in ("joint", "domain_specific"):
        for rank in ranks:
            recipe = replace(base, name=f"{base.name}|rank={rank}|{normalization}", factor_rank=rank,
                             normalization=normalization)
            runs = [train_screening_run(data, recipe, seed=seed) for seed in seeds]
            rows.append({
                "recipe": recipe.name, "factor_rank": rank, "normalization": normalization, "seeds": len(seeds),
                "source_validation_f1": _mean_sd([r["source_validation"]["macro_f1"] for r in runs]),
                "in_domain_f1": _mean_sd([r["in_domain"]["macro_f1"] for r in runs]),
                "cross_corpus_f1": _mean_sd([r["cross_corpus"]["macro_f1"] for r in runs]),
                "z_emo_domain_auc": _mean_sd([r["diagnostics"]["domain_auc_z_emo"] for r in runs]),
                "logits_domain_auc": _mean_sd([r["diagnostics"]["domain_auc_logits"] for r in runs]),
            })
            logger.info("rank %d %s: val F1 %s, cross F1 %s, AUC %s", rank, normalization,
                        rows[-1]["source_validation_f1"], rows[-1]["cross_corpus_f1"], rows[-1]["z_emo_domain_auc"])
    return rows


def screening_correlation(paths: list[str]) -> dict[str, float | int]:
    """Spearman's ρ between z_emo AUC and cross-corpus F1 (and source-validation F1) over screening rows."""
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
    if len(rows) < 3:
        raise ValueError(f"{paths}: need at least 3 screening rows for a correlation, found {len(rows)}")
    auc = [row["diagnostics"]["domain_auc_z_emo"] for row in rows]
    cross = [row["cross_corpus"]["macro_f1"] for row in rows]
    validation = [row["source_validation"]["macro_f1"] for row in rows]
    rho_cross, p_cross = spearmanr(auc, cross)
    rho_validation, p_validation = spearmanr(auc, validation)
    return {"rows": len(rows), "rho_auc_cross_f1": round(float(rho_cross), 3), "p_auc_cross_f1": float(p_cross),
            "rho_auc_validation_f1": round(float(rho_validation), 3), "p_auc_validation_f1": float(p_validation),
            "rows_below_0.95": int(sum(a < 0.95 for a in auc))}


def lora_runs(paths: list[str]) -> dict:
    """z_emo AUC, in-domain and cross-corpus F1 of LoRA runs, and Spearman's ρ(AUC, cross-corpus F1) over them.

    A run is named by the two folders above `evaluation/` (`<preset>/seed-N`)."""
    rows, without = [], []
    for path in paths:
        results = json.loads(Path(path).read_text())
        name = "/".join(Path(path).parts[-4:-2])
        auc = results.get("diagnostics", {}).get("z_emo_domain_auc")
        if auc is None:
            without.append(name)
            continue
        rows.append({"run": name, "z_emo_domain_auc": auc,
                     "logits_domain_auc": results["diagnostics"].get("logits_domain_auc"),
                     "in_domain_f1": results["in_domain"]["macro_f1"], "cross_corpus_f1": results["cross_corpus"]["macro_f1"]})
    found: dict = {"rows": rows, "without_diagnostic": without}
    if len(rows) >= 3:
        rho, p = spearmanr([r["z_emo_domain_auc"] for r in rows], [r["cross_corpus_f1"] for r in rows])
        found.update(rho_auc_cross_f1=round(float(rho), 3), p_auc_cross_f1=float(p))
    return found


def write_report(results: dict, path: Path) -> None:
    cell = lambda pair: f"{pair[0]:.3f} ± {pair[1]:.3f}"  # noqa: E731
    lines = [f"# z_emo domain AUC: {results['pair']}", "",
             "Out-of-fold AUC of a linear source-test vs target-test classifier (`diagnostics.domain_auc`; 0.5 = "
             "indistinguishable). Frozen whisper-base states; target labels only in the cross-corpus column.", "",
             "## Frozen encoder states (no trained head)", "", "| pooling / statistics | AUC |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in results["frozen"].items()]
    lines += ["", "## Random projections of the per-domain standardised all-layer states", "",
              "| dimensions | AUC (mean ± sd over seeds) |", "|---|---|"]
    lines += [f"| {k} | {cell(value)} |" for k, value in results["projection"].items()]
    emotion = results["emotion_subspace"]
    lines += ["", f"Emotion discriminant space of the source-train labels ({emotion['dimensions']} dimensions): "
              f"AUC {emotion['auc']:.3f}.", "",
              f"## Router rank × normalisation (screening of `{DEFAULT_FULL_RECIPE}`)", "",
              "| rank | normalisation | source-val F1 | in-domain F1 | cross-corpus F1 | z_emo AUC | logits AUC |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {row['factor_rank']} | {row['normalization']} | {cell(row['source_validation_f1'])} | "
              f"{cell(row['in_domain_f1'])} | {cell(row['cross_corpus_f1'])} | {cell(row['z_emo_domain_auc'])} | "
              f"{cell(row['logits_domain_auc'])} |" for row in results["rank_sweep"]]
    if "screening_correlation" in results:
        c = results["screening_correlation"]
        lines += ["", f"## Over {c['rows']} screening rows ({', '.join(results['screening_files'])})", "",
                  f"Spearman ρ(AUC, cross-corpus F1) = {c['rho_auc_cross_f1']:.3f} (p = {c['p_auc_cross_f1']:.2g}); "
                  f"ρ(AUC, source-validation F1) = {c['rho_auc_validation_f1']:.3f} (p = {c['p_auc_validation_f1']:.2g}); "
                  f"rows with AUC < 0.95: {c['rows_below_0.95']}."]
    if "lora_runs" in results:
        lora = results["lora_runs"]
        lines += ["", "## LoRA runs (their `results.json`)", "",
                  "| run | z_emo AUC | logits AUC | in-domain F1 | cross-corpus F1 |", "|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['z_emo_domain_auc']:.3f} | "
                  f"{'—' if r['logits_domain_auc'] is None else format(r['logits_domain_auc'], '.3f')} | "
                  f"{r['in_domain_f1']:.3f} | {r['cross_corpus_f1']:.3f} |"
                  for r in sorted(lora["rows"], key=lambda r: r["z_emo_domain_auc"])]
        if "rho_auc_cross_f1" in lora:
            lines += ["", f"Spearman ρ(AUC, cross-corpus F1) over these runs = {lora['rho_auc_cross_f1']:.3f} "
                          f"(p = {lora['p_auc_cross_f1']:.2g})."]
        if lora["without_diagnostic"]:
            lines += ["", "No `z_emo_domain_auc` in their results.json (runs older than the diagnostic; the frozen probe does "
                          "not compute it): " + ", ".join(lora["without_diagnostic"]) + "."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = HfArgumentParser((AnalysisArguments, DataArguments))
    args, data_args = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    data = load_cached_states(args, data_args)
    results: dict = {
        "pair": f"{Path(data_args.source).name} → {Path(data_args.target).name}",
        "split_seed": args.split_seed, "seeds": args.seeds,
        "frozen": frozen_state_auc(data),
        "projection": projection_auc(data, args.dimensions, args.seeds),
        "emotion_subspace": emotion_subspace_auc(data),
        "rank_sweep": rank_sweep(data, args.ranks, args.seeds),
    }
    if args.screening_jsonl:
        results["screening_files"] = [Path(p).name for p in args.screening_jsonl]
        results["screening_correlation"] = screening_correlation(args.screening_jsonl)
    if args.lora_results:
        results["lora_runs"] = lora_runs(args.lora_results)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, out / "report.md")
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
