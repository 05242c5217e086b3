"""C-TriLoRA checkpoints on the Hub: the model card filled from an evaluation run's `results.json` (`model_card`),
the one-commit upload of model, processor and card (`push`), and a loopback Hub for trying it offline (`local_hub`).

Only the card is imported here: `push` loads the model (torch) and `local_hub` the olah server, on demand.
"""

from .model_card import PAPER_CITATION, SCHEMA_VERSION, TEMPLATE_PATH, build_model_card, load_results

__all__ = ["PAPER_CITATION", "SCHEMA_VERSION", "TEMPLATE_PATH", "build_model_card", "load_results"]
