"""Pair-aware batching: put same-transcript / different-emotion clips in the same batch.

The counterfactual loss compares in-batch pairs that say the same sentence with different emotions; a random
batch of 16 from RAVDESS's 1440 clips has such pairs, but one from a corpus with many sentences rarely does.
:class:`PairAwareBatchSampler` builds every batch from a few short runs ("chunks") of clips sharing a transcript,
arranged so consecutive clips of a run differ in emotion (and, when speakers are given, mostly share the speaker,
so a pair differs in emotion only).

Example:
    >>> from torch.utils.data import DataLoader
    >>> from trainer.data.sampler import PairAwareBatchSampler
    >>> sampler = PairAwareBatchSampler.from_dataset(train_ds, batch_size=16, seed=0)  # doctest: +SKIP
    >>> loader = DataLoader(train_ds, batch_sampler=sampler, collate_fn=collator)  # doctest: +SKIP
    >>> for epoch in range(5):  # doctest: +SKIP
    ...     sampler.set_epoch(epoch)  # a new order every epoch
    ...     for batch in loader: ...
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import datasets
import numpy as np
from torch.utils.data import Sampler

_WHITESPACE = re.compile(r"\s+")


def normalize_transcript(text: str | None) -> str:
    """The key that decides whether two transcripts are "the same": NFC, lower-case, single spaces, stripped.

    Example:
        >>> normalize_transcript("  Kids are  talking by the DOOR ")
        'kids are talking by the door'
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text or "")).strip().lower()


def build_transcript_vocab(transcripts: Iterable[str | None]) -> dict[str, int]:
    """``transcript2id``: normalised transcript -> group id, numbered by first appearance (empty ones skipped).

    Build it once over every dataset whose batches will be compared (source and target) and hand it to the
    collator, so ids are stable across batches and epochs.

    Example:
        >>> build_transcript_vocab(["Dogs are sitting", "", "dogs are  sitting", "Kids"])
        {'dogs are sitting': 0, 'kids': 1}
    """
    vocab: dict[str, int] = {}
    for text in transcripts:
        key = normalize_transcript(text)
        if key and key not in vocab:
            vocab[key] = len(vocab)
    return vocab


def transcript_group_ids(
    transcripts: Iterable[str | None], transcript2id: Mapping[str, int] | None = None
) -> list[int]:
    """Group id of each transcript: equal normalised text ↔ equal id; ``-1`` for an empty transcript.

    Args:
        transcripts: raw transcripts.
        transcript2id: a vocabulary from :func:`build_transcript_vocab`; built from `transcripts` when omitted.
            A transcript missing from a given vocabulary gets ``-1`` (it cannot be paired reliably).

    Example:
        >>> transcript_group_ids(["A b", "", "a  B", "c"])
        [0, -1, 0, 1]
    """
    transcripts = list(transcripts)
    vocab = build_transcript_vocab(transcripts) if transcript2id is None else transcript2id
    return [vocab.get(normalize_transcript(text), -1) for text in transcripts]


class PairAwareBatchSampler(Sampler[list[int]]):
    """Epoch batch sampler whose batches contain same-transcript, different-emotion clips wherever they exist.

    Each epoch (seeded by ``(seed, epoch)``): the clips of every transcript group are arranged — speaker blocks
    in random order when `speakers` is given, inside each block the emotions interleaved round-robin — and cut
    into chunks of `clips_per_group`; clips without a transcript are chunks of one. The chunks are shuffled,
    concatenated and cut into batches of `batch_size`. So a batch of 16 with ``clips_per_group=4`` holds about
    four sentences, each said with up to four different emotions. Every index appears exactly once per epoch
    (except the final short batch under `drop_last`, and the repeats padding the batch count to a multiple of
    `num_replicas`).

    Args:
        transcripts: transcript of each dataset row (``""``/``None`` when unknown).
        batch_size: clips per batch (the last batch may be smaller unless `drop_last`).
        emotions: emotion of each row; chunks then mix emotions. Without it, clips of a group are shuffled.
        speakers: speaker of each row; chunks then prefer clips of one speaker.
        clips_per_group: chunk length, i.e. clips of one transcript drawn together (≥ 2 to form pairs).
        seed: base seed; the order depends only on ``(seed, epoch)``.
        drop_last: drop the final incomplete batch.
        num_replicas: processes to shard batches over (like `DistributedSampler`); rank ``r`` gets batches
            ``r, r + num_replicas, ...``. Leave 1 under `accelerate`/`Trainer`, which shard batch samplers
            themselves; set it only in a hand-written `torch.distributed` loop.
        rank: this process's rank in ``[0, num_replicas)``.

    Shapes:
        Yields ``list[int]`` of length ≤ `batch_size`; ``len(sampler)`` = batches this rank yields per epoch.
    """

    def __init__(
        self,
        transcripts: Sequence[str | None],
        batch_size: int,
        *,
        emotions: Sequence[str] | None = None,
        speakers: Sequence[str] | None = None,
        clips_per_group: int = 4,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if clips_per_group < 1:
            raise ValueError(f"clips_per_group must be at least 1, got {clips_per_group}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, got {num_replicas=}, {rank=}")
        transcripts = list(transcripts)  # also accepts a `datasets` Column, read once
        num_rows = len(transcripts)
        for name, column in (("emotions", emotions), ("speakers", speakers)):
            if column is not None and len(column) != num_rows:
                raise ValueError(f"{name} has {len(column)} entries but transcripts has {num_rows}")
        if num_rows == 0:
            raise ValueError("cannot sample batches from an empty dataset")
        self.batch_size = batch_size
        self.clips_per_group = clips_per_group
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.num_rows = num_rows
        self._emotions = list(emotions) if emotions is not None else None
        self._speakers = list(speakers) if speakers is not None else None
        groups: dict[int, list[int]] = defaultdict(list)
        for index, group in enumerate(transcript_group_ids(transcripts)):
            groups[group].append(index)
        self._ungrouped = groups.pop(-1, [])
        self._groups = [groups[group] for group in sorted(groups)]

    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset, batch_size: int, **kwargs) -> PairAwareBatchSampler:
        """Sampler over a corpus dataset, reading its ``transcript``, ``emotion`` and ``speaker`` columns."""
        columns = dataset.column_names
        kwargs.setdefault("emotions", list(dataset["emotion"]) if "emotion" in columns else None)
        kwargs.setdefault("speakers", list(dataset["speaker"]) if "speaker" in columns else None)
        return cls(list(dataset["transcript"]), batch_size, **kwargs)

    @property
    def sampler(self) -> PairAwareBatchSampler:
        # accelerate's BatchSamplerShard forwards set_epoch only to `batch_sampler.sampler.set_epoch`; exposing
        # ourselves there keeps the per-epoch reshuffle when accelerate (or Trainer) shards this sampler.
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order :meth:`__iter__` yields (call before each epoch)."""
        self.epoch = int(epoch)

    def _interleave(self, members: list[int], rng: np.random.Generator) -> list[int]:
        """Shuffle `members` so neighbours differ in emotion as long as two emotions remain."""
        if self._emotions is None:
            return [members[i] for i in rng.permutation(len(members))]
        buckets: dict[str, list[int]] = defaultdict(list)
        for index in members:
            buckets[self._emotions[index]].append(index)
        queues = [[bucket[i] for i in rng.permutation(len(bucket))] for _, bucket in sorted(buckets.items())]
        arranged: list[int] = []
        while queues:
            order = [queues[i] for i in rng.permutation(len(queues))]
            if arranged and len(order) > 1 and self._emotions[order[0][-1]] == self._emotions[arranged[-1]]:
                order = order[1:] + order[:1]  # never start a round with the emotion that ended the last one
            for queue in order:
                arranged.append(queue.pop())
            queues = [queue for queue in queues if queue]
        return arranged

    def _arrange(self, members: list[int], rng: np.random.Generator) -> list[int]:
        if self._speakers is None:
            return self._interleave(members, rng)
        blocks: dict[str, list[int]] = defaultdict(list)
        for index in members:
            blocks[self._speakers[index]].append(index)
        ordered = [blocks[speaker] for speaker in sorted(blocks)]
        return [index for block in rng.permutation(len(ordered)) for index in self._interleave(ordered[block], rng)]

    def _epoch_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        size = self.clips_per_group
        chunks: list[list[int]] = []
        for members in self._groups:
            arranged = self._arrange(members, rng)
            chunks.extend(arranged[start : start + size] for start in range(0, len(arranged), size))
        chunks.extend([index] for index in self._ungrouped)
        flat = [index for chunk in rng.permutation(len(chunks)) for index in chunks[chunk]]
        batches = [flat[start : start + self.batch_size] for start in range(0, len(flat), self.batch_size)]
        if self.drop_last and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.num_replicas > 1:
            if self.drop_last:
                batches = batches[: len(batches) - len(batches) % self.num_replicas]
            else:
                padding = -len(batches) % self.num_replicas
                batches += [batches[i % len(batches)] for i in range(padding)]
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        total = self.num_rows // self.batch_size if self.drop_last else math.ceil(self.num_rows / self.batch_size)
        if self.num_replicas == 1:
            return total
        return total // self.num_replicas if self.drop_last else math.ceil(total / self.num_replicas)


__all__ = ["PairAwareBatchSampler", "build_transcript_vocab", "normalize_transcript", "transcript_group_ids"]
