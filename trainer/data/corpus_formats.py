"""Read the three on-disk corpus layouts into uniform rows, one dict per clip (:mod:`trainer.data.corpora` checks them).

* ``csv`` — a folder with ``metadata.csv`` (``path,emotion,speaker,transcript[,gender,language]``, ``path``
  relative to the folder), the layout of the RAVDESS and EmoDB copies used for development;
* ``kazemotts`` — the KazEmoTTS release, ``<root>/<speaker_id>/{train,eval}/<speaker_id>_<emotion>_<n>.wav`` with
  the transcript in a ``.txt`` of the same stem beside each wav;
* ``disk`` — any `datasets.Dataset` written with ``save_to_disk``.

This module owns telling the layouts apart (:func:`detect_format`) and turning each into rows with the columns of
:data:`trainer.data.corpora.CORPUS_FEATURES` (emotion harmonised, speaker prefixed with the corpus name, ``audio`` a
``{bytes, path}`` reference that is not decoded here) plus ``_source``/``_where``/``_name``, where each row comes
from, for the messages about duplicates. Metadata problems (missing columns, ragged rows, non-UTF-8 files, badly
named KazEmoTTS files) raise `ValueError` here. :mod:`trainer.data.corpora` keeps the schema, the :class:`LoadReport`,
the clip checks and :func:`~trainer.data.corpora.load_corpus`, which calls these readers.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
import soundfile as sf

from trainer.data.labels import harmonize_label

# Logged under the name of the module users call and configure (load_corpus), as before the readers moved here.
logger = logging.getLogger("trainer.data.corpora")


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


__all__ = ["KAZEMOTTS_SPEAKERS", "KAZEMOTTS_SUBSETS", "METADATA_COLUMNS", "detect_format"]
