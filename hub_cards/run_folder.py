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
                                             (`hub_cards.push.write_model_card`, at the end of training: what goes
                                             to the Hub)
        checkpoint-<step>/, runs/            Trainer checkpoints (`--resume_from_checkpoint True` takes the last)
                                             and `--report_to tensorboard` events
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


class _In:
    """A path inside a folder: on an instance, `<the folder>/<name>`."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, folder: os.PathLike | None, owner: type | None = None) -> Path | _In:
        return self if folder is None else Path(os.fspath(folder)) / self.name


@dataclass(frozen=True)
class EvaluationFolder:
    """An evaluation's output folder (`evaluate_experiment`'s `out_dir`; `<run>/evaluation` by default)."""

    path: Path
    results, report, predictions = _In(RESULTS_FILE), _In("report.md"), _In("predictions.json")

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)


@dataclass(frozen=True)
class RunFolder:
    """Every path of one run (layout in the module docstring). `os.fspath(run)` is its root."""

    root: Path
    config, weights = _In(CONFIG_NAME), _In(SAFETENSORS_SINGLE_FILE)  # the model (`save_pretrained`)
    run_arguments = _In("run_arguments.json")
    source_splits, target_splits = _In("source_splits.json"), _In("target_splits.json")
    trainer_state, wall_time = _In("trainer_state.json"), _In("wall_time.json")
    model_card, card_results, card_plots = _In(REPOCARD_NAME), _In(RESULTS_FILE), _In("plots")  # for the Hub

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    @property
    def evaluation(self) -> EvaluationFolder:
        return EvaluationFolder(self.root / "evaluation")

    @property
    def log(self) -> Path:
        return self.root.parent / f"{self.root.name}.log"


__all__ = ["EvaluationFolder", "RunFolder"]
