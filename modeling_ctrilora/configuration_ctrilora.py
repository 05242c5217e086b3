"""C-TriLoRA model configuration."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import WhisperConfig

from .presets import ABLATION_PRESETS, resolve_preset

PADDING_MODES = ("short", "pad_to_30s")
POOLED_NORMALIZATIONS = ("batch", "centered", "none")
DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "surprise")


@strict(accept_kwargs=True)
class CTriLoRAConfig(WhisperConfig):
    r"""
    Configuration of [`WhisperForTriLoRA`]: a Whisper encoder–decoder plus every C-TriLoRA knob. All Whisper fields
    keep their meaning; the fields below are added. Emotion classes are the standard `id2label`/`label2id`.

    num_speakers (`int`, defaults to 2):
        Number of training speakers (size of the speaker head and of the GRL adversary).
    factor_rank (`int`, defaults to 16):
        Rank r_f of each router stream z_k = g_k · B_k A_k h̄ (A_k: d → r_f).
    factor_dim (`int`, defaults to 256):
        Size d_z of each factor z_lex, z_emo, z_spk (and of the Shared-Head projection).
    lora_r (`int`, defaults to 16), lora_alpha (`int`, defaults to 32), lora_dropout (`float`, defaults to 0.0):
        LoRA on the backbone's attention projections. Dropout defaults to 0: the paper gives none and each adapter's
        dropout draws a mask over the whole (B, T, d) input, which cost 28–40 % step time on CPU.
    lora_target_modules (`list[str]`):
        Module names LoRA wraps, in encoder and decoder (self- and cross-attention).
    asr_weight, ser_weight, speaker_weight, adversary_weight, counterfactual_weight, coral_weight,
    orthogonality_weight (`float`):
        Loss weights, L = 0.3·ASR + 1.0·SER + 0.5·(SPK + ADV) + 0.2·CF + 0.1·CORAL + 0.1·ORTH (paper; orthogonality's
        weight is not given there). A preset zeroes the terms it removes (see `active_loss_weights`).
    ser_class_weights (`list[float]`, *optional*):
        Per-emotion CE weights (inverse source-train frequency, mean 1), set by the trainer; `None` = unweighted.
    counterfactual_margin (`float`, defaults to 0.5):
        Margin m of the counterfactual hinge on the distance of L2-normalised z_emo of same-transcript pairs.
    grl_gamma (`float`, defaults to 10.0), grl_max_coefficient (`float`, defaults to 1.0):
        GRL schedule λ(p) = max · (2 / (1 + exp(−γ p)) − 1) over training progress p ∈ [0, 1] (DANN).
    input_padding (`str`, defaults to `"short"`):
        `"short"`: any even frame count ≤ 2·max_source_positions, positions sliced, padded frames masked in the
        encoder's self-attention and in pooling. `"pad_to_30s"`: stock Whisper path, exactly 3000 frames, no
        encoder masking (pooling still skips frames the `attention_mask` marks as padding).
    pooled_normalization (`str`, defaults to `"centered"`):
        How the pooled encoder state h̄ is standardised before the router / Shared-Head projection, with running
        statistics (in training over the step's source and target clips; per process, as `BatchNorm1d` under DDP).
        Whisper's pooled state has a few large constant dimensions (≈ 11 in whisper-base) beside per-clip variation
        of ≈ 0.1; without standardisation the factors start almost constant across clips and the speaker head stays
        at chance on real data. `"centered"`: each dimension centred by its own mean, all divided by one shared scale
        (the root mean variance), so dimensions that barely vary in the training data are not blown up.
        `"batch"`: each dimension by its own standard deviation (`BatchNorm1d` without affine parameters).
        `"none"`: h̄ as is (the paper's formula read literally). With a standardisation, `fit_target_statistics`
        adds statistics of unlabeled target clips for `domain="target"` (AdaBN).
    preset (`str`, defaults to `"full"`):
        Ablation preset (Table I row); see `modeling_ctrilora.presets`.
    in_domain_temperature (`float`, defaults to 1.0), target_temperature (`float`, *optional*):
        Fitted softmax temperatures: on source validation, and domain-adaptive for the target corpus.

    Example:
        >>> from modeling_ctrilora import CTriLoRAConfig
        >>> config = CTriLoRAConfig(num_speakers=24, id2label=dict(enumerate(["neutral", "happy"])))
        >>> config.num_labels
        2
    """

    model_type = "ctrilora"

    num_speakers: int = 2
    factor_rank: int = 16
    factor_dim: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float | int = 0.0
    lora_target_modules: list[str] | tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
    asr_weight: float | int = 0.3
    ser_weight: float | int = 1.0
    speaker_weight: float | int = 0.5
    adversary_weight: float | int = 0.5
    counterfactual_weight: float | int = 0.2
    coral_weight: float | int = 0.1
    orthogonality_weight: float | int = 0.1
    ser_class_weights: list[float] | None = None
    counterfactual_margin: float | int = 0.5
    grl_gamma: float | int = 10.0
    grl_max_coefficient: float | int = 1.0
    input_padding: str = "short"
    pooled_normalization: str = "centered"
    preset: str = "full"
    in_domain_temperature: float | int = 1.0
    target_temperature: float | int | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(DEFAULT_EMOTIONS))
            self.label2id = {label: index for index, label in self.id2label.items()}
        self.lora_target_modules = list(self.lora_target_modules)
        super().__post_init__(**kwargs)

    def validate_ctrilora(self):
        """Part of `@strict` validation: every C-TriLoRA knob in range."""
        if self.input_padding not in PADDING_MODES:
            raise ValueError(f"input_padding={self.input_padding!r}; expected one of {PADDING_MODES}")
        if self.pooled_normalization not in POOLED_NORMALIZATIONS:
            raise ValueError(
                f"pooled_normalization={self.pooled_normalization!r}; expected one of {POOLED_NORMALIZATIONS}"
            )
        if self.preset not in ABLATION_PRESETS:
            raise ValueError(f"preset={self.preset!r}; expected one of {', '.join(ABLATION_PRESETS)}")
        for name in ("num_speakers", "factor_rank", "factor_dim", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        for term, weight in self.loss_weights.items():
            if weight < 0:
                raise ValueError(f"{term}_weight must be ≥ 0, got {weight}")
        if self.ser_class_weights is not None and len(self.ser_class_weights) != self.num_labels:
            raise ValueError(
                f"ser_class_weights has {len(self.ser_class_weights)} entries but there are {self.num_labels} emotions"
            )
        for name in ("in_domain_temperature", "target_temperature"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")

    @property
    def loss_weights(self) -> dict[str, float]:
        """The configured weight of each loss term, before the preset is applied."""
        return {
            "asr": float(self.asr_weight),
            "ser": float(self.ser_weight),
            "speaker": float(self.speaker_weight),
            "adversary": float(self.adversary_weight),
            "counterfactual": float(self.counterfactual_weight),
            "coral": float(self.coral_weight),
            "orthogonality": float(self.orthogonality_weight),
        }

    @property
    def active_loss_weights(self) -> dict[str, float]:
        """Loss weights with the terms the preset removes set to 0."""
        kept = resolve_preset(self.preset).losses
        return {term: (weight if term in kept else 0.0) for term, weight in self.loss_weights.items()}


__all__ = ["CTriLoRAConfig", "DEFAULT_EMOTIONS", "PADDING_MODES", "POOLED_NORMALIZATIONS"]
