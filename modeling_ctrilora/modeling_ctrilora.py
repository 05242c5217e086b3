"""C-TriLoRA: a Whisper encoder–decoder with LoRA, a Tri-LoRA router and emotion/speaker/ASR heads.

Paper: Kynabay, Aldabergen, Kadyrov, "C-TriLoRA: Cross-Corpus Kazakh SER via Tri-Factor LoRA and CORAL".
Design choices where the paper is vague are fixed in the project's DESIGN.md and repeated in the docstrings below.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput
from transformers.models.whisper.modeling_whisper import WhisperPreTrainedModel, shift_tokens_right

from .configuration_ctrilora import CTriLoRAConfig
from .feature_extraction_ctrilora import apply_frame_rule, detect_padding, even_frames
from .losses import (
    coral_loss,
    coral_loss_from_covariances,
    counterfactual_margin_loss,
    covariance,
    grl_coefficient,
    information_maximization_loss,
    minimum_class_confusion_loss,
    orthogonality_loss,
    uniform_confusion_loss,
    weighted_cross_entropy_per_example,
)
from .modeling_backbone import CTriLoRAWhisperModel, additive_key_mask
from .presets import resolve_preset

FACTOR_NAMES = ("lex", "emo", "spk")
IGNORE_INDEX = -100
# Where the audio comes from at inference: like the source corpus, or like the (adaptation) target corpus.
DOMAINS = ("in_domain", "target")


@dataclass
class CTriLoRAOutput(ModelOutput):
    """
    Output of [`WhisperForTriLoRA`]. Every field is optional and `None` where it does not apply (e.g. loss terms
    when no labels were given, routing weights for the Shared-Head variant).

    Args:
        loss (`torch.FloatTensor` of shape `()`): weighted sum of the active loss terms below.
        logits (`torch.FloatTensor` of shape `(batch, num_emotions)`): emotion logits (before temperature).
        speaker_logits (`(batch, num_speakers)`): speaker head on z_spk.
        adversary_logits (`(batch, num_speakers)`): speaker adversary on GRL(z_emo).
        asr_logits (`(batch, target_len, vocab)`): decoder logits, when decoder inputs or `asr_labels` are given.
        routing_weights (`(batch, 3)`): router gates g over (lex, emo, spk).
        pooled (`(batch, d_model)`): masked mean of the encoder's last hidden state over real frames.
        z_lex, z_emo, z_spk (`(batch, factor_dim)`): the three factors (Shared-Head: z_emo = z_spk, z_lex = None).
        target_z_emo (`(target_batch, factor_dim)`): z_emo of the unlabeled target batch, when one was given.
        target_logits (`(target_batch, num_emotions)`): emotion logits of the unlabeled target batch, when one was given.
        asr_loss, ser_loss, speaker_loss, adversary_loss, counterfactual_loss, coral_loss, orthogonality_loss,
            im_loss, mcc_loss (`()`): each unweighted term, computed when its inputs are present and its weight is
            non-zero.
        ser_loss_per_example (`(n_labelled,)`): class-weighted CE of each emotion-labelled row.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    speaker_logits: torch.FloatTensor | None = None
    adversary_logits: torch.FloatTensor | None = None
    asr_logits: torch.FloatTensor | None = None
    routing_weights: torch.FloatTensor | None = None
    pooled: torch.FloatTensor | None = None
    z_lex: torch.FloatTensor | None = None
    z_emo: torch.FloatTensor | None = None
    z_spk: torch.FloatTensor | None = None
    target_z_emo: torch.FloatTensor | None = None
    target_logits: torch.FloatTensor | None = None
    asr_loss: torch.FloatTensor | None = None
    ser_loss: torch.FloatTensor | None = None
    speaker_loss: torch.FloatTensor | None = None
    adversary_loss: torch.FloatTensor | None = None
    counterfactual_loss: torch.FloatTensor | None = None
    coral_loss: torch.FloatTensor | None = None
    orthogonality_loss: torch.FloatTensor | None = None
    im_loss: torch.FloatTensor | None = None
    mcc_loss: torch.FloatTensor | None = None
    ser_loss_per_example: torch.FloatTensor | None = None

    @property
    def emotion_logits(self) -> torch.FloatTensor | None:
        """Alias of `logits` (the audio-classification contract names the class scores `logits`)."""
        return self.logits


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs: torch.Tensor, coefficient: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(coefficient)
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (coefficient,) = ctx.saved_tensors
        return -coefficient.to(grad_output.dtype) * grad_output, None


class GradientReversal(nn.Module):
    """Identity forward, gradient × (−λ) backward (Ganin & Lempitsky 2015), λ following DANN's schedule.

    The step, progress and coefficient live in registered buffers, so they are saved with the model and a resumed
    run continues the schedule where it stopped.
    """

    def __init__(self, config: CTriLoRAConfig):
        super().__init__()
        self.gamma = float(config.grl_gamma)
        self.max_coefficient = float(config.grl_max_coefficient)
        self.register_buffer("coefficient", torch.tensor(0.0))
        self.register_buffer("progress", torch.tensor(0.0))
        self.register_buffer("step", torch.tensor(0, dtype=torch.long))

    def set_progress(self, step: int, max_steps: int) -> float:
        """Move the schedule to `step` of `max_steps`; returns the new λ."""
        progress = step / max(max_steps, 1)
        coefficient = grl_coefficient(progress, self.gamma, self.max_coefficient)
        self.step.fill_(int(step))
        self.progress.fill_(min(max(progress, 0.0), 1.0))
        self.coefficient.fill_(coefficient)
        return coefficient

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(hidden_states, self.coefficient)


class FactorLinear(nn.Linear):
    """A linear map of the router, the Shared-Head projection or a head, initialised with std 1/√fan_in.

    Whisper's own init (std 0.02) suits its wide residual stream; chained through the router's d → r_f → d_z streams
    and a head it makes the factors and logits ≈ 0, so the heads see almost nothing to learn from at the start.
    """


class ZeroInitLinear(nn.Linear):
    """A linear map initialised to zero: FiLM's γ and β (the modulated decoder starts as the pretrained one) and the
    router's gate (routing starts uniform)."""


class PooledStandardization(nn.BatchNorm1d):
    """Standardisation of the pooled state h̄ with running statistics (no affine parameters).

    `per_dimension=True` (`pooled_normalization="batch"`): each dimension by its own standard deviation, as
    `BatchNorm1d`. `per_dimension=False` (`"centered"`): each dimension centred by its own mean, then all divided by
    one scale, the root mean variance, so the dimensions keep the relative spread the backbone gave them and a
    dimension that barely varies in training is not blown up to unit variance.

    In training a step's clips (source and target together when the step has a target batch) give the statistics;
    a training batch of one clip, which has no variance, uses the running statistics instead of failing.

    Target statistics (AdaBN, Li et al. 2016): `set_target_statistics` stores the mean and variance of unlabeled
    target-corpus clips; `forward(..., domain="target")` standardises with them instead of the training statistics,
    so a corpus whose pooled state is shifted is centred on itself. Without them `"target"` falls back to the running
    statistics.
    """

    def __init__(self, dim: int, per_dimension: bool = True):
        super().__init__(dim, affine=False)
        self.per_dimension = per_dimension
        self.register_buffer("target_mean", torch.zeros(dim))
        self.register_buffer("target_var", torch.ones(dim))
        self.register_buffer("target_clips", torch.tensor(0, dtype=torch.long))

    @torch.no_grad()
    def set_target_statistics(self, pooled: torch.Tensor) -> None:
        """Store the statistics of target clips' pooled states (N, d), N ≥ 2."""
        if pooled.ndim != 2 or pooled.shape[0] < 2:
            raise ValueError(f"target statistics need pooled states of shape (N ≥ 2, d); got {tuple(pooled.shape)}")
        self.target_mean.copy_(pooled.mean(0))
        self.target_var.copy_(pooled.var(0, unbiased=True))
        self.target_clips.fill_(pooled.shape[0])

    def forward(self, pooled: torch.Tensor, domain: str = "in_domain", num_source: int | None = None) -> torch.Tensor:
        """Standardise `pooled` (B, d).

        Args:
            domain: `"target"` uses the stored target statistics (AdaBN) when fitted.
            num_source: in training, the number of leading source rows of a joint source + target batch. When given
                (domain-specific normalisation, DSBN, Chang et al. 2019), the source rows are standardised with
                their own batch statistics (which also update the running statistics) and the target rows with
                theirs, so training standardises each domain as the evaluation does (running source statistics
                in domain, target statistics for the target corpus). `None`: one set of statistics for all rows.
        """
        if self.training and num_source is not None and 0 < num_source < pooled.shape[0]:
            source = self(pooled[:num_source], domain="in_domain")
            target_rows = pooled[num_source:]
            if target_rows.shape[0] < 2:
                return torch.cat([source, self._standardise(target_rows, self.running_mean, self.running_var)])
            mean, variance = target_rows.mean(0), target_rows.var(0, unbiased=False)
            return torch.cat([source, self._standardise(target_rows, mean, variance)])
        if domain == "target" and int(self.target_clips) > 0:
            mean, variance = self.target_mean.to(pooled.dtype), self.target_var.to(pooled.dtype)
        elif self.training and pooled.shape[0] > 1:
            mean, variance = pooled.mean(0), pooled.var(0, unbiased=False)
            with torch.no_grad():
                unbiased = variance * pooled.shape[0] / (pooled.shape[0] - 1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean, variance = self.running_mean, self.running_var
        return self._standardise(pooled, mean, variance)

    def _standardise(self, pooled: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        mean, variance = mean.to(pooled.dtype), variance.to(pooled.dtype)
        if not self.per_dimension:
            variance = variance.mean().expand_as(variance)
        return (pooled - mean) * torch.rsqrt(variance + self.eps)


class TriLoRARouter(nn.Module):
    """Conditional Tri-LoRA routing of the pooled encoder state h̄ (size d) into three factors.

    g = softmax(W_g h̄) ∈ R³ (input-conditioned gates) and, for k ∈ {lex, emo, spk}, an independent low-rank stream
    z_k = g_k · B_k A_k h̄ with A_k: d → r_f, B_k: r_f → d_z.
    """

    def __init__(self, config: CTriLoRAConfig):
        super().__init__()
        # Zero init: routing starts uniform (1/3 each) for every clip. A fan-in gate on the standardised pooled state
        # starts with per-clip gates anywhere in 0.01–0.9, which scales each clip's factors at random.
        self.gate = ZeroInitLinear(config.d_model, len(FACTOR_NAMES))
        self.down = nn.ModuleDict(
            {name: FactorLinear(config.d_model, config.factor_rank, bias=False) for name in FACTOR_NAMES}
        )
        self.up = nn.ModuleDict({name: FactorLinear(config.factor_rank, config.factor_dim) for name in FACTOR_NAMES})

    def forward(self, pooled: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """pooled (B, d) → ({"lex", "emo", "spk"}: (B, d_z), gates (B, 3))."""
        factors, gates, _ = self.route(pooled)
        return factors, gates

    def route(self, pooled: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
        """Like `forward`, plus the pre-gate streams B_k A_k h̄ (what a scale-free CORAL compares)."""
        gates = torch.softmax(self.gate(pooled), dim=-1)
        streams = {name: self.up[name](self.down[name](pooled)) for name in FACTOR_NAMES}
        factors = {name: gates[:, index : index + 1] * streams[name] for index, name in enumerate(FACTOR_NAMES)}
        return factors, gates, streams


class FiLM(nn.Module):
    """H' = H ⊙ (1 + γ(z)) + β(z), γ and β zero-initialised so training starts from the pretrained decoder."""

    def __init__(self, config: CTriLoRAConfig):
        super().__init__()
        self.scale = ZeroInitLinear(config.factor_dim, config.d_model)
        self.shift = ZeroInitLinear(config.factor_dim, config.d_model)

    def forward(self, hidden_states: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return hidden_states * (1 + self.scale(condition)[:, None, :]) + self.shift(condition)[:, None, :]


class WhisperForTriLoRA(WhisperPreTrainedModel):
    """
    Whisper encoder–decoder with LoRA on the attention projections (`peft`), a Tri-LoRA router splitting the pooled
    encoder state into lexical, emotional and speaker factors, emotion/speaker heads, a gradient-reversal speaker
    adversary on z_emo (it reads layer-normed GRL(z_emo), so it cannot be beaten by inflating z_emo) and the ASR
    decoder cross-attending to FiLM(z_lex)-modulated encoder states. The pooled state is standardised per dimension
    (`config.pooled_normalization`) before the router.

    Inputs are Whisper log-Mel features of any length T ≤ 2·max_source_positions (3000 for real Whisper) with a
    frame `attention_mask`; positions are sliced to T/2 and padded frames are masked in the encoder's self-attention,
    in the decoder's cross-attention and in pooling, so a clip's outputs do not depend on what it is batched with.
    The stock `WhisperFeatureExtractor` output works as it comes (`prepare_features`):
    `model(**feature_extractor(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="pt"))`.

    Transcription is `modeling_ctrilora.transcribe.transcribe(model, input_features, attention_mask, tokenizer)`, not
    `model.generate` (which raises and says so). `GenerationMixin` does not fit without bending the model: it reads
    next-token scores from `forward(...).logits`, which here are the emotion logits (the audio-classification contract
    the pipeline, the Trainer's metrics and `predict_emotion` rely on); the decoder is conditioned on FiLM(z_lex) with
    z_lex routed from the pooled state of the whole clip and cross-attends under the encoder's padding mask, which a
    plain `encoder_outputs` does not carry; and the decoder keeps no key/value cache. `transcribe` encodes once and
    decodes greedily with Whisper's prompt, language detection, suppress lists and a loop stop.

    Example:
        >>> from modeling_ctrilora import WhisperForTriLoRA
        >>> model = WhisperForTriLoRA.from_whisper("openai/whisper-base", num_emotions=6, num_speakers=24)  # doctest: +SKIP
        >>> out = model(input_features, attention_mask=frame_mask, labels=emotion_ids)  # doctest: +SKIP
        >>> out.loss, out.ser_loss, out.routing_weights.shape  # doctest: +SKIP
    """

    config_class = CTriLoRAConfig
    base_model_prefix = "model"
    main_input_name = "input_features"
    _no_split_modules = ["WhisperEncoderLayer", "WhisperDecoderLayer"]
    # peft's layers and our heads are plain modules the stock Whisper init does not know about.
    _keys_to_ignore_on_load_unexpected = None

    def __init__(self, config: CTriLoRAConfig):
        super().__init__(config)
        self.preset = resolve_preset(config.preset)
        self.model = CTriLoRAWhisperModel(config)
        if config.pooled_normalization != "none":
            self.pooled_standardization = PooledStandardization(
                config.d_model, per_dimension=config.pooled_normalization == "batch"
            )
        if self.preset.router:
            self.router = TriLoRARouter(config)
        else:
            self.shared_projection = FactorLinear(config.d_model, config.factor_dim)
        self.emotion_head = FactorLinear(config.factor_dim, config.num_labels)
        self.speaker_head = FactorLinear(config.factor_dim, config.num_speakers)
        if self.preset.gradient_reversal:
            self.gradient_reversal = GradientReversal(config)
            self.adversary_head = FactorLinear(config.factor_dim, config.num_speakers)
        if self.preset.film:
            self.film = FiLM(config)
        if config.layer_pooling == "learned":
            # Zero logits: the weighted sum starts as the uniform layer average.
            self.layer_weights = nn.Parameter(torch.zeros(config.encoder_layers))
        if config.coral_covariance == "running":
            self.register_buffer("coral_target_covariance", torch.zeros(config.factor_dim, config.factor_dim))
            self.register_buffer("coral_target_steps", torch.tensor(0, dtype=torch.long))
        self.post_init()
        self._inject_lora()

    # ----------------------------------------------------------------------------------------------------- set-up
    def _inject_lora(self) -> None:
        """LoRA on the backbone's attention projections; freezes every backbone weight that is not LoRA."""
        lora_config = LoraConfig(
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=float(self.config.lora_dropout),
            target_modules=list(self.config.lora_target_modules),
            bias="none",
        )
        inject_adapter_in_model(lora_config, self.model)
        self.freeze_backbone()

    def freeze_backbone(self) -> None:
        """Only LoRA weights train inside the Whisper backbone; router, heads and FiLM stay trainable."""
        for name, parameter in self.model.named_parameters():
            parameter.requires_grad_("lora_" in name)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        # Loading materialises fresh parameters with requires_grad=True; restore the frozen backbone.
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.freeze_backbone()
        return loaded

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, FactorLinear):
            init.normal_(module.weight, std=module.in_features**-0.5)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ZeroInitLinear):
            # On the linear layers themselves: transformers skips `_init_weights` for a custom-code module without
            # parameters of its own (FiLM), so a FiLM-level branch would never run.
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, WhisperForTriLoRA) and getattr(module, "layer_weights", None) is not None:
            init.zeros_(module.layer_weights)
        elif isinstance(module, PooledStandardization):
            # Checkpoints saved before target statistics existed lack these buffers: "none fitted".
            init.zeros_(module.target_mean)
            init.ones_(module.target_var)
            init.zeros_(module.target_clips)

    @classmethod
    def from_whisper(
        cls,
        base_model: str | os.PathLike,
        num_emotions: int | None = None,
        num_speakers: int = 2,
        id2label: dict[int, str] | None = None,
        **overrides: Any,
    ) -> "WhisperForTriLoRA":
        """Build from any Whisper checkpoint (folder or Hub id), keeping its pretrained weights.

        Args:
            base_model: a Whisper checkpoint, e.g. `"openai/whisper-base"` or a local folder.
            num_emotions: number of emotion classes (`LABEL_i` names) when `id2label` is not given.
            num_speakers: size of the speaker head / adversary.
            id2label: emotion names by id; wins over `num_emotions`.
            **overrides: any `CTriLoRAConfig` field (e.g. `preset="shared_head"`, `lora_r=8`).

        Returns:
            The model with LoRA injected, the backbone frozen and router/heads trainable (randomly initialised).
        """
        whisper = WhisperForConditionalGeneration.from_pretrained(base_model)
        if id2label is None and num_emotions is not None:
            id2label = {index: f"LABEL_{index}" for index in range(num_emotions)}
        label_fields = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}} if id2label else {}
        whisper_fields = {
            key: value
            for key, value in whisper.config.to_dict().items()
            if key in WhisperConfig.__dataclass_fields__ and key not in ("id2label", "label2id")
        }
        config = CTriLoRAConfig(**{**whisper_fields, "num_speakers": num_speakers, **label_fields, **overrides})
        model = cls(config)
        model.config._name_or_path = str(base_model)
        model._load_backbone_state(whisper.model.state_dict())
        model.generation_config = whisper.generation_config
        return model

    def _load_backbone_state(self, whisper_state: dict[str, torch.Tensor]) -> None:
        """Copy a `WhisperModel` state dict into the LoRA-wrapped backbone (`q_proj.weight` → `q_proj.base_layer.weight`)."""
        own = self.model.state_dict()
        remapped = {}
        for key, tensor in whisper_state.items():
            if key not in own:
                module, _, leaf = key.rpartition(".")
                key = f"{module}.base_layer.{leaf}"
            remapped[key] = tensor
        missing = sorted(key for key in own if key not in remapped and "lora_" not in key)
        unexpected = sorted(key for key in remapped if key not in own)
        if missing or unexpected:
            raise ValueError(f"Whisper weights do not fit this backbone: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.model.load_state_dict(remapped, strict=False)

    def trainable_parameter_report(self) -> dict[str, float]:
        """Trainable vs total parameters (the real fraction: 1.60 % for whisper-base, not the paper's 0.31 %)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return {"trainable": trainable, "total": total, "fraction": trainable / total}

    def print_trainable_parameters(self) -> None:
        """peft-style one-line report of the trainable share."""
        report = self.trainable_parameter_report()
        print(
            f"trainable params: {report['trainable']:,} || all params: {report['total']:,} || "
            f"trainable%: {100 * report['fraction']:.4f}"
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.model.decoder.embed_tokens

    # ------------------------------------------------------------------------------------------------- encoder
    def prepare_features(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, name: str = "input_features"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check a log-Mel batch and bring it to what the encoder runs on; takes the stock extractor's output as it comes.

        With `config.input_padding="short"`:

        - an `attention_mask` (the project's collator, or `feature_extractor(..., return_attention_mask=True)`, whose
          mask is frame-level): the batch is sliced to its longest real clip, so 3000 stock frames run at the true
          length;
        - an odd frame count (`feature_extractor(..., padding="longest")` for about half of all clips): the frame
          rule of `feature_extraction_ctrilora`, one zero frame appended and masked;
        - no mask and the full 2·max_source_positions frames (`feature_extractor(audio, return_tensors="pt")`): the
          stock extractor zero-pads the waveform, so padded frames hold the clip's log-Mel floor in every mel bin;
          `detect_padding` finds that trailing run and masks it (a clip ending in digital silence loses that tail).

        `"pad_to_30s"` takes exactly 2·max_source_positions frames, as stock Whisper does.

        Returns:
            `(input_features, attention_mask)`; the mask is `None` only when every frame is real.

        Raises:
            ValueError: wrong rank or mel bins, too many frames, a mask of the wrong shape or without a real frame.
        """
        if input_features.dim() != 3:
            raise ValueError(f"{name} must be (batch, mel_bins, frames), got shape {tuple(input_features.shape)}")
        batch, mel_bins, frames = input_features.shape
        if mel_bins != self.config.num_mel_bins:
            raise ValueError(
                f"{name} has {mel_bins} mel bins; this model expects {self.config.num_mel_bins} "
                "(config.num_mel_bins — use the checkpoint's WhisperFeatureExtractor)"
            )
        max_frames = 2 * self.config.max_source_positions
        if self.config.input_padding == "pad_to_30s" and frames != max_frames:
            raise ValueError(
                f"{name} has {frames} frames; input_padding='pad_to_30s' needs exactly {max_frames} "
                "(pad with the feature extractor, padding='max_length')"
            )
        if frames > max_frames:
            raise ValueError(f"{name} has {frames} frames; at most {max_frames} (30 s) are supported")
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (batch, frames):
                raise ValueError(
                    f"attention_mask for {name} must be (batch, frames) = {(batch, frames)}, got {tuple(attention_mask.shape)}"
                )
            empty = (attention_mask.sum(-1) == 0).nonzero().flatten().tolist()
            if empty:
                raise ValueError(f"attention_mask for {name} marks no real frame in rows {empty}")
        if self.config.input_padding == "pad_to_30s":
            return input_features, attention_mask
        if attention_mask is None and frames == max_frames:
            attention_mask = detect_padding(input_features)
        if attention_mask is not None:
            positions = torch.arange(1, frames + 1, device=attention_mask.device)
            keep = even_frames(int((attention_mask.bool() * positions).amax()))
            if keep < frames:
                input_features, attention_mask = input_features[..., :keep], attention_mask[:, :keep]
        return apply_frame_rule(input_features, attention_mask)

    def encode(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, output_layers: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Run the Whisper encoder (`CTriLoRAEncoder`) at the clip's true length.

        Args:
            input_features: (B, n_mels, T) log-Mel, T ≤ 2·max_source_positions; the stock extractor's output as it
                comes (see `prepare_features`).
            attention_mask: (B, T), 1 = real frame; `None` = every frame is real (or, for the stock 30 s window under
                `input_padding="short"`, the trailing padding frames are found, see `prepare_features`).
            output_layers: also return every layer's output (the last one after the final layer norm, as in
                transformers' `hidden_states`).

        Returns:
            hidden states (B, T/2, d) after the final layer norm, and the position mask (B, T/2), `True` = real;
            with `output_layers`, a third item: the list of the L layers' outputs.
        """
        input_features, attention_mask = self.prepare_features(input_features, attention_mask)
        output = self.model.encoder(input_features, attention_mask, output_layers=output_layers)
        if output_layers:
            return output.last_hidden_state, output.position_mask, list(output.layer_states)
        return output.last_hidden_state, output.position_mask

    def pooled_state(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Encode and pool as `config.layer_pooling` says: (pooled (B, d), encoder states (B, S, d), position mask).

        `"last"` is the masked mean of the final layer (Eq. 4 over true frames); `"mean"` / `"learned"` average the
        masked means of all L layers uniformly / with softmax(`layer_weights`).
        """
        if self.config.layer_pooling == "last":
            states, position_mask = self.encode(input_features, attention_mask)
            return self.masked_mean(states, position_mask), states, position_mask
        states, position_mask, layers = self.encode(input_features, attention_mask, output_layers=True)
        pooled_layers = torch.stack([self.masked_mean(layer, position_mask) for layer in layers], dim=1)
        if self.config.layer_pooling == "mean":
            return pooled_layers.mean(1), states, position_mask
        weights = torch.softmax(self.layer_weights.float(), 0).to(pooled_layers.dtype)
        return (pooled_layers * weights[None, :, None]).sum(1), states, position_mask

    @staticmethod
    def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of hidden (B, S, d) over positions where mask (B, S) is True (Eq. 4 of the paper over true frames)."""
        weights = mask.to(hidden.dtype)[..., None]
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def factorise(
        self, pooled: torch.Tensor, domain: str = "in_domain", num_source: int | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """pooled (B, d) → (z_lex, z_emo, z_spk, routing weights); Shared-Head: (None, z, z, None).

        `domain="target"` standardises with the stored target-corpus statistics (see `fit_target_statistics`);
        `num_source` (training, DSBN) standardises the leading source rows and the target rows separately.
        """
        z_lex, z_emo, z_spk, gates, _ = self._factorise_with_stream(pooled, domain, num_source)
        return z_lex, z_emo, z_spk, gates

    def _factorise_with_stream(
        self, pooled: torch.Tensor, domain: str = "in_domain", num_source: int | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if domain not in DOMAINS:
            raise ValueError(f"domain={domain!r}; expected one of {DOMAINS}")
        if self.config.pooled_normalization != "none":
            pooled = self.pooled_standardization(pooled, domain=domain, num_source=num_source)
        if self.preset.router:
            factors, gates, streams = self.router.route(pooled)
            return factors["lex"], factors["emo"], factors["spk"], gates, streams["emo"]
        shared = self.shared_projection(pooled)
        return None, shared, shared, None, shared

    # ------------------------------------------------------------------------------------------------- decoder
    def generate(self, *args: Any, **kwargs: Any):
        """Not available: transcribe with `modeling_ctrilora.transcribe.transcribe` (why: the class docstring)."""
        raise NotImplementedError(
            "WhisperForTriLoRA has no generate(): its forward's `logits` are the emotion scores and its decoder is "
            "conditioned on FiLM(z_lex) of the whole clip, which GenerationMixin cannot drive. Transcribe with "
            "modeling_ctrilora.transcribe.transcribe(model, input_features, attention_mask, tokenizer, language=...) "
            "(or `ctrilora predict --transcribe`)"
        )

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        position_mask: torch.Tensor,
        z_lex: torch.Tensor | None,
    ) -> torch.Tensor:
        """Teacher-forced decoder → ASR logits (B, L, vocab); cross-attention skips padded encoder positions.

        The decoder (`CTriLoRADecoder`) cross-attends to FiLM(z_lex)-modulated encoder states; the output projection
        is tied to the token embedding, as in Whisper.
        """
        if self.preset.film and z_lex is not None:
            encoder_hidden_states = self.film(encoder_hidden_states, z_lex)
        hidden = self.model.decoder(decoder_input_ids, encoder_hidden_states, position_mask).last_hidden_state
        return nn.functional.linear(hidden, self.model.decoder.embed_tokens.weight)

    # ------------------------------------------------------------------------------------------------- forward
    def _check_labels(self, labels: torch.Tensor | None, size: int, name: str) -> None:
        if labels is None:
            return
        bad = ((labels != IGNORE_INDEX) & ((labels < 0) | (labels >= size))).nonzero().flatten().tolist()
        if bad:
            raise ValueError(f"{name} {labels[bad].tolist()} (rows {bad}) are outside [0, {size}) and not {IGNORE_INDEX}")

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        speaker_labels: torch.Tensor | None = None,
        asr_labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        transcript_ids: torch.Tensor | None = None,
        target_input_features: torch.Tensor | None = None,
        target_attention_mask: torch.Tensor | None = None,
        feature_gatherer: Callable[[torch.Tensor], torch.Tensor] | None = None,
        domain: str = "in_domain",
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> CTriLoRAOutput:
        r"""
        Args:
            input_features (`(B, n_mels, T)`): log-Mel features, T even, ≤ 2·max_source_positions.
            attention_mask (`(B, T)`): 1 = real frame, 0 = padding. `None` = all real.
            labels (`(B,)`): emotion ids, −100 = unknown.
            speaker_labels (`(B,)`): speaker ids, −100 = unknown.
            asr_labels (`(B, L)`): transcript token ids (without the decoder start token), −100 = ignored.
            decoder_input_ids (`(B, L)`): decoder inputs; by default `asr_labels` shifted right.
            transcript_ids (`(B,)`): transcript-group ids for the counterfactual pairs, −1 = unknown.
            target_input_features / target_attention_mask: an unlabeled target-corpus batch for CORAL; it is encoded
                in the same pass (padding is masked, so batching them together changes no clip's outputs).
            feature_gatherer: applied to source and target z_emo before the CORAL covariances — the trainer passes
                an all-gather (with gradients) under several processes; identity by default. CORAL stays in the
                model rather than the Trainer because it is more than a covariance distance: the model scales the
                CORAL inputs (`config.coral_input`, one source-batch scale for both domains) and keeps the running
                target covariance buffer (`config.coral_covariance="running"`, saved with the checkpoint); computing
                it in the Trainer would split one loss across two places. The gatherer is the one hook the
                multi-process case needs.
            domain (`"in_domain"` or `"target"`): `"target"` standardises the pooled state with the statistics of
                the target corpus stored by `fit_target_statistics` (inference on target-corpus audio).
        """
        input_features, attention_mask = self.prepare_features(input_features, attention_mask, "input_features")
        batch = input_features.shape[0]
        weights = self.config.active_loss_weights
        features, mask = input_features, attention_mask
        has_target = target_input_features is not None
        separate_target = has_target and not self.config.target_encoder_gradients and torch.is_grad_enabled()
        if has_target:
            target_input_features, target_attention_mask = self.prepare_features(
                target_input_features, target_attention_mask, "target_input_features"
            )
        if has_target and not separate_target:
            features, mask = self._concatenate_batches(input_features, attention_mask, target_input_features, target_attention_mask)
        pooled_all, encoder_states, position_mask = self.pooled_state(features, mask)
        if separate_target:
            # The target clips pass the encoder without a graph (a forward pass only, no backward through the
            # backbone): their pooled states still feed the router, the heads and the target side of CORAL / DSBN.
            with torch.no_grad():
                target_pooled, _, _ = self.pooled_state(target_input_features, target_attention_mask)
            pooled_all = torch.cat([pooled_all, target_pooled.to(pooled_all.dtype)])
        # DSBN: source and target rows standardised with their own statistics in training (as at test).
        num_source = batch if (has_target and self.training and self.config.domain_specific_normalization) else None
        z_lex_all, z_emo_all, z_spk_all, gates_all, emo_stream_all = self._factorise_with_stream(
            pooled_all, domain=domain, num_source=num_source
        )
        source = slice(0, batch)
        z_lex = None if z_lex_all is None else z_lex_all[source]
        z_emo, z_spk = z_emo_all[source], z_spk_all[source]
        gates = None if gates_all is None else gates_all[source]
        target_z_emo = z_emo_all[batch:] if has_target else None

        logits_all = self.emotion_head(z_emo_all)
        logits = logits_all[source]
        target_logits = logits_all[batch:] if has_target else None
        speaker_logits = self.speaker_head(z_spk)
        adversary_logits = None
        confusion_logits = None
        if self.preset.gradient_reversal:
            # The adversary sees the direction of z_emo only (layer norm without affine, after the reversal): its
            # reversed gradient then has no component along z_emo, so the router cannot "beat" it by inflating
            # z_emo through the emotion gate — on real whisper-base that collapsed the gates onto z_emo, sent the
            # adversary's CE to ~10 and left z_spk at zero.
            if self.config.adversary_objective == "reversal":
                reversed_z_emo = self.gradient_reversal(z_emo)
                adversary_logits = self.adversary_head(nn.functional.layer_norm(reversed_z_emo, reversed_z_emo.shape[-1:]))
            else:
                # Domain confusion (Tzeng et al. 2015): the head learns speakers from detached z_emo; the encoder side
                # is scored by the frozen head against a uniform speaker posterior.
                normed = nn.functional.layer_norm(z_emo, z_emo.shape[-1:])
                adversary_logits = self.adversary_head(normed.detach())
                head = self.adversary_head
                confusion_logits = nn.functional.linear(normed, head.weight.detach(), head.bias.detach())

        asr_logits = None
        run_decoder = decoder_input_ids is not None or (asr_labels is not None and weights["asr"] > 0)
        if run_decoder:
            if decoder_input_ids is None:
                decoder_input_ids = shift_tokens_right(asr_labels, self.config.pad_token_id, self.config.decoder_start_token_id)
            asr_logits = self.decode(decoder_input_ids, encoder_states[source], position_mask[source], z_lex)

        self._check_labels(labels, self.config.num_labels, "labels")
        self._check_labels(speaker_labels, self.config.num_speakers, "speaker_labels")
        terms: dict[str, torch.Tensor] = {}
        ser_per_example = None
        if labels is not None and weights["ser"] > 0:
            class_weights = None
            if self.config.ser_class_weights is not None:
                class_weights = torch.tensor(self.config.ser_class_weights, device=logits.device)
            ser_per_example = weighted_cross_entropy_per_example(logits, labels, class_weights)
            terms["ser"] = self._mean_or_zero(ser_per_example, logits)
        if speaker_labels is not None:
            if weights["speaker"] > 0:
                terms["speaker"] = self._cross_entropy(speaker_logits, speaker_labels)
            if adversary_logits is not None and weights["adversary"] > 0:
                terms["adversary"] = self._cross_entropy(adversary_logits, speaker_labels)
                if confusion_logits is not None:
                    # Shifted by log K so the term is 0 at a speaker-blind z_emo (the minimum of the confusion CE).
                    known = speaker_labels != IGNORE_INDEX
                    if known.any():
                        confusion = uniform_confusion_loss(confusion_logits[known]) - math.log(self.config.num_speakers)
                        terms["adversary"] = terms["adversary"] + confusion
        if asr_labels is not None and asr_logits is not None and weights["asr"] > 0:
            terms["asr"] = self._cross_entropy(asr_logits.flatten(0, 1), asr_labels.flatten())
        if transcript_ids is not None and labels is not None and weights["counterfactual"] > 0:
            terms["counterfactual"] = counterfactual_margin_loss(
                z_emo, z_lex, transcript_ids, labels, float(self.config.counterfactual_margin)
            )
        if target_z_emo is not None and weights["coral"] > 0:
            gather = feature_gatherer or (lambda tensor: tensor)
            terms["coral"] = self._coral(gather, z_emo, target_z_emo, emo_stream_all[source], emo_stream_all[batch:])
        if target_logits is not None and weights["im"] > 0:
            terms["im"] = information_maximization_loss(target_logits)
        if target_logits is not None and weights["mcc"] > 0:
            terms["mcc"] = minimum_class_confusion_loss(target_logits, float(self.config.mcc_temperature))
        has_any_label = any(value is not None for value in (labels, speaker_labels, asr_labels))
        if has_any_label and z_lex is not None and weights["orthogonality"] > 0:
            terms["orthogonality"] = orthogonality_loss([z_lex, z_emo, z_spk])

        loss = sum(weights[name] * value for name, value in terms.items()) if terms else None
        return CTriLoRAOutput(
            loss=loss,
            logits=logits,
            speaker_logits=speaker_logits,
            adversary_logits=adversary_logits,
            asr_logits=asr_logits,
            routing_weights=gates,
            pooled=pooled_all[source],
            z_lex=z_lex,
            z_emo=z_emo,
            z_spk=z_spk,
            target_z_emo=target_z_emo,
            target_logits=target_logits,
            ser_loss_per_example=ser_per_example,
            **{f"{name}_loss": value for name, value in terms.items()},
        )

    def _coral(
        self,
        gather: Callable[[torch.Tensor], torch.Tensor],
        z_emo: torch.Tensor,
        target_z_emo: torch.Tensor,
        stream: torch.Tensor,
        target_stream: torch.Tensor,
    ) -> torch.Tensor:
        """CORAL between the source and target batch as `config.coral_input` / `coral_covariance` say."""
        if self.config.coral_input == "gated_z_emo":
            source_features, target_features = gather(z_emo), gather(target_z_emo)
        else:
            source_features, target_features = gather(stream).float(), gather(target_stream).float()
            # Each domain centred on itself, both divided by one scale (the source batch's root mean variance).
            scale = source_features.var(0, unbiased=False).mean().clamp_min(1e-8).sqrt().detach()
            source_features = (source_features - source_features.mean(0)) / scale
            target_features = (target_features - target_features.mean(0)) / scale
        if self.config.coral_covariance == "batch":
            return coral_loss(source_features, target_features)
        if source_features.shape[0] < 2 or target_features.shape[0] < 2:
            return (source_features.sum() + target_features.sum()) * 0.0
        batch_covariance = covariance(target_features.float())
        if not self.training:
            return coral_loss_from_covariances(covariance(source_features.float()), batch_covariance)
        # Moving average over steps; the first step starts it from the batch (no bias towards the zero init).
        momentum = 1.0 if int(self.coral_target_steps) == 0 else float(self.config.coral_momentum)
        running = self.coral_target_covariance.to(batch_covariance.dtype)
        target_covariance = (1 - momentum) * running + momentum * batch_covariance
        with torch.no_grad():
            self.coral_target_covariance.copy_(target_covariance.detach())
            self.coral_target_steps.add_(1)
        return coral_loss_from_covariances(covariance(source_features.float()), target_covariance)

    @staticmethod
    def _mean_or_zero(values: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        return values.mean() if values.numel() else anchor.sum() * 0.0

    @classmethod
    def _cross_entropy(cls, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean CE over rows not labelled −100; 0 (in the graph) when every row is ignored."""
        keep = labels != IGNORE_INDEX
        if not keep.any():
            return logits.sum() * 0.0
        return nn.functional.cross_entropy(logits[keep], labels[keep])

    @staticmethod
    def _concatenate_batches(
        first: torch.Tensor, first_mask: torch.Tensor | None, second: torch.Tensor, second_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack two feature batches, padding the shorter in time; masks mark each one's real frames."""
        frames = max(first.shape[-1], second.shape[-1])

        def padded(features: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
            if mask is None:
                mask = torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=features.device)
            extra = frames - features.shape[-1]
            return nn.functional.pad(features, (0, extra)), nn.functional.pad(mask.long(), (0, extra))

        (a, a_mask), (b, b_mask) = padded(first, first_mask), padded(second, second_mask)
        return torch.cat([a, b.to(a.dtype)]), torch.cat([a_mask, b_mask.to(a_mask.device)])

    # ------------------------------------------------------------------------------------------------ inference
    @contextlib.contextmanager
    def merged_lora(self) -> Iterator["WhisperForTriLoRA"]:
        """Fold every LoRA update into its base projection (W + (α/r)·BA, peft's `merge`) for the block, then restore.

        Inference inside the block runs one matmul per attention projection instead of the base matmul plus the two
        low-rank ones; the outputs equal the unmerged model's up to float rounding. On leaving, the base weights are
        copied back from clones taken before the merge, so they are bit-for-bit the trained ones (peft's `unmerge`
        subtracts the update again and leaves rounding residue that would accumulate over repeated evaluations).
        The clones cost one copy of the adapted projections' weights (about 75 MB for whisper-base). Nested use is a
        no-op. Only for inference: the adapters are what trains, so the model must be in eval mode.

        Example:

        ```python
        >>> model.eval()
        >>> with model.merged_lora():
        ...     probabilities = model.predict_emotion(features, attention_mask, domain="target")
        ```
        """
        if self.training:
            raise RuntimeError("merged_lora() is for inference; call model.eval() first (training updates the adapters)")
        # Only layers not merged yet: inside an outer block there are none, so a nested block changes nothing.
        layers = [module for module in self.model.modules() if isinstance(module, LoraLayer) and not module.merged]
        originals = [layer.get_base_layer().weight.detach().clone() for layer in layers]
        try:
            # The update is folded in the weights' own dtype even inside an autocast region (bf16 inference), so
            # the merged weight is W + s·BA to fp32 precision and autocast rounds it like any other weight.
            with torch.autocast(device_type=self.device.type, enabled=False):
                for layer in layers:
                    layer.merge()
            yield self
        finally:
            with torch.no_grad():
                for layer, weight in zip(layers, originals):
                    layer.get_base_layer().weight.copy_(weight)
                    layer.merged_adapters.clear()

    @torch.no_grad()
    def fit_target_statistics(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> int:
        """Store the pooled-state statistics of unlabeled target-corpus clips (AdaBN) for `domain="target"`.

        Args:
            batches: dicts with `input_features` and (optionally) `attention_mask`, e.g. a DataLoader over the
                target adaptation split; labels are not read.

        Returns:
            The number of clips the statistics come from.
        """
        if self.config.pooled_normalization == "none":
            raise ValueError("target statistics need a pooled standardisation; this model has pooled_normalization='none'")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        pooled = []
        for batch in batches:
            features = batch["input_features"].to(device)
            mask = batch.get("attention_mask")
            features, mask = self.prepare_features(features, None if mask is None else mask.to(device))
            pooled_batch, _, _ = self.pooled_state(features, mask)
            pooled.append(pooled_batch.float())
        if not pooled:
            raise ValueError("fit_target_statistics got no batches")
        self.pooled_standardization.set_target_statistics(torch.cat(pooled))
        self.train(was_training)
        return int(self.pooled_standardization.target_clips)

    @torch.no_grad()
    def predict_emotion(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, domain: str = "in_domain"
    ) -> torch.Tensor:
        """Emotion probabilities (B, E) after the stored temperature.

        Args:
            domain: `"in_domain"` uses `config.in_domain_temperature` (fitted on source validation); `"target"` uses
                `config.target_temperature` (domain-adaptive, fitted on unlabeled target data), falling back to the
                in-domain one when none was fitted, and the stored target statistics of the pooled state (when
                `fit_target_statistics` was run).
        """
        if domain not in DOMAINS:
            raise ValueError(f"domain={domain!r}; expected one of {DOMAINS}")
        temperature = self.config.in_domain_temperature
        if domain == "target" and self.config.target_temperature is not None:
            temperature = self.config.target_temperature
        logits = self(input_features, attention_mask=attention_mask, domain=domain).logits
        return torch.softmax(logits.float() / float(temperature), dim=-1)


__all__ = ["CTriLoRAOutput", "FiLM", "GradientReversal", "TriLoRARouter", "WhisperForTriLoRA"]
