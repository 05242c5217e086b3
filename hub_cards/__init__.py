"""Model cards for C-TriLoRA checkpoints, filled from an evaluation run's `results.json`."""

from .model_card import PAPER_CITATION, SCHEMA_VERSION, TEMPLATE_PATH, build_model_card, load_results

__all__ = ["PAPER_CITATION", "SCHEMA_VERSION", "TEMPLATE_PATH", "build_model_card", "load_results"]
