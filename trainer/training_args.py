"""`CTriLoRATrainingArguments`: the C-TriLoRA knobs on top of `transformers.TrainingArguments`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

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
    coral_weight: float | None = field(default=None, metadata={"help": "Weight of CORAL (preset's recipe: paper and full 0.1)."})
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

    def checkpoint_to_resume(self) -> str | None:
        """The checkpoint folder `--resume_from_checkpoint` names, for `trainer.train(resume_from_checkpoint=...)`.

        `TrainingArguments.resume_from_checkpoint` is a string, so `--resume_from_checkpoint True` arrives as the text
        "True", which `Trainer.train` would take for a folder named True. As transformers documents for the boolean,
        "True" (any spelling `string_to_bool` accepts, or a JSON/YAML `true`) means the last `checkpoint-<step>`
        folder in `output_dir`; "False" or nothing means a fresh run; anything else is a checkpoint folder.

        Raises:
            FileNotFoundError: "True" with no checkpoint in `output_dir`, or a checkpoint folder that does not exist.
        """
        value = self.resume_from_checkpoint
        if value is None or value is False:
            return None
        text = str(value).strip()
        if text.lower() in ("false", "no", "n", "0", ""):
            return None
        if value is True or text.lower() in ("true", "yes", "y", "1"):
            last = get_last_checkpoint(self.output_dir) if os.path.isdir(self.output_dir) else None
            if last is None:
                raise FileNotFoundError(
                    f"--resume_from_checkpoint True: no {PREFIX_CHECKPOINT_DIR}-<step> folder in --output_dir "
                    f"{self.output_dir}, so there is nothing to resume. Checkpoints are written with --save_strategy "
                    "steps or epoch; start without --resume_from_checkpoint, or name a checkpoint folder"
                )
            return last
        if not os.path.isdir(text):
            raise FileNotFoundError(
                f"--resume_from_checkpoint {text}: no such checkpoint folder; give a {PREFIX_CHECKPOINT_DIR}-<step> "
                f"folder, or True for the last one in --output_dir {self.output_dir}"
            )
        return text

    def loss_weight_overrides(self) -> dict[str, float]:
        """`{config field: value}` for every loss weight given on the command line."""
        return {
            f"{term}_weight": float(getattr(self, f"{term}_weight"))
            for term in LOSS_TERMS
            if getattr(self, f"{term}_weight") is not None
        }


__all__ = ["CTriLoRATrainingArguments"]
