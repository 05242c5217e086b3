"""Training, data and evaluation for C-TriLoRA: `CTriLoRATrainer`, its arguments and the corpus pipeline.

- `trainer.training_args`, `trainer.ctrilora_trainer`: the Trainer and its arguments;
- `trainer.run`: one experiment's data (corpora → splits → log-Mel → collator) and the run folder's arguments;
- `trainer.data`: corpora, labels, splits, the pair-aware sampler, features and the collator;
- `trainer.evaluation`: predictions, metrics, calibration, significance tests, plots, ablation table, baselines;
- `trainer.demo`: the embedded eSpeak NG demo corpus and the tiny random Whisper it trains.

The Trainer is imported on first use, so `trainer.demo` (whose worker processes import it once per speaker) does
not load torch and transformers.
"""

from importlib import import_module
from typing import Any

_LAZY = {"CTriLoRATrainer": ".ctrilora_trainer", "CTriLoRATrainingArguments": ".training_args"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CTriLoRATrainer", "CTriLoRATrainingArguments"]
