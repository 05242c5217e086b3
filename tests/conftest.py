"""Shared fixtures: a tiny random Whisper checkpoint folder, two small corpora and the training script on them, all
built offline (no Hub, no ../shared)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from conftest_data import make_csv_corpus
from modeling_ctrilora import WhisperForTriLoRA
from trainer.demo.tiny_whisper import build_tiny_whisper

REPO = Path(__file__).resolve().parents[1]
CLIP_RATE = 16000
TINY_SOURCE_POSITIONS = 50  # 100 mel frames: short enough to keep the suite fast, long enough for mixed lengths.


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """Tiny models run fastest on one thread, and far faster than on two when the cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory) -> str:
    """A tiny Whisper checkpoint (d_model 32, 2+2 layers, 100-frame window) with tokenizer and feature extractor."""
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"), max_source_positions=TINY_SOURCE_POSITIONS)


@pytest.fixture(scope="session")
def tiny_whisper_30s_dir(tmp_path_factory) -> str:
    """Tiny Whisper with the real 1500-position (3000-frame) window, for the stock 30 s path."""
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper-30s"))


@pytest.fixture
def make_model(tiny_whisper_dir):
    """Factory: `make_model(**config_overrides)` → an eval-mode WhisperForTriLoRA on the tiny checkpoint."""

    def factory(num_emotions: int = 4, num_speakers: int = 3, **overrides) -> WhisperForTriLoRA:
        torch.manual_seed(0)
        return WhisperForTriLoRA.from_whisper(
            tiny_whisper_dir, num_emotions=num_emotions, num_speakers=num_speakers, factor_dim=16, factor_rank=4, **overrides
        ).eval()

    return factory


@pytest.fixture(scope="module")
def benchmark_script(request):
    """The module of `benchmarks/<BENCHMARK_SCRIPT>.py` (a constant of the test module), imported as when run as a
    script: its folder first on sys.path, for the modules beside it."""
    folder = str(REPO / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(request.module.BENCHMARK_SCRIPT)
    finally:
        sys.path.remove(folder)


@pytest.fixture(scope="module")
def screening_data():
    """Synthetic cached states for `trainer.screening`: 3 layers × 32 dims, 3 classes visible in every layer, the
    target splits shifted by 1.5 in every dimension (a pure domain shift), 4 source speakers."""
    from trainer.screening import ScreeningData

    rng = np.random.default_rng(0)
    sizes = {"source_train": 64, "source_validation": 16, "source_test": 16, "target_adaptation": 24, "target_test": 24}
    labels = {name: rng.integers(0, 3, size=n) for name, n in sizes.items()}
    features = {}
    for name, values in labels.items():
        shift = 0.0 if name.startswith("source") else 1.5
        states = rng.normal(size=(len(values), 3, 32)) + shift
        states[np.arange(len(values)), :, values] += 2.0
        features[name] = states.astype(np.float32)
    return ScreeningData(features, labels, rng.integers(0, 4, size=64), rng.integers(-1, 4, size=64), ["a", "b", "c"], 4)


# The emotion classes of the saved tiny checkpoint below.
CHECKPOINT_EMOTIONS = ["neutral", "happy", "sad", "angry"]


def _save_checkpoint(whisper_dir: str, folder) -> str:
    from transformers import WhisperProcessor

    from hub_cards.push import save_pretrained_with_card

    torch.manual_seed(0)
    model = WhisperForTriLoRA.from_whisper(
        whisper_dir, id2label=dict(enumerate(CHECKPOINT_EMOTIONS)), num_speakers=3, factor_dim=16, factor_rank=4,
        in_domain_temperature=1.7, target_temperature=0.6,
    )
    save_pretrained_with_card(model, folder, processor=WhisperProcessor.from_pretrained(whisper_dir))
    return str(folder)


@pytest.fixture(scope="module")
def checkpoint(tiny_whisper_dir, tmp_path_factory) -> str:
    """A saved tiny model with card and processor and distinct temperatures (its fan-in-initialised head is already
    far from uniform), for the pipeline, CLI and bf16 tests."""
    return _save_checkpoint(tiny_whisper_dir, tmp_path_factory.mktemp("ctrilora-checkpoint"))


@pytest.fixture(scope="module")
def checkpoint_30s(tiny_whisper_30s_dir, tmp_path_factory) -> str:
    """The same tiny model with Whisper's real 30 s window, for segmenting long recordings (5 s chunks)."""
    return _save_checkpoint(tiny_whisper_30s_dir, tmp_path_factory.mktemp("ctrilora-checkpoint-30s"))


@pytest.fixture(scope="session")
def corpora(tmp_path_factory) -> tuple[str, str]:
    """(source, target) metadata.csv corpora: 4 speakers each saying 2 transcripts in 4 emotions (0.5 s / 0.4 s clips).
    Read-only: a test that changes a corpus makes its own."""
    root = tmp_path_factory.mktemp("corpora")
    source = make_csv_corpus(root / "src", speakers=("01", "02", "03", "04"), seconds=0.5)
    target = make_csv_corpus(root / "tgt", speakers=("11", "12", "13", "14"), seconds=0.4)
    return source, target


@pytest.fixture
def train_script(corpora, tiny_whisper_dir, tmp_path, monkeypatch):
    """`train_script(output_dir, *arguments)` → `examples/train_ctrilora.py`'s `main` (its results dict) on `corpora`
    with the tiny Whisper on the CPU, batch 8, factor_dim 16 and the feature cache under this test's `tmp_path`.
    `arguments` are added after those, so they can also override them (e.g. another batch size)."""
    sys.path.insert(0, str(REPO / "examples"))
    import train_ctrilora

    monkeypatch.setattr("trainer.run.CACHE_HOME", tmp_path / "cache")
    source, target = corpora

    def run(output_dir, *arguments: str) -> dict:
        return train_ctrilora.main([
            "--base_model", tiny_whisper_dir, "--source", source, "--target", target, "--output_dir", str(output_dir),
            "--per_device_train_batch_size", "8", "--factor_dim", "16", "--use_cpu", *arguments,
        ])

    return run


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[str]:
    """Five generated WAV clips of 0.3–0.9 s (tones, a chirp, noise) for the pipeline and CLI tests."""
    folder = tmp_path_factory.mktemp("clips")
    generator = np.random.default_rng(1)
    paths = []
    for index, seconds in enumerate((0.3, 0.45, 0.6, 0.75, 0.9)):
        time = np.arange(int(seconds * CLIP_RATE)) / CLIP_RATE
        if index == 3:
            audio = 0.2 * generator.standard_normal(time.size)
        else:
            audio = 0.3 * np.sin(2 * np.pi * (150 + 120 * index + 200 * index * time) * time)
            audio += 0.02 * generator.standard_normal(time.size)
        path = str(folder / f"clip{index}.wav")
        soundfile.write(path, audio.astype(np.float32), CLIP_RATE)
        paths.append(path)
    return paths


def trained_looking_lora(model):
    """LoRA B starts at zero (the update is a no-op); give every adapter a non-zero update, as training would."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model
