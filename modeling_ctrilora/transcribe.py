"""Greedy transcription with the C-TriLoRA model's own decoder (the ASR head).

`WhisperForTriLoRA` runs Whisper's encoder at the clip's true length and its decoder on FiLM(z_lex)-modulated
encoder states, so `WhisperForConditionalGeneration.generate` does not apply. `transcribe` encodes once, routes the
pooled state to get z_lex, then decodes greedily with `model.decode` from Whisper's prompt
`<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>` until `<|endoftext|>`. Without a `language`, the
language token is Whisper's own detection: the most likely language token after `<|startoftranscript|>`.

Greedy decoding stops a row at `<|endoftext|>` or when it falls into a loop: once the same block of tokens has been
produced `LOOP_COPIES` times in a row, the copies after the first are dropped. Whisper run on a short clip at its true
length (no trailing 30 s of silence) often never emits `<|endoftext|>` before it is fine-tuned on that input — pretrained
whisper-base repeated "Kids are talking by the door." to the end of its 448-token window on a RAVDESS clip — the same
failure Whisper's own decoding catches with its compression-ratio check. The decoder is re-run on the whole prefix at
each step (`model.decode` keeps no cache), so stopping loops early is also what keeps the cost at a few dozen steps.

Example:
    >>> from transformers import AutoFeatureExtractor, AutoTokenizer
    >>> from modeling_ctrilora import WhisperForTriLoRA
    >>> from modeling_ctrilora.feature_extraction_ctrilora import extract_features, load_audio
    >>> from modeling_ctrilora.transcribe import transcribe
    >>> model = WhisperForTriLoRA.from_pretrained("runs/full/checkpoint-500").eval()  # doctest: +SKIP
    >>> features = extract_features(AutoFeatureExtractor.from_pretrained("runs/full/checkpoint-500"),
    ...                             load_audio("clip.wav"), model.config)  # doctest: +SKIP
    >>> transcribe(model, features["input_features"], features["attention_mask"],
    ...            AutoTokenizer.from_pretrained("runs/full/checkpoint-500"), language="kk")  # doctest: +SKIP
    ['Сәлеметсіз бе']
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase
from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

from .modeling_ctrilora import WhisperForTriLoRA

START_OF_TRANSCRIPT = "<|startoftranscript|>"
END_OF_TEXT = "<|endoftext|>"
TRANSCRIBE = "<|transcribe|>"
NO_TIMESTAMPS = "<|notimestamps|>"
LOOP_COPIES = 3  # a block of tokens produced this many times in a row ends the transcript (keeping one copy)
LOOP_MIN_SPAN = 6  # ... if the copies span at least this many tokens, so "no no no" is kept as said


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """Id of `token`, or None when the vocabulary lacks it (Whisper maps unknown tokens to <|endoftext|>)."""
    return tokenizer.get_vocab().get(token)


def language_code(language: str) -> str:
    """`"kk"`, `"kazakh"` or `"<|kk|>"` → `"kk"`; `ValueError` for a language Whisper does not know."""
    name = language.strip().lower().removeprefix("<|").removesuffix("|>")
    if name in LANGUAGES:
        return name
    if name in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[name]
    raise ValueError(f"unknown language {language!r}; use a Whisper language code such as 'kk' or 'en'")


def _language_ids(tokenizer: PreTrainedTokenizerBase) -> dict[int, str]:
    ids = {}
    for code in LANGUAGES:
        token_id = _token_id(tokenizer, f"<|{code}|>")
        if token_id is not None:
            ids[token_id] = code
    return ids


def loop_start(tokens: list[int], copies: int = LOOP_COPIES, min_span: int = LOOP_MIN_SPAN) -> int | None:
    """Where the surplus copies of a trailing loop begin, or None.

    The tail of `tokens` is a loop when some block of k tokens occurs `copies` times back to back there and the copies
    span at least `min_span` tokens; the first copy is kept, so the return value is the index just after it.

    Example:
        >>> loop_start([7, 1, 2, 3, 1, 2, 3, 1, 2, 3])
        4
        >>> loop_start([1, 2, 3, 4]) is None
        True
    """
    for size in range(1, len(tokens) // copies + 1):
        if size * copies < min_span:
            continue
        tail = tokens[-size:]
        if all(tokens[-(index + 1) * size : len(tokens) - index * size] == tail for index in range(1, copies)):
            return len(tokens) - (copies - 1) * size
    return None


@torch.no_grad()
def transcribe(
    model: WhisperForTriLoRA,
    input_features: torch.Tensor,
    attention_mask: torch.Tensor | None,
    tokenizer: PreTrainedTokenizerBase,
    language: str | None = None,
    max_new_tokens: int | None = None,
) -> list[str]:
    """Greedy transcripts of a batch of clips.

    Args:
        model: a `WhisperForTriLoRA` (put it in eval mode: dropout and layer drop stay active in training mode).
        input_features: (B, n_mels, T) log-Mel features, as for `model(...)`.
        attention_mask: (B, T) frame mask, 1 = real frame; `None` = all real.
        tokenizer: the checkpoint's Whisper tokenizer.
        language: Whisper language code or name (`"kk"`, `"kazakh"`); `None` detects it per clip. Ignored by
            English-only vocabularies, which have no language tokens.
        max_new_tokens: upper bound on generated tokens; default (and cap) is what the decoder's
            `max_target_positions` leaves after the prompt.

    Returns:
        One transcript per clip, special tokens removed, surrounding whitespace stripped.

    Example:
        >>> transcribe(model, features, mask, tokenizer, language="kk", max_new_tokens=64)  # doctest: +SKIP
        ['...', '...']
    """
    device = input_features.device
    batch = input_features.shape[0]
    pooled, encoder_states, position_mask = model.pooled_state(input_features, attention_mask)
    z_lex, _, _, _ = model.factorise(pooled)

    def next_logits(tokens: torch.Tensor) -> torch.Tensor:
        return model.decode(tokens, encoder_states, position_mask, z_lex)[:, -1].float()

    start = _token_id(tokenizer, START_OF_TRANSCRIPT)
    end = _token_id(tokenizer, END_OF_TEXT)
    if start is None or end is None:
        raise ValueError(f"the tokenizer is not a Whisper tokenizer: it lacks {START_OF_TRANSCRIPT} or {END_OF_TEXT}")
    prompt = torch.full((batch, 1), start, dtype=torch.long, device=device)
    language_ids = _language_ids(tokenizer)
    if language_ids:
        if language is not None:
            code = language_code(language)
            language_id = _token_id(tokenizer, f"<|{code}|>")
            if language_id is None:
                raise ValueError(f"the tokenizer has no token for language {code!r}")
            languages = torch.full((batch, 1), language_id, dtype=torch.long, device=device)
        else:
            candidates = torch.tensor(sorted(language_ids), device=device)
            languages = candidates[next_logits(prompt)[:, candidates].argmax(-1)][:, None]
        prompt = torch.cat([prompt, languages], dim=1)
    for token in (TRANSCRIBE if language_ids else None, NO_TIMESTAMPS):
        token_id = None if token is None else _token_id(tokenizer, token)
        if token_id is not None:
            prompt = torch.cat([prompt, torch.full((batch, 1), token_id, dtype=torch.long, device=device)], dim=1)

    room = model.config.max_target_positions - prompt.shape[1]
    steps = room if max_new_tokens is None else max(0, min(max_new_tokens, room))
    # Text only: every special token except <|endoftext|> is barred, plus Whisper's own suppress lists (non-speech
    # symbols; blank or end-of-text as the very first token) when the checkpoint's generation config has them.
    generation_config = getattr(model, "generation_config", None)
    always = {token for token in tokenizer.all_special_ids if token != end}
    always |= set(getattr(generation_config, "suppress_tokens", None) or [])
    at_start = set(getattr(generation_config, "begin_suppress_tokens", None) or [])
    vocab_size = model.config.vocab_size

    tokens = prompt
    generated: list[list[int]] = [[] for _ in range(batch)]
    finished = [False] * batch
    for step in range(steps):
        logits = next_logits(tokens)
        barred = always | at_start if step == 0 else always
        barred_ids = [token for token in barred if 0 <= token < vocab_size]
        if barred_ids:
            logits[:, barred_ids] = float("-inf")
        chosen = logits.argmax(-1)
        for row in range(batch):
            if finished[row]:
                chosen[row] = end
                continue
            token = int(chosen[row])
            if token == end:
                finished[row] = True
                continue
            generated[row].append(token)
            cut = loop_start(generated[row])
            if cut is not None:
                del generated[row][cut:]
                finished[row] = True
        if all(finished):
            break
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    return [text.strip() for text in texts]


__all__ = ["language_code", "transcribe"]
