"""Load emotional-speech corpora into one `datasets.Dataset` schema, validating every clip once.

Three on-disk layouts are understood (see :func:`load_corpus`):

* ``csv`` — a folder with ``metadata.csv`` (``path,emotion,speaker,transcript[,gender,language]``, ``path``
  relative to the folder), the layout of the RAVDESS and EmoDB copies used for development;
* ``kazemotts`` — the KazEmoTTS release, ``<root>/<speaker_id>/{train,eval}/<speaker_id>_<emotion>_<n>.wav`` with
  the transcript in a ``.txt`` of the same stem beside each wav;
* ``disk`` — any `datasets.Dataset` written with ``save_to_disk``.

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

import csv
import glob
import io
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import datasets
import numpy as np
import soundfile as sf
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
from trainer.data.fingerprints import DUPLICATE, drop_duplicates
from trainer.data.labels import harmonize_label

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
METADATA_COLUMNS: tuple[str, ...] = ("path", "emotion", "speaker", "transcript")

# KazEmoTTS narrators (speaker id -> (narrator code, gender)), from the corpus README.
KAZEMOTTS_SPEAKERS: dict[str, tuple[str, str]] = {
    "805570882": ("F1", "female"),
    "1263201035": ("M1", "male"),
    "399172782": ("M2", "male"),
}
KAZEMOTTS_SUBSETS: tuple[str, ...] = ("train", "eval")

# Column names accepted in a save_to_disk dataset, first match wins.
_DISK_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "audio": ("audio", "path", "file", "audio_path"),
    "emotion": ("emotion", "label"),
    "speaker": ("speaker", "speaker_id"),
    "transcript": ("transcript", "text", "sentence"),
    "gender": ("gender",),
    "language": ("language",),
}
_REQUIRED_DISK_ROLES = ("audio", "emotion", "speaker", "transcript")
_GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}

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


def detect_format(path: str | os.PathLike) -> str:
    """Guess the layout of a corpus path: ``"csv"``, ``"disk"`` or ``"kazemotts"``.

    Rules, in order: a ``.csv`` file or a folder with ``metadata.csv`` → csv; a folder with ``state.json`` and
    ``dataset_info.json`` (or ``dataset_dict.json``) → disk; a folder matching ``*/train/*.wav`` or
    ``*/eval/*.wav`` → kazemotts.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: nothing matches; the message lists what was looked for.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"corpus path {path} does not exist")
    if os.path.isfile(path):
        if path.endswith(".csv"):
            return "csv"
        raise ValueError(f"{path} is a file but not a .csv metadata file; pass the corpus folder instead")
    if os.path.isfile(os.path.join(path, "metadata.csv")):
        return "csv"
    if os.path.isfile(os.path.join(path, "dataset_dict.json")) or (
        os.path.isfile(os.path.join(path, "state.json")) and os.path.isfile(os.path.join(path, "dataset_info.json"))
    ):
        return "disk"
    if any(glob.glob(os.path.join(glob.escape(path), "*", subset, "*.wav")) for subset in KAZEMOTTS_SUBSETS):
        return "kazemotts"
    raise ValueError(
        f"cannot tell the corpus format of {path}: expected metadata.csv (format='csv'), a save_to_disk folder with "
        "state.json + dataset_info.json (format='disk'), or KazEmoTTS's <speaker>/{train,eval}/*.wav "
        "(format='kazemotts')."
    )


def _prefixed_speaker(speaker: str, corpus: str) -> str:
    # Speaker ids are only unique inside a corpus ("01" exists everywhere); prefix once with the corpus name.
    if not speaker or speaker.startswith(f"{corpus}_"):
        return speaker
    return f"{corpus}_{speaker}"


def _row(
    audio: dict[str, Any],
    path: str,
    emotion: str,
    speaker: str,
    transcript: str,
    gender: str,
    language: str,
    corpus: str,
    label_aliases: Mapping[str, str] | None,
    where: str,
) -> dict[str, Any]:
    return {
        "audio": audio,
        "path": path,
        "emotion": harmonize_label(emotion, label_aliases, where=where),
        "speaker": _prefixed_speaker(str(speaker).strip(), corpus),
        "transcript": str(transcript).strip(),
        "gender": _GENDERS.get(str(gender).strip().lower(), str(gender).strip().lower()),
        "language": str(language).strip(),
        "corpus": corpus,
    }


def _rows_from_csv(
    csv_path: str, corpus: str, language: str | None, label_aliases: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    root = os.path.dirname(os.path.abspath(csv_path))
    rows, no_speaker = [], []
    with io.StringIO(_read_utf8(csv_path), newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in METADATA_COLUMNS if name not in header]
        if missing:
            raise ValueError(
                f"{csv_path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}; "
                f"expected {','.join(METADATA_COLUMNS)}[,gender,language]"
            )
        for record in reader:
            where = f"{csv_path}, line {reader.line_num}"
            # A ragged row: surplus cells land under the key None, missing ones get the value None.
            surplus, absent = record.get(None) or [], sum(value is None for value in record.values())
            if surplus or absent:
                raise ValueError(
                    f"{where}: {len(header) + len(surplus) - absent} fields, the header has {len(header)} "
                    f"({','.join(header)}); quote cells that contain commas"
                )
            cells = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
            if not cells["path"]:
                raise ValueError(f"{where}: empty path")
            if not cells["speaker"]:
                no_speaker.append(reader.line_num)
            path = os.path.normpath(os.path.join(root, cells["path"]))
            rows.append(
                _located(csv_path, f"line {reader.line_num}", cells["path"]),
            )
            rows[-1].update(
                _row(
                    {"bytes": None, "path": path},
                    path,
                    cells["emotion"],
                    cells["speaker"],
                    cells["transcript"],
                    cells.get("gender", ""),
                    cells.get("language") or language or "",
                    corpus,
                    label_aliases,
                    f"{where} ({cells['path']})",
                )
            )
    if no_speaker:
        shown = ", ".join(map(str, no_speaker[:10])) + (", ..." if len(no_speaker) > 10 else "")
        logger.warning(
            "%s: %d row(s) have no speaker (line%s %s); they count as an unknown speaker: no speaker loss for them, "
            "and speaker-based splits (speaker_independent, target_split=speaker) refuse the corpus",
            csv_path, len(no_speaker), "s" if len(no_speaker) > 1 else "", shown,
        )
    return rows


def _read_utf8(csv_path: str) -> str:
    """The text of a metadata file, which must be UTF-8 (a BOM is allowed); otherwise say which encoding to convert."""
    with open(csv_path, "rb") as handle:
        raw = handle.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        encoding = next(name for name in ("cp1252", "latin-1") if _decodes(raw, name))
        raise ValueError(
            f"{csv_path}: not UTF-8 (byte 0x{raw[error.start]:02x} on line {line}); metadata files must be UTF-8. "
            f"It reads as {encoding}: convert it with `iconv -f {encoding} -t utf-8 {csv_path} > metadata.utf8.csv` "
            "and put that file in its place (or save it as 'CSV UTF-8' from a spreadsheet)"
        ) from None


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _located(source: str, where: str, name: str) -> dict[str, str]:
    """Where a row comes from, for messages about duplicates (not dataset columns)."""
    return {"_source": source, "_where": where, "_name": name}


def _rows_from_kazemotts(
    root: str, corpus: str, language: str | None, label_aliases: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    rows, missing_transcripts = [], []
    wavs = sorted(
        wav for subset in KAZEMOTTS_SUBSETS for wav in glob.glob(os.path.join(glob.escape(root), "*", subset, "*.wav"))
    )
    for wav in wavs:
        path = os.path.abspath(wav)
        folder_speaker = os.path.basename(os.path.dirname(os.path.dirname(path)))
        stem = os.path.splitext(os.path.basename(path))[0]
        head, _, number = stem.rpartition("_")
        speaker, _, emotion = head.partition("_")
        if not (number.isdigit() and speaker and emotion):
            raise ValueError(f"{path}: KazEmoTTS file names are <speaker_id>_<emotion>_<n>.wav, got {stem!r}")
        if speaker != folder_speaker:
            raise ValueError(f"{path}: file name says speaker {speaker!r} but it is in folder {folder_speaker!r}")
        transcript_file = os.path.splitext(path)[0] + ".txt"
        if os.path.isfile(transcript_file):
            with open(transcript_file, encoding="utf-8-sig") as handle:
                transcript = " ".join(handle.read().split())
        else:
            transcript = ""
            missing_transcripts.append(path)
        gender = KAZEMOTTS_SPEAKERS.get(speaker, ("", ""))[1]
        audio = {"bytes": None, "path": path}
        rows.append(_located(root, path, path))
        rows[-1].update(
            _row(audio, path, emotion, speaker, transcript, gender, language or "kk", corpus, label_aliases, path)
        )
    if missing_transcripts:
        logger.warning(
            "%s: %d clip(s) have no .txt transcript beside them (transcript left empty, no ASR loss): %s",
            root, len(missing_transcripts), ", ".join(missing_transcripts),
        )
    return rows


def _disk_column(dataset: datasets.Dataset, role: str, source: str, required: bool) -> str | None:
    for name in _DISK_COLUMN_ALIASES[role]:
        if name in dataset.column_names:
            return name
    if required:
        raise ValueError(
            f"{source}: no {role} column (looked for {', '.join(_DISK_COLUMN_ALIASES[role])}); "
            f"found {', '.join(dataset.column_names)}"
        )
    return None


def _disk_audio(value: Any, root: str, index: int) -> tuple[dict[str, Any], str]:
    """Normalise one audio cell (path string, {bytes, path}, or {array, sampling_rate}) to ``({bytes, path}, name)``."""
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"{root}, row {index}: unsupported audio value of type {type(value).__name__}")
    if value.get("array") is not None:
        # Decoded arrays (an older `datasets` layout): store them as lossless float WAV bytes.
        buffer = io.BytesIO()
        array = np.asarray(value["array"], dtype=np.float32)
        sf.write(buffer, array, int(value["sampling_rate"]), format="WAV", subtype="FLOAT")
        name = value.get("path") or f"{root}[row {index}]"
        return {"bytes": buffer.getvalue(), "path": name}, name
    path, payload = value.get("path"), value.get("bytes")
    if payload is None:
        # A file reference: relative paths are taken relative to the dataset folder when the file is there.
        if path and not os.path.isabs(path) and os.path.isfile(os.path.join(root, path)):
            path = os.path.join(root, path)
        name = os.path.abspath(path) if path else f"{root}[row {index}]"
    else:
        # Embedded bytes (save_to_disk embeds local files and keeps only their base name): name the clip by the
        # dataset folder and that stored name — unique and readable in messages, though not a file on disk.
        name = os.path.join(root, path) if path else f"{root}[row {index}]"
    return {"bytes": payload, "path": name}, name


def _rows_from_disk(
    root: str, corpus_name: str | None, language: str | None, label_aliases: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    loaded = datasets.load_from_disk(root)
    if isinstance(loaded, datasets.DatasetDict):
        raise ValueError(
            f"{root} is a DatasetDict with splits {list(loaded)}; pass one split's folder, e.g. "
            f"{os.path.join(root, next(iter(loaded), 'train'))}"
        )
    columns = {role: _disk_column(loaded, role, root, role in _REQUIRED_DISK_ROLES) for role in _DISK_COLUMN_ALIASES}
    audio_column = columns["audio"]
    if isinstance(loaded.features[audio_column], datasets.Audio):
        loaded = loaded.cast_column(audio_column, datasets.Audio(decode=False))
    emotion_feature = loaded.features[columns["emotion"]]
    default_corpus = corpus_name or os.path.basename(os.path.normpath(root))
    # A separate `path` column (e.g. a dataset written by load_corpus itself) names the clip better than bytes do.
    path_column = "path" if audio_column != "path" and "path" in loaded.column_names else None
    rows = []
    for index, record in enumerate(loaded):

        def cell(role: str) -> str:
            value = record[columns[role]] if columns[role] else None
            return "" if value is None else str(value)

        audio, name = _disk_audio(record[audio_column], root, index)
        emotion = record[columns["emotion"]]
        if isinstance(emotion_feature, datasets.ClassLabel):
            emotion = emotion_feature.int2str(emotion) if emotion is not None and emotion >= 0 else ""
        path = (path_column and record[path_column]) or name
        rows.append(_located(root, f"row {index}", path))
        rows[-1].update(
            _row(
                audio,
                path,
                "" if emotion is None else str(emotion),
                cell("speaker"),
                cell("transcript"),
                cell("gender"),
                cell("language") or language or "",
                corpus_name or record.get("corpus") or default_corpus,
                label_aliases,
                f"{root}, row {index} ({path})",
            )
        )
    return rows


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
