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


# --- the skipped-clip list (issue 15, item 9) ------------------------------------------------------------------------
def test_clips_skipped_at_loading_are_listed_in_results_and_report(tiny_whisper_dir, tmp_path, monkeypatch):
    """A bad clip and a duplicate row dropped under `--on_bad_audio skip` reach results.json and report.md, through
    `prepare_data`'s loader reports and the evaluation's one writer."""
    from conftest_data import TRANSCRIPTS, make_csv_corpus, write_bad_clip

    from hub_cards import load_results
    from trainer.evaluation.evaluate import Predictions, write_report_from_predictions
    from trainer.run import DataArguments, prepare_data, protocol

    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    row = {"emotion": "neutral", "speaker": "01", "transcript": TRANSCRIPTS[0], "gender": "F"}
    source = make_csv_corpus(tmp_path / "src", seconds=0.5,
                             extra_rows=[{**row, "path": "bad/corrupt.wav"}, {**row, "path": "wav/01/0_0.flac"}])
    write_bad_clip(tmp_path / "src" / "bad" / "corrupt.wav", "corrupt")
    target = make_csv_corpus(tmp_path / "tgt", speakers=("11", "12", "13", "14"), seconds=0.4)
    arguments = DataArguments(source=source, target=target, on_bad_audio="skip")
    data = prepare_data(arguments, tiny_whisper_dir, tmp_path / "run", seed=0)

    generator = np.random.default_rng(0)
    predictions = {}
    for name, split in (("source_validation", data.source["validation"]), ("source_test", data.source["test"]),
                        ("target_adaptation", data.target["adaptation"]), ("target_test", data.target["test"])):
        labels = np.array([data.label2id[emotion] for emotion in split["emotion"]])
        predictions[name] = Predictions(logits=generator.standard_normal((len(labels), len(data.classes))), labels=labels,
                                        z_emo=generator.standard_normal((len(labels), 4)), clip_ids=list(split["path"]))
    out = tmp_path / "run" / "evaluation"
    results = write_report_from_predictions(
        predictions, data, out, protocol=protocol(arguments, 0),
        model_info={"base_model": tiny_whisper_dir, "preset": "full", "trainable_fraction": 0.1, "checkpoint": "run"},
    )
    skipped = results["skipped_clips"]
    assert skipped["target"] == []
    problems = {clip["path"]: clip["problem"] for clip in skipped["source"]}
    assert len(skipped["source"]) == 2
    assert "duplicate" in problems[str(tmp_path / "src" / "wav" / "01" / "0_0.flac")]
    assert "duplicate" not in problems[str(tmp_path / "src" / "bad" / "corrupt.wav")]
    assert load_results(out / "results.json", complete=True)["skipped_clips"] == skipped
    report = (out / "report.md").read_text()
    assert f"{results['corpora']['source']['name']} (source): 2; {results['corpora']['target']['name']} (target): 0" in report
    for clip in skipped["source"]:
        assert f"| source | `{clip['path']}` | {clip['problem']} |" in report
