#!/usr/bin/env python
"""Evaluate a trained C-TriLoRA run: in-domain and cross-corpus metrics, calibration, statistics, plots.

    python examples/evaluate_ctrilora.py --checkpoint runs/ctrilora
    python examples/evaluate_ctrilora.py --checkpoint runs/real/full/seed-0 \\
        --compare shared_head=runs/real/shared_head/seed-0/evaluation --transcribe

The run's own data arguments (`run_arguments.json`) and split files are re-used, so the clips are exactly those
the run was trained and tested on. Writes `<checkpoint>/evaluation/` (or `--output_dir`): `results.json` (schema in
`hub_cards/results.py`), `report.md` rendered from it, `predictions.json` (per clip, for McNemar between
runs) and the PNGs. The fitted temperatures (in-domain, target-adaptive) and, with a pooled standardisation, the
pooled-state statistics of the unlabeled target adaptation clips (AdaBN) are saved into the checkpoint, where
`predict_emotion` and the pipeline apply them (`domain="target"`).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch


from hub_cards.run_folder import EvaluationFolder, RunFolder
from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.hardware import warn_if_bf16_is_slow
from modeling_ctrilora.quantization import quantize_for_inference
from trainer.evaluation.evaluate import evaluate_experiment
from trainer.run import prepare_data, protocol, read_run_arguments

logger = logging.getLogger("evaluate_ctrilora")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="Run folder written by examples/train_ctrilora.py.")
    parser.add_argument("--output_dir", help="Report folder (default: <checkpoint>/evaluation).")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="NAME=EVALUATION_DIR",
        help="Another run's evaluation folder to test against with McNemar (repeatable).",
    )
    parser.add_argument("--transcribe", action="store_true", help="Decode test transcripts for WER/CER of the ASR head.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--bf16", action="store_true",
                        help="Run the model under bfloat16 autocast (weights stay fp32); compare with an fp32 report "
                             "via --compare to see what it changes.")
    parser.add_argument("--int8", action="store_true",
                        help="Run an int8 dynamic-quantised copy of the model on the CPU (modeling_ctrilora.quantization; "
                             "nothing is written into the checkpoint); compare with an fp32 report via --compare.")
    parser.add_argument("--no_store_temperatures", action="store_true",
                        help="Leave the checkpoint as it is: do not write the fitted temperatures and target statistics.")
    parser.add_argument("--no_target_statistics", action="store_true",
                        help="Run the target splits with the training statistics of the pooled state, not with "
                             "statistics of the unlabeled target adaptation clips (AdaBN).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_arguments(argv)
    if args.int8 and args.bf16:
        raise SystemExit("--int8 and --bf16: choose one")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    run = RunFolder(args.checkpoint)
    compare = {}
    for item in args.compare:
        name, separator, folder = item.partition("=")
        if not separator or not EvaluationFolder(folder).predictions.is_file():
            raise SystemExit(f"--compare {item!r}: expected NAME=FOLDER with a predictions.json inside")
        compare[name] = folder
    data_args, base_model = read_run_arguments(run.root)
    model = WhisperForTriLoRA.from_pretrained(run.root).eval()
    seed = json.loads(run.source_splits.read_text(encoding="utf-8")).get("metadata", {}).get("seed", 0)
    data = prepare_data(data_args, base_model, run.root, seed, padding=model.config.input_padding)
    if data.classes != [model.config.id2label[index] for index in sorted(model.config.id2label)]:
        raise SystemExit(f"the corpora's shared classes {data.classes} differ from the checkpoint's {model.config.id2label}")
    transcriber = None
    if args.transcribe:
        from modeling_ctrilora.transcribe import transcribe

        language = data.languages["source"] or None
        transcriber = lambda batch: transcribe(  # noqa: E731 — a one-line closure over the model and tokenizer
            model, batch["input_features"], batch["attention_mask"], data.tokenizer, language=language
        )
    log_history = json.loads(run.trainer_state.read_text())["log_history"] if run.trainer_state.is_file() else None
    evaluation = EvaluationFolder(args.output_dir) if args.output_dir else run.evaluation
    if args.bf16:
        warn_if_bf16_is_slow(model.device)
    # An int8 copy cannot be saved (module docstring of `quantization`): its temperatures are fitted and reported
    # but not stored into the fp32 checkpoint.
    store_temperatures = not (args.no_store_temperatures or args.int8)
    if args.int8:
        model = quantize_for_inference(model)
    start = time.perf_counter()
    with torch.autocast(device_type=model.device.type, dtype=torch.bfloat16, enabled=args.bf16):
        results = evaluate_experiment(
            model, data, evaluation,
            protocol=protocol(data_args, seed),
            log_history=log_history, compare_with=compare, transcriber=transcriber, batch_size=args.batch_size,
            store_temperatures=store_temperatures, target_statistics=not args.no_target_statistics,
        )
    precision = " (bf16 autocast)" if args.bf16 else " (int8 dynamic quantisation)" if args.int8 else ""
    logger.info("evaluation took %.1f s%s", time.perf_counter() - start, precision)
    if store_temperatures:
        # Weights too: the target statistics are buffers of the model.
        model.save_pretrained(run.root)
    logger.info("report: %s", evaluation.report)
    return results


if __name__ == "__main__":
    main()
