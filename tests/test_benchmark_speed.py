"""Recipe test of `benchmarks/benchmark_speed.py`: the whole script on a tiny random Whisper and tiny generated audio.

Only the report's structure and sanity are checked (every section present, positive finite numbers, ratios
consistent with the medians they come from) — never speed: timings on shared CI cores are noise, and the speed
targets are the script's own PASS/MISS lines, judged on a real run.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
import soundfile as sf

BENCHMARK_SCRIPT = "benchmark_speed"


@pytest.fixture(scope="module")
def benchmark_speed(benchmark_script):
    return benchmark_script


@pytest.fixture
def tiny_corpus(tmp_path) -> str:
    """A metadata.csv folder with four 0.6 s tone + noise clips, two of them at 8 kHz (resampled on load)."""
    rng = np.random.default_rng(0)
    rows = ["path,emotion,speaker,transcript"]
    for index, rate in enumerate((16_000, 8_000, 16_000, 8_000)):
        time = np.arange(int(0.6 * rate)) / rate
        audio = 0.3 * np.sin(2 * np.pi * (200 + 50 * index) * time) + 0.01 * rng.standard_normal(time.size)
        os.makedirs(tmp_path / "wav", exist_ok=True)
        sf.write(tmp_path / "wav" / f"clip{index}.wav", audio.astype(np.float32), rate)
        rows.append(f"wav/clip{index}.wav,neutral,spk{index},hello there")
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(tmp_path)


def _positive_timing(stats: dict, repeats: int) -> None:
    assert len(stats["times_s"]) == repeats
    assert all(value > 0 and math.isfinite(value) for value in stats["times_s"])
    assert stats["min_s"] <= stats["median_s"]
    assert stats["peak_rss_mib"] > 0
    assert stats["cpu_utilisation"] > 0


def test_benchmark_writes_every_section(benchmark_speed, tiny_corpus, tmp_path):
    output_json, output_markdown = tmp_path / "out" / "speed.json", tmp_path / "out" / "speed.md"
    report = benchmark_speed.main(
        [
            "--batch_size", "2",
            "--clip_seconds", "0.5", "1",
            "--heads_clip_seconds", "0.5",
            "--target_clip_seconds", "1",
            "--repeats", "1",
            "--warmup", "0",
            "--num_threads", "1",
            "--int8",
            "--audio_dir", tiny_corpus,
            "--output_json", str(output_json),
            "--output_markdown", str(output_markdown),
        ]
    )  # fmt: skip
    written = json.loads(output_json.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(report))
    assert set(written["results"]) == set(benchmark_speed.SECTIONS)
    machine = written["machine"]
    assert machine["nproc"] >= 1 and machine["torch_threads"] == 1
    assert machine["attn_implementation"] == "sdpa"
    assert written["command"].startswith("python benchmarks/benchmark_speed.py --batch_size 2")

    results = written["results"]
    assert set(results["train_padding"]) == {"0.5s", "1s"}
    for row in results["train_padding"].values():
        for name in ("short", "short_length_grouped", "pad_to_30s"):
            _positive_timing(row[name], 1)
            shape = row[f"shape_{name}"]
            assert 0 < shape["mean_real_frames"] <= shape["frames"] and shape["frames"] % 2 == 0
            assert 0 <= shape["padding_fraction"] < 1
        assert row["shape_pad_to_30s"]["frames"] == 3000 and row["shape_short"]["frames"] < 3000
        assert row["speedup"] == pytest.approx(row["pad_to_30s"]["median_s"] / row["short"]["median_s"])
        assert row["speedup_length_grouped"] == pytest.approx(
            row["pad_to_30s"]["median_s"] / row["short_length_grouped"]["median_s"]
        )

    heads = results["heads"]
    for name in ("shared_head", "full", "full_with_target", "full_with_target_gradients"):
        _positive_timing(heads[name], 1)
    assert heads["target_gradients_overhead_pct"] == pytest.approx(
        100 * (heads["full_with_target_gradients"]["median_s"] / heads["full"]["median_s"] - 1)
    )
    assert heads["router_heads_aux_overhead_pct"] == pytest.approx(
        100 * (heads["full"]["median_s"] / heads["shared_head"]["median_s"] - 1)
    )
    assert math.isfinite(heads["target_batch_overhead_pct"])

    for key in ("0.5s", "1s"):
        for name, size in (("batch_1", 1), ("batch_2", 2), ("batch_2_length_grouped", 2), ("batch_1_int8", 1),
                           ("batch_2_int8", 2), ("batch_2_length_grouped_int8", 2)):
            row = results["inference"][key][name]
            _positive_timing(row, 1)
            assert row["batch_size"] == size and row["shape"]["frames"] > 0
            assert row["clips_per_s"] == pytest.approx(1000 * size / (row["ms_per_clip"] * size))
        for name in ("true_length", "pad_to_30s"):
            row = results["features"][key][name]
            _positive_timing(row, 1)
            assert row["ms_per_clip"] > 0 and row["clips_per_s"] > 0

    statuses = {target["target"]: target["status"] for target in written["targets"]}
    # (a) speed-up; (b) overhead and target-batch ratio; (c) batch-16 clips/s and batch-1 ms, fp32 and int8.
    assert len(statuses) == 7 and set(statuses.values()) <= {"PASS", "MISS"}
    assert "(c) inference ms/clip at batch 1, 1s, int8" in statuses
    markdown = output_markdown.read_text(encoding="utf-8")
    headings = ("(a) Training step", "(b) Full vs Shared-Head", "(c) Emotion inference", "(d) Whisper log-Mel", "Targets")
    for heading in headings:
        assert heading in markdown


def test_default_tiny_model_and_section_subset(benchmark_speed):
    """No --base_model: a tiny random Whisper is built on the fly; targets of skipped sections are not reported."""
    report = benchmark_speed.main(
        ["--batch_size", "2", "--clip_seconds", "0.5", "--repeats", "1", "--warmup", "0"]
        + ["--sections", "inference", "--bf16", "--no_merge_lora"]
    )
    assert set(report["results"]) == {"inference"}
    assert report["arguments"]["base_model"] is None and report["arguments"]["bf16"]
    assert report["arguments"]["merge_lora"] is False
    assert report["results"]["inference"]["0.5s"]["batch_1"]["clips_per_s"] > 0
    assert [target["status"] for target in report["targets"]] == ["n/a", "n/a"]  # measured at 0.5 s, targets at 4 s


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_rejects_cuda_without_cuda(benchmark_speed):
    with pytest.raises(ValueError, match="no usable CUDA"):
        benchmark_speed.main(["--device", "cuda", "--sections", "inference"])


def test_rejects_unknown_section(benchmark_speed):
    with pytest.raises(ValueError, match="unknown sections"):
        benchmark_speed.main(["--sections", "everything"])
