"""A complete, tiny, randomly initialised Whisper checkpoint folder built offline.

The Hugging Face Hub is unreachable on the machines this project is developed and tested on, and tests must not
depend on downloaded weights. `build_tiny_whisper` writes a folder with everything `from_pretrained` needs —
config, safetensors weights, a byte-level `WhisperTokenizer` carrying every Whisper special token (so language
prefixes such as `<|kk|>` work) and a `WhisperFeatureExtractor` — so the same code path serves a tiny random model
and a real pretrained checkpoint (`WhisperForTriLoRA.from_whisper(folder)`).

Example:
    >>> from trainer.demo.tiny_whisper import build_tiny_whisper
    >>> folder = build_tiny_whisper("/tmp/tiny-whisper")  # doctest: +SKIP
    >>> model = WhisperForTriLoRA.from_whisper(folder, num_emotions=6, num_speakers=4)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.models.whisper.tokenization_whisper import LANGUAGES

TINY_WHISPER_DEFAULTS: dict[str, Any] = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 128,
}

# Whisper's special tokens after the byte vocabulary, in the order of the real multilingual vocabulary.
_TASK_TOKENS = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]


def build_whisper_byte_tokenizer(language: str | None = None, task: str | None = "transcribe") -> WhisperTokenizer:
    """A Whisper tokenizer whose vocabulary is the 256 byte symbols plus every Whisper special token.

    Any UTF-8 text (Kazakh Cyrillic included) is encodable byte by byte; `<|startoftranscript|><|kk|><|transcribe|>
    <|notimestamps|>` prefixes behave exactly as in the real tokenizer, which is all the ASR loss needs.
    """
    vocab = {symbol: index for index, symbol in enumerate(bytes_to_unicode().values())}
    special_tokens = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGES), *_TASK_TOKENS]
    for token in special_tokens:
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[], language=language, task=task)
    # Registering them as special makes `decode(..., skip_special_tokens=True)` drop them, as with the real vocab.
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens[1:]})
    return tokenizer


def build_tiny_whisper(save_dir: str | os.PathLike, seed: int = 0, **config_overrides: Any) -> str:
    """Write a tiny random Whisper checkpoint (weights + tokenizer + feature extractor) to `save_dir`.

    Args:
        save_dir: folder to create; reused as is when it already holds a checkpoint built with the same settings.
        seed: seed of the random weights.
        **config_overrides: any `WhisperConfig` field, over `TINY_WHISPER_DEFAULTS`.

    Returns:
        The folder as a string, usable wherever a Hub id is (`from_pretrained`, `--base_model`).
    """
    save_dir = os.fspath(save_dir)
    tokenizer = build_whisper_byte_tokenizer()
    special = {token: tokenizer.convert_tokens_to_ids(token) for token in ("<|endoftext|>", "<|startoftranscript|>")}
    settings = {**TINY_WHISPER_DEFAULTS, **config_overrides}
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        pad_token_id=special["<|endoftext|>"],
        bos_token_id=special["<|endoftext|>"],
        eos_token_id=special["<|endoftext|>"],
        decoder_start_token_id=special["<|startoftranscript|>"],
        begin_suppress_tokens=None,
        **settings,
    )
    marker = os.path.join(save_dir, "tiny_whisper_settings.json")
    fingerprint = repr(sorted({**settings, "seed": seed}.items()))
    if os.path.exists(marker) and open(marker, encoding="utf-8").read() == fingerprint:
        return save_dir
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = config.decoder_start_token_id
    model.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(save_dir)
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(fingerprint)
    return save_dir


__all__ = ["TINY_WHISPER_DEFAULTS", "build_tiny_whisper", "build_whisper_byte_tokenizer"]
