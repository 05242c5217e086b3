"""`ctrilora adapt`: target statistics and source-free information maximisation on unlabeled audio."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from transformers import AutoFeatureExtractor

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.adapt import adapt_model, audio_files, load_log_mels
from modeling_ctrilora.cli import main
from modeling_ctrilora.feature_extraction_ctrilora import max_clip_samples, pad_frames
from modeling_ctrilora.losses import information_maximization_loss

RATE = 16000


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory) -> str:
    """Eight 0.3–0.8 s clips (tones + noise) in a folder with a subfolder, as a user's recordings."""
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "day2").mkdir()
    generator = np.random.default_rng(1)
    for index in range(8):
        seconds = 0.3 + 0.07 * index
        time = np.arange(int(seconds * RATE)) / RATE
        clip = 0.2 * np.sin(2 * np.pi * (150 + 40 * index) * time) + 0.05 * generator.standard_normal(time.size)
        soundfile.write(folder / ("day2" if index % 2 else ".") / f"clip{index}.wav", clip.astype(np.float32), RATE)
    return str(folder)


def test_adapt_fits_target_statistics_and_saves_a_checkpoint_with_its_card(checkpoint, unlabeled, tmp_path):
    out = tmp_path / "adapted"
    assert main(["adapt", "--model", checkpoint, "--audio", unlabeled, "--output_dir", str(out)]) == 0
    adapted = WhisperForTriLoRA.from_pretrained(out).eval()
    assert adapted.config.adaptation["objective"] == "adabn"
    assert adapted.config.adaptation["clips"] == 8
    assert "## Adaptation" in (out / "README.md").read_text()
    assert (out / "preprocessor_config.json").is_file()
    # The stored statistics are those of the eight clips, through the one feature path.
    original = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    _, features, _ = load_log_mels(audio_files(unlabeled), extractor, max_clip_samples(original.config, extractor))
    batch, mask = pad_frames(features)
    original.fit_target_statistics([{"input_features": batch, "attention_mask": mask}])
    torch.testing.assert_close(adapted.pooled_standardization.target_mean, original.pooled_standardization.target_mean,
                               atol=1e-5, rtol=1e-4)
    assert int(adapted.pooled_standardization.target_clips) == 8
    # Weights other than the statistics are the trained checkpoint's.
    for name, value in original.state_dict().items():
        if "pooled_standardization" not in name:
            torch.testing.assert_close(adapted.state_dict()[name], value)


def test_information_maximisation_moves_only_the_lora_matrices_and_lowers_its_loss(checkpoint, unlabeled):
    model = WhisperForTriLoRA.from_pretrained(checkpoint).eval()
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    _, features, _ = load_log_mels(audio_files(unlabeled), extractor, max_clip_samples(model.config, extractor))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    # One batch of all eight clips: every step sees the same batch, so the loss must go down.
    losses = adapt_model(model, features, steps=8, learning_rate=5e-3, batch_size=8, progress=False)
    assert len(losses) == 8 and losses[-1] < losses[0]
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed and all("lora_" in name or "pooled_standardization.target" in name for name in changed)
    assert {name: p.requires_grad for name, p in model.named_parameters()} == requires_grad
    # The returned loss is the loss of `information_maximization_loss` on the target-standardised logits.
    batch, mask = pad_frames(features)
    with torch.no_grad():
        final = information_maximization_loss(model(batch, attention_mask=mask, domain="target").logits)
    assert float(final) < losses[0]


def test_adapt_records_the_steps_and_the_loss_in_config_and_card(checkpoint, unlabeled, tmp_path):
    out = tmp_path / "im"
    assert main(["adapt", "--model", checkpoint, "--audio", unlabeled, "--output_dir", str(out), "--steps", "2",
                 "--batch_size", "4"]) == 0
    adaptation = WhisperForTriLoRA.from_pretrained(out).config.adaptation
    assert adaptation["objective"] == "information_maximization" and adaptation["steps"] == 2
    assert "information maximisation" in (out / "README.md").read_text()


def test_bad_clips_stop_the_adaptation_or_are_skipped_and_named(checkpoint, unlabeled, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(audio_files(unlabeled))[:3]:
        (folder / path.split("/")[-1]).write_bytes(open(path, "rb").read())
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    assert main(["adapt", "--model", checkpoint, "--audio", str(folder), "--output_dir", str(tmp_path / "a")]) == 1
    assert "broken.wav" in capsys.readouterr().err
    assert main(["adapt", "--model", checkpoint, "--audio", str(folder), "--output_dir", str(tmp_path / "b"),
                 "--on_bad_audio", "skip"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.wav" in err
    config = WhisperForTriLoRA.from_pretrained(tmp_path / "b").config
    assert config.adaptation["clips"] == 3 and config.adaptation["skipped"] == 1


def test_a_csv_needs_a_path_column_and_is_read_relative_to_its_folder(checkpoint, unlabeled, tmp_path, capsys):
    bad = tmp_path / "clips.csv"
    bad.write_text("file\nclip0.wav\n")
    assert main(["adapt", "--model", checkpoint, "--audio", str(bad), "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "clips.csv" in err and "'path'" in err
    (tmp_path / "wav").mkdir()
    (tmp_path / "wav" / "a.wav").write_bytes(open(f"{unlabeled}/clip0.wav", "rb").read())
    listed = tmp_path / "list.csv"
    listed.write_text(f"path,note\nwav/a.wav,relative\n{unlabeled}/clip2.wav,absolute\n")
    assert audio_files(listed) == [str(tmp_path / "wav" / "a.wav"), f"{unlabeled}/clip2.wav"]
    listed.write_text("path\nwav/a.wav\n\"\"\n")
    with pytest.raises(ValueError, match="line 3: empty 'path' cell"):
        audio_files(listed)


def test_the_hub_card_of_an_adapted_checkpoint_says_what_it_was_adapted_to(checkpoint, unlabeled, tmp_path):
    from huggingface_hub import ModelCard

    from hub_cards.push import write_model_card

    assert main(["adapt", "--model", checkpoint, "--audio", unlabeled, "--output_dir", str(tmp_path / "a")]) == 0
    adapted = WhisperForTriLoRA.from_pretrained(tmp_path / "a")
    card = ModelCard.load(write_model_card(adapted, tmp_path / "card"))
    assert "## Adaptation" in card.text and "8 clips" in card.text
