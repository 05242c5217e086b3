"""UAR (unweighted average recall) as a local, offline `evaluate` metric module.

Load it from its path — `evaluate` 0.4.6 copies a local script into its modules cache and imports it without any
network access (only bare names such as ``"uar"`` are looked up on the Hub)::

    >>> import evaluate
    >>> uar = evaluate.load("/path/to/ctrilora/metrics/uar")          # or ".../metrics/uar/uar.py"
    >>> uar.compute(predictions=[0, 0, 0, 0], references=[0, 0, 0, 1])
    {'uar': 0.5}

The module only needs scikit-learn (not the ``trainer`` package, so it also works when copied on its own); it uses
the same convention as ``trainer.evaluation.metrics.classification_report_dict``: the mean recall over the evaluated classes
that occur in ``references`` (by default all of them), a never-predicted class contributing recall 0.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import recall_score

_DESCRIPTION = """\
Unweighted average recall (UAR, balanced accuracy): the mean over classes of the per-class recall
TP_c / (TP_c + FN_c). It is the standard primary metric of speech emotion recognition because every emotion counts
the same whatever its frequency.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids, shape (N,).
    references (`list` of `int`): reference class ids, shape (N,).
    labels (`list` of `int`, *optional*): evaluate only these classes (rows whose reference is outside are dropped;
        predictions outside count as errors). Default: the classes present in `references`.
Returns:
    uar (`float`): in [0, 1].
Example:
    >>> uar = evaluate.load("metrics/uar")
    >>> uar.compute(predictions=[0, 1, 1, 1], references=[0, 0, 1, 1])
    {'uar': 0.75}
"""

_CITATION = """\
@inproceedings{schuller2009interspeech,
  title={The INTERSPEECH 2009 emotion challenge},
  author={Schuller, Bj{\\"o}rn and Steidl, Stefan and Batliner, Anton},
  booktitle={Proc. Interspeech},
  pages={312--315},
  year={2009}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Uar(evaluate.Metric):
    """Unweighted average recall (macro recall over the classes present in the references)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.recall_score.html"],
        )

    def _compute(self, predictions: list[int], references: list[int], labels: list[int] | None = None) -> dict:
        predictions, references = np.asarray(predictions), np.asarray(references)
        if labels is not None:
            keep = np.isin(references, np.asarray(labels))
            predictions, references = predictions[keep], references[keep]
        if len(references) == 0:
            raise ValueError("`references` is empty (after restricting to `labels`); UAR is undefined.")
        # Average over the classes that have references: a class missing from the test set has no recall.
        present = np.unique(references)
        return {"uar": float(recall_score(references, predictions, labels=present, average="macro", zero_division=0))}
