"""hub_cards.run_folder: every path of a run, named once; the names are those existing run folders have on disk."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from hub_cards import EvaluationFolder, RunFolder


def test_the_layout_keeps_the_names_runs_have_on_disk():
    run = RunFolder("runs/ctrilora")
    assert run.root == Path("runs/ctrilora") and os.fspath(run) == os.fspath(Path("runs/ctrilora"))
    expected = {
        "config": "config.json", "weights": "model.safetensors", "run_arguments": "run_arguments.json",
        "source_splits": "source_splits.json", "target_splits": "target_splits.json",
        "trainer_state": "trainer_state.json", "wall_time": "wall_time.json", "model_card": "README.md",
        "card_results": "results.json", "card_plots": "plots",
    }
    assert {name: getattr(run, name) for name in expected} == {name: run.root / file for name, file in expected.items()}
    assert run.log == Path("runs/ctrilora.log")
    evaluation = run.evaluation
    assert evaluation == EvaluationFolder(Path("runs/ctrilora/evaluation"))
    assert (evaluation.results, evaluation.report, evaluation.predictions) == tuple(
        Path("runs/ctrilora/evaluation") / name for name in ("results.json", "report.md", "predictions.json")
    )
    assert Path(evaluation) == evaluation.path  # usable wherever a folder path is


def test_folders_are_frozen_values():
    run = RunFolder(Path("a"))
    assert run == RunFolder("a") and hash(run) == hash(RunFolder("a"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.root = Path("b")
