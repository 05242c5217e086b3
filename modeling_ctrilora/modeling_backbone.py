"""The Whisper backbone of C-TriLoRA: encoder and decoder subclasses that run clips at their true length.

Stock `WhisperEncoder` accepts exactly 3000 frames and ignores any mask; stock `WhisperDecoder` cannot mask the
encoder positions it cross-attends to. `CTriLoRAEncoder` and `CTriLoRADecoder` keep transformers'
layer → encoder → model structure (the stock `WhisperEncoderLayer` / `WhisperDecoderLayer` do the work) and change
only the loops around the layers; `CTriLoRAWhisperModel` installs them under the stock attribute names, so the
state-dict keys (`model.encoder.*`, `model.decoder.*`) are those of `WhisperModel` and every checkpoint loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput, ModelOutput
from transformers.models.whisper.modeling_whisper import (
    WhisperDecoder,
    WhisperEncoder,
    WhisperModel,
    WhisperPreTrainedModel,
)


def additive_key_mask(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) bool, True = attend → (B, 1, 1, S) additive mask (0 or the dtype's minimum)."""
    additive = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    additive = additive.masked_fill(~key_mask, torch.finfo(dtype).min)
    return additive[:, None, None, :]


@dataclass
class CTriLoRAEncoderOutput(ModelOutput):
    """Output of `CTriLoRAEncoder`.

    Args:
        last_hidden_state (`(B, T/2, d)`): the last layer's output after the final layer norm.
        position_mask (`(B, T/2)` bool): `True` at encoder positions of real frames.
        layer_states (tuple of L `(B, T/2, d)`): with `output_layers=True`, every layer's output, the last one
            after the final layer norm (as in transformers' `hidden_states`).
    """

    last_hidden_state: torch.FloatTensor | None = None
    position_mask: torch.BoolTensor | None = None
    layer_states: tuple[torch.FloatTensor, ...] | None = None


class CTriLoRAEncoder(WhisperEncoder):
    """`WhisperEncoder` at any even frame count T ≤ 2·max_source_positions, with a frame mask.

    `WhisperForTriLoRA.prepare_features` brings any input to that form first (the frame rule for an odd count).

    With `config.input_padding="short"` the padded frames (and conv1's output there) are zeroed, so the convolutions
    see exactly the zero padding they see when the clip runs alone, and padded positions are masked in
    self-attention: a clip's outputs do not depend on what it is batched with. Positions are sliced to T/2.
    `"pad_to_30s"` runs the stock computation (no masking) on the 30 s window.
    """

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_layers: bool = False,
        **kwargs: Any,
    ) -> CTriLoRAEncoderOutput:
        """
        Args:
            input_features: (B, n_mels, T) log-Mel, T even.
            attention_mask: (B, T) frame mask, 1 = real frame; `None` = every frame is real.
            output_layers: also return every layer's output.
        """
        features = input_features.to(self.conv1.weight.dtype)
        frames = features.shape[-1]
        if attention_mask is None:
            attention_mask = torch.ones(features.shape[0], frames, dtype=torch.long, device=features.device)
        frame_mask = attention_mask.to(features.device).bool()
        short = getattr(self.config, "input_padding", "short") == "short"
        if short:
            features = features * frame_mask[:, None, :]
        hidden = nn.functional.gelu(self.conv1(features))
        if short:
            hidden = hidden * frame_mask[:, None, :]
        hidden = nn.functional.gelu(self.conv2(hidden)).permute(0, 2, 1)
        positions = hidden.shape[1]
        real_frames = frame_mask.sum(-1)
        position_mask = torch.arange(positions, device=hidden.device)[None, :] < ((real_frames + 1) // 2)[:, None]
        hidden = hidden + self.embed_positions.weight[:positions]
        hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        self_attention_mask = additive_key_mask(position_mask, hidden.dtype) if short else None
        layer_states = []
        for layer in self.layers:
            if not (self.training and self.layerdrop > 0 and torch.rand([]) < self.layerdrop):
                hidden = layer(hidden, self_attention_mask)
            layer_states.append(hidden)
        final = self.layer_norm(hidden)
        return CTriLoRAEncoderOutput(
            last_hidden_state=final,
            position_mask=position_mask,
            layer_states=(*layer_states[:-1], final) if output_layers else None,
        )


class CTriLoRADecoder(WhisperDecoder):
    """Teacher-forced `WhisperDecoder` whose cross-attention skips padded encoder positions (no cache)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_position_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput:
        """
        Args:
            input_ids: (B, L) decoder input ids, L ≤ max_target_positions.
            encoder_hidden_states: (B, S, d) states to cross-attend to.
            encoder_position_mask: (B, S) bool, `True` = real position; `None` = all real.

        Returns:
            `last_hidden_state` (B, L, d) after the final layer norm.
        """
        length = input_ids.shape[1]
        if length > self.max_target_positions:
            raise ValueError(
                f"decoder inputs have {length} tokens; the decoder holds at most {self.max_target_positions}"
            )
        hidden = self.embed_tokens(input_ids) + self.embed_positions.weight[:length]
        hidden = nn.functional.dropout(hidden, p=self.dropout, training=self.training)
        causal = torch.full(
            (length, length), torch.finfo(hidden.dtype).min, dtype=hidden.dtype, device=hidden.device
        ).triu(1)[None, None]
        cross_mask = None
        if encoder_position_mask is not None:
            cross_mask = additive_key_mask(encoder_position_mask, hidden.dtype)
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and torch.rand([]) < self.layerdrop:
                continue
            hidden = layer(hidden, causal, encoder_hidden_states, encoder_attention_mask=cross_mask, cache=None, use_cache=False)
        return BaseModelOutput(last_hidden_state=self.layer_norm(hidden))


class CTriLoRAWhisperModel(WhisperModel):
    """`WhisperModel` with `CTriLoRAEncoder` and `CTriLoRADecoder` under the stock names `encoder` / `decoder`."""

    def __init__(self, config):
        WhisperPreTrainedModel.__init__(self, config)
        self.encoder = CTriLoRAEncoder(config)
        self.decoder = CTriLoRADecoder(config)
        self.post_init()


__all__ = [
    "CTriLoRADecoder",
    "CTriLoRAEncoder",
    "CTriLoRAEncoderOutput",
    "CTriLoRAWhisperModel",
    "additive_key_mask",
]
