"""Shared fixtures: a tiny random Whisper checkpoint folder built offline (no Hub, no ../shared)."""

from __future__ import annotations

import pytest
import torch

from modeling_ctrilora import WhisperForTriLoRA
from trainer.demo.tiny_whisper import build_tiny_whisper

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
