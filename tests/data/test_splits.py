"""Deterministic splits, class restriction and split files (trainer.data.splits)."""

from __future__ import annotations

import json
import logging
from collections import Counter

import datasets
import pytest

from trainer.data.splits import (
    apply_splits,
    read_splits,
    restrict_to_classes,
    speaker_independent_split,
    stratified_split,
    target_split,
    write_splits,
)


def make_table(num_speakers: int = 12, emotions=("neutral", "happy", "sad", "angry"), per_emotion: int = 5,
               uneven: bool = True) -> datasets.Dataset:
    """Metadata-only corpus (splits never touch audio); speaker k has k % 3 extra neutral clips when `uneven`."""
    rows = {"path": [], "emotion": [], "speaker": [], "corpus": []}
    for speaker in range(num_speakers):
        extra = speaker % 3 if uneven else 0
        counts = {emotion: per_emotion + (extra if emotion == "neutral" else 0) for emotion in emotions}
        for emotion, count in counts.items():
            for n in range(count):
                rows["path"].append(f"/c/{speaker}/{emotion}_{n}.wav")
                rows["emotion"].append(emotion)
                rows["speaker"].append(f"toy_{speaker:02d}")
                rows["corpus"].append("toy")
    return datasets.Dataset.from_dict(rows)


def assert_partition(splits, num_rows):
    seen = [index for indices in splits.values() for index in indices]
    assert len(seen) == len(set(seen)) == num_rows and set(seen) == set(range(num_rows))
    assert all(indices == sorted(indices) for indices in splits.values())


def test_stratified_split_keeps_class_proportions_and_is_deterministic():
    ds = make_table(per_emotion=20)
    splits = stratified_split(ds, seed=0)
    assert list(splits) == ["train", "validation", "test"]
    assert_partition(splits, ds.num_rows)
    emotions = ds["emotion"]
    totals = Counter(emotions)
    for name, fraction in zip(splits, (0.8, 0.1, 0.1)):
        counts = Counter(emotions[i] for i in splits[name])
        for emotion, total in totals.items():
            assert abs(counts[emotion] - fraction * total) < 1  # largest remainder: off by less than one clip
    assert stratified_split(ds, seed=0) == splits
    assert stratified_split(ds, seed=1) != splits


def test_stratified_split_validates_fractions():
    with pytest.raises(ValueError, match="summing to 1"):
        stratified_split(make_table(), seed=0, fractions=(0.8, 0.1))
    splits = stratified_split(make_table(), seed=0, fractions=(0.9, 0.1, 0.0))
    assert splits["test"] == [] and splits["validation"]


def test_speaker_independent_split_shares_no_speaker_and_balances_sizes():
    ds = make_table(num_speakers=20)
    speakers = ds["speaker"]
    for seed in range(3):
        splits = speaker_independent_split(ds, seed=seed)
        assert_partition(splits, ds.num_rows)
        owners = {name: {speakers[i] for i in indices} for name, indices in splits.items()}
        assert not owners["train"] & owners["validation"]
        assert not owners["train"] & owners["test"]
        assert not owners["validation"] & owners["test"]
        assert all(owners.values())
        for name, fraction in zip(splits, (0.8, 0.1, 0.1)):
            assert abs(len(splits[name]) - fraction * ds.num_rows) <= 22  # within one speaker's clip count
        assert speaker_independent_split(ds, seed=seed) == splits
    assert speaker_independent_split(ds, seed=0) != speaker_independent_split(ds, seed=1)


def test_speaker_independent_split_needs_speakers():
    with pytest.raises(ValueError, match="3 speaker-disjoint parts"):
        speaker_independent_split(make_table(num_speakers=2), seed=0)
    ds = make_table(num_speakers=4)
    ds = ds.map(lambda row, i: {"speaker": "" if i == 0 else row["speaker"]}, with_indices=True)
    with pytest.raises(ValueError, match="1 of .* rows have none"):
        speaker_independent_split(ds, seed=0)


def test_speaker_independent_split_fills_every_part_with_few_speakers():
    ds = make_table(num_speakers=3)
    splits = speaker_independent_split(ds, seed=0)
    assert all(len({ds["speaker"][i] for i in indices}) == 1 for indices in splits.values())


def test_target_split_by_speaker_is_disjoint():
    ds = make_table(num_speakers=6)
    splits = target_split(ds, seed=0)
    assert list(splits) == ["adaptation", "test"]
    assert_partition(splits, ds.num_rows)
    speakers = ds["speaker"]
    assert not {speakers[i] for i in splits["adaptation"]} & {speakers[i] for i in splits["test"]}
    assert target_split(ds, seed=0) == splits


def test_target_split_by_clip_with_one_speaker_is_stratified():
    ds = make_table(num_speakers=1, per_emotion=10, uneven=False)
    splits = target_split(ds, seed=3, adaptation_fraction=0.5)
    assert_partition(splits, ds.num_rows)
    emotions = ds["emotion"]
    assert Counter(emotions[i] for i in splits["test"]) == {e: 5 for e in ("neutral", "happy", "sad", "angry")}


def test_target_split_transductive_uses_every_clip_twice():
    ds = make_table(num_speakers=4)
    splits = target_split(ds, seed=0, transductive=True)
    assert splits["adaptation"] == splits["test"] == list(range(ds.num_rows))
    with pytest.raises(ValueError, match="adaptation_fraction"):
        target_split(ds, seed=0, adaptation_fraction=1.0)


def test_restrict_to_classes_counts_and_logs_what_it_removes(caplog):
    ds = make_table(num_speakers=2, per_emotion=2, uneven=False)
    ds = datasets.concatenate_datasets([ds, datasets.Dataset.from_dict(
        {"path": ["/u.wav"], "emotion": [""], "speaker": ["toy_00"], "corpus": ["toy"]})])
    with caplog.at_level(logging.WARNING, logger="trainer.data.splits"):
        kept, removed = restrict_to_classes(ds, ["happy", "sad"])
    assert removed == {"": 1, "angry": 4, "neutral": 4}
    assert kept.num_rows == 8 and set(kept["emotion"]) == {"happy", "sad"}
    assert "removed 9 of 17 rows" in caplog.text and "angry 4" in caplog.text and "<unlabeled> 1" in caplog.text
    kept, removed = restrict_to_classes(ds, ["happy", "sad"], keep_unlabeled=True)
    assert kept.num_rows == 9 and "" not in removed


def test_write_and_read_splits_round_trip(tmp_path):
    ds = make_table()
    splits = stratified_split(ds, seed=0)
    path = write_splits(splits, tmp_path / "run", dataset=ds, metadata={"kind": "stratified", "seed": 0})
    assert path == str(tmp_path / "run" / "splits.json")
    payload = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert payload["metadata"] == {"kind": "stratified", "seed": 0} and payload["num_rows"] == ds.num_rows
    assert read_splits(tmp_path / "run", dataset=ds) == splits
    assert read_splits(path) == splits
    dd = apply_splits(ds, splits)
    assert {name: dd[name].num_rows for name in dd} == {name: len(v) for name, v in splits.items()}
    assert dd["test"]["path"] == [ds["path"][i] for i in splits["test"]]


def test_read_splits_refuses_another_dataset(tmp_path):
    ds = make_table()
    write_splits(stratified_split(ds, seed=0), tmp_path, dataset=ds, filename="source.json")
    with pytest.raises(ValueError, match="rows"):
        read_splits(tmp_path, filename="source.json", dataset=ds.select(range(10)))
    shuffled = ds.shuffle(seed=0).flatten_indices()
    with pytest.raises(ValueError, match="different clips or clip order"):
        read_splits(tmp_path, filename="source.json", dataset=shuffled)
    with pytest.raises(ValueError, match="more than once"):
        write_splits({"train": [1, 1]}, tmp_path)
