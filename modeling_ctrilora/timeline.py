"""Emotion over time in a long recording: segmenting, the whole-file aggregate, and the timeline plot.

One home for what `ctrilora predict --chunk_seconds S [--hop_seconds H] [--plot PATH]` and
`pipeline("audio-classification", ...)(audio, chunk_length_s=S, hop_length_s=H)` share:

- **segments** (:func:`segment_bounds`): windows of ``chunk`` seconds starting every ``hop`` seconds (default
  ``hop = chunk``: consecutive, no overlap; ``hop < chunk``: overlapping), from 0 until a window reaches the end of
  the audio, so the last one may be shorter. A last segment shorter than the audio check's minimum
  (:data:`~modeling_ctrilora.feature_extraction_ctrilora.MIN_SECONDS`, 0.1 s — too little speech for a label) is
  **merged into the previous segment**, which then ends at the end of the audio; only when that would make the
  previous segment longer than the model's window is the tail left out instead, and the result's ``notes`` say so.
  A chunk longer than the model's window (30 s for Whisper) is refused: the encoder cannot take it whole.
- **scores per segment**: each segment is scored as a clip of its own (its own log-Mel, the model's calibrated
  probabilities, ``predict_emotion``). A segment that is digital silence (a pause in the recording) is refused by the
  audio check training applies too; it stays in the timeline with ``label``/``score``/``probabilities`` ``None``
  and its reason under ``skipped``, and does not count in the aggregate.
- **the whole-file label** (:func:`aggregate`, ``AGGREGATION``): the duration-weighted mean of the scored segments'
  probabilities, and its most probable class. Weighting by duration makes a short last segment count for what it
  holds rather than as much as a full one; averaging probabilities (not votes) keeps the model's confidence, and the
  mean of calibrated distributions is itself a distribution. With overlapping segments, audio covered twice
  counts twice.

The result is a plain dict (:meth:`Timeline.to_dict`): ``label``, ``score``, ``scores`` (top-k of the aggregate),
``probabilities`` (every class), ``duration``, ``chunk_seconds``, ``hop_seconds``, ``aggregation``, ``notes`` and
``segments``: ``[{"start", "end", "label", "score", "probabilities"}]`` with times in seconds.
:func:`plot_timeline` draws it (matplotlib, the ``plots`` extra).

Example:
    >>> segment_bounds(75 * 16000, 16000, chunk_seconds=5)[:2]
    [(0, 80000), (80000, 160000)]
    >>> len(segment_bounds(75 * 16000, 16000, chunk_seconds=5))
    15
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .feature_extraction_ctrilora import MIN_SECONDS

AGGREGATION = "duration-weighted mean of the segment probabilities"
PLOTS_EXTRA = "pip install 'ctrilora[plots]' (or pip install matplotlib)"


def check_chunking(chunk_seconds: float, hop_seconds: float | None, window_seconds: float | None = None) -> float:
    """Validate a chunk length and hop (seconds) against the model's window; returns the hop (default: the chunk).

    Raises:
        ValueError: chunk shorter than :data:`MIN_SECONDS` or longer than `window_seconds`; hop not positive or longer
            than the chunk (a gap between segments would leave audio unscored).
    """
    if not (isinstance(chunk_seconds, (int, float)) and math.isfinite(chunk_seconds)) or chunk_seconds < MIN_SECONDS:
        raise ValueError(f"chunk length {chunk_seconds!r} s: expected at least {MIN_SECONDS} s (the audio check's minimum)")
    if window_seconds is not None and chunk_seconds > window_seconds + 1e-9:
        raise ValueError(
            f"chunk length {chunk_seconds:g} s is longer than this model's window ({window_seconds:g} s); "
            f"give at most {window_seconds:g}"
        )
    hop = chunk_seconds if hop_seconds is None else hop_seconds
    if not (isinstance(hop, (int, float)) and math.isfinite(hop)) or hop <= 0:
        raise ValueError(f"hop {hop!r} s: expected a positive number of seconds")
    if hop > chunk_seconds + 1e-9:
        raise ValueError(
            f"hop {hop:g} s is longer than the chunk ({chunk_seconds:g} s): the audio between segments would not be "
            "scored; give a hop of at most the chunk length"
        )
    return float(hop)


def segment_bounds(
    num_samples: int,
    rate: int,
    chunk_seconds: float,
    hop_seconds: float | None = None,
    *,
    max_samples: int | None = None,
    notes: list[str] | None = None,
) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample bounds of the segments of a `num_samples` recording (rules in the module docstring).

    Args:
        num_samples: length of the audio.
        rate: its sampling rate.
        chunk_seconds: segment length; hop_seconds: distance between segment starts (default: `chunk_seconds`).
        max_samples: the model's window; a merged last segment is never made longer than it.
        notes: when given, a sentence is appended for a tail that had to be left out.
    """
    hop_seconds = check_chunking(chunk_seconds, hop_seconds)
    chunk, hop = max(1, round(chunk_seconds * rate)), max(1, round(hop_seconds * rate))
    bounds, start = [], 0
    while True:
        end = min(start + chunk, num_samples)
        bounds.append((start, end))
        if end >= num_samples:
            break
        start += hop
    tail_start, tail_end = bounds[-1]
    if len(bounds) > 1 and tail_end - tail_start < MIN_SECONDS * rate:
        bounds.pop()
        previous_start, _ = bounds[-1]
        if max_samples is None or num_samples - previous_start <= max_samples:
            bounds[-1] = (previous_start, num_samples)
        elif notes is not None:
            notes.append(
                f"the last {(tail_end - tail_start) / rate * 1000:.0f} ms (shorter than {MIN_SECONDS} s, and the "
                "previous segment cannot take it within the model's window) is not scored"
            )
    return bounds


def aggregate(probabilities: np.ndarray, durations: Sequence[float]) -> np.ndarray:
    """The whole-file distribution: duration-weighted mean of `(N, C)` segment probabilities (``AGGREGATION``)."""
    weights = np.asarray(durations, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(weights) != len(probabilities) or not len(weights) or weights.sum() <= 0:
        raise ValueError(f"need (N, C) probabilities and N positive durations, got {probabilities.shape} and {len(weights)}")
    return (weights[:, None] * probabilities).sum(axis=0) / weights.sum()


@dataclass
class Timeline:
    """Segment scores of one recording and their aggregate.

    Attributes:
        labels: class names in the model's id order.
        bounds: ``[(start, end)]`` in samples; rate: their sampling rate.
        probabilities: ``{segment index: (C,) probabilities}`` of the scored segments.
        skipped: ``{segment index: reason}`` of segments the audio check refused (digital silence).
        chunk_seconds, hop_seconds: the segmenting asked for; duration: the recording's length in seconds.
        notes: sentences about segmenting (a tail left out).
    """

    labels: Sequence[str]
    bounds: Sequence[tuple[int, int]]
    rate: int
    probabilities: Mapping[int, np.ndarray]
    chunk_seconds: float
    hop_seconds: float
    duration: float
    skipped: Mapping[int, str] = field(default_factory=dict)
    notes: Sequence[str] = ()

    def whole(self) -> np.ndarray:
        """The whole-file distribution (:func:`aggregate` over the scored segments)."""
        scored = sorted(self.probabilities)
        if not scored:
            raise ValueError("no segment of the recording could be scored")
        durations = [(self.bounds[i][1] - self.bounds[i][0]) / self.rate for i in scored]
        return aggregate(np.stack([self.probabilities[i] for i in scored]), durations)

    def to_dict(self, top_k: int | None = None) -> dict[str, Any]:
        """The result as plain JSON-ready values (keys in the module docstring); `top_k` limits ``scores``."""
        whole = self.whole()
        order = np.argsort(-whole, kind="stable")[: top_k or len(self.labels)]
        segments = []
        for index, (start, end) in enumerate(self.bounds):
            segment: dict[str, Any] = {"start": round(start / self.rate, 3), "end": round(end / self.rate, 3)}
            if index in self.probabilities:
                probabilities = np.asarray(self.probabilities[index], dtype=np.float64)
                best = int(probabilities.argmax())
                segment.update(label=self.labels[best], score=float(probabilities[best]),
                               probabilities={label: float(p) for label, p in zip(self.labels, probabilities)})
            else:
                segment.update(label=None, score=None, probabilities=None, skipped=self.skipped.get(index, "not scored"))
            segments.append(segment)
        return {
            "label": self.labels[int(order[0])],
            "score": float(whole[order[0]]),
            "scores": [{"label": self.labels[int(i)], "score": float(whole[i])} for i in order],
            "probabilities": {label: float(p) for label, p in zip(self.labels, whole)},
            "duration": round(self.duration, 3),
            "chunk_seconds": self.chunk_seconds,
            "hop_seconds": self.hop_seconds,
            "aggregation": AGGREGATION,
            "notes": list(self.notes),
            "segments": segments,
        }


def plot_timeline(timeline: Mapping[str, Any], output_path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Write an emotion-timeline PNG of a :meth:`Timeline.to_dict` result; returns the path.

    Top: each class's probability over time, stacked (each segment's distribution holds from its start to the next
    segment's start, so overlapping segments show the most recent one). Bottom: the top label of every segment as a
    coloured band, named when it is wide enough. Segments that were not scored are left blank. Built on a
    `matplotlib.figure.Figure` with an Agg canvas (no pyplot state, works headless), like `trainer.evaluation.plots`.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as error:
        raise ImportError(f"the emotion-timeline plot needs matplotlib: {PLOTS_EXTRA}") from error
    segments = timeline["segments"]
    labels = list(timeline["probabilities"])
    colours = colormaps["tab10"].resampled(max(len(labels), 1))
    colour = {label: colours(index) for index, label in enumerate(labels)}
    starts = np.array([segment["start"] for segment in segments], dtype=float)
    # Each segment holds until the next one starts; the last until it ends.
    edges = np.append(starts, segments[-1]["end"])
    values = np.array([[np.nan if segment["probabilities"] is None else segment["probabilities"][label]
                        for segment in segments] for label in labels])
    steps = np.concatenate([values, values[:, -1:]], axis=1)  # step="post" needs a value at the last edge

    fig = Figure(figsize=(max(6.0, min(16.0, 0.25 * len(segments) + 4)), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(4, 1), hspace=0.08)
    top, bottom = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    lower = np.zeros(steps.shape[1])
    for label, row in zip(labels, steps):
        upper = lower + np.nan_to_num(row)
        top.fill_between(edges, lower, upper, step="post", color=colour[label], alpha=0.85, linewidth=0,
                         where=~np.isnan(row))
        lower = upper
    top.set_xlim(edges[0], edges[-1])
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.tick_params(labelbottom=False)
    # Listed top to bottom as the areas are stacked.
    top.legend(handles=[Patch(color=colour[label], label=label) for label in reversed(labels)], loc="upper left",
               bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
    top.set_title(title or f"emotion over time (whole file: {timeline['label']} {timeline['score']:.2f})", fontsize=10)
    span = edges[-1] - edges[0] or 1.0
    for index, segment in enumerate(segments):
        left, right = edges[index], edges[index + 1]
        if segment["label"] is None:
            continue
        bottom.broken_barh([(left, right - left)], (0, 1), facecolors=colour[segment["label"]], edgecolor="white",
                           linewidth=0.5)
        if (right - left) / span > 0.045:
            bottom.text((left + right) / 2, 0.5, segment["label"], ha="center", va="center", fontsize=7)
    bottom.set_xlim(edges[0], edges[-1])
    bottom.set_yticks([])
    bottom.set_ylabel("top", rotation=0, ha="right", va="center")
    bottom.set_xlabel("time (s)")
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    fig.clear()
    return path


__all__ = ["AGGREGATION", "PLOTS_EXTRA", "Timeline", "aggregate", "check_chunking", "plot_timeline", "segment_bounds"]
