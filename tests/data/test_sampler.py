"""Pair-aware batch sampler and transcript groups (trainer.data.sampler)."""

from __future__ import annotations

import itertools

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard, DataLoaderShard

from trainer.data.sampler import (
    PairAwareBatchSampler,
    build_transcript_vocab,
    normalize_transcript,
    transcript_group_ids,
)

EMOTIONS = ("neutral", "happy", "sad", "angry", "fear")


def make_rows(num_sentences: int = 12, speakers: int = 3, emotions=EMOTIONS, untranscribed: int = 7):
    """Every speaker says every sentence in every emotion, plus rows with no transcript."""
    transcripts, emotion_column, speaker_column = [], [], []
    for sentence, speaker, emotion in itertools.product(range(num_sentences), range(speakers), emotions):
        transcripts.append(f"Sentence number {sentence}" if sentence % 2 else f"  sentence NUMBER {sentence} ")
        emotion_column.append(emotion)
        speaker_column.append(f"s{speaker}")
    for n in range(untranscribed):
        transcripts.append("")
        emotion_column.append(EMOTIONS[n % len(EMOTIONS)])
        speaker_column.append("s0")
    return transcripts, emotion_column, speaker_column


def pairs_in(batch, groups, emotions):
    return [(i, j) for i, j in itertools.combinations(batch, 2) if groups[i] == groups[j] != -1
            and emotions[i] != emotions[j]]


def test_transcript_groups_normalise_text():
    assert normalize_transcript("  Kids  are\ttalking ") == "kids are talking"
    assert transcript_group_ids(["A b", "", None, "a  B", "c", " C"]) == [0, -1, -1, 0, 1, 1]
    vocab = build_transcript_vocab(["x", "Y", "x"])
    assert vocab == {"x": 0, "y": 1}
    assert transcript_group_ids(["y", "z", ""], vocab) == [1, -1, -1]


def test_every_index_once_per_epoch_and_len_matches():
    transcripts, emotions, speakers = make_rows()
    sampler = PairAwareBatchSampler(transcripts, 16, emotions=emotions, speakers=speakers, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-len(transcripts) // 16)
        assert all(len(batch) == 16 for batch in batches[:-1]) and 0 < len(batches[-1]) <= 16
        assert sorted(index for batch in batches for index in batch) == list(range(len(transcripts)))


def test_most_batches_hold_same_transcript_different_emotion_pairs():
    transcripts, emotions, speakers = make_rows()
    groups = transcript_group_ids(transcripts)
    sampler = PairAwareBatchSampler(transcripts, 8, emotions=emotions, speakers=speakers, seed=1)
    batches = list(sampler)
    with_pairs = [bool(pairs_in(batch, groups, emotions)) for batch in batches]
    assert sum(with_pairs) >= 0.9 * len(batches)
    # Speakers given: most pairs come from one speaker, so they differ in emotion only.
    pairs = [pair for batch in batches for pair in pairs_in(batch, groups, emotions)]
    assert sum(speakers[i] == speakers[j] for i, j in pairs) > 0.5 * len(pairs)


def test_pairs_far_more_frequent_than_in_random_batches():
    transcripts, emotions, _ = make_rows(num_sentences=60, speakers=1, untranscribed=0)
    groups = transcript_group_ids(transcripts)
    sampler = PairAwareBatchSampler(transcripts, 8, emotions=emotions, seed=0)
    paired = sum(len(pairs_in(batch, groups, emotions)) for batch in sampler)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(transcripts), generator=generator).tolist()
    random_paired = sum(len(pairs_in(order[i : i + 8], groups, emotions)) for i in range(0, len(order), 8))
    assert paired > 3 * random_paired


def test_seeded_reshuffled_per_epoch():
    transcripts, emotions, speakers = make_rows()
    first = PairAwareBatchSampler(transcripts, 16, emotions=emotions, seed=5)
    second = PairAwareBatchSampler(transcripts, 16, emotions=emotions, seed=5)
    assert list(first) == list(second)
    epoch0 = list(first)
    first.set_epoch(1)
    assert list(first) != epoch0
    first.set_epoch(0)
    assert list(first) == epoch0
    assert list(PairAwareBatchSampler(transcripts, 16, emotions=emotions, seed=6)) != epoch0


def test_drop_last_gives_full_batches_only():
    transcripts, emotions, _ = make_rows()
    sampler = PairAwareBatchSampler(transcripts, 16, emotions=emotions, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(transcripts) // 16
    assert all(len(batch) == 16 for batch in batches)
    assert len({index for batch in batches for index in batch}) == 16 * len(batches)


def test_rows_without_transcript_or_emotion_are_batched():
    sampler = PairAwareBatchSampler(["", "", "", "a", "a"], 2)
    assert sorted(index for batch in sampler for index in batch) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("drop_last", [False, True])
def test_two_replicas_shard_without_overlap(drop_last):
    transcripts, emotions, speakers = make_rows(untranscribed=20)  # 200 rows: 13 batches of 16, the last short
    ranks = [PairAwareBatchSampler(transcripts, 16, emotions=emotions, speakers=speakers, seed=3,
                                   drop_last=drop_last, num_replicas=2, rank=rank) for rank in (0, 1)]
    full = list(PairAwareBatchSampler(transcripts, 16, emotions=emotions, speakers=speakers, seed=3,
                                      drop_last=drop_last))
    shards = [list(sampler) for sampler in ranks]
    assert len(shards[0]) == len(shards[1]) == len(ranks[0]) == len(ranks[1])
    for rank, shard in enumerate(shards):
        own = full[rank::2][: len(shard)]
        assert shard[: len(own)] == own  # rank r gets batches r, r + 2, ... of the single-process order
    if drop_last:
        seen = [index for shard in shards for batch in shard for index in batch]
        assert len(seen) == len(set(seen))
    else:
        # 13 batches over 2 ranks: rank 1 repeats batch 0 to keep the ranks in step, nothing else repeats.
        assert len(full) == 13 and shards[1][-1] == full[0]
        seen = [index for shard in shards for batch in shard for index in batch][: -len(full[0])]
        assert sorted(seen) == list(range(len(transcripts)))


def test_accelerate_shard_forwards_set_epoch():
    transcripts, emotions, _ = make_rows()
    sampler = PairAwareBatchSampler(transcripts, 16, emotions=emotions, seed=0)
    shard = BatchSamplerShard(sampler, num_processes=2, process_index=0)
    loader = DataLoaderShard(list(range(len(transcripts))), batch_sampler=shard)
    loader.set_epoch(4)
    assert sampler.epoch == 4
    assert next(iter(shard)) == list(sampler)[0]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rank"):
        PairAwareBatchSampler(["a"], 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="emotions has 1 entries"):
        PairAwareBatchSampler(["a", "b"], 2, emotions=["sad"])
    with pytest.raises(ValueError, match="empty dataset"):
        PairAwareBatchSampler([], 2)
