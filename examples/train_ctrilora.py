#!/usr/bin/env python
"""Train C-TriLoRA on a source corpus with an unlabeled target corpus, then evaluate cross-corpus.

    accelerate launch examples/train_ctrilora.py                       # embedded Kazakh demo, tiny random Whisper
    accelerate launch examples/train_ctrilora.py \\
        --base_model /path/to/whisper-base --source ../shared/data/ravdess --target ../shared/data/emodb_2s \\
        --output_dir runs/ravdess-emodb --preset full --num_train_epochs 5
    python examples/train_ctrilora.py --help                           # plain python works too

The run folder (`--output_dir`) receives the split files, checkpoints, the final model (loadable with
`WhisperForTriLoRA.from_pretrained(output_dir)`, processor included), `trainer_state.json` with every logged loss
term, `evaluation/` (results.json, report.md, plots) and the model card (`README.md`, with the `results.json` and plots
it shows), so the finished folder is ready to upload as it is. `--resume_from_checkpoint True` continues from the last
`checkpoint-<step>` in `--output_dir` (or name a checkpoint folder). With no data arguments the embedded demo corpus is built
(eSpeak NG Kazakh, prosody caricatures of six emotions; a second voice set behind a noisy band-limited reverberant
channel as target): it checks the pipeline end to end, not emotion science.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import transformers
from accelerate import PartialState
from transformers import HfArgumentParser, WhisperProcessor, set_seed


from hub_cards.push import push_to_hub_with_card, write_model_card
from hub_cards.run_folder import RunFolder
from modeling_ctrilora import WhisperForTriLoRA
from trainer import CTriLoRATrainer, CTriLoRATrainingArguments
from trainer.data.sampler import PairAwareBatchSampler
from trainer.evaluation.evaluate import evaluate_experiment
from trainer.evaluation.metrics import compute_metrics_fn
from trainer.run import DataArguments, prepare_data, protocol, resolve_base_model, write_run_arguments

logger = logging.getLogger("train_ctrilora")

# Defaults of this script where they differ from `TrainingArguments`' (any flag given on the command line wins).
SCRIPT_DEFAULTS = [
    "--output_dir", "runs/ctrilora",
    "--learning_rate", "1e-3",
    "--per_device_train_batch_size", "16",
    "--per_device_eval_batch_size", "16",
    "--num_train_epochs", "8",
    "--warmup_steps", "10",
    "--eval_strategy", "epoch",
    "--save_strategy", "epoch",
    "--save_total_limit", "1",
    "--logging_steps", "5",
    "--report_to", "none",
    "--dataloader_num_workers", "0",
]


@dataclass
class ModelArguments:
    """The backbone and the C-TriLoRA architecture knobs (loss weights and preset are training arguments)."""

    base_model: str | None = field(
        default=None, metadata={"help": "Whisper checkpoint folder or Hub id; default: a tiny random Whisper (demo)."}
    )
    factor_dim: int = field(default=256, metadata={"help": "Size d_z of each factor."})
    factor_rank: int | None = field(
        default=None, metadata={"help": "Rank r_f of each router stream (default: the preset's recipe; the paper's 16)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (0: the paper gives none; costly on CPU)."})
    input_padding: str = field(default="short", metadata={"choices": ("short", "pad_to_30s"), "help": "'short' (true length, masked) or 'pad_to_30s' (stock)."})
    pooled_normalization: str = field(
        default="centered",
        metadata={"help": "'centered' (centre each pooled dimension, one shared scale), 'batch' (standardise each) or 'none'."},
    )
    # Method knobs: None keeps the preset's recipe (`full`: the cross-corpus recipe; `paper`: the published one).
    layer_pooling: str | None = field(default=None, metadata={"help": "'last', 'mean' (all encoder layers) or 'learned'."})
    domain_specific_normalization: bool | None = field(
        default=None, metadata={"help": "Standardise source and target rows with their own statistics in training (DSBN)."}
    )
    coral_input: str | None = field(default=None, metadata={"help": "'gated_z_emo' (paper) or 'standardized_z_emo'."})
    coral_covariance: str | None = field(default=None, metadata={"help": "'batch' (paper) or 'running' target covariance."})
    adversary_objective: str | None = field(default=None, metadata={"help": "'reversal' (GRL) or 'confusion' (uniform target)."})
    grl_gamma: float | None = field(default=None, metadata={"help": "GRL ramp steepness γ (paper 10)."})
    grl_max_coefficient: float | None = field(default=None, metadata={"help": "GRL cap (paper 1.0)."})
    target_encoder_gradients: bool | None = field(
        default=None, metadata={"help": "Back-propagate through the encoder for the target batch (paper: yes; full: no)."}
    )

    def method_overrides(self) -> dict:
        """The method knobs given on the command line (the rest come from the preset's recipe)."""
        names = ("layer_pooling", "domain_specific_normalization", "coral_input", "coral_covariance",
                 "adversary_objective", "grl_gamma", "grl_max_coefficient", "target_encoder_gradients")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def parse_arguments(argv: list[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataArguments, CTriLoRATrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0]) if not argv[0].endswith(".json") else parser.parse_json_file(argv[0])
    return parser.parse_args_into_dataclasses(args=SCRIPT_DEFAULTS + list(argv))


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    if training_args.push_to_hub and not training_args.hub_model_id:  # checked now, not after hours of training
        raise ValueError("--push_to_hub needs --hub_model_id ORG/NAME")
    resume = training_args.checkpoint_to_resume()  # likewise: a missing checkpoint is named before the data is read
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    set_seed(training_args.seed)
    # Trainer's own push would create the repo at start-up and upload its own README; we push once, at the end,
    # with our model card (see hub_cards.push).
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False

    base_model = resolve_base_model(model_args.base_model)
    if PartialState().is_main_process:
        # The evaluation script reads these to rebuild exactly this run's data (splits are re-read and checked).
        write_run_arguments(training_args.output_dir, data_args, base_model)
    data = prepare_data(data_args, base_model, training_args.output_dir, training_args.seed, padding=model_args.input_padding)
    logger.info(
        "classes %s; source train/validation/test %d/%d/%d; target adaptation/test %d/%d",
        data.classes, *(len(data.source[s]) for s in ("train", "validation", "test")),
        *(len(data.target[s]) for s in ("adaptation", "test")),
    )
    model = WhisperForTriLoRA.from_whisper(
        base_model,
        id2label=data.id2label,
        num_speakers=len(data.speaker2id),
        preset=training_args.preset or "full",
        factor_dim=model_args.factor_dim,
        factor_rank=model_args.factor_rank,
        lora_r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        input_padding=model_args.input_padding,
        pooled_normalization=model_args.pooled_normalization,
        **model_args.method_overrides(),
    )
    model.print_trainable_parameters()
    train = data.source["train"]
    sampler = None
    if training_args.pair_aware_batches:
        sampler = PairAwareBatchSampler(
            train["transcript"],
            training_args.per_device_train_batch_size,
            emotions=train["emotion"],
            speakers=train["speaker"],
            seed=training_args.seed,
            drop_last=training_args.dataloader_drop_last,
        )
    trainer = CTriLoRATrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=data.source["validation"],
        target_dataset=data.target["adaptation"],
        data_collator=data.collator,
        train_batch_sampler=sampler,
        compute_metrics=compute_metrics_fn(data.id2label),
        processing_class=WhisperProcessor(feature_extractor=data.feature_extractor, tokenizer=data.tokenizer),
    )
    trainer.train(resume_from_checkpoint=resume)

    results = {}
    if trainer.is_world_process_zero():
        evaluation = RunFolder(training_args.output_dir).evaluation
        results = evaluate_experiment(
            trainer.model, data, evaluation,
            protocol=protocol(data_args, training_args.seed), log_history=trainer.state.log_history, batch_size=training_args.per_device_eval_batch_size,
        )
        # Saved after evaluation so the config carries the fitted temperatures.
        trainer.save_model(training_args.output_dir)
        trainer.save_state()
        # The card (the one the push uploads) beside the model, so the run folder can be uploaded as it is.
        card = write_model_card(trainer.model, training_args.output_dir, results=evaluation.results,
                                repo_id=training_args.hub_model_id if push_to_hub else None)
        logger.info(
            "in-domain UAR %.3f macro-F1 %.3f | cross-corpus UAR %.3f macro-F1 %.3f | report: %s",
            results["in_domain"]["uar"], results["in_domain"]["macro_f1"],
            results["cross_corpus"]["uar"], results["cross_corpus"]["macro_f1"],
            evaluation.report,
        )
        logger.info("model card: %s", card)
        if push_to_hub:
            url = push_to_hub_with_card(
                trainer.model, training_args.hub_model_id, processor=trainer.processing_class, results=evaluation.results,
                token=training_args.hub_token, private=training_args.hub_private_repo,
            )
            logger.info("pushed to %s", url)
    trainer.accelerator.wait_for_everyone()
    return results


if __name__ == "__main__":
    main()
