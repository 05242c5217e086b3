"""Emotion-label harmonisation: every corpus is mapped onto one canonical vocabulary.

Corpora name the same emotion differently (KazEmoTTS says ``scared``, CREMA-D ``FEA``, EmoDB's German files
``Angst``). Cross-corpus training and evaluation compare class ids, so every loader maps its raw names through
one alias table onto :data:`EMOTIONS` and fails loudly on a name it does not know, instead of inventing a class.

Example:
    >>> from trainer.data.labels import harmonize_label, shared_classes
    >>> harmonize_label("Scared")
    'fear'
    >>> harmonize_label("frustrated", {"frustrated": "angry"})
    'angry'
    >>> shared_classes(["neutral", "calm", "fear"], ["fear", "boredom", "neutral"])
    ['neutral', 'fear']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# Canonical vocabulary, in the order used for class ids everywhere (the order of ../shared/data/README.md).
EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise", "boredom")

# Raw name (lower-case) -> canonical name. Covers the spellings of RAVDESS, EmoDB (English and German names),
# KazEmoTTS, CREMA-D/IEMOCAP-style three-letter codes and the common adjective/noun variants.
DEFAULT_ALIASES: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    "neu": "neutral",
    "neutrality": "neutral",
    "cal": "calm",
    "calmness": "calm",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "joyful": "happy",
    "freude": "happy",
    "sadness": "sad",
    "sorrow": "sad",
    "trauer": "sad",
    "ang": "angry",
    "anger": "angry",
    "mad": "angry",
    "ärger": "angry",
    "wut": "angry",
    "fea": "fear",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "angst": "fear",
    "dis": "disgust",
    "disgusted": "disgust",
    "ekel": "disgust",
    "sur": "surprise",
    "surprised": "surprise",
    "bor": "boredom",
    "bored": "boredom",
    "langeweile": "boredom",
}

_WHITESPACE = re.compile(r"\s+")


def _key(name: str) -> str:
    return _WHITESPACE.sub(" ", str(name).strip().lower())


def build_alias_map(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge user aliases over :data:`DEFAULT_ALIASES` (keys compared case-insensitively).

    Args:
        overrides: raw name -> canonical name; wins over the defaults. Every value must be one of
            :data:`EMOTIONS` (or a default alias of one, e.g. ``"scared"``).

    Returns:
        A new dict, lower-case raw name -> canonical name.

    Example:
        >>> build_alias_map({"Pleasant Surprise": "surprise"})["pleasant surprise"]
        'surprise'
    """
    aliases = dict(DEFAULT_ALIASES)
    for raw, target in (overrides or {}).items():
        canonical = DEFAULT_ALIASES.get(_key(target))
        if canonical is None:
            raise ValueError(
                f"label_aliases maps {raw!r} to {target!r}, which is not an emotion of the canonical vocabulary "
                f"{', '.join(EMOTIONS)}."
            )
        aliases[_key(raw)] = canonical
    return aliases


def harmonize_label(name: str, aliases: Mapping[str, str] | None = None, *, where: str | None = None) -> str:
    """Map a raw emotion name onto the canonical vocabulary.

    Args:
        name: the corpus's emotion name (any case, surrounding spaces ignored). An empty name stays ``""``
            (an unlabeled clip).
        aliases: user aliases, merged over the defaults (see :func:`build_alias_map`).
        where: the file or row the name comes from, quoted in the error message.

    Returns:
        One of :data:`EMOTIONS`, or ``""`` for an empty name.

    Raises:
        ValueError: the name is neither canonical nor a known alias; the message names `where`, the name, the
            known names, and how to add an alias.
    """
    key = _key(name)
    if not key:
        return ""
    table = build_alias_map(aliases)
    canonical = table.get(key)
    if canonical is None:
        location = f"{where}: " if where else ""
        raise ValueError(
            f"{location}unknown emotion {name!r}. Known emotions: {', '.join(EMOTIONS)}; known aliases: "
            f"{', '.join(sorted(k for k in table if k not in EMOTIONS))}. "
            f"Map it with label_aliases={{{key!r}: '<one of the known emotions>'}}."
        )
    return canonical


def sort_emotions(labels: Iterable[str]) -> list[str]:
    """Distinct canonical emotions among `labels`, in :data:`EMOTIONS` order (empty labels ignored).

    Raises:
        ValueError: a label is not canonical (harmonise first).
    """
    present = {label for label in labels if label}
    unknown = present - set(EMOTIONS)
    if unknown:
        raise ValueError(
            f"labels {sorted(unknown)} are not canonical emotions ({', '.join(EMOTIONS)}); harmonise them first."
        )
    return [name for name in EMOTIONS if name in present]


def shared_classes(source_labels: Iterable[str], target_labels: Iterable[str]) -> list[str]:
    """Classes present in both corpora, in canonical order — the label space of cross-corpus evaluation.

    Args:
        source_labels: harmonised emotion of every source row (e.g. ``source["emotion"]``); ``""`` ignored.
        target_labels: the same for the target corpus.

    Returns:
        The shared classes ordered as in :data:`EMOTIONS` (RAVDESS vs EmoDB:
        ``['neutral', 'happy', 'sad', 'angry', 'fear', 'disgust']``).

    Raises:
        ValueError: a label is not canonical, or the corpora share no class.
    """
    shared = set(sort_emotions(source_labels)) & set(sort_emotions(target_labels))
    if not shared:
        raise ValueError("the source and target corpora share no emotion class; nothing can be evaluated.")
    return [name for name in EMOTIONS if name in shared]


def make_label_maps(classes: Iterable[str]) -> tuple[dict[str, int], dict[int, str]]:
    """``label2id`` / ``id2label`` for the given classes, ids following canonical order.

    Example:
        >>> make_label_maps(["fear", "neutral"])
        ({'neutral': 0, 'fear': 1}, {0: 'neutral', 1: 'fear'})
    """
    ordered = sort_emotions(classes)
    return {name: i for i, name in enumerate(ordered)}, dict(enumerate(ordered))


def make_speaker_map(speakers: Iterable[str]) -> dict[str, int]:
    """``speaker2id`` over the distinct non-empty speaker ids, sorted so the mapping is reproducible.

    Example:
        >>> make_speaker_map(["ravdess_02", "ravdess_01", "", "ravdess_02"])
        {'ravdess_01': 0, 'ravdess_02': 1}
    """
    return {speaker: i for i, speaker in enumerate(sorted({s for s in speakers if s}))}


__all__ = [
    "DEFAULT_ALIASES",
    "EMOTIONS",
    "build_alias_map",
    "harmonize_label",
    "make_label_maps",
    "make_speaker_map",
    "shared_classes",
    "sort_emotions",
]
