"""Macro-F1 as a local, offline `evaluate` metric module.

Load it from its path — `evaluate` 0.4.6 copies a local script into its modules cache and imports it without any
network access (only bare names such as ``"f1"`` are looked up on the Hub)::

    >>> import evaluate
    >>> f1 = evaluate.load("/path/to/ctrilora/metrics/macro_f1")      # or ".../metrics/macro_f1/macro_f1.py"
    >>> f1.compute(predictions=[0, 0, 0, 0], references=[0, 0, 0, 1])
    {'macro_f1': 0.42857142857142855}

The module only needs scikit-learn (not the ``trainer`` package, so it also works when copied on its own); it uses
the same convention as ``trainer.evaluation.metrics.classification_report_dict``: the unweighted mean of per-class F1 over the
evaluated classes that occur in ``references``, a never-predicted class contributing F1 0 (``zero_division=0``).
Note the difference to the Hub's ``f1`` metric with ``average="macro"``, which also averages over classes that
appear only in the predictions.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import f1_score

_DESCRIPTION = """\
Macro-F1: the unweighted mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c). Like UAR it weights every
emotion equally, and it also penalises false positives.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids, shape (N,).
    references (`list` of `int`): reference class ids, shape (N,).
    labels (`list` of `int`, *optional*): evaluate only these classes (rows whose reference is outside are dropped;
        predictions outside count as errors). Default: the classes present in `references`.
Returns:
    macro_f1 (`float`): in [0, 1].
Example:
    >>> f1 = evaluate.load("metrics/macro_f1")
    >>> f1.compute(predictions=[0, 1, 1, 1], references=[0, 0, 1, 1])
    {'macro_f1': 0.7333333333333334}
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    """Macro-averaged F1 over the classes present in the references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions: list[int], references: list[int], labels: list[int] | None = None) -> dict:
        predictions, references = np.asarray(predictions), np.asarray(references)
        if labels is not None:
            keep = np.isin(references, np.asarray(labels))
            predictions, references = predictions[keep], references[keep]
        if len(references) == 0:
            raise ValueError("`references` is empty (after restricting to `labels`); macro-F1 is undefined.")
        present = np.unique(references)
        return {"macro_f1": float(f1_score(references, predictions, labels=present, average="macro", zero_division=0))}
