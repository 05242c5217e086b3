"""Tiny generated corpora for the data-layer tests (no network, no ../shared).

Import from test modules: ``from conftest_data import write_clip, make_csv_corpus, ...``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import soundfile as sf

EMOTIONS_RAW = ("neutral", "Happy", "scared", "ANGRY")  # raw spellings, harmonised by the loaders
TRANSCRIPTS = ("Kids are talking by the door", "Dogs are sitting by the door")


def write_clip(
    path: str | os.PathLike,
    seconds: float = 0.5,
    sr: int = 16_000,
    *,
    channels: int = 1,
    freq: float = 440.0,
    seed: int = 0,
    subtype: str | None = None,
) -> str:
    """Write a sine + light noise clip (stereo: right channel at half amplitude) and return its path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    data = np.stack([mono, 0.5 * mono], axis=1) if channels == 2 else mono
    sf.write(path, data.astype(np.float32), sr, subtype=subtype)
    return path


def write_bad_clip(path: str | os.PathLike, problem: str) -> str:
    """Write a clip with one defect: ``corrupt``, ``empty``, ``silent``, ``nan``, ``long`` or ``short``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if problem == "corrupt":
        with open(path, "wb") as handle:
            handle.write(b"this is not audio at all" * 10)
    elif problem == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), 16_000)
    elif problem == "silent":
        sf.write(path, np.zeros(8_000, dtype=np.float32), 16_000)
    elif problem == "nan":
        data = np.full(8_000, 0.1, dtype=np.float32)
        data[100] = np.nan
        sf.write(path, data, 16_000, subtype="FLOAT")
    elif problem == "long":
        write_clip(path, seconds=31.0, sr=1_000, freq=100.0)  # 31 s, kept tiny by the low rate
    elif problem == "short":
        write_clip(path, seconds=0.01, sr=16_000)
    else:
        raise ValueError(problem)
    return path


def make_csv_corpus(
    root: str | os.PathLike,
    *,
    speakers: Sequence[str] = ("01", "02", "03", "04"),
    emotions: Sequence[str] = EMOTIONS_RAW,
    transcripts: Sequence[str] = TRANSCRIPTS,
    extra_rows: Sequence[dict[str, str]] = (),
    columns: Sequence[str] = ("path", "emotion", "speaker", "transcript", "gender"),
    seconds: float = 0.3,
) -> str:
    """A metadata.csv corpus: every speaker says every transcript in every emotion.

    Speakers at even positions are recorded at 22.05 kHz stereo (FLAC), the others at 16 kHz mono (WAV).
    `extra_rows` are appended verbatim (their audio must exist or be the point of the test).
    """
    root = os.fspath(root)
    rows = []
    for s, speaker in enumerate(speakers):
        for t, transcript in enumerate(transcripts):
            for e, emotion in enumerate(emotions):
                stereo = s % 2 == 0
                rel = f"wav/{speaker}/{t}_{e}.{'flac' if stereo else 'wav'}"
                write_clip(os.path.join(root, rel), seconds, 22_050 if stereo else 16_000,
                           channels=2 if stereo else 1, freq=200.0 + 50 * e, seed=s * 100 + t * 10 + e)
                rows.append({"path": rel, "emotion": emotion, "speaker": speaker, "transcript": transcript,
                             "gender": "F" if s % 2 else "male", "language": "en"})
    rows.extend(extra_rows)
    with open(os.path.join(root, "metadata.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return root


def make_kazemotts(
    root: str | os.PathLike,
    *,
    speakers: Sequence[str] = ("805570882", "1263201035", "399172782"),
    emotions: Sequence[str] = ("neutral", "scared", "surprised"),
    per_emotion: int = 1,
    with_transcripts: bool = True,
) -> str:
    """KazEmoTTS layout: <root>/<speaker>/{train,eval}/<speaker>_<emotion>_<n>.wav (+ .txt), 22.05 kHz."""
    root = os.fspath(root)
    for s, speaker in enumerate(speakers):
        for e, emotion in enumerate(emotions):
            for n in range(per_emotion):
                subset = "train" if n % 2 == 0 else "eval"
                stem = os.path.join(root, speaker, subset, f"{speaker}_{emotion}_{n}")
                write_clip(stem + ".wav", 0.3, 22_050, freq=300.0 + 40 * e, seed=s * 10 + e + 1000 * n)
                if with_transcripts:
                    with open(stem + ".txt", "w", encoding="utf-8") as handle:
                        handle.write(f"Сәлем әлем {n}\n")
    return root


def make_disk_dataset(root: str | os.PathLike, clip_dir: str | os.PathLike, **columns: Any) -> str:
    """A `save_to_disk` dataset with an ``Audio`` column over generated clips (plus any extra `columns`)."""
    clip_dir = os.fspath(clip_dir)
    paths = [write_clip(os.path.join(clip_dir, f"clip{i}.wav"), 0.3, 16_000, freq=250.0 + 30 * i) for i in range(4)]
    table = {
        "audio": paths,
        "emotion": ["neutral", "sad", "Sadness", "joy"],
        "speaker": [1, 1, 2, 2],
        "transcript": ["hello there", "hello there", "", "good bye"],
        **columns,
    }
    ds = datasets.Dataset.from_dict(table).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(os.fspath(root))
    return os.fspath(root)


def tiny_tokenizer(language: str = "en"):
    """The lead's byte-level Whisper tokenizer (every Whisper special token) with a language/transcribe prefix."""
    from trainer.demo.tiny_whisper import build_whisper_byte_tokenizer

    return build_whisper_byte_tokenizer(language=language, task="transcribe")


__all__ = [
    "EMOTIONS_RAW",
    "TRANSCRIPTS",
    "make_csv_corpus",
    "make_disk_dataset",
    "make_kazemotts",
    "tiny_tokenizer",
    "write_bad_clip",
    "write_clip",
]
