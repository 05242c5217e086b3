#!/usr/bin/env python
"""Baseline: logistic-regression probe on the frozen pretrained Whisper encoder, optionally with feature CORAL.

    python examples/frozen_probe.py                                    # embedded Kazakh demo, tiny random Whisper
    python examples/frozen_probe.py \\
        --base_model /path/to/whisper-base --source ../shared/data/ravdess --target ../shared/data/emodb_2s \\
        --source_language en --target_language de --source_split speaker_independent --transductive \\
        --seed 0 --coral --output_dir runs/baselines/frozen_probe_coral-transductive/seed-0

The data arguments are those of `examples/train_ctrilora.py` and the splits come from the same `prepare_data`, so
with the same seed and split options a probe and a C-TriLoRA run are scored on the same clips (the split files are
written to `--output_dir`; an existing one is re-read). `--output_dir`/evaluation receives `results.json` (the
evaluation schema, `model.preset` = "frozen_probe" or "frozen_probe_coral", plus `wall_time_s` and a `probe`
section), `report.md`, `predictions.json` (per clip, for McNemar against any other run) and the plots. Encoder
features are cached per corpus and backbone, so the second preset or protocol of a corpus pair skips the encoder.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

import transformers
from transformers import HfArgumentParser, set_seed


from trainer.evaluation.baselines import run_frozen_probe
from trainer.run import DataArguments, prepare_data, protocol, resolve_base_model

logger = logging.getLogger("frozen_probe")


@dataclass
class ProbeArguments:
    """The backbone, the run folder and the probe's knobs."""

    base_model: str | None = field(
        default=None, metadata={"help": "Whisper checkpoint folder or Hub id; default: a tiny random Whisper (demo)."}
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Run folder (split files, evaluation/); default: runs/baselines/<preset>."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the splits and of the classifier."})
    coral: bool = field(
        default=False, metadata={"help": "Re-colour source features to the target covariance (preset frozen_probe_coral)."}
    )
    batch_size: int = field(default=16, metadata={"help": "Clips per encoder forward pass during feature extraction."})

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")

    @property
    def preset(self) -> str:
        return "frozen_probe_coral" if self.coral else "frozen_probe"


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    probe_args, data_args = HfArgumentParser((ProbeArguments, DataArguments)).parse_args_into_dataclasses(
        args=sys.argv[1:] if argv is None else argv
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    set_seed(probe_args.seed)
    output_dir = probe_args.output_dir or os.path.join("runs", "baselines", probe_args.preset)
    base_model = resolve_base_model(probe_args.base_model)
    data = prepare_data(data_args, base_model, output_dir, probe_args.seed)
    logger.info(
        "classes %s; source train/validation/test %d/%d/%d; target adaptation/test %d/%d",
        data.classes, *(len(data.source[s]) for s in ("train", "validation", "test")),
        *(len(data.target[s]) for s in ("adaptation", "test")),
    )
    return run_frozen_probe(
        data, base_model, output_dir, preset=probe_args.preset, protocol=protocol(data_args, probe_args.seed), seed=probe_args.seed,
        batch_size=probe_args.batch_size, started=started,
    )


if __name__ == "__main__":
    main()
