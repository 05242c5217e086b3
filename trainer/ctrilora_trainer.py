"""`CTriLoRATrainer`: the HF `Trainer` with C-TriLoRA's multi-term loss and an unlabeled target dataloader."""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, RandomSampler
from transformers import Trainer

from modeling_ctrilora.hardware import warn_if_bf16_is_slow
from modeling_ctrilora.losses import class_weights_from_labels
from modeling_ctrilora.modeling_ctrilora import CTriLoRAOutput
from modeling_ctrilora.presets import LOGGED_LOSS_TERMS, LOSS_TERMS

from .training_args import CTriLoRATrainingArguments

logger = logging.getLogger(__name__)

TARGET_INPUT_KEYS = ("input_features", "attention_mask")


def gather_with_gradients(features: torch.Tensor, accelerator: Accelerator) -> torch.Tensor:
    """All-gather (n_rank, d) features across processes, keeping the autograd graph of every rank's part.

    Ranks may hold different row counts (the last source batch), so sizes are exchanged first and each rank's rows
    padded to the largest before `torch.distributed.nn.functional.all_gather`, whose backward sends each rank the
    gradient of its own rows. With one process this is the identity.
    """
    if accelerator.num_processes == 1:
        return features
    import torch.distributed.nn.functional as distributed_functional

    sizes = accelerator.gather(torch.tensor([features.shape[0]], device=features.device)).tolist()
    padded = torch.nn.functional.pad(features, (0, 0, 0, max(sizes) - features.shape[0]))
    with warnings.catch_warnings():
        # Deprecated in favour of a private API (torch.distributed._functional_collectives); still the public,
        # differentiable all-gather.
        warnings.simplefilter("ignore", FutureWarning)
        pieces = distributed_functional.all_gather(padded)
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


class CTriLoRATrainer(Trainer):
    """
    `Trainer` for [`WhisperForTriLoRA`]:

    - a second dataloader over the unlabeled target corpus (own seeded random sampler, reshuffled each pass, sharded
      across processes by `accelerate`, cycling independently of the source epoch); each training step encodes the
      target batch in the same forward pass as the source batch and CORAL compares their z_emo covariances — under
      several processes the features are all-gathered *with gradients* first, so the covariances are those of the
      global batch;
    - the GRL coefficient follows global step / max steps (and so continues where a resumed run stopped);
    - SER class weights from source-train label frequencies (inverse, mean 1) unless the config already has them;
    - every loss term is logged (weighted, as `loss_<term>`, so the terms add up to `loss`), for train and eval,
      plus the GRL coefficient; metrics are gathered across processes and averaged in `log()` (as trl does);
    - mixed precision is `TrainingArguments`' (`--bf16`, `--fp16`, or the accelerate config's `mixed_precision`):
      autocast around the model forward, fp32 master weights, the factor losses in fp32 (`modeling_ctrilora.losses`);
      bf16 on a CPU without native bf16 logs a warning (it is slower than fp32 there).

    Args:
        target_dataset: unlabeled target-domain rows the `data_collator` can collate (labels are not used: only
            `input_features` and `attention_mask` reach the model). `None` → no CORAL term.
        train_batch_sampler: optional batch sampler over `train_dataset` (e.g. the pair-aware sampler); it is
            sharded across processes by `accelerate`.
        Other arguments as `transformers.Trainer`.
    """

    def __init__(
        self,
        model=None,
        args: CTriLoRATrainingArguments | None = None,
        *,
        target_dataset=None,
        train_batch_sampler: torch.utils.data.Sampler | None = None,
        **kwargs: Any,
    ):
        if args is None:
            args = CTriLoRATrainingArguments(output_dir="ctrilora-run")
        if not isinstance(args, CTriLoRATrainingArguments):
            raise TypeError(f"args must be CTriLoRATrainingArguments, got {type(args).__name__}")
        super().__init__(model=model, args=args, **kwargs)
        self.target_dataset = target_dataset
        self.train_batch_sampler = train_batch_sampler
        self._target_dataloader: DataLoader | None = None
        # Training and evaluation draw from separate iterators so that evaluating does not shift the sequence of
        # target batches training sees.
        self._target_iterators: dict[str, Iterator | None] = {"train": None, "eval": None}
        self._target_passes = 0
        self._metrics: dict[str, dict[str, list[float]]] = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._configure_model_losses()
        if self.accelerator.mixed_precision == "bf16" and self.accelerator.is_main_process:
            warn_if_bf16_is_slow(self.accelerator.device)

    # ------------------------------------------------------------------------------------------------- set-up
    @property
    def _core_model(self):
        return self.accelerator.unwrap_model(self.model)

    def _configure_model_losses(self) -> None:
        config = self._core_model.config
        for name, value in self.args.loss_weight_overrides().items():
            setattr(config, name, value)
        if self.args.class_weighted_ser and config.ser_class_weights is None and self.train_dataset is not None:
            labels = self._train_emotion_ids()
            if labels:
                config.ser_class_weights = class_weights_from_labels(labels, config.num_labels)
                logger.info("SER class weights from source-train frequencies: %s", config.ser_class_weights)
        if config.uses_target_batch and self.target_dataset is None:
            logger.warning(
                "preset %r has target-batch terms (CORAL, IM, MCC) but no target_dataset was given: they stay off", config.preset
            )
        elif config.uses_target_batch:
            self._check_target_size()  # now, not at the first training step

    def _target_batch_size(self) -> int:
        return self.args.target_batch_size or self.args.per_device_train_batch_size

    def _check_target_size(self) -> None:
        """Raise when the target dataset holds fewer clips than one target batch on every process."""
        batch_size, processes = self._target_batch_size(), self.accelerator.num_processes
        if len(self.target_dataset) < batch_size * processes:
            raise ValueError(
                f"the target dataset (adaptation split) has {len(self.target_dataset)} clips, fewer than one target "
                f"batch ({batch_size} × {processes} process(es)); lower --target_batch_size (default: "
                "--per_device_train_batch_size) or raise --target_adaptation_fraction"
            )

    def _train_emotion_ids(self) -> list[int]:
        """Emotion ids of the training rows, from an `emotion` (name) or `labels` (id) column."""
        columns = getattr(self.train_dataset, "column_names", None) or []
        label2id = self._core_model.config.label2id
        if "labels" in columns:
            return [int(label) for label in self.train_dataset["labels"] if int(label) >= 0]
        if "emotion" in columns:
            return [label2id[name] for name in self.train_dataset["emotion"] if name in label2id]
        return []

    # ------------------------------------------------------------------------------------------------ loaders
    def get_train_dataloader(self) -> DataLoader:
        if self.train_batch_sampler is None:
            return super().get_train_dataloader()
        dataloader = DataLoader(
            self.train_dataset,
            batch_sampler=self.train_batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(dataloader)

    def get_target_dataloader(self) -> DataLoader:
        """The unlabeled target dataloader: random order from its own seeded generator, last partial batch dropped
        (CORAL needs ≥ 2 rows), sharded across processes by `accelerate`."""
        if self.target_dataset is None:
            raise ValueError("CTriLoRATrainer: no target_dataset was given")
        batch_size = self._target_batch_size()
        self._check_target_size()
        generator = torch.Generator().manual_seed(self.args.seed + 1)
        dataloader = DataLoader(
            self.target_dataset,
            batch_size=batch_size,
            sampler=RandomSampler(self.target_dataset, generator=generator),
            collate_fn=self.data_collator,
            drop_last=True,
            num_workers=self.args.dataloader_num_workers,
        )
        return self.accelerator.prepare(dataloader)

    def next_target_batch(self, mode: str = "train") -> dict[str, torch.Tensor]:
        """Next target batch (only its features and mask); restarts — reshuffled — when the target pass ends."""
        if self._target_dataloader is None:
            self._target_dataloader = self.get_target_dataloader()
        while True:
            if self._target_iterators[mode] is None:
                if hasattr(self._target_dataloader, "set_epoch"):
                    self._target_dataloader.set_epoch(self._target_passes)
                self._target_passes += 1
                self._target_iterators[mode] = iter(self._target_dataloader)
            try:
                batch = next(self._target_iterators[mode])
                return {key: batch[key] for key in TARGET_INPUT_KEYS}
            except StopIteration:
                self._target_iterators[mode] = None

    # -------------------------------------------------------------------------------------------------- loss
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        core = self._core_model
        mode = "train" if model.training else "eval"
        weights = core.config.active_loss_weights
        if mode == "train" and hasattr(core, "gradient_reversal"):
            core.gradient_reversal.set_progress(self.state.global_step, self.state.max_steps)
        model_inputs = dict(inputs)
        if self.target_dataset is not None and core.config.uses_target_batch:
            target = self.next_target_batch(mode)
            model_inputs["target_input_features"] = target["input_features"]
            model_inputs["target_attention_mask"] = target["attention_mask"]
            model_inputs["feature_gatherer"] = partial(gather_with_gradients, accelerator=self.accelerator)
        outputs: CTriLoRAOutput = model(**model_inputs)
        if outputs.loss is None:
            raise ValueError("the batch carries no labels for any active loss term (labels, speaker_labels, asr_labels)")
        self._record_terms(mode, outputs, weights)
        self._record_diagnostics(mode, core, outputs, inputs, weights)
        if hasattr(core, "gradient_reversal") and mode == "train":
            self._metrics[mode]["grl_coefficient"].append(float(core.gradient_reversal.coefficient))
        if return_outputs:
            # Only what evaluation needs: the full output holds ASR logits of vocabulary size per token.
            return outputs.loss, CTriLoRAOutput(loss=outputs.loss, logits=outputs.logits)
        return outputs.loss

    def _record_terms(self, mode: str, outputs: CTriLoRAOutput, weights: dict[str, float]) -> None:
        for term, key in zip(LOSS_TERMS, LOGGED_LOSS_TERMS):
            value = getattr(outputs, f"{term}_loss")
            if value is None:
                continue
            weighted = (weights[term] * value.detach()).reshape(1)
            self._metrics[mode][key].append(self.accelerator.gather(weighted).mean().item())

    def _record_diagnostics(self, mode: str, core: Any, outputs: CTriLoRAOutput, inputs: dict[str, Any],
                            weights: dict[str, float]) -> None:
        """Per-step diagnostics of the method (logged as averages like the loss terms): mean router gate per factor,
        the adversary's speaker accuracy (against chance 1/num_speakers), and every `logging_steps` steps the ratio
        of the CORAL and SER gradient norms on the emotion stream's output projection (Deep CORAL sets its weight so
        the two are of one order)."""
        metrics = self._metrics[mode]
        if outputs.routing_weights is not None:
            for index, name in enumerate(("lex", "emo", "spk")):
                metrics[f"gate_{name}"].append(float(outputs.routing_weights[:, index].detach().float().mean()))
        speakers = inputs.get("speaker_labels")
        if outputs.adversary_logits is not None and speakers is not None:
            known = speakers != -100
            if known.any():
                correct = (outputs.adversary_logits[known].argmax(-1) == speakers[known]).float().mean()
                metrics["adversary_accuracy"].append(float(correct))
        coral, ser = outputs.coral_loss, outputs.ser_loss
        if (
            mode == "train" and coral is not None and ser is not None and coral.requires_grad and ser.requires_grad
            and self.state.global_step % max(int(self.args.logging_steps), 1) == 0
        ):
            weight = core.router.up["emo"].weight if hasattr(core, "router") else core.shared_projection.weight
            grads = [
                torch.autograd.grad(weights[term] * value, weight, retain_graph=True, allow_unused=True)[0]
                for term, value in (("coral", coral), ("ser", ser))
            ]
            if all(g is not None for g in grads) and float(grads[1].norm()) > 0:
                metrics["coral_ser_grad_ratio"].append(float(grads[0].norm() / grads[1].norm()))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        averaged = {key: sum(values) / len(values) for key, values in self._metrics[mode].items() if values}
        if mode == "eval":
            averaged = {f"eval_{key}": value for key, value in averaged.items()}
        logs = {**logs, **averaged}
        self._metrics[mode].clear()
        super().log(logs, start_time)


__all__ = ["CTriLoRATrainer", "gather_with_gradients"]
