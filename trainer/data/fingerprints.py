"""Clip fingerprints: what a clip holds, as the content key of the feature caches and to find repeated clips.

A corpus whose metadata lists one clip twice (or the same audio under two paths) can put that clip in train and test
at once; `drop_duplicates` refuses such rows or drops and reports them (`load_corpus`'s `on_bad_audio`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modeling_ctrilora.feature_extraction_ctrilora import BadAudioError, source_name

if TYPE_CHECKING:
    from trainer.data.corpora import AudioSource, LoadReport

DUPLICATE = "duplicate"  # how the problem of a dropped duplicate row starts (LoadReport.num_duplicates counts them)


def clip_fingerprint(source: "AudioSource") -> str:
    """What a clip holds, as a string: ``size:mtime_ns:sha256`` of the file, or ``bytes:sha256`` of embedded audio.

    Keys caches on the audio itself, so a clip re-recorded or fixed at the same path (even with its size and
    modification time kept) gets a new key. The content hash reads the file once (~1 GB/s), cheap next to decoding.

    Raises:
        BadAudioError: the file does not exist.
    """
    payload = source.get("bytes") if isinstance(source, Mapping) else None
    if payload is not None:
        return "bytes:" + hashlib.sha256(payload).hexdigest()
    name = source_name(source)
    try:
        stat = os.stat(name)
        digest = hashlib.sha256()
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise BadAudioError(name, f"cannot read the file ({error.strerror or error})") from error
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()}"


def _describe(row: dict[str, Any]) -> str:
    where, name = row.get("_where"), row.get("_name")
    return f"{where} ({name})" if where and name and name != where else (where or row["path"])


def _both(first: dict[str, Any], row: dict[str, Any]) -> str:
    """``"lines 3 and 6"`` (``"rows …"`` for a save_to_disk folder) for two rows of one file."""
    kind, _, number = first["_where"].partition(" ")
    if kind in ("line", "row") and row["_where"].startswith(kind + " "):
        return f"{kind}s {number} and {row['_where'].partition(' ')[2]}"
    return f"{first['_where']} and {row['_where']}"


def _encoded_size(audio: Mapping[str, Any]) -> int | None:
    if audio.get("bytes") is not None:
        return len(audio["bytes"])
    try:
        return os.stat(audio["path"]).st_size
    except (OSError, TypeError):
        return None  # a missing file: _validate reports it


def find_duplicates(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """``(row, earlier row, what they share)`` for every row that repeats an earlier row's path or audio.

    The same audio is byte-identical files (or embedded bytes): only clips of equal encoded size are hashed, so a
    corpus without same-size files reads nothing more. The same recording stored in two encodings is not detected.
    """
    duplicates, first_by_path, unique = [], {}, []
    for row in rows:
        first = first_by_path.setdefault(row["path"], row)
        if first is row:
            unique.append(row)
        else:
            duplicates.append((row, first, "same path"))
    by_size: dict[int, list[dict[str, Any]]] = {}
    for row in unique:
        size = _encoded_size(row["audio"])
        if size is not None:
            by_size.setdefault(size, []).append(row)
    for group in by_size.values():
        if len(group) < 2:
            continue
        first_by_content: dict[str, dict[str, Any]] = {}
        for row in group:
            try:
                content = clip_fingerprint(row["audio"]).rpartition(":")[2]
            except BadAudioError:
                continue  # unreadable: _validate reports it
            first = first_by_content.setdefault(content, row)
            if first is not row:
                duplicates.append((row, first, "same audio"))
    return duplicates


def drop_duplicates(rows: list[dict[str, Any]], on_bad_audio: str, report: "LoadReport") -> list[dict[str, Any]]:
    """Raise on rows that repeat a clip (a repeated clip can land in train and test at once), or drop and count them.

    The first occurrence is kept; under ``on_bad_audio="skip"`` each later one is added to ``report.skipped`` with
    a problem starting with ``"duplicate"``.
    """
    duplicates = find_duplicates(rows)
    if not duplicates:
        return rows
    if on_bad_audio == "error":
        lines = []
        for row, first, shared in duplicates[:10]:
            if shared == "same path":
                lines.append(f"  {first['_source']}: {_both(first, row)} list the same clip {first['_name']}")
            elif first["_where"] == first["path"]:
                lines.append(f"  {first['path']} and {row['path']} hold the same audio (byte-identical)")
            else:
                lines.append(f"  {first['_source']}: {_both(first, row)} hold the same audio ({first['path']} and "
                             f"{row['path']} are byte-identical)")
        more = f"\n  ... and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise ValueError(
            f"{report.source}: {len(duplicates)} row(s) repeat an earlier clip; a repeated clip can be split into "
            "train and test at once. Remove the repeated rows, or pass on_bad_audio='skip' (--on_bad_audio skip) "
            "to keep the first of each and drop, count and report the others:\n" + "\n".join(lines) + more
        )
    dropped = set()
    for row, first, shared in duplicates:
        dropped.add(id(row))
        if shared == "same path":
            problem = f"{DUPLICATE} of {_describe(first)} (same path, repeated at {row['_where']})"
        else:
            problem = f"{DUPLICATE}: same audio as {first['path']} ({_describe(first)})"
        report.skipped.append((row["path"], problem))
    return [row for row in rows if id(row) not in dropped]


__all__ = ["DUPLICATE", "clip_fingerprint", "drop_duplicates", "find_duplicates"]
