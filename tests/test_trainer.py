"""CTriLoRATrainer and the training script: every term logged, every trainable part trained, resume, 2 processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoFeatureExtractor, WhisperFeatureExtractor

from hub_cards import RunFolder, build_model_card, load_results
from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.presets import LOGGED_LOSS_TERMS, LOSS_TERMS
from trainer import CTriLoRATrainer, CTriLoRATrainingArguments
from trainer.data.sampler import PairAwareBatchSampler
from trainer.evaluation.metrics import compute_metrics_fn
from trainer.run import CORPUS_FIELDS, DataArguments, prepare_data, protocol

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def experiment_data(corpora, tiny_whisper_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    source, target = corpora
    return prepare_data(DataArguments(source=source, target=target), tiny_whisper_dir, tmp_path / "run", seed=0)


def make_trainer(data, base_model, output_dir, **overrides):
    torch.manual_seed(0)
    model = WhisperForTriLoRA.from_whisper(
        base_model, id2label=data.id2label, num_speakers=len(data.speaker2id), factor_dim=16, factor_rank=4
    )
    settings = dict(
        output_dir=str(output_dir), max_steps=8, per_device_train_batch_size=8, learning_rate=1e-2, logging_steps=2,
        eval_strategy="steps", eval_steps=4, save_strategy="no", report_to=[], use_cpu=True, seed=0,
    )
    settings.update(overrides)
    args = CTriLoRATrainingArguments(**settings)
    train = data.source["train"]
    sampler = PairAwareBatchSampler(train["transcript"], 8, emotions=train["emotion"], speakers=train["speaker"], seed=0)
    return CTriLoRATrainer(
        model=model, args=args, train_dataset=train, eval_dataset=data.source["validation"],
        target_dataset=data.target["adaptation"], data_collator=data.collator, train_batch_sampler=sampler,
        compute_metrics=compute_metrics_fn(data.id2label),
    )


def test_train_moves_every_trainable_parameter_and_logs_every_term(experiment_data, tiny_whisper_dir, tmp_path):
    trainer = make_trainer(experiment_data, tiny_whisper_dir, tmp_path / "out")
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    frozen = {name: p.detach().clone() for name, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.train()
    for name, parameter in trainer.model.named_parameters():
        if name in before:
            assert not torch.equal(parameter, before[name]), f"{name} did not change"
        else:
            assert torch.equal(parameter, frozen[name]), f"frozen {name} changed"
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry and "eval_loss" not in entry]
    eval_logs = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    weights = trainer.model.config.active_loss_weights
    active = [key for term, key in zip(LOSS_TERMS, LOGGED_LOSS_TERMS) if weights[term] > 0]
    for key in active:
        assert all(key in entry for entry in train_logs), key
        assert all(f"eval_{key}" in entry for entry in eval_logs), key
    for entry in train_logs:  # the logged weighted terms add up to the logged loss
        assert sum(entry[key] for key in active) == pytest.approx(entry["loss"], rel=1e-3)
        # diagnostics: router gates, the adversary's speaker accuracy, the CORAL/SER gradient ratio
        assert {"gate_lex", "gate_emo", "gate_spk", "adversary_accuracy"} <= set(entry)
    assert any("coral_ser_grad_ratio" in entry for entry in train_logs)
    assert {"eval_uar", "eval_macro_f1"} <= set(eval_logs[-1])
    assert 0 < train_logs[-1]["grl_coefficient"] <= 1
    assert trainer.model.config.ser_class_weights is not None


def test_loss_weights_from_arguments_reach_the_config(experiment_data, tiny_whisper_dir, tmp_path):
    trainer = make_trainer(experiment_data, tiny_whisper_dir, tmp_path / "out", coral_weight=2.5, max_steps=1)
    assert trainer.model.config.coral_weight == 2.5


def test_resume_continues_steps_and_the_grl_schedule(experiment_data, tiny_whisper_dir, tmp_path):
    full = make_trainer(experiment_data, tiny_whisper_dir, tmp_path / "full", max_steps=6, eval_strategy="no")
    full.train()
    interrupted = make_trainer(
        experiment_data, tiny_whisper_dir, tmp_path / "cut", max_steps=6, eval_strategy="no", save_strategy="steps", save_steps=3
    )
    interrupted.train()
    checkpoint = tmp_path / "cut" / "checkpoint-3"
    assert checkpoint.is_dir()
    saved = WhisperForTriLoRA.from_pretrained(checkpoint)
    assert int(saved.gradient_reversal.step) == 2  # the coefficient in effect during the third step
    resumed = make_trainer(experiment_data, tiny_whisper_dir, tmp_path / "cut", max_steps=6, eval_strategy="no")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 6
    first_logged = [e for e in resumed.state.log_history if "loss" in e and e["step"] > 3][0]
    assert first_logged["step"] == 4
    assert float(resumed.model.gradient_reversal.coefficient) == pytest.approx(float(full.model.gradient_reversal.coefficient))
    assert int(resumed.model.gradient_reversal.step) == int(full.model.gradient_reversal.step) == 5


def test_training_script_end_to_end(train_script, tmp_path):
    run = tmp_path / "run"
    results = train_script(run, "--num_train_epochs", "1", "--source_split", "speaker_independent",
                           "--report_to", "tensorboard")
    model = WhisperForTriLoRA.from_pretrained(run)
    assert model.config.preset == "full" and model.config.target_temperature == pytest.approx(
        results["calibration"]["temperatures"]["target_adaptive"]
    )
    for name in ("source_splits.json", "target_splits.json", "trainer_state.json", "processor_config.json",
                 "evaluation/results.json", "evaluation/report.md", "evaluation/predictions.json"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "evaluation" / "results.json").read_text())
    assert on_disk["cross_corpus"]["uar"] == results["cross_corpus"]["uar"]
    report = (run / "evaluation" / "report.md").read_text()
    assert f"{100 * on_disk['cross_corpus']['macro_f1']:.2f}" in report
    for plot in on_disk["plots"].values():
        assert (run / "evaluation" / plot).stat().st_size > 1000
    assert isinstance(AutoFeatureExtractor.from_pretrained(run), WhisperFeatureExtractor)
    folder = RunFolder(run)
    for path in (folder.config, folder.weights, folder.run_arguments, folder.source_splits, folder.target_splits,
                 folder.trainer_state, folder.evaluation.results, folder.evaluation.report, folder.evaluation.predictions):
        assert path.is_file(), path
    # One protocol: the results' and the split files' are the same dict.
    assert json.loads(folder.source_splits.read_text())["metadata"] == on_disk["protocol"]
    assert on_disk["protocol"]["source_split"] == "speaker_independent" and on_disk["protocol"]["seed"] == 42
    # The model card reads per-class F1 where the evaluation wrote it.
    card = build_model_card(load_results(folder.evaluation.results, complete=True)).text
    for name, f1 in on_disk["cross_corpus"]["per_class"]["f1"].items():
        assert f"| {name} | {100 * on_disk['in_domain']['per_class']['f1'][name]:.1f} %" in card
        assert f"| {100 * f1:.1f} % | {100 * on_disk['cross_corpus']['per_class']['recall'][name]:.1f} % |" in card
    # The run folder carries that card, ready to upload as it is: README.md with a model-index, results.json, plots.
    readme = ModelCard.load(folder.model_card)
    staged = load_results(folder.card_results, complete=True)  # the results, plots pointing at the card's copies
    assert readme.text == build_model_card(staged).text and "### Per-class results" in readme.text
    index = readme.data.to_dict()["model-index"]
    scored = {(result["dataset"]["name"], metric["type"]): metric["value"]
              for result in index[0]["results"] for metric in result["metrics"]}
    target = f"{on_disk['corpora']['target']['name']} (cross-corpus test)"
    assert scored[(target, "f1")] == pytest.approx(on_disk["cross_corpus"]["macro_f1"], abs=1e-4)
    assert staged["cross_corpus"] == on_disk["cross_corpus"]
    assert staged["plots"] and all((run / path).is_file() for path in staged["plots"].values())
    # Nothing was skipped at loading, and results.json and report.md say so.
    assert on_disk["skipped_clips"] == {"source": [], "target": []}
    assert "## Clips skipped at loading\n\nNone" in report
    # --report_to tensorboard (the `tensorboard` extra) wrote the logged losses as TensorBoard events.
    assert list(run.glob("runs/*/events.out.tfevents.*"))


def test_training_script_resumes_from_the_last_checkpoint_with_true(train_script, tmp_path, monkeypatch):
    run = tmp_path / "run"
    common = ("--eval_strategy", "no", "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "2")
    train_script(run, "--max_steps", "4", *common)
    assert (run / "checkpoint-4").is_dir()  # --save_total_limit 1 (the script's default) keeps only the last one
    steps_run = []
    original = CTriLoRATrainer.training_step

    def counting(self, *args, **kwargs):
        steps_run.append(self.state.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CTriLoRATrainer, "training_step", counting)
    # "True" on the command line is the string "True": it must mean the last checkpoint, as transformers documents.
    train_script(run, "--max_steps", "6", *common, "--resume_from_checkpoint", "True")
    assert steps_run == [4, 5]  # only steps 5 and 6 ran: training went on from checkpoint-4
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged == [1, 2, 3, 4, 5, 6]  # the checkpoint's history, then the resumed steps
    assert (run / "checkpoint-6").is_dir() and not (run / "checkpoint-4").exists()


def test_resume_with_true_and_no_checkpoint_is_an_error_before_the_data_is_read(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    import train_ctrilora

    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError) as info:
        train_ctrilora.main(["--source", str(tmp_path / "absent-src"), "--target", str(tmp_path / "absent-tgt"),
                             "--output_dir", str(run), "--resume_from_checkpoint", "True", "--use_cpu"])
    assert str(run) in str(info.value) and "checkpoint-<step>" in str(info.value) and "--save_strategy" in str(info.value)
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        train_ctrilora.main(["--output_dir", str(run), "--resume_from_checkpoint", str(run / "checkpoint-9"), "--use_cpu"])


@pytest.mark.parametrize("value, expected", [(None, None), ("False", None), (False, None), ("True", "checkpoint-12"),
                                             (True, "checkpoint-12"), ("true", "checkpoint-12"), ("given", "checkpoint-3")])
def test_resume_from_checkpoint_values(tmp_path, value, expected):
    for step in (3, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
    if value == "given":
        value = str(tmp_path / "checkpoint-3")
    args = CTriLoRATrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint=value, use_cpu=True, report_to=[])
    resolved = args.checkpoint_to_resume()
    assert resolved == (None if expected is None else str(tmp_path / expected))


def test_protocol_is_the_seed_and_every_data_argument_that_decides_the_splits():
    arguments = DataArguments(source="a", target="b", source_language="en", source_split="speaker_independent",
                              transductive=True)
    built = protocol(arguments, 3)
    assert {"seed": 3, "source_split": "speaker_independent", "transductive": True}.items() <= built.items()
    # Fields added to DataArguments join the protocol unless they only locate or describe a corpus.
    assert set(built) == {"seed"} | {field.name for field in fields(DataArguments)} - set(CORPUS_FIELDS)
    assert json.loads(json.dumps(built)) == built


def accelerate_launch(processes: int) -> list[str]:
    """`accelerate launch` on the CPU: one process plainly, several through torchrun (`--multi_gpu`, gloo on CPU)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--num_processes", str(processes)]
    if processes == 1:
        return command + ["--cpu"]
    # A free port per launch: back-to-back torchrun launches on the default port can meet the previous one's socket.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return command + ["--multi_gpu", "--main_process_port", str(port)]


def test_two_process_training_run_finishes(corpora, tiny_whisper_dir, tmp_path):
    source, target = corpora
    run = tmp_path / "run"
    command = [*accelerate_launch(2), str(REPO / "examples" / "train_ctrilora.py"), "--use_cpu",
               "--base_model", tiny_whisper_dir, "--source", source, "--target", target, "--output_dir", str(run),
               "--max_steps", "2", "--per_device_train_batch_size", "4", "--factor_dim", "16"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CTRILORA_CACHE": str(tmp_path / "cache")}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (run / "evaluation" / "results.json").is_file()


def test_two_process_coral_equals_single_process(tiny_whisper_dir, tmp_path):
    script = REPO / "tests" / "scripts" / "distributed_coral.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    values = {}
    for processes in (1, 2):
        out = tmp_path / f"coral_{processes}.json"
        command = [*accelerate_launch(processes), str(script), tiny_whisper_dir, str(out)]
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
        values[processes] = json.loads(out.read_text())
    assert values[2]["world"] == 2
    assert values[1]["coral"] > 1e-5
    assert values[2]["coral"] == pytest.approx(values[1]["coral"], rel=1e-5)
    assert values[2]["grad_norm"] == pytest.approx(values[1]["grad_norm"], rel=1e-4)
