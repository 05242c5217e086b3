#!/usr/bin/env python
"""Train and evaluate a set of presets over several seeds, then write the ablation table and figures.

    python examples/run_ablations.py --output_dir runs/ablations                       # all nine Table I rows, demo data
    python examples/run_ablations.py --presets full shared_head frozen_probe --seeds 0 1 2 \\
        --base_model /path/to/whisper-base --source ../shared/data/ravdess --target ../shared/data/emodb_2s \\
        --source_split speaker_independent --output_dir runs/ravdess-emodb -- --num_train_epochs 5

Each run is a separate process (`examples/train_ctrilora.py`, or `examples/frozen_probe.py` for the baselines
`frozen_probe` and `frozen_probe_coral`) writing `<output_dir>/<preset>/seed-<k>/` with its log beside it. A run
whose `evaluation/results.json` exists is skipped, so re-running resumes; a run that dies is reported (exit code
and the tail of its log) and the others go on. The data options — every field of `trainer.run.DataArguments`
(`--on_bad_audio`, `--label_aliases`, `--source_split`, `--target_split`, `--transductive`, …; see `--help`) — and
`--base_model` go to every run, baselines included, so all runs of a table are scored on the same clips. Arguments
after `--` go to every C-TriLoRA training run (not to the baselines); a data option there is refused. Output:
`<output_dir>/ablation.json`, `ablation.md` and the PNGs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path

from tqdm.auto import tqdm
from transformers import HfArgumentParser

from modeling_ctrilora.presets import ABLATION_PRESETS
from trainer.evaluation.ablation import load_runs, render_ablation_report, run_folder, summarise, write_figures
from trainer.run import DataArguments

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("frozen_probe", "frozen_probe_coral")


def parse_arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """(this script's arguments, with the parsed `DataArguments` as `.data`; the arguments after `--`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    train_extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    # The data options are DataArguments' own fields (names, types, choices, help), as in the two scripts it launches.
    parser = HfArgumentParser(DataArguments, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(ABLATION_PRESETS),
                        choices=[*ABLATION_PRESETS, *BASELINES], metavar="PRESET",
                        help=f"Variants to run (default: the nine Table I rows). Choices: {', '.join([*ABLATION_PRESETS, *BASELINES])}.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--output_dir", default="runs/ablations")
    parser.add_argument("--report_only", action="store_true",
                        help="Train nothing: write the table and figures from the runs of --presets × --seeds that "
                             "have finished (e.g. three seeds of some presets, one of others).")
    parser.add_argument("--base_model", help="Whisper checkpoint folder or Hub id of every run; default: the demo's tiny random Whisper.")
    data, args = parser.parse_args_into_dataclasses(args=argv)
    data_options = {spec.name for spec in fields(DataArguments)}
    misplaced = [item for item in train_extra
                 if item.startswith("--") and item[2:].split("=")[0].replace("-", "_") in data_options]
    if misplaced:
        parser.error(
            f"{', '.join(misplaced)} after `--` would reach the C-TriLoRA runs only, so the baselines would be scored on "
            "other splits: give data options before `--`"
        )
    args.data = data
    return args, train_extra


def data_flags(data: DataArguments) -> list[str]:
    """Every data argument that differs from its default, as flags both launched scripts parse.

    Derived from `DataArguments`' fields, so a data option added there is forwarded to every run without a change here.
    """
    flags: list[str] = []
    for spec in fields(DataArguments):
        default = spec.default if spec.default is not MISSING else (
            spec.default_factory() if spec.default_factory is not MISSING else MISSING
        )
        value = getattr(data, spec.name)
        if value is None or value == default:
            continue
        flags += [f"--{spec.name}", *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
    return flags


def run_command(args: argparse.Namespace, preset: str, seed: int, train_extra: list[str]) -> list[str]:
    """The command line of one run: the data options and backbone for every run, `train_extra` for C-TriLoRA runs."""
    common = data_flags(args.data) + (["--base_model", args.base_model] if args.base_model else [])
    common += ["--seed", str(seed), "--output_dir", str(run_folder(args.output_dir, preset, seed).root)]
    if preset in BASELINES:
        return [sys.executable, str(REPO / "examples" / "frozen_probe.py"), *common, *(["--coral"] if preset.endswith("coral") else [])]
    return [sys.executable, str(REPO / "examples" / "train_ctrilora.py"), *common, "--preset", preset, *train_extra]


def main(argv: list[str] | None = None) -> dict:
    args, train_extra = parse_arguments(argv)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    pending = [(preset, seed) for preset in args.presets for seed in args.seeds
               if not run_folder(root, preset, seed).evaluation.results.is_file()]
    if args.report_only:
        if pending:
            print(f"--report_only: {len(pending)} of the requested runs have no results and are left out: "
                  + ", ".join(f"{preset}/seed-{seed}" for preset, seed in pending))
        pending = []
    failures: dict[str, str] = {}
    for preset, seed in tqdm(pending, desc="ablation runs", unit="run"):
        folder = run_folder(root, preset, seed)
        folder.root.mkdir(parents=True, exist_ok=True)
        log_path = folder.log
        start = time.time()
        with open(log_path, "w", encoding="utf-8") as log:
            completed = subprocess.run(run_command(args, preset, seed, train_extra), stdout=log, stderr=subprocess.STDOUT,
                                       cwd=REPO)
        elapsed = time.time() - start
        if completed.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            failures[f"{preset}/seed-{seed}"] = f"exit {completed.returncode} after {elapsed:.0f} s; log {log_path}: {' | '.join(tail)}"
            tqdm.write(f"FAILED {preset} seed {seed}: see {log_path}")
        else:
            folder.wall_time.write_text(json.dumps({"seconds": elapsed}) + "\n", encoding="utf-8")
    runs = load_runs(root, args.presets, args.seeds)
    if not runs:
        raise SystemExit(f"no run finished; see the logs under {root}")
    summary = summarise(runs, root)
    plots = write_figures(runs, summary, root)
    report = {"presets": args.presets, "seeds": args.seeds, **summary, "failures": failures, "plots": plots}
    (root / "ablation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (root / "ablation.md").write_text(render_ablation_report(summary, failures, plots), encoding="utf-8")
    print(f"ablation table: {root / 'ablation.md'}" + (f" ({len(failures)} run(s) failed)" if failures else ""))
    return report


if __name__ == "__main__":
    main()
