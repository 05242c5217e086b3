"""C-TriLoRA model configuration."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import WhisperConfig

from .presets import ABLATION_PRESETS, LOSS_TERMS, PAPER_RECIPE, resolve_preset

PADDING_MODES = ("short", "pad_to_30s")
POOLED_NORMALIZATIONS = ("batch", "centered", "none")
LAYER_POOLINGS = ("last", "mean", "learned")
CORAL_INPUTS = ("gated_z_emo", "standardized_z_emo")
CORAL_COVARIANCES = ("batch", "running")
ADVERSARY_OBJECTIVES = ("reversal", "confusion")
DEFAULT_EMOTIONS = ("neutral", "happy", "sad", "angry", "fear", "surprise")


@strict(accept_kwargs=True)
class CTriLoRAConfig(WhisperConfig):
    r"""
    Configuration of [`WhisperForTriLoRA`]: a Whisper encoder–decoder plus every C-TriLoRA knob. All Whisper fields
    keep their meaning; the fields below are added. Emotion classes are the standard `id2label`/`label2id`.

    num_speakers (`int`, defaults to 2):
        Number of training speakers (size of the speaker head and of the GRL adversary).
    factor_rank (`int`, *optional*):
        Rank r_f of each router stream z_k = g_k · B_k A_k h̄ (A_k: d → r_f). `None` takes the preset's recipe: the
        paper's 16 (`PAPER_RECIPE`) or the cross-corpus recipe's value (`CROSS_CORPUS_RECIPE`, see its comment).
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
    grl_gamma (`float`), grl_max_coefficient (`float`):
        GRL schedule λ(p) = max · (2 / (1 + exp(−γ p)) − 1) over training progress p ∈ [0, 1] (DANN; the paper
        recipe 10 and 1.0, the cross-corpus recipe 5 and 0.3: a capped, slower ramp).
    im_weight (`float`, defaults to 0), mcc_weight (`float`, defaults to 0), mcc_temperature (`float`, 2.5):
        Target-side objectives on the unlabeled target batch's emotion logits: information maximisation (SHOT,
        Liang et al. 2020) and minimum class confusion (MCC, Jin et al. 2020); see `losses`.

    Method knobs (`None` = the preset's recipe: `presets.PAPER_RECIPE` for `paper` and the baselines,
    `presets.CROSS_CORPUS_RECIPE` for `full` and its ablations; an explicit value wins). `adversary_weight`,
    `coral_weight`, `grl_gamma` and `grl_max_coefficient` above are resolved the same way.

    layer_pooling (`str`):
        `"last"`: the final encoder layer's masked mean (the paper). `"mean"`: the uniform average of every encoder
        layer's masked mean (the frozen probe's pooling; emotion cues sit in middle layers, SUPERB, Yang et al.
        2021). `"learned"`: a softmax-weighted sum of the layers with learned weights (SUPERB's weighted sum).
    domain_specific_normalization (`bool`):
        Domain-specific batch normalisation (DSBN, Chang et al. 2019): in training, source and target rows of a step
        are standardised with their own batch statistics, as the evaluation standardises target clips with target
        statistics (AdaBN); `False`: both with the joint batch's statistics.
    coral_input (`str`):
        `"gated_z_emo"`: Deep CORAL on z_emo after the router gate (the paper). `"standardized_z_emo"`: on the
        pre-gate emotion stream, each domain centred and both divided by the source batch's root mean variance —
        scale-free, so neither the gate (1/3 at the start, so 1/81 of the loss) nor the stream's scale shrinks it.
    coral_covariance (`str`), coral_momentum (`float`, defaults to 0.1):
        `"batch"`: each step's target covariance. `"running"`: the target covariance is an exponential moving
        average over steps, C_T ← (1 − m)·C_T + m·C_T(batch), gradients through the batch part only — its rank is
        then not capped by the batch size (a 16-clip covariance has rank ≤ 15 of d_z = 256).
    target_encoder_gradients (`bool`):
        `True` (the paper): the unlabeled target batch is encoded in the same pass as the source batch and
        back-propagated through the LoRA encoder. `False`: it is encoded without gradients into the backbone (one
        forward pass, no backward: about half of a target batch's cost); CORAL then moves the source side towards the
        target reference (one-sided alignment, as with a moving target covariance), and the router and heads still
        see the target rows. Target-side objectives (IM, MCC) then act on the router and heads only — except through
        the pooled standardisation: with one set of statistics for the joint batch (no DSBN) the target rows are
        standardised with statistics the source rows share, and those carry gradients into the encoder.
    adversary_objective (`str`):
        `"reversal"`: the GRL adversary (DANN). `"confusion"`: the speaker head learns on detached z_emo and the
        encoder side minimises the cross-entropy against a uniform speaker distribution (domain confusion, Tzeng,
        Hoffman, Darrell & Saenko 2015) — speaker-blind rather than confidently wrong.
    input_padding (`str`, defaults to `"short"`):
        `"short"`: any frame count ≤ 2·max_source_positions (an odd one gets one masked zero frame), positions
        sliced, padded frames masked in the encoder's self-attention and in pooling. `"pad_to_30s"`: stock Whisper path, exactly 3000 frames, no
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
    adaptation (`dict`, *optional*):
        Set by `modeling_ctrilora.adapt.adapt_to_audio` (`ctrilora adapt`): what the checkpoint was adapted to
        without labels (the audio's name, clip count, objective, steps); the model card reports it. `None` for a
        checkpoint as trained.

    Example:
        >>> from modeling_ctrilora import CTriLoRAConfig
        >>> config = CTriLoRAConfig(num_speakers=24, id2label=dict(enumerate(["neutral", "happy"])))
        >>> config.num_labels
        2
    """

    model_type = "ctrilora"

    num_speakers: int = 2
    factor_rank: int | None = None
    factor_dim: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float | int = 0.0
    lora_target_modules: list[str] | tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
    asr_weight: float | int = 0.3
    ser_weight: float | int = 1.0
    speaker_weight: float | int = 0.5
    adversary_weight: float | int | None = None
    counterfactual_weight: float | int = 0.2
    coral_weight: float | int | None = None
    orthogonality_weight: float | int = 0.1
    im_weight: float | int = 0.0
    mcc_weight: float | int = 0.0
    ser_class_weights: list[float] | None = None
    counterfactual_margin: float | int = 0.5
    grl_gamma: float | int | None = None
    grl_max_coefficient: float | int | None = None
    layer_pooling: str | None = None
    domain_specific_normalization: bool | None = None
    coral_input: str | None = None
    coral_covariance: str | None = None
    coral_momentum: float | int = 0.1
    adversary_objective: str | None = None
    mcc_temperature: float | int = 2.5
    target_encoder_gradients: bool | None = None
    input_padding: str = "short"
    pooled_normalization: str = "centered"
    preset: str = "full"
    in_domain_temperature: float | int = 1.0
    target_temperature: float | int | None = None
    adaptation: dict | None = None

    def __post_init__(self, **kwargs):
        # Method knobs left at None take the preset's recipe (`PresetSpec.recipe`).
        recipe = resolve_preset(self.preset).recipe if self.preset in ABLATION_PRESETS else PAPER_RECIPE
        for name, value in recipe.items():
            if getattr(self, name) is None:
                # DSBN splits the pooled standardisation by domain: without one there is nothing to split.
                if name == "domain_specific_normalization" and self.pooled_normalization == "none":
                    value = False
                setattr(self, name, value)
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(DEFAULT_EMOTIONS))
            self.label2id = {label: index for index, label in self.id2label.items()}
        self.lora_target_modules = list(self.lora_target_modules)
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """Checkpoints saved before the method knobs existed are the paper's recipe: their missing knobs take
        `PAPER_RECIPE` and their preset `"full"` (which then meant the published recipe) becomes `"paper"`."""
        if "layer_pooling" not in config_dict and config_dict.get("model_type") == cls.model_type:
            config_dict = {**PAPER_RECIPE, **config_dict}
            if config_dict.get("preset", "full") == "full":
                config_dict["preset"] = "paper"
        return super().from_dict(config_dict, **kwargs)

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
        for name, allowed in (
            ("layer_pooling", LAYER_POOLINGS), ("coral_input", CORAL_INPUTS), ("coral_covariance", CORAL_COVARIANCES),
            ("adversary_objective", ADVERSARY_OBJECTIVES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {allowed}")
        if not 0 < self.coral_momentum <= 1:
            raise ValueError(f"coral_momentum must be in (0, 1], got {self.coral_momentum}")
        if self.domain_specific_normalization and self.pooled_normalization == "none":
            raise ValueError("domain_specific_normalization needs a pooled standardisation (pooled_normalization != 'none')")
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
        return {term: float(getattr(self, f"{term}_weight")) for term in LOSS_TERMS}

    @property
    def uses_target_batch(self) -> bool:
        """Whether training needs an unlabeled target batch each step (CORAL, IM or MCC active)."""
        active = self.active_loss_weights
        return any(active[term] > 0 for term in ("coral", "im", "mcc"))

    @property
    def active_loss_weights(self) -> dict[str, float]:
        """Loss weights with the terms the preset removes set to 0."""
        kept = resolve_preset(self.preset).losses
        return {term: (weight if term in kept else 0.0) for term, weight in self.loss_weights.items()}


__all__ = [
    "ADVERSARY_OBJECTIVES",
    "CORAL_COVARIANCES",
    "CORAL_INPUTS",
    "CTriLoRAConfig",
    "DEFAULT_EMOTIONS",
    "LAYER_POOLINGS",
    "PADDING_MODES",
    "POOLED_NORMALIZATIONS",
]
