"""trainer.evaluation.evaluate.collect_predictions: length-grouped batching returns every output in dataset order."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from trainer.evaluation.evaluate import collect_predictions, length_order

FRAMES = (100, 30, 90, 30, 50, 20, 70)  # the tiny test Whisper encodes at most 100 frames


@pytest.fixture
def clips():
    generator = np.random.default_rng(0)
    return datasets.Dataset.from_dict(
        {
            "path": [f"clip-{index}.wav" for index in range(len(FRAMES))],
            "input_features": [generator.standard_normal((80, frames)).astype(np.float32) for frames in FRAMES],
            "num_frames": list(FRAMES),
            "label": [index % 4 for index in range(len(FRAMES))],
        }
    )


class PaddingCollator:
    """Pads to the batch's longest clip (as `CTriLoRACollator` does) and remembers each batch's padded width."""

    def __init__(self):
        self.widths: list[int] = []

    def __call__(self, rows):
        longest = max(row["num_frames"] for row in rows)
        self.widths.append(longest)
        features = torch.zeros(len(rows), 80, longest)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for index, row in enumerate(rows):
            features[index, :, : row["num_frames"]] = torch.tensor(row["input_features"])
            mask[index, : row["num_frames"]] = 1
        return {"input_features": features, "attention_mask": mask, "labels": torch.tensor([row["label"] for row in rows])}


def test_length_order_sorts_by_num_frames_and_keeps_ties_stable(clips):
    assert length_order(clips).tolist() == [5, 1, 3, 4, 6, 2, 0]
    assert length_order(clips.remove_columns("num_frames")).tolist() == list(range(len(FRAMES)))


def test_grouped_batches_carry_less_padding_and_give_the_same_outputs_in_dataset_order(make_model, clips):
    model = make_model()
    grouped_collator, plain_collator = PaddingCollator(), PaddingCollator()
    grouped = collect_predictions(model, clips, grouped_collator, batch_size=2)
    plain = collect_predictions(model, clips, plain_collator, batch_size=2, group_by_length=False)
    assert grouped_collator.widths == [30, 50, 90, 100] and plain_collator.widths == [100, 90, 50, 70]
    assert sum(grouped_collator.widths) < sum(plain_collator.widths)
    assert grouped.clip_ids == plain.clip_ids == [f"clip-{index}.wav" for index in range(len(FRAMES))]
    np.testing.assert_array_equal(grouped.labels, np.arange(len(FRAMES)) % 4)
    np.testing.assert_allclose(grouped.logits, plain.logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grouped.z_emo, plain.z_emo, rtol=1e-4, atol=1e-5)
    # Each clip alone gives the same logits: the row really is that clip's output, not a neighbour's.
    alone = collect_predictions(model, clips, PaddingCollator(), batch_size=1, group_by_length=False)
    np.testing.assert_allclose(grouped.logits, alone.logits, rtol=1e-4, atol=1e-5)
