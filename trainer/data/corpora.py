"""Load emotional-speech corpora into one `datasets.Dataset` schema, validating every clip once.

Three on-disk layouts are understood — ``csv`` (a folder with ``metadata.csv``), ``kazemotts`` (the KazEmoTTS
release) and ``disk`` (a ``save_to_disk`` folder); :mod:`trainer.data.corpus_formats` tells them apart
(:func:`detect_format`) and reads each into rows. This module owns the schema, the clip checks and the
:class:`LoadReport` (see :func:`load_corpus`).

Every loader returns the columns of :data:`CORPUS_FEATURES`. ``audio`` is a ``datasets.Audio(decode=False)``
column (``{"bytes", "path"}``): `datasets` ≥ 4 decodes audio through `torchcodec`, which needs system FFmpeg, so
clips are decoded, checked and resampled by :func:`load_audio`, the one implementation of
:mod:`modeling_ctrilora.feature_extraction_ctrilora` that inference uses too.

Bad clips (missing, unreadable, empty, shorter than 0.1 s, digital silence, NaN/inf samples, longer than 30 s: the
:func:`~modeling_ctrilora.feature_extraction_ctrilora.check_audio` that inference applies too) raise
:class:`BadAudioError` naming the file and the problem; with ``on_bad_audio="skip"`` they are dropped, each one
logged with its reason, and counted in a :class:`LoadReport` (returned with ``return_report=True`` and summarised
in ``dataset.info.description``, which survives ``save_to_disk``).

Clips longer than ``max_duration`` (default 30 s, Whisper's window; `--max_duration`) follow ``long_clips``
(`--long_clips`, :data:`LONG_CLIP_POLICIES`):

* ``"bad_audio"`` (default, the behaviour before the option existed): an over-long clip is a bad clip, so
  ``on_bad_audio`` decides — stop at it, or skip and report it;
* ``"skip"``: over-long clips are dropped and reported (other bad clips still follow ``on_bad_audio``);
* ``"crop"``: the clip's first ``max_duration`` seconds are kept;
* ``"split"``: the clip becomes the fewest consecutive segments of equal length that are each at most
  ``max_duration`` long (a 61 s clip at 30 s → three 20.33 s segments: equal lengths leave no uselessly short
  tail), each a row with the clip's label and speaker (:func:`long_clip_segments`); cropped and split rows get an
  empty transcript (no ASR loss), which cannot be aligned to a part of the clip.

The loader keeps one row per clip and counts cropped and split clips in the :class:`LoadReport`; the cut itself
happens when features are computed (:func:`trainer.data.features.add_log_mel`), after the splits are made on
clips, so every segment of a clip lands in its clip's split (:func:`trainer.data.splits.expand_splits`).

Example:
    >>> from trainer.data.corpora import load_corpus, load_audio
    >>> ravdess = load_corpus("../shared/data/ravdess", language="en")  # doctest: +SKIP
    >>> ravdess.column_names  # doctest: +SKIP
    ['audio', 'path', 'emotion', 'speaker', 'transcript', 'gender', 'language', 'corpus']
    >>> waveform = load_audio(ravdess[0]["audio"])  # float32, mono, 16 kHz  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import datasets
from tqdm.auto import tqdm

from modeling_ctrilora.feature_extraction_ctrilora import (
    MAX_SECONDS,
    MIN_SAMPLES,
    SAMPLING_RATE,
    BadAudioError,
    check_audio,
    check_duration,
    load_audio,
    read_audio,
    source_name,
)
from trainer.data.corpus_formats import (
    KAZEMOTTS_SPEAKERS,
    METADATA_COLUMNS,
    _rows_from_csv,
    _rows_from_disk,
    _rows_from_kazemotts,
    detect_format,
)
from trainer.data.fingerprints import DUPLICATE, drop_duplicates

logger = logging.getLogger(__name__)


CORPUS_FEATURES = datasets.Features(
    {
        "audio": datasets.Audio(decode=False),
        "path": datasets.Value("string"),
        "emotion": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "transcript": datasets.Value("string"),
        "gender": datasets.Value("string"),
        "language": datasets.Value("string"),
        "corpus": datasets.Value("string"),
    }
)
CORPUS_COLUMNS: tuple[str, ...] = tuple(CORPUS_FEATURES)
_AUDIO_STRUCT = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}

AudioSource = str | os.PathLike | Mapping[str, Any]
Format = Literal["auto", "csv", "kazemotts", "disk"]
# What happens to a clip longer than max_duration (module docstring); "bad_audio" is the default.
LONG_CLIP_POLICIES: tuple[str, ...] = ("bad_audio", "skip", "crop", "split")


def long_clip_segments(num_samples: int, rate: int, max_duration: float, long_clips: str) -> list[tuple[int, int]]:
    """``[(start, end)]`` samples a clip of `num_samples` becomes under `long_clips` (one segment when it fits).

    ``"crop"`` keeps the first `max_duration` seconds; ``"split"`` cuts the fewest consecutive, equal segments of
    at most `max_duration` seconds (ends rounded to samples). Other policies leave the clip whole.

    Example:
        >>> long_clip_segments(61_000, 1_000, 30.0, "split")
        [(0, 20333), (20333, 40667), (40667, 61000)]
        >>> long_clip_segments(61_000, 1_000, 30.0, "crop")
        [(0, 30000)]
    """
    limit = int(math.floor(max_duration * rate + 1e-6))
    if num_samples <= limit or long_clips not in ("crop", "split"):
        return [(0, num_samples)]
    if long_clips == "crop":
        return [(0, limit)]
    count = math.ceil(num_samples / limit)
    edges = [round(index * num_samples / count) for index in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))



@dataclass
class LoadReport:
    """What :func:`load_corpus` loaded and what it skipped.

    Attributes:
        corpus: corpus name (the ``corpus`` column).
        source: the folder or file loaded.
        format: ``"csv"``, ``"kazemotts"`` or ``"disk"``.
        num_rows: clips listed by the corpus.
        skipped: ``(file, problem)`` for every clip dropped under ``on_bad_audio="skip"`` (or ``long_clips="skip"``).
        max_duration: the longest clip kept whole, in seconds; long_clips: the policy for longer ones.
        long: ``(file, duration, segments)`` for every clip cropped (``segments`` 1) or split under ``long_clips``.
    """

    corpus: str
    source: str
    format: str
    num_rows: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    max_duration: float = MAX_SECONDS
    long_clips: str = "bad_audio"
    long: list[tuple[str, float, int]] = field(default_factory=list)

    @property
    def num_skipped(self) -> int:
        return len(self.skipped)

    @property
    def num_loaded(self) -> int:
        return self.num_rows - self.num_skipped

    @property
    def num_duplicates(self) -> int:
        """Skipped rows that repeated an earlier row's path or audio (their problem starts with ``"duplicate"``)."""
        return sum(problem.startswith(DUPLICATE) for _, problem in self.skipped)

    @property
    def num_cropped(self) -> int:
        """Clips longer than ``max_duration`` kept as their first ``max_duration`` seconds (``long_clips="crop"``)."""
        return len(self.long) if self.long_clips == "crop" else 0

    @property
    def num_split(self) -> int:
        """Clips longer than ``max_duration`` split into segments (``long_clips="split"``)."""
        return len(self.long) if self.long_clips == "split" else 0

    @property
    def num_segments(self) -> int:
        """Rows the split clips become (each clip counts its segments)."""
        return sum(segments for _, _, segments in self.long) if self.long_clips == "split" else 0

    def summary(self) -> str:
        """Human-readable report; the first line gives the counts, then one line per skipped, cropped or split clip."""
        duplicates = f" ({self.num_duplicates} of them duplicates)" if self.num_duplicates else ""
        long = ""
        if self.num_cropped:
            long = f", {self.num_cropped} cropped to their first {self.max_duration:g} s"
        elif self.num_split:
            long = (f", {self.num_split} longer than {self.max_duration:g} s split into {self.num_segments} "
                    "segments (one row each)")
        lines = [
            f"corpus {self.corpus!r} ({self.format}) from {self.source}: {self.num_loaded} of {self.num_rows} "
            f"clips loaded, {self.num_skipped} skipped{duplicates}{long}."
        ]
        lines += [f"skipped {path}: {problem}" for path, problem in self.skipped]
        verb = "cropped" if self.long_clips == "crop" else "split"
        lines += [f"{verb} {path}: {duration:.2f} s" + (f" into {segments} segments" if verb == "split" else
                                                        f" to {self.max_duration:g} s")
                  for path, duration, segments in self.long]
        return "\n".join(lines)


def check_clip(source: AudioSource, max_seconds: float | None = MAX_SECONDS) -> float:
    """Decode a clip once and apply every check of :func:`load_audio`, without resampling.

    Args:
        source: the clip.
        max_seconds: longest clip accepted; `None` checks everything but the duration.

    Returns:
        The duration in seconds.

    Raises:
        BadAudioError: as :func:`load_audio`.
    """
    data, sampling_rate = read_audio(source)
    name = source_name(source)
    check_audio(data, sampling_rate, name)
    if max_seconds is not None:
        check_duration(data.shape[0], sampling_rate, name, max_seconds)
    return data.shape[0] / sampling_rate




def _validate(rows: list[dict[str, Any]], on_bad_audio: str, report: LoadReport) -> list[dict[str, Any]]:
    kept = []
    # Decoding every clip is the slow part of loading a corpus (minutes for thousands of clips): show progress, as
    # `datasets.map` does for the log-Mel step that follows.
    for row in tqdm(rows, desc=f"checking {report.corpus}", unit="clip", disable=len(rows) < 50 or None):
        try:
            data, rate = read_audio(row["audio"])  # check_clip's steps, keeping the length for the segment count
            check_audio(data, rate, source_name(row["audio"]))
            duration = data.shape[0] / rate
            if duration > report.max_duration:
                problem = (f"clip is {duration:.2f} s long, over max_duration {report.max_duration:g} s (Whisper "
                           f"encodes at most {MAX_SECONDS:.0f} s; --long_clips crop or split keeps it)")
                if report.long_clips == "bad_audio":
                    raise BadAudioError(source_name(row["audio"]), problem)
                if report.long_clips == "skip":
                    report.skipped.append((row["path"], problem + " (long_clips='skip')"))
                    continue
                segments = long_clip_segments(data.shape[0], rate, report.max_duration, report.long_clips)
                report.long.append((row["path"], duration, len(segments)))
        except BadAudioError as error:
            if on_bad_audio == "error":
                raise
            report.skipped.append((row["path"], error.problem))
            continue
        kept.append(row)
    if report.skipped:
        logger.warning(
            "%s: skipped %d of %d clip(s):\n%s",
            report.corpus, report.num_skipped, report.num_rows,
            "\n".join(f"  {path}: {problem}" for path, problem in report.skipped),
        )
    if report.long:
        logger.warning(
            "%s: %d clip(s) longer than max_duration %g s %s (long_clips=%r):\n%s",
            report.corpus, len(report.long), report.max_duration,
            "cropped" if report.long_clips == "crop" else f"split into {report.num_segments} segments",
            report.long_clips, "\n".join(f"  {path}: {duration:.2f} s" for path, duration, _ in report.long),
        )
    return kept


@overload
def load_corpus(
    path_or_dir: str | os.PathLike,
    *,
    format: Format = ...,
    language: str | None = ...,
    label_aliases: Mapping[str, str] | None = ...,
    on_bad_audio: Literal["error", "skip"] = ...,
    corpus_name: str | None = ...,
    max_duration: float = ...,
    long_clips: str = ...,
    return_report: Literal[False] = ...,
) -> datasets.Dataset: ...


@overload
def load_corpus(
    path_or_dir: str | os.PathLike,
    *,
    format: Format = ...,
    language: str | None = ...,
    label_aliases: Mapping[str, str] | None = ...,
    on_bad_audio: Literal["error", "skip"] = ...,
    corpus_name: str | None = ...,
    max_duration: float = ...,
    long_clips: str = ...,
    return_report: Literal[True],
) -> tuple[datasets.Dataset, LoadReport]: ...


def load_corpus(
    path_or_dir: str | os.PathLike,
    *,
    format: Format = "auto",
    language: str | None = None,
    label_aliases: Mapping[str, str] | None = None,
    on_bad_audio: Literal["error", "skip"] = "error",
    corpus_name: str | None = None,
    max_duration: float = MAX_SECONDS,
    long_clips: str = "bad_audio",
    return_report: bool = False,
) -> datasets.Dataset | tuple[datasets.Dataset, LoadReport]:
    """Load a corpus into the common schema, harmonising labels and decoding every clip once to validate it.

    Args:
        path_or_dir: corpus folder (or its ``metadata.csv``).
        format: ``"auto"`` (see :func:`detect_format`), ``"csv"``, ``"kazemotts"`` or ``"disk"``.
        language: language code for rows whose corpus gives none (csv without a ``language`` column; KazEmoTTS
            defaults to ``"kk"``).
        label_aliases: raw emotion name -> canonical name, merged over :data:`trainer.data.labels.DEFAULT_ALIASES`.
        on_bad_audio: ``"error"`` raises :class:`BadAudioError` at the first bad clip; ``"skip"`` drops bad clips,
            logs each with its reason and counts them in the report. Label and metadata problems (unknown emotion,
            missing columns) always raise: skipping them would silently drop whole classes.
        corpus_name: value of the ``corpus`` column and speaker prefix; defaults to the folder name
            (``"kazemotts"`` for the KazEmoTTS layout). Speaker ids already starting with ``<corpus>_`` are kept.
        max_duration: longest clip kept whole, in seconds (default 30, Whisper's window).
        long_clips: what happens to longer clips, one of :data:`LONG_CLIP_POLICIES` (module docstring); their rows
            are kept whole under ``"crop"``/``"split"`` and counted in the report — pass the same values to
            :func:`~trainer.data.features.add_log_mel`, which cuts them.
        return_report: also return the :class:`LoadReport`.

    Returns:
        A `datasets.Dataset` with the columns of :data:`CORPUS_FEATURES` (``emotion`` canonical or ``""`` for
        unlabeled rows; ``speaker``, ``transcript``, ``gender``, ``language`` ``""`` when unknown;
        ``path`` absolute — for audio embedded as bytes in a ``save_to_disk`` folder, the folder joined with the
        stored file name). Its ``info.description`` holds :meth:`LoadReport.summary`. With
        ``return_report=True``, ``(dataset, report)``.

    Raises:
        BadAudioError: a bad clip under ``on_bad_audio="error"``.
        ValueError: unknown format, unknown emotion, missing metadata columns, or no usable clip at all.

    Example:
        >>> ds, report = load_corpus("corpora/emodb", language="de", on_bad_audio="skip",
        ...                          return_report=True)  # doctest: +SKIP
        >>> report.num_skipped, ds.num_rows  # doctest: +SKIP
        (0, 535)
    """
    if on_bad_audio not in ("error", "skip"):
        raise ValueError(f"on_bad_audio must be 'error' or 'skip', got {on_bad_audio!r}")
    if long_clips not in LONG_CLIP_POLICIES:
        raise ValueError(f"long_clips must be one of {LONG_CLIP_POLICIES}, got {long_clips!r}")
    if not max_duration > 0:
        raise ValueError(f"max_duration must be a positive number of seconds, got {max_duration!r}")
    path = os.path.abspath(os.fspath(path_or_dir))
    detected = detect_format(path) if format == "auto" else format
    if detected == "csv":
        csv_path = path if os.path.isfile(path) else os.path.join(path, "metadata.csv")
        if not os.path.isfile(csv_path):
            raise FileNotFoundError(f"{csv_path} not found (format='csv' needs a metadata.csv)")
        corpus = corpus_name or os.path.basename(os.path.dirname(csv_path))
        rows = _rows_from_csv(csv_path, corpus, language, label_aliases)
    elif detected == "kazemotts":
        corpus = corpus_name or "kazemotts"
        rows = _rows_from_kazemotts(path, corpus, language, label_aliases)
    elif detected == "disk":
        rows = _rows_from_disk(path, corpus_name, language, label_aliases)
        corpus = corpus_name or ",".join(sorted({row["corpus"] for row in rows})) or os.path.basename(path)
    else:
        raise ValueError(f"unknown corpus format {format!r}; use 'auto', 'csv', 'kazemotts' or 'disk'")
    if not rows:
        raise ValueError(f"{path}: the corpus lists no clip")
    report = LoadReport(corpus=corpus, source=path, format=detected, num_rows=len(rows), max_duration=max_duration,
                        long_clips=long_clips)
    rows = drop_duplicates(rows, on_bad_audio, report)
    rows = _validate(rows, on_bad_audio, report)
    if not rows:
        raise ValueError(f"{path}: every clip was skipped as bad audio:\n{report.summary()}")
    unlabeled = sum(not row["emotion"] for row in rows)
    if unlabeled:
        logger.info("%s: %d of %d clip(s) have no emotion label", corpus, unlabeled, len(rows))
    # Built with a plain {bytes, path} struct, then cast: encoding through `Audio` would import torchcodec.
    plain = datasets.Features({**CORPUS_FEATURES, "audio": _AUDIO_STRUCT})
    dataset = datasets.Dataset.from_dict(
        {name: [row[name] for row in rows] for name in CORPUS_COLUMNS},
        features=plain,
        info=datasets.DatasetInfo(description=report.summary(), features=plain),
    ).cast(CORPUS_FEATURES)
    return (dataset, report) if return_report else dataset


__all__ = [
    "CORPUS_COLUMNS",
    "CORPUS_FEATURES",
    "KAZEMOTTS_SPEAKERS",
    "LONG_CLIP_POLICIES",
    "MAX_SECONDS",
    "METADATA_COLUMNS",
    "SAMPLING_RATE",
    "BadAudioError",
    "LoadReport",
    "check_clip",
    "detect_format",
    "load_audio",
    "load_corpus",
    "long_clip_segments",
]
