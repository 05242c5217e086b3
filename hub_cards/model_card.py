"""Fill the C-TriLoRA model card from an evaluation run's `results.json`.

The evaluation writes one `results.json` per run (its schema, version and `load_results`: `hub_cards.results`).
`build_model_card` turns it into a `huggingface_hub.ModelCard`: YAML metadata the Hub indexes (`library_name`,
`pipeline_tag`, tags, datasets, metrics, `base_model` and a `model-index` with one result per corpus — in-domain
source test and cross-corpus target test — carrying UAR, macro-F1 and ECE) and a Markdown body rendered from
`model_card_template.md` (Jinja): intended use, data and protocol, summary / per-class / confusion tables,
calibration, limitations, usage, citation.

Every section except `model` may be missing (an in-domain-only run, a run without ASR or calibration): the card then
leaves that part out rather than failing. Numbers are fractions in `results.json` and shown as percentages in the body.

Example:
    >>> from hub_cards import build_model_card
    >>> results = {
    ...     "schema_version": 1,
    ...     "model": {"base_model": "openai/whisper-base", "preset": "full", "trainable_fraction": 0.016},
    ...     "corpora": {"source": {"name": "RAVDESS", "language": "en", "n_test": 144},
    ...                 "target": {"name": "EmoDB", "language": "de", "n_test": 535}},
    ...     "in_domain": {"uar": 0.71, "macro_f1": 0.70, "accuracy": 0.72, "n": 144},
    ...     "cross_corpus": {"uar": 0.48, "macro_f1": 0.45, "accuracy": 0.50, "n": 535},
    ... }
    >>> card = build_model_card(results, repo_id="me/ctrilora-ravdess-emodb")
    >>> card.data.pipeline_tag, [r.metric_type for r in card.data.eval_results][:2]
    ('audio-classification', ['recall', 'f1'])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from modeling_ctrilora.adapt import adaptation_markdown

from .results import validate_results

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")
TASK_TYPE = "audio-classification"
TASK_NAME = "Speech Emotion Recognition"
CARD_TAGS = ("speech-emotion-recognition", "whisper", "lora", "peft", "ctrilora", "domain-adaptation")
CARD_METRICS = ("recall", "f1", "ece")
# Evaluation section of results.json → the corpus (role in `corpora`) it was measured on, and how the card names it.
EVALUATIONS = {"in_domain": ("source", "in-domain"), "cross_corpus": ("target", "cross-corpus")}
# The ECE the model-index reports is the one a user gets with the recommended `domain` setting: in-domain audio is
# scored with the in-domain temperature, target audio with the domain-adaptive one. Like `predict_emotion`, fall back
# to the next temperature the model would apply when a run did not fit one (in-domain T, then none = raw).
SHIPPED_ECE = {
    "in_domain": (("in_domain_T", "ECE (in-domain temperature)"), ("raw", "ECE (no temperature)")),
    "cross_corpus": (
        ("adaptive_T", "ECE (domain-adaptive temperature)"),
        ("in_domain_T", "ECE (in-domain temperature)"),
        ("raw", "ECE (no temperature)"),
    ),
}
PAPER_CITATION = """@misc{kynabay_ctrilora,
  title        = {C-TriLoRA: Cross-Corpus Kazakh SER via Tri-Factor LoRA and CORAL},
  author       = {Kynabay, Bakdaulet and Aldabergen, Aimoldir and Kadyrov, Shirali},
  howpublished = {SDU University, Nazarbayev University, New Uzbekistan University},
  note         = {Conditional Tri-Factor Low-Rank Adaptation for cross-corpus speech emotion recognition}
}"""
MISSING = "–"


def _percent(value: Any, digits: int = 1) -> str:
    return MISSING if value is None else f"{100 * float(value):.{digits}f} %"


def _number(value: Any, digits: int = 3) -> str:
    return MISSING if value is None else f"{float(value):.{digits}f}"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "corpus"


def _per_class(section: Mapping[str, Any], metric: str) -> dict[str, float]:
    """Per-class scores of one evaluation section: its `per_class.{f1,recall}` (empty when the run has none)."""
    return dict((section.get("per_class") or {}).get(metric) or {})


def _ece(results: Mapping[str, Any], evaluation: str) -> dict[str, float]:
    return dict(((results.get("calibration") or {}).get("ece") or {}).get(evaluation) or {})


def _shipped_ece(results: Mapping[str, Any], evaluation: str) -> tuple[float | None, str]:
    """ECE under the temperature the model applies on that evaluation's audio, and the metric's name."""
    ece = _ece(results, evaluation)
    for variant, name in SHIPPED_ECE[evaluation]:
        if ece.get(variant) is not None:
            return ece[variant], name
    return None, SHIPPED_ECE[evaluation][0][1]


def _corpus(results: Mapping[str, Any], role: str) -> dict[str, Any]:
    return dict((results.get("corpora") or {}).get(role) or {})


def _languages(results: Mapping[str, Any]) -> list[str]:
    languages = []
    for role in ("source", "target"):
        language = _corpus(results, role).get("language")
        if language and language not in languages:
            languages.append(language)
    return languages


def _dataset_ids(results: Mapping[str, Any], datasets: list[str] | None) -> dict[str, str]:
    """Hub dataset id per corpus role: `datasets` in (source, target) order, else a slug of the corpus name."""
    ids = {}
    for index, role in enumerate(("source", "target")):
        if datasets is not None and index < len(datasets):
            ids[role] = datasets[index]
        else:
            ids[role] = _slug(_corpus(results, role).get("name") or role)
    return ids


def _eval_results(results: Mapping[str, Any], dataset_ids: Mapping[str, str]) -> list[EvalResult]:
    """One model-index result per corpus (UAR, macro-F1, ECE); metrics a run did not report are left out."""
    eval_results = []
    for evaluation, (role, label) in EVALUATIONS.items():
        section = results.get(evaluation)
        if not section:
            continue
        corpus_name = _corpus(results, role).get("name") or role
        common = {
            "task_type": TASK_TYPE,
            "task_name": TASK_NAME,
            "dataset_type": dataset_ids[role],
            "dataset_name": f"{corpus_name} ({label} test)",
            "dataset_split": "test",
        }
        ece_value, ece_name = _shipped_ece(results, evaluation)
        metrics = [
            ("recall", "UAR (macro recall)", section.get("uar"), {"average": "macro"}),
            ("f1", "Macro-F1", section.get("macro_f1"), {"average": "macro"}),
            ("ece", ece_name, ece_value, None),
        ]
        for metric_type, metric_name, value, args in metrics:
            if value is None:
                continue
            eval_results.append(
                EvalResult(
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(value), 4),
                    metric_args=args,
                    **common,
                )
            )
    return eval_results


def _preset_description(preset: str | None) -> str:
    if not preset:
        return MISSING
    # Imported here: `modeling_ctrilora` pulls in torch and transformers, which reading a results file does not need.
    from modeling_ctrilora.presets import resolve_preset

    try:
        return f"`{preset}` — {resolve_preset(preset).description}"
    except ValueError:
        return f"`{preset}`"


def _protocol_md(results: Mapping[str, Any]) -> str:
    protocol = results.get("protocol") or {}
    source, target = _corpus(results, "source"), _corpus(results, "target")
    lines = []
    if source:
        split = {
            "stratified": "an 80/10/10 train/validation/test split stratified by emotion (as in the paper; a speaker "
            "may appear in several splits)",
            "speaker_independent": "a speaker-independent 80/10/10 train/validation/test split (no speaker in two "
            "splits)",
        }.get(protocol.get("source_split"), "a train/validation/test split")
        lines.append(
            f"- **Source (labelled):** {source.get('name', MISSING)} ({source.get('language', MISSING)}), {split}; "
            f"{source.get('n_test', MISSING)} test clips. Emotion labels train the emotion head; speakers train the "
            "speaker head and the gradient-reversal adversary; transcripts (where present) train the decoder."
        )
    if target:
        if protocol.get("transductive"):
            usage = (
                "transductive protocol, as in the paper: the same target clips serve, without labels, for CORAL "
                "alignment and, with labels, for testing"
            )
        elif "transductive" in protocol:
            usage = "an unlabelled adaptation part (CORAL) disjoint from the labelled test part"
        else:
            usage = "unlabelled target audio for CORAL alignment"
        lines.append(
            f"- **Target (unlabelled during training):** {target.get('name', MISSING)} "
            f"({target.get('language', MISSING)}), {usage}; {target.get('n_test', MISSING)} test clips."
        )
    emotions = results.get("emotions")
    if emotions:
        lines.append(
            f"- **Emotions:** {', '.join(emotions)} — the classes both corpora share after harmonising labels "
            "(e.g. scared → fear); evaluation is restricted to them."
        )
    if protocol.get("seed") is not None:
        lines.append(f"- **Seed:** {protocol['seed']}.")
    lines.append(
        "- **Loss:** 0.3·ASR + 1.0·SER (class-weighted) + 0.5·(speaker + adversary) + 0.2·counterfactual + 0.1·CORAL "
        "+ 0.1·orthogonality, the terms the preset keeps; clips run at their true length (no 30 s padding)."
    )
    return "\n".join(lines)


def _summary_rows(results: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for evaluation, (role, label) in EVALUATIONS.items():
        section = results.get(evaluation)
        if not section:
            continue
        corpus = _corpus(results, role)
        rows.append([
            label,
            corpus.get("name", MISSING),
            corpus.get("language", MISSING),
            str(section.get("n", corpus.get("n_test", MISSING))),
            _percent(section.get("uar")),
            _percent(section.get("macro_f1")),
            _percent(section.get("accuracy")),
            _percent(_shipped_ece(results, evaluation)[0]),
        ])
    return rows


def _per_class_table(results: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    present = [evaluation for evaluation in EVALUATIONS if results.get(evaluation)]
    header, columns = [], []
    for evaluation in present:
        label = EVALUATIONS[evaluation][1]
        for metric in ("f1", "recall"):
            scores = _per_class(results[evaluation], metric)
            if scores:
                header.append(f"{'F1' if metric == 'f1' else 'Recall'} ({label})")
                columns.append(scores)
    classes = list(results.get("emotions") or [])
    for scores in columns:
        classes += [name for name in scores if name not in classes]
    if not columns:
        return [], []
    return header, [[name] + [_percent(scores.get(name)) for scores in columns] for name in classes]


def _confusion_matrices(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    matrices = []
    for evaluation, (role, label) in EVALUATIONS.items():
        section = results.get(evaluation) or {}
        matrix, labels = section.get("confusion_matrix"), section.get("labels") or results.get("emotions")
        if not matrix or not labels or len(labels) != len(matrix):
            continue
        name = _corpus(results, role).get("name", role)
        rows = [[f"**{labels[i]}**"] + [str(int(count)) for count in row] for i, row in enumerate(matrix)]
        matrices.append({"title": f"{label} ({name})", "labels": list(labels), "rows": rows})
    return matrices


def _asr_rows(results: Mapping[str, Any]) -> list[list[str]]:
    asr = results.get("asr") or {}
    return [
        [EVALUATIONS[evaluation][1], _percent(asr[evaluation].get("wer")), _percent(asr[evaluation].get("cer")),
         str(asr[evaluation].get("n", MISSING))]
        for evaluation in EVALUATIONS
        if asr.get(evaluation)
    ]


def _comparison_rows(results: Mapping[str, Any]) -> list[list[str]]:
    tests = (results.get("comparisons") or {}).get("mcnemar") or []
    return [
        [str(test.get("a", MISSING)), str(test.get("b", MISSING)), _number(test.get("statistic")),
         MISSING if test.get("p_value") is None else f"{float(test['p_value']):.3g}", str(test.get("n", MISSING)),
         str(test.get("method", MISSING))]
        for test in tests
    ]


def _calibration(results: Mapping[str, Any]) -> dict[str, Any]:
    """Calibration table rows, the temperatures line, and the data-driven notes for the body and the limitations."""
    rows = []
    for evaluation, (_, label) in EVALUATIONS.items():
        ece = _ece(results, evaluation)
        if ece:
            rows.append([label] + [_percent(ece.get(key), 2) for key in ("raw", "in_domain_T", "adaptive_T")])
    temperatures = (results.get("calibration") or {}).get("temperatures") or {}
    temperatures_md = ", ".join(
        f"{name} T = {_number(temperatures.get(key), 3)}"
        for key, name in (("in_domain", "in-domain"), ("target_adaptive", "domain-adaptive"))
        if temperatures.get(key) is not None
    ) or MISSING

    cross = _ece(results, "cross_corpus")
    note, limitation = "", "This run reported no cross-corpus calibration."
    if cross.get("raw") is not None and cross.get("in_domain_T") is not None:
        raw, in_domain, adaptive = cross["raw"], cross["in_domain_T"], cross.get("adaptive_T")
        finding = f"cross-corpus ECE went from {_percent(raw)} (raw) to {_percent(in_domain)} with the in-domain T"
        if adaptive is not None:
            finding += f" and to {_percent(adaptive)} with the domain-adaptive T"
        adaptive_best = adaptive is not None and adaptive < min(raw, in_domain)
        advice = (
            'use `domain="target"` on target-like audio.'
            if adaptive_best
            else "no temperature fixed cross-corpus calibration here: treat cross-corpus confidences with care."
        )
        note = f"In this run {finding}; {advice}"
        limitation = (
            "In this run the in-domain T made it worse too" if in_domain > raw else "In this run it did not"
        ) + f" ({_percent(raw)} → {_percent(in_domain)}); {advice}"
    return {"calibration_rows": rows, "temperatures_md": temperatures_md, "calibration_note": note,
            "calibration_limitation": limitation}


def _valence_findings(results: Mapping[str, Any]) -> tuple[str, str]:
    """The weakest cross-corpus classes by F1 and the most frequent off-diagonal confusions, as Markdown."""
    section = results.get("cross_corpus") or {}
    f1 = _per_class(section, "f1")
    weakest = sorted(f1.items(), key=lambda item: item[1])[:2] if len(f1) > 2 else []
    weakest_md = " and ".join(f"{name} ({_percent(value)})" for name, value in weakest)
    matrix, labels = section.get("confusion_matrix"), section.get("labels") or results.get("emotions")
    confusions = []
    if matrix and labels and len(labels) == len(matrix):
        confusions = sorted(
            ((int(count), labels[true], labels[predicted])
             for true, row in enumerate(matrix) for predicted, count in enumerate(row)
             if true != predicted and count),
            reverse=True,
        )[:3]
    confusions_md = ", ".join(f"{true} → {predicted} ({count} clips)" for count, true, predicted in confusions)
    return weakest_md, confusions_md


def _plots(results: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        {"title": name.replace("_", " ").capitalize(), "path": Path(path).as_posix()}
        for name, path in (results.get("plots") or {}).items()
    ]


def build_model_card(
    results: Mapping[str, Any],
    *,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    datasets: list[str] | None = None,
    adaptation: Mapping[str, Any] | None = None,
) -> ModelCard:
    """Build the model card of a C-TriLoRA run from its evaluation results.

    Args:
        results: the run's `results.json` as a dict (schema: `hub_cards.results`; read a file with `load_results`),
            complete or partial.
        repo_id: the Hub repository the card is for; used in the usage snippets and as the model-index name.
        license: SPDX-style license id for the metadata.
        datasets: Hub dataset ids of the source and target corpora, in that order; used for the `datasets` metadata
            and the model-index `dataset.type`. Defaults to slugs of the corpus names in `results`.
        adaptation: `config.adaptation` of a checkpoint adapted with `ctrilora adapt`; adds its "Adaptation" section
            (`modeling_ctrilora.adapt.adaptation_markdown`).

    Returns:
        A `huggingface_hub.ModelCard` whose `data.eval_results` holds one result per evaluated corpus (UAR, macro-F1,
        ECE). `card.save("README.md")` writes it; `ModelCard.load` reads it back offline.

    Example:
        >>> card = build_model_card({"model": {"base_model": "openai/whisper-base", "preset": "full"}})
        >>> card.data.library_name, card.data.base_model
        ('transformers', 'openai/whisper-base')
    """
    validate_results(results, complete=False)
    model = results.get("model") or {}
    languages = _languages(results)
    dataset_ids = _dataset_ids(results, datasets)
    used_roles = [role for role in ("source", "target") if _corpus(results, role)]
    eval_results = _eval_results(results, dataset_ids)
    model_name = repo_id.split("/")[-1] if repo_id else f"ctrilora-{model.get('preset', 'full')}"
    card_data = ModelCardData(
        language=languages or None,
        license=license,
        library_name="transformers",
        pipeline_tag=TASK_TYPE,
        tags=[*CARD_TAGS, *languages],
        datasets=(datasets or [dataset_ids[role] for role in used_roles]) or None,
        metrics=list(CARD_METRICS),
        base_model=model.get("base_model"),
        model_name=model_name,
        eval_results=eval_results or None,
    )

    source_name = _corpus(results, "source").get("name", "the source corpus")
    target_name = _corpus(results, "target").get("name", "the target corpus")
    base_model = model.get("base_model")
    trainable = model.get("trainable_fraction")
    emotions = list(results.get("emotions") or [])
    overview = [
        ("Base model", f"`{base_model}`" if base_model else MISSING),
        ("Preset (Table I row)", _preset_description(model.get("preset"))),
        ("Trainable parameters", _percent(trainable, 2) if trainable is not None else MISSING),
        ("Emotions", ", ".join(emotions) if emotions else MISSING),
        ("Source → target", f"{source_name} → {target_name}"),
    ]
    if model.get("checkpoint"):
        overview.append(("Checkpoint", f"`{model['checkpoint']}`"))
    per_class_header, per_class_rows = _per_class_table(results)
    weakest_md, confusions_md = _valence_findings(results)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        title=f"C-TriLoRA: {source_name} → {target_name}" if used_roles else model_name,
        base_model_md=f"`{base_model}`" if base_model else "Whisper",
        source_name=source_name,
        target_name=target_name,
        overview=overview,
        emotions_md=", ".join(emotions) if emotions else "the emotions listed in the config's `id2label`",
        protocol_md=_protocol_md(results),
        summary_rows=_summary_rows(results),
        per_class_header=per_class_header,
        per_class_rows=per_class_rows,
        confusion_matrices=_confusion_matrices(results),
        asr_rows=_asr_rows(results),
        comparison_rows=_comparison_rows(results),
        plots=_plots(results),
        weakest_md=weakest_md,
        confusions_md=confusions_md,
        languages_md=", ".join(languages),
        trainable_md=_percent(trainable, 2) if trainable is not None else "a small fraction",
        target_statistics_clips=(results.get("model") or {}).get("target_statistics_clips"),
        model_id=repo_id or "path/to/checkpoint",
        citation=PAPER_CITATION,
        **_calibration(results),
    )
    if adaptation:
        card.text = card.text.rstrip() + "\n\n" + adaptation_markdown(adaptation)
    return card


__all__ = ["PAPER_CITATION", "TEMPLATE_PATH", "build_model_card"]
