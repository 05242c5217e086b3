"""C-TriLoRA checkpoints on the Hub: the one `results.json` schema (`results`), every path of a run folder
(`run_folder`), the model card filled from the results (`model_card`), the one-commit upload of model, processor and
card (`push`), and a loopback Hub for trying it offline (`local_hub`).

Only the schema, the run folder and the card are imported here: `push` loads the model (torch) and `local_hub` the
olah server, on demand.
"""

from .model_card import PAPER_CITATION, TEMPLATE_PATH, build_model_card
from .results import SCHEMA_VERSION, load_results, validate_results, write_results
from .run_folder import EvaluationFolder, RunFolder

__all__ = [
    "PAPER_CITATION",
    "SCHEMA_VERSION",
    "TEMPLATE_PATH",
    "EvaluationFolder",
    "RunFolder",
    "build_model_card",
    "load_results",
    "validate_results",
    "write_results",
]
