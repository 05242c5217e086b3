#!/usr/bin/env python
"""`ctrilora adapt` before and after: a trained run folder adapted to its target corpus's unlabeled adaptation clips.

    python benchmarks/adapt_before_after.py --run_dir runs/study/emodb/ser_only/seed-0 --steps 0 30 \\
        --output_dir benchmarks/adapt/emodb

For the run folder (written by `examples/train_ctrilora.py`, ideally a model trained without target data such as
`ser_only`), the target corpus's adaptation clips — the run's own split, never its test clips — are written to a
CSV and given to `modeling_ctrilora.adapt.adapt_to_audio` once per `--steps` value (0: target statistics only;
N > 0: N steps of source-free information maximisation on the LoRA matrices). Every variant is scored by the
project's evaluation (`examples/evaluate_ctrilora.py`) on the same test clips:

- `none`: the checkpoint as trained, target clips standardised with the training statistics (no adaptation);
- `adapt steps=S`: the adapted checkpoint (the evaluation refits the target statistics on the same adaptation clips,
  which gives the statistics adapt stored).

Writes `<output_dir>/results.json` (one row per variant: cross-corpus and in-domain UAR / macro-F1, wall time) and
`results.md`; each variant's evaluation folder sits beside them. A variant whose evaluation exists is not re-run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hub_cards.results import load_results
from hub_cards.run_folder import EvaluationFolder, RunFolder
from modeling_ctrilora.adapt import adapt_to_audio
from trainer.run import prepare_data, read_run_arguments

logger = logging.getLogger("adapt_before_after")


def _adaptation_csv(run: RunFolder, path: Path) -> int:
    """The run's target adaptation clips as a `path` CSV; returns their count."""
    data_args, base_model = read_run_arguments(run.root)
    seed = json.loads(run.source_splits.read_text(encoding="utf-8")).get("metadata", {}).get("seed", 0)
    data = prepare_data(data_args, base_model, run.root, seed)
    adaptation = data.target["adaptation"]
    column = "path" if "path" in adaptation.column_names else "audio"
    paths = [value if isinstance(value, str) else value["path"] for value in adaptation[column]]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([[p] for p in paths])
    return len(paths)


def evaluate(arguments: list[str]) -> None:
    """`examples/evaluate_ctrilora.py` with `arguments`, in its own process (the examples are scripts)."""
    script = Path(__file__).resolve().parents[1] / "examples" / "evaluate_ctrilora.py"
    subprocess.run([sys.executable, str(script), *arguments], check=True)


def _scores(evaluation: Path) -> dict:
    results = load_results(EvaluationFolder(evaluation).results)
    return {
        section: {key: results[section][key] for key in ("uar", "macro_f1")}
        for section in ("in_domain", "cross_corpus") if section in results
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 30])
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run = RunFolder(args.run_dir)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    rows_file = output / "results.json"
    rows = json.loads(rows_file.read_text()) if rows_file.is_file() else []
    done = {row["variant"] for row in rows}
    if "none" not in done:
        tic = time.perf_counter()
        evaluate(["--checkpoint", str(run.root), "--output_dir", str(output / "eval-none"), "--no_store_temperatures",
                  "--no_target_statistics"])
        rows.append({"variant": "none", "steps": None, "adapt_wall_time_s": 0.0, **_scores(output / "eval-none"),
                     "evaluation_wall_time_s": round(time.perf_counter() - tic, 1)})
        rows_file.write_text(json.dumps(rows, indent=2))
    clips_csv = output / "adaptation_clips.csv"
    clips = _adaptation_csv(run, clips_csv)
    for steps in args.steps:
        variant = f"adapt steps={steps}"
        if variant in done:
            continue
        adapted = output / f"adapted-steps{steps}"
        tic = time.perf_counter()
        result = adapt_to_audio(str(run.root), clips_csv, adapted, steps=steps, learning_rate=args.learning_rate,
                                batch_size=args.batch_size, seed=args.seed)
        adapt_time = time.perf_counter() - tic
        # The evaluation re-reads the run's data arguments and splits: the adapted folder gets the run's files.
        for name in (run.run_arguments, run.source_splits, run.target_splits):
            shutil.copy(name, adapted / Path(name).name)
        tic = time.perf_counter()
        evaluate(["--checkpoint", str(adapted), "--output_dir", str(output / f"eval-steps{steps}")])
        rows.append({"variant": variant, "steps": steps, "clips": clips, "learning_rate": args.learning_rate,
                     "batch_size": args.batch_size, "loss_first": result.loss_first, "loss_last": result.loss_last,
                     "adapt_wall_time_s": round(adapt_time, 1), **_scores(output / f"eval-steps{steps}"),
                     "evaluation_wall_time_s": round(time.perf_counter() - tic, 1)})
        rows_file.write_text(json.dumps(rows, indent=2))
        shutil.rmtree(adapted / "evaluation", ignore_errors=True)
    lines = [f"# `ctrilora adapt` before/after: {run.root}", "",
             "| variant | cross-corpus UAR | cross-corpus macro-F1 | in-domain macro-F1 | IM loss first → last | adapt wall s |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        loss = f"{row['loss_first']:.3f} → {row['loss_last']:.3f}" if row.get("loss_first") is not None else "–"
        lines.append(f"| {row['variant']} | {row['cross_corpus']['uar']:.3f} | {row['cross_corpus']['macro_f1']:.3f} | "
                     f"{row['in_domain']['macro_f1']:.3f} | {loss} | {row['adapt_wall_time_s']} |")
    (output / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
