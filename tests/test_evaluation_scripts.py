"""The evaluation and ablation scripts end to end on tiny generated corpora."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from modeling_ctrilora import WhisperForTriLoRA
from trainer.run import DataArguments

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))


def test_evaluate_script_rebuilds_the_runs_data_and_writes_the_report(train_script, tmp_path, monkeypatch):
    import evaluate_ctrilora

    run = tmp_path / "run"
    trained = train_script(run, "--max_steps", "2")
    out = tmp_path / "evaluation-again"
    results = evaluate_ctrilora.main([
        "--checkpoint", str(run), "--output_dir", str(out), "--compare", f"itself={run / 'evaluation'}",
    ])
    # Same checkpoint, same splits → the same numbers as the evaluation at the end of training.
    assert results["cross_corpus"] == trained["cross_corpus"]
    assert results["in_domain"]["n"] == trained["in_domain"]["n"]
    comparisons = results["comparisons"]["mcnemar"]
    assert {row["split"] for row in comparisons} == {"in_domain", "cross_corpus"}
    assert all(row["p_value"] == 1.0 for row in comparisons)  # a model never disagrees with itself
    report = (out / "report.md").read_text()
    on_disk = json.loads((out / "results.json").read_text())
    for section in ("in_domain", "cross_corpus"):
        for metric in ("uar", "macro_f1", "accuracy"):
            assert f"{100 * on_disk[section][metric]:.2f}" in report
    for key in ("raw", "in_domain_T", "adaptive_T"):
        assert f"{100 * on_disk['calibration']['ece']['cross_corpus'][key]:.2f}" in report
    reloaded = WhisperForTriLoRA.from_pretrained(run)
    assert reloaded.config.in_domain_temperature == pytest.approx(on_disk["calibration"]["temperatures"]["in_domain"])
    # Target splits ran with the adaptation clips' pooled statistics, which were saved into the checkpoint.
    adaptation_clips = on_disk["model"]["target_statistics_clips"]
    assert adaptation_clips == trained["model"]["target_statistics_clips"] >= 2
    assert int(reloaded.pooled_standardization.target_clips) == adaptation_clips
    assert f"statistics of {adaptation_clips} unlabeled target adaptation clips" in report
    plain = evaluate_ctrilora.main([
        "--checkpoint", str(run), "--output_dir", str(tmp_path / "plain"), "--no_target_statistics", "--no_store_temperatures",
    ])
    assert plain["model"]["target_statistics_clips"] is None
    assert plain["in_domain"] == results["in_domain"]
    autocast_seen = []
    original_forward = WhisperForTriLoRA.forward

    def recording_forward(self, *args, **kwargs):
        autocast_seen.append(torch.is_autocast_enabled("cpu"))
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(WhisperForTriLoRA, "forward", recording_forward)
    bf16 = evaluate_ctrilora.main([
        "--checkpoint", str(run), "--output_dir", str(tmp_path / "bf16"), "--bf16", "--no_store_temperatures",
        "--compare", f"fp32={out}",
    ])
    assert autocast_seen and all(autocast_seen)  # every forward of the evaluation ran under bf16 autocast
    assert bf16["cross_corpus"]["n"] == results["cross_corpus"]["n"]
    assert {row["split"] for row in bf16["comparisons"]["mcnemar"]} == {"in_domain", "cross_corpus"}
    monkeypatch.setattr(WhisperForTriLoRA, "forward", original_forward)
    weights_before = (run / "model.safetensors").read_bytes()
    int8 = evaluate_ctrilora.main(["--checkpoint", str(run), "--output_dir", str(tmp_path / "int8"), "--int8",
                                   "--compare", f"fp32={out}"])
    assert int8["cross_corpus"]["n"] == results["cross_corpus"]["n"]
    assert {row["split"] for row in int8["comparisons"]["mcnemar"]} == {"in_domain", "cross_corpus"}
    assert (run / "model.safetensors").read_bytes() == weights_before  # an int8 copy is never saved over the run
    with pytest.raises(SystemExit, match="choose one"):
        evaluate_ctrilora.main(["--checkpoint", str(run), "--int8", "--bf16"])
    for plot in on_disk["plots"].values():
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_script_rejects_a_folder_that_is_not_a_run(tmp_path):
    import evaluate_ctrilora

    with pytest.raises(FileNotFoundError, match="run_arguments.json"):
        evaluate_ctrilora.main(["--checkpoint", str(tmp_path)])


def test_run_ablations_writes_the_table_and_resumes(corpora, tiny_whisper_dir, tmp_path, monkeypatch):
    import run_ablations

    monkeypatch.setenv("CTRILORA_CACHE", str(tmp_path / "cache"))
    source, target = corpora
    argv = ["--presets", "full", "shared_head", "--seeds", "0", "1", "--output_dir", str(tmp_path / "abl"),
            "--base_model", tiny_whisper_dir, "--source", source, "--target", target,
            "--", "--max_steps", "2", "--per_device_train_batch_size", "8", "--factor_dim", "16", "--use_cpu"]
    report = run_ablations.main(argv)
    assert report["failures"] == {}
    assert set(report["table"]) == {"full", "shared_head"}
    assert report["table"]["full"]["cross_corpus_macro_f1"]["n"] == 2
    assert set(report["wilcoxon"]) == {"shared_head"}
    assert len(report["mcnemar"]) == 4  # 2 seeds × 2 splits
    markdown = (tmp_path / "abl" / "ablation.md").read_text()
    row = report["table"]["shared_head"]["cross_corpus_uar"]
    assert f"{100 * row['mean']:.2f} ± {100 * row['sd']:.2f}" in markdown
    for plot in report["plots"].values():
        assert (tmp_path / "abl" / plot).stat().st_size > 1000
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "abl").glob("*/seed-*/evaluation/results.json")}
    assert len(stamps) == 4
    again = run_ablations.main(argv)
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps  # nothing was re-run
    assert again["table"] == report["table"]
    # --report_only: a seed that never ran is named and left out, nothing is trained.
    only = run_ablations.main([*argv[:5], "2", *argv[5:argv.index("--")], "--report_only"])
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert not (tmp_path / "abl" / "full" / "seed-2").exists()
    assert only["table"] == report["table"]
    # A run evaluated before per-clip predictions were written: its McNemar is left out and named, the rest stays.
    (tmp_path / "abl" / "shared_head" / "seed-1" / "evaluation" / "predictions.json").unlink()
    partial = run_ablations.main([*argv[: argv.index("--")], "--report_only"])
    assert len(partial["mcnemar"]) == 2 and partial["mcnemar_missing"][0]["seed"] == 1
    assert "McNemar not computed" in (tmp_path / "abl" / "ablation.md").read_text()
    # Runs on different source splits (a corpus changed between them): that split's McNemar is named, not a crash.
    predictions = tmp_path / "abl" / "shared_head" / "seed-0" / "evaluation" / "predictions.json"
    moved = json.loads(predictions.read_text())
    moved["source_test"]["clip_ids"] = [f"elsewhere/{clip}" for clip in moved["source_test"]["clip_ids"]]
    predictions.write_text(json.dumps(moved))
    unpaired = run_ablations.main([*argv[: argv.index("--")], "--report_only"])
    assert [row["split"] for row in unpaired["mcnemar"]] == ["cross_corpus"]
    assert unpaired["mcnemar_unpaired"] == [{"preset": "shared_head", "seed": 0, "split": "in_domain"}]
    assert "share no test clip" in (tmp_path / "abl" / "ablation.md").read_text()


def test_run_ablations_reports_a_run_that_dies(corpora, tiny_whisper_dir, tmp_path, monkeypatch):
    import run_ablations

    monkeypatch.setenv("CTRILORA_CACHE", str(tmp_path / "cache"))
    source, target = corpora
    argv = ["--presets", "full", "--seeds", "0", "--output_dir", str(tmp_path / "abl"),
            "--base_model", tiny_whisper_dir, "--source", source, "--target", target,
            "--", "--max_steps", "1", "--factor_dim", "-3", "--use_cpu"]
    with pytest.raises(SystemExit, match="no run finished"):
        run_ablations.main(argv)
    assert (tmp_path / "abl" / "full" / "seed-0.log").read_text()


# Every data option set away from its default (a field DataArguments gains later keeps its default here and is still
# compared below, so the round trip covers it too).
DATA_OPTIONS = {
    "source": "/data/src", "target": "/data/tgt", "source_language": "en", "target_language": "de",
    "source_split": "speaker_independent", "target_adaptation_fraction": "0.3", "target_split": "stratified",
    "transductive": "True", "on_bad_audio": "skip", "label_aliases": '{"pleased": "happy"}', "demo_dir": "/data/demo",
    "max_duration": "12.5", "long_clips": "crop",
}


@pytest.mark.parametrize("preset", ["full", "ser_only", "frozen_probe", "frozen_probe_coral"])
def test_run_ablations_passes_every_data_option_to_every_run(preset, tmp_path):
    import frozen_probe
    import run_ablations
    import train_ctrilora
    from transformers import HfArgumentParser

    given = {name: value for name, value in DATA_OPTIONS.items() if name in {f.name for f in fields(DataArguments)}}
    argv = ["--presets", preset, "--output_dir", str(tmp_path), "--base_model", "/models/whisper",
            *[item for name, value in given.items() for item in (f"--{name}", value)], "--", "--max_steps", "3"]
    args, train_extra = run_ablations.parse_arguments(argv)
    command = run_ablations.run_command(args, preset, 1, train_extra)
    script, flags = Path(command[1]).name, command[2:]
    for name, value in given.items():
        assert flags[flags.index(f"--{name}") + 1] == value, name
    # The launched script parses them back into the same DataArguments (every field, not only those above).
    if preset.startswith("frozen_probe"):
        assert script == "frozen_probe.py" and "--max_steps" not in flags
        probe, data = HfArgumentParser((frozen_probe.ProbeArguments, DataArguments)).parse_args_into_dataclasses(args=flags)
        assert probe.base_model == "/models/whisper" and probe.seed == 1 and probe.coral == preset.endswith("coral")
    else:
        assert script == "train_ctrilora.py" and flags[-2:] == ["--max_steps", "3"]
        model, data, training = train_ctrilora.parse_arguments(flags)
        assert model.base_model == "/models/whisper" and training.seed == 1 and training.preset == preset
    assert data == args.data and data.transductive is True and data.on_bad_audio == "skip"
    assert data.target_split == "stratified" and data.target_adaptation_fraction == 0.3


def test_run_ablations_forwards_nothing_for_defaults_and_refuses_data_options_after_the_separator(tmp_path, capsys):
    import run_ablations

    args, _ = run_ablations.parse_arguments(["--presets", "frozen_probe", "--output_dir", str(tmp_path)])
    assert run_ablations.data_flags(args.data) == []
    with pytest.raises(SystemExit) as info:
        run_ablations.parse_arguments(["--output_dir", str(tmp_path), "--", "--target-split", "stratified"])
    assert info.value.code == 2
    assert "--target-split after `--`" in capsys.readouterr().err  # it would miss the baselines
