"""Every path of a run folder, named once.

A run folder is the `--output_dir` of `examples/train_ctrilora.py` or `examples/frozen_probe.py`::

    <root>/
        config.json, model.safetensors, …   the model (`save_pretrained`; the processor's files beside it)
        run_arguments.json                   data arguments and backbone, for evaluation to rebuild the run's data
        source_splits.json                   source train/validation/test indices, the protocol as metadata
        target_splits.json                   target adaptation/test indices
        trainer_state.json                   `Trainer.save_state`: every logged loss term
        wall_time.json                       seconds the run took (`examples/run_ablations.py`)
        evaluation/                          an `EvaluationFolder`
            results.json                     the results (schema: `hub_cards.results`)
            report.md                        rendered from results.json
            predictions.json                 per-clip predictions, for McNemar between runs
            *.png                            the plots, named in results.json's "plots" relative to this folder
        README.md, results.json, plots/      the model card, the results it was filled from and the plots it shows
                                             (`hub_cards.push.save_pretrained_with_card`: what goes to the Hub)
    <root>.log                               the run's log, when `examples/run_ablations.py` launched it

Here, in `hub_cards`, because both `trainer` (which writes the folder) and `hub_cards.push` (which publishes it) use
it, and imports run `trainer` → `hub_cards`, never back.

Example:
    >>> run = RunFolder("runs/ctrilora")
    >>> run.evaluation.results.as_posix(), run.source_splits.name
    ('runs/ctrilora/evaluation/results.json', 'source_splits.json')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.constants import CONFIG_NAME, REPOCARD_NAME, SAFETENSORS_SINGLE_FILE

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class EvaluationFolder:
    """An evaluation's output folder (`evaluate_experiment`'s `out_dir`; `<run>/evaluation` by default)."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    @property
    def results(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.json"


@dataclass(frozen=True)
class RunFolder:
    """Every path of one run (layout in the module docstring). `os.fspath(run)` is its root."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    # The model (written by `save_pretrained`).
    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def weights(self) -> Path:
        return self.root / SAFETENSORS_SINGLE_FILE

    # The data of the run.
    @property
    def run_arguments(self) -> Path:
        return self.root / "run_arguments.json"

    @property
    def source_splits(self) -> Path:
        return self.root / "source_splits.json"

    @property
    def target_splits(self) -> Path:
        return self.root / "target_splits.json"

    # Training.
    @property
    def trainer_state(self) -> Path:
        return self.root / "trainer_state.json"

    @property
    def wall_time(self) -> Path:
        return self.root / "wall_time.json"

    @property
    def log(self) -> Path:
        return self.root.parent / f"{self.root.name}.log"

    # Evaluation.
    @property
    def evaluation(self) -> EvaluationFolder:
        return EvaluationFolder(self.root / "evaluation")

    # What the Hub receives beside the model.
    @property
    def model_card(self) -> Path:
        return self.root / REPOCARD_NAME

    @property
    def card_results(self) -> Path:
        return self.root / RESULTS_FILE

    @property
    def card_plots(self) -> Path:
        return self.root / "plots"


__all__ = ["EvaluationFolder", "RunFolder"]
