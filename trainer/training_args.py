"""`CTriLoRATrainingArguments`: the C-TriLoRA knobs on top of `transformers.TrainingArguments`."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from modeling_ctrilora.presets import ABLATION_PRESETS, LOSS_TERMS


@dataclass
class CTriLoRATrainingArguments(TrainingArguments):
    """
    Training arguments of [`CTriLoRATrainer`], grouped as in trl: loss weights, target-domain options, batching.

    Loss weights left at `None` keep the model config's values (the paper's by default); a value given here is
    written into `model.config` when the trainer starts, so the saved checkpoint records what was trained with.
    `remove_unused_columns` defaults to `False` because the collator needs the corpus columns (`emotion`,
    `speaker`, `transcript`) that the model's forward does not take; `label_names` defaults to `["labels"]`
    (emotion ids), the only labels `compute_metrics` needs.
    """

    # ---- model variant and loss weights
    preset: str | None = field(
        default=None,
        metadata={"choices": ABLATION_PRESETS, "help": f"Ablation preset (one of {', '.join(ABLATION_PRESETS)}); used by the example scripts to build the model."},
    )
    asr_weight: float | None = field(default=None, metadata={"help": "Weight of the ASR decoder loss (paper: 0.3)."})
    ser_weight: float | None = field(default=None, metadata={"help": "Weight of the class-weighted SER loss (1.0)."})
    speaker_weight: float | None = field(default=None, metadata={"help": "Weight of the speaker loss on z_spk (0.5)."})
    adversary_weight: float | None = field(default=None, metadata={"help": "Weight of the speaker adversary (preset's recipe: paper 0.5, full 0.1)."})
    counterfactual_weight: float | None = field(default=None, metadata={"help": "Weight of the counterfactual margin (0.2)."})
    coral_weight: float | None = field(default=None, metadata={"help": "Weight of CORAL (preset's recipe: paper 0.1, full 1.0)."})
    orthogonality_weight: float | None = field(default=None, metadata={"help": "Weight of factor orthogonality (0.1)."})
    im_weight: float | None = field(default=None, metadata={"help": "Weight of information maximisation on the target batch (SHOT; 0)."})
    mcc_weight: float | None = field(default=None, metadata={"help": "Weight of minimum class confusion on the target batch (MCC; 0)."})
    class_weighted_ser: bool = field(
        default=True, metadata={"help": "Weight the SER loss by inverse source-train class frequency (mean 1)."}
    )

    # ---- target domain
    target_batch_size: int | None = field(
        default=None,
        metadata={"help": "Per-device batch size of the unlabeled target dataloader (default: per_device_train_batch_size)."},
    )

    # ---- batching
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs the corpus columns the model does not take."}
    )
    pair_aware_batches: bool = field(
        default=True,
        metadata={"help": "Build training batches with same-transcript / different-emotion pairs (counterfactual loss)."},
    )

    def __post_init__(self):
        if self.preset is not None and self.preset not in ABLATION_PRESETS:
            raise ValueError(f"--preset {self.preset!r}: expected one of {', '.join(ABLATION_PRESETS)}")
        for term in LOSS_TERMS:
            weight = getattr(self, f"{term}_weight")
            if weight is not None and weight < 0:
                raise ValueError(f"--{term}_weight must be ≥ 0, got {weight}")
        if self.target_batch_size is not None and self.target_batch_size < 2:
            raise ValueError("--target_batch_size must be ≥ 2 (CORAL needs a covariance)")
        if self.label_names is None:
            self.label_names = ["labels"]
        super().__post_init__()

    def loss_weight_overrides(self) -> dict[str, float]:
        """`{config field: value}` for every loss weight given on the command line."""
        return {
            f"{term}_weight": float(getattr(self, f"{term}_weight"))
            for term in LOSS_TERMS
            if getattr(self, f"{term}_weight") is not None
        }


__all__ = ["CTriLoRATrainingArguments"]
