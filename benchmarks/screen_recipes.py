#!/usr/bin/env python
"""Screen C-TriLoRA recipes on cached frozen-encoder states (the fast research loop; `trainer.screening`).

    python benchmarks/screen_recipes.py --base_model ~/.cache/ctrilora-weights/whisper-base \\
        --source ../shared/data/ravdess --target ../shared/data/emodb_2s --source_language en --target_language de \\
        --source_split speaker_independent --split_seed 0 --seeds 0 1 2 --recipes paper ser_only full ... \\
        --output benchmarks/method_study/screening/emodb.jsonl

Every data option of `train_ctrilora.py` (`DataArguments`: `--target_split`, `--on_bad_audio`, `--label_aliases`,
`--max_duration`, …) is accepted and means the same here.

Each finished (recipe, seed) is appended to `--output` as one JSON line, and a re-run skips what is there. The
splits are those of `prepare_data` with `--split_seed` (written to `--run_dir`), so screening and LoRA runs with the
same seed see the same clips. `--sensitivity` adds the λ_CORAL × λ_adversary grid around `--sensitivity_base`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from transformers import HfArgumentParser

from trainer.run import DataArguments
from trainer.screening import RECIPES, CachedStatesArguments, Recipe, load_cached_states, sensitivity_grid, train_screening_run

logger = logging.getLogger("screen_recipes")


@dataclass(kw_only=True)
class ScreeningArguments(CachedStatesArguments):
    """What to screen and where to write it; the encoder and the splits: `CachedStatesArguments`."""

    output: str = field(metadata={"help": "JSON-lines file; each finished (recipe, seed) is appended, a re-run skips it."})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the heads."})
    recipes: list[str] = field(default_factory=lambda: list(RECIPES), metadata={"help": f"any of {', '.join(RECIPES)}"})
    sensitivity: bool = field(default=False, metadata={"help": "add the λ_CORAL × λ_adversary grid"})
    sensitivity_base: str = field(default="full", metadata={"help": "the recipe the grid is built around"})
    epochs: int | None = field(
        default=None, metadata={"help": "override every recipe's epochs (the heads alone need more steps than with LoRA)"}
    )
    learning_rate_scale: float = field(default=1.0, metadata={"help": "multiply every recipe's learning rate"})
    tag: str = field(default="", metadata={"help": "appended to every recipe name in the output (e.g. the optimisation setting)"})
    markdown: str | None = field(default=None, metadata={"help": "also write the mean ± sd table over everything in --output here"})


def main(argv: list[str] | None = None) -> None:
    parser = HfArgumentParser((ScreeningArguments, DataArguments))
    args, data_args = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    unknown = [name for name in [*args.recipes, *([args.sensitivity_base] if args.sensitivity else [])] if name not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; expected names from {', '.join(RECIPES)}")
    screening = load_cached_states(args, data_args)
    recipes: list[Recipe] = [RECIPES[name] for name in args.recipes]
    if args.sensitivity:
        recipes.extend(sensitivity_grid(RECIPES[args.sensitivity_base]))
    recipes = [
        replace(recipe, name=recipe.name + args.tag, epochs=args.epochs or recipe.epochs,
                learning_rate=recipe.learning_rate * args.learning_rate_scale)
        for recipe in recipes
    ]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if output.is_file():
        for line in output.read_text().splitlines():
            row = json.loads(line)
            done.add((row["recipe"], row["seed"], row["split_seed"]))
    for recipe in recipes:
        for seed in args.seeds:
            if (recipe.name, seed, args.split_seed) in done:
                continue
            tic = time.perf_counter()
            result = train_screening_run(screening, recipe, seed=seed)
            result.update(split_seed=args.split_seed, wall_time_s=round(time.perf_counter() - tic, 2),
                          recipe_config=recipe.to_dict(), target=data_args.target,
                          transductive=data_args.transductive, target_split=data_args.target_split)
            with output.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
            logger.info("%-40s seed %d | val F1 %.3f | in-domain F1 %.3f | cross F1 %.3f UAR %.3f | AUC %.2f | DEV %.3f",
                        recipe.name, seed, result["source_validation"]["macro_f1"], result["in_domain"]["macro_f1"],
                        result["cross_corpus"]["macro_f1"], result["cross_corpus"]["uar"],
                        result["diagnostics"]["domain_auc_z_emo"], result["label_free"]["dev_risk"])
    if args.markdown:
        write_markdown(output, args.markdown,
                       f"Recipe screening: {Path(data_args.source).name} → {Path(data_args.target).name}")


def write_markdown(jsonl: str | Path, markdown: str | Path, title: str) -> None:
    """The mean ± sd table per recipe (source validation, in-domain, cross-corpus, label-free criteria)."""
    lines = [
        f"# {title}", "",
        "Frozen whisper-base states, heads trained per recipe (`trainer.screening`); mean ± sd over the seeds listed.",
        "Selection columns read no target label: source-validation macro-F1 and the DEV risk (lower is better).", "",
        "| recipe | seeds | source-val F1 | in-domain F1 | cross-corpus F1 | cross-corpus UAR | z_emo domain AUC | DEV risk |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summarise(jsonl):
        def cell(key: str) -> str:
            mean, sd = row[key]
            return f"{mean:.3f} ± {sd:.3f}" if row["seeds"] > 1 else f"{mean:.3f}"
        lines.append(f"| {row['recipe']} | {row['seeds']} | {cell('val_f1')} | {cell('in_f1')} | {cell('cross_f1')} | "
                     f"{cell('cross_uar')} | {row['auc'][0]:.2f} | {row['dev'][0]:.3f} |")
    Path(markdown).write_text("\n".join(lines) + "\n")


def summarise(path: str | Path) -> list[dict]:
    """Mean ± sd over seeds per recipe of a screening JSON-lines file."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    by_recipe: dict[str, list[dict]] = {}
    for row in rows:
        by_recipe.setdefault(row["recipe"], []).append(row)
    table = []
    for name, runs in by_recipe.items():
        def stat(section: str, key: str) -> tuple[float, float]:
            values = [run[section][key] for run in runs]
            return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        table.append({
            "recipe": name, "seeds": len(runs),
            "val_f1": stat("source_validation", "macro_f1"), "in_f1": stat("in_domain", "macro_f1"),
            "cross_f1": stat("cross_corpus", "macro_f1"), "cross_uar": stat("cross_corpus", "uar"),
            "dev": (float(np.mean([r["label_free"]["dev_risk"] for r in runs])), 0.0),
            "auc": (float(np.mean([r["diagnostics"]["domain_auc_z_emo"] for r in runs])), 0.0),
        })
    return table


if __name__ == "__main__":
    main()
