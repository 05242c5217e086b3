"""CPU speed benchmark of `WhisperForTriLoRA`: short clips vs stock 30 s padding, router overhead, inference, features.

Four sections, each timed in this one process so that every ratio compares numbers measured under the same load:

- ``train_padding`` (a): one training step (forward + backward + AdamW on the trainable parameters, full loss with
  emotion, speaker, ~12-token ASR labels and counterfactual pairs) on masked mixed-length batches at the clips' true
  length (``input_padding="short"``) vs the stock path that pads every clip to 3000 frames
  (``input_padding="pad_to_30s"``) — same model instance, same clips — for each ``--clip_seconds``.
- ``heads`` (b): Full vs Shared-Head step on the same source batch, and Full with an equally sized unlabeled target
  batch (CORAL) on top.
- ``inference`` (c): emotion inference (encoder + router + heads, no decoder) at batch 1 and ``--batch_size``.
- ``features`` (d): `WhisperFeatureExtractor` log-Mel per clip at true length (``padding="longest"``), and the stock
  30 s padding for comparison.

Variants that are compared with each other are timed *interleaved* (one step of each per round, the order rotating
every round), so a burst of load from other processes hits all of them alike instead of biasing one. Each variant
reports the median, min and every timed step after ``--warmup`` untimed ones, its peak resident memory (Linux:
``VmHWM``, reset before each step through ``/proc/self/clear_refs``; elsewhere the process-wide ``ru_maxrss``) and its
CPU utilisation (process CPU time / wall time; below the thread count means the cores were shared).

Threads: torch's OpenMP workers spin while they wait for each other. When other busy processes share the cores, a
run with as many threads as cores can be 10–20× slower than with one thread (the spinning, not the work, fills the
time slices), so on a shared machine compare `--num_threads 1` (or `OMP_WAIT_POLICY=PASSIVE`) before trusting
absolute numbers; the interleaved ratios are far less sensitive.

Beside this script: `speed_measure.py` (timing, memory, machine) and `speed_report.py` (targets, Markdown tables);
the committed results are `speed.json` / `speed.md`.

Example:
    python benchmarks/benchmark_speed.py                                  # tiny random Whisper, synthetic audio
    python benchmarks/benchmark_speed.py --base_model /path/to/whisper-base --audio_dir /path/to/ravdess \\
        --repeats 5 --repeats_30s 3 --output_json benchmarks/speed.json --output_markdown benchmarks/speed.md
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import transformers
from transformers import HfArgumentParser, WhisperFeatureExtractor

from modeling_ctrilora import WhisperForTriLoRA
from modeling_ctrilora.quantization import quantize_for_inference
from speed_measure import PeakMemory, available_cores, load_average, machine_info, time_interleaved
from speed_report import check_targets, markdown_report, seconds_key
from modeling_ctrilora.feature_extraction_ctrilora import SAMPLING_RATE, load_audio, log_mel, pad_frames, pad_to_window
from trainer.demo.tiny_whisper import build_tiny_whisper

WINDOW_SAMPLES = 30 * SAMPLING_RATE  # stock Whisper's 30 s window
SECTIONS = ("train_padding", "heads", "inference", "features")


@dataclass
class BenchmarkArguments:
    """Command-line knobs of the speed benchmark."""

    base_model: str | None = field(
        default=None,
        metadata={"help": "Whisper checkpoint folder or Hub id; default: a tiny random Whisper built in a temp dir."},
    )
    batch_size: int = field(default=16, metadata={"help": "Clips per training / batched-inference step."})
    clip_seconds: list[float] = field(
        default_factory=lambda: [2.0, 4.0, 8.0], metadata={"help": "Nominal clip durations to benchmark."}
    )
    length_jitter: float = field(
        default=0.25,
        metadata={"help": "Clip lengths are drawn uniformly within ±jitter of the nominal (mixed-length batches)."},
    )
    repeats: int = field(default=5, metadata={"help": "Timed steps per variant (medians are reported)."})
    repeats_30s: int | None = field(
        default=None,
        metadata={"help": "Timed steps of the slow 3000-frame training variant; default: --repeats."},
    )
    warmup: int = field(default=1, metadata={"help": "Untimed steps per variant before timing."})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch intra-op threads; default: the cores this process may run on."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "'sdpa' or 'eager'; default: the model's (sdpa in transformers 5)."}
    )
    asr_tokens: int = field(default=12, metadata={"help": "Mean transcript length in tokens (±2 across the batch)."})
    num_speakers: int = field(default=24, metadata={"help": "Size of the speaker head and adversary."})
    num_emotions: int = field(default=6, metadata={"help": "Number of emotion classes."})
    heads_clip_seconds: float = field(default=4.0, metadata={"help": "Clip duration of the Full vs Shared-Head section."})
    target_clip_seconds: float = field(default=4.0, metadata={"help": "Clip duration the targets are checked at."})
    audio_dir: str | None = field(
        default=None,
        metadata={"help": "Corpus folder with metadata.csv (column 'path', relative); default: synthetic noise."},
    )
    audio_clips: int = field(default=48, metadata={"help": "Corpus clips decoded into the pool clips are cut from."})
    sections: list[str] = field(default_factory=lambda: list(SECTIONS), metadata={"help": f"Subset of {SECTIONS}."})
    seed: int = field(default=0, metadata={"help": "Seed of clip lengths, audio, labels and head initialisation."})
    bf16: bool = field(
        default=False,
        metadata={"help": "Run forwards under bfloat16 autocast on --device (weights and optimizer stay fp32)."},
    )
    device: str = field(
        default="cpu",
        metadata={
            "help": "torch device of the models and batches ('cpu', 'cuda', 'cuda:0'). On CUDA every timed step ends "
            "with torch.cuda.synchronize(), and memory columns still show the process RSS (host memory)."
        },
    )
    int8: bool = field(
        default=False,
        metadata={
            "help": "Inference section: also time the int8 dynamic-quantised copy of the model "
            "(`modeling_ctrilora.quantization.quantize_for_inference`, what `ctrilora predict --int8` runs), "
            "interleaved with the fp32 rows (rows named `..._int8`)."
        },
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "Inference section: time with the LoRA updates merged into the base projections "
            "(`model.merged_lora()`, as `evaluate` and `ctrilora predict` run); --no_merge_lora times the adapters unmerged."
        },
    )
    output_json: str | None = field(default=None, metadata={"help": "Write every number to this JSON file."})
    output_markdown: str | None = field(default=None, metadata={"help": "Write the report table to this file."})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown sections {unknown}; expected a subset of {SECTIONS}")
        if self.batch_size < 1 or self.repeats < 1 or self.warmup < 0:
            raise ValueError("--batch_size and --repeats must be ≥ 1, --warmup ≥ 0")
        if not 0 <= self.length_jitter < 1:
            raise ValueError(f"--length_jitter must be in [0, 1), got {self.length_jitter}")
        if self.repeats_30s is None:
            self.repeats_30s = self.repeats
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: this torch has no usable CUDA")
        if self.int8 and device.type != "cpu":
            raise ValueError("--int8 times the CPU int8 copy (quantize_for_inference); it needs --device cpu")


# ----------------------------------------------------------------------------------------------------- inputs
class ClipSource:
    """Audio of any requested duration: cut from real corpus clips, or Gaussian noise when no corpus is given.

    Corpus clips are decoded once (16 kHz mono, via `feature_extraction_ctrilora.load_audio`, as in training and
    inference) and joined into one pool; a request
    takes a random window of the pool, so clips longer than any single file (8 s from RAVDESS's ~3.5 s) still hold
    real speech.
    """

    def __init__(self, audio_dir: str | None, num_clips: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.pool: np.ndarray | None = None
        if audio_dir is not None:
            self.pool = self._load_pool(audio_dir, num_clips)

    def _load_pool(self, audio_dir: str, num_clips: int) -> np.ndarray:
        import csv

        with open(os.path.join(audio_dir, "metadata.csv"), newline="", encoding="utf-8") as handle:
            paths = [row["path"] for row in csv.DictReader(handle)]
        if not paths:
            raise ValueError(f"{audio_dir}/metadata.csv lists no clips")
        chosen = self.rng.choice(len(paths), size=min(num_clips, len(paths)), replace=False)
        clips = [load_audio(os.path.join(audio_dir, paths[index]), SAMPLING_RATE) for index in sorted(chosen)]
        return np.concatenate(clips)

    def clip(self, num_samples: int) -> np.ndarray:
        if self.pool is None:
            return (0.1 * self.rng.standard_normal(num_samples)).astype(np.float32)
        reps = -(-num_samples // len(self.pool))
        pool = np.tile(self.pool, reps + 1) if reps > 1 else self.pool
        start = int(self.rng.integers(0, max(len(pool) - num_samples, 0) + 1))
        return np.ascontiguousarray(pool[start : start + num_samples])

    def mixed_batch(self, seconds: float, batch_size: int, jitter: float) -> list[np.ndarray]:
        """`batch_size` clips with lengths uniform within ±jitter of `seconds` (a random batch: padded ~+20 %)."""
        lengths = self.rng.uniform(seconds * (1 - jitter), seconds * (1 + jitter), size=batch_size)
        return [self.clip(self.num_samples(length)) for length in lengths]

    def length_grouped_batch(
        self, seconds: float, batch_size: int, jitter: float, pool_factor: int = 8
    ) -> list[np.ndarray]:
        """The batch a length-grouping sampler would form from the same length distribution.

        `pool_factor × batch_size` lengths are drawn as in `mixed_batch`, sorted, and the middle `batch_size` taken:
        the mean real length stays at `seconds` but the batch is padded by only a few percent.
        """
        pool = self.rng.uniform(seconds * (1 - jitter), seconds * (1 + jitter), size=pool_factor * batch_size)
        lengths = np.sort(pool)
        start = (len(lengths) - batch_size) // 2
        chosen = self.rng.permutation(lengths[start : start + batch_size])
        return [self.clip(self.num_samples(length)) for length in chosen]

    @staticmethod
    def num_samples(seconds: float) -> int:
        # At least two hops: two mel frames, one encoder position.
        return max(int(round(seconds * SAMPLING_RATE)), 2 * 160)


def stock_features(clips: Sequence[np.ndarray], extractor: WhisperFeatureExtractor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stock Whisper input: every clip padded to 30 s (3000 frames), with the extractor's frame mask."""
    encoded = pad_to_window(extractor, clips, WINDOW_SAMPLES)
    return encoded["input_features"], encoded["attention_mask"]


def make_labels(batch_size: int, args: BenchmarkArguments, max_token_id: int, seed: int) -> dict[str, torch.Tensor]:
    """Every label the full loss uses: emotions, speakers, ~`asr_tokens` ASR labels, and transcript pairs.

    Rows 2i and 2i+1 share a transcript and have different emotions, so the counterfactual term sees B/2 pairs.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, args.num_emotions, (batch_size,), generator=generator)
    labels[1::2] = (labels[0::2][: labels[1::2].numel()] + 1) % args.num_emotions
    lengths = torch.randint(max(args.asr_tokens - 2, 1), args.asr_tokens + 3, (batch_size,), generator=generator)
    asr_labels = torch.randint(0, max_token_id, (batch_size, int(lengths.max())), generator=generator)
    asr_labels[torch.arange(asr_labels.shape[1])[None, :] >= lengths[:, None]] = -100
    return {
        "labels": labels,
        "speaker_labels": torch.randint(0, args.num_speakers, (batch_size,), generator=generator),
        "asr_labels": asr_labels,
        "transcript_ids": torch.arange(batch_size) // 2,
    }


# ------------------------------------------------------------------------------------------------------ steps
def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels, so that the clock measures the work, not its launch (CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_step(
    model: WhisperForTriLoRA, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], bf16: bool = False
) -> Callable[[], float]:
    """A closure running one forward + backward + AdamW step on `batch` (forward under bf16 autocast if asked)."""

    def step() -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        return float(loss.detach())  # .item() waits for the device

    return step


def inference_step(
    model: WhisperForTriLoRA, batch: dict[str, torch.Tensor], bf16: bool = False
) -> Callable[[], torch.Tensor]:
    """A closure computing emotion logits (encoder + router + heads; no labels, so no decoder)."""

    def step() -> torch.Tensor:
        model.eval()
        with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_features=batch["input_features"], attention_mask=batch["attention_mask"]).logits
        synchronize(model.device)
        return logits

    return step


def new_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def batch_shape(batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """Padded frame count, mean real frames and padding share of a (masked) feature batch."""
    mask = batch["attention_mask"]
    real = mask.sum(-1).float()
    return {
        "frames": int(mask.shape[-1]),
        "mean_real_frames": float(real.mean()),
        "padding_fraction": float(1 - real.sum() / mask.numel()),
    }


# --------------------------------------------------------------------------------------------------- sections
@dataclass
class Context:
    """Everything the sections share: the arguments, models, extractor, clip source and memory probe."""

    args: BenchmarkArguments
    extractor: WhisperFeatureExtractor
    source: ClipSource
    memory: PeakMemory
    max_token_id: int
    models: dict[str, WhisperForTriLoRA] = field(default_factory=dict)
    base_model: str = ""

    def model(self, preset: str, **config: Any) -> WhisperForTriLoRA:
        """The benchmark model of `preset` (with `config` overrides), built once; every model starts from the same seed."""
        key = preset + "".join(f"|{name}={value}" for name, value in sorted(config.items()))
        if key not in self.models:
            overrides: dict[str, Any] = {"preset": preset, "lora_dropout": 0.0, **config}
            if self.args.attn_implementation is not None:
                overrides["attn_implementation"] = self.args.attn_implementation
            torch.manual_seed(self.args.seed)
            model = WhisperForTriLoRA.from_whisper(
                self.base_model, num_emotions=self.args.num_emotions, num_speakers=self.args.num_speakers, **overrides
            )
            if model.preset.gradient_reversal:
                # Mid-schedule, so the adversary's reversed gradient is non-zero as in real training.
                model.gradient_reversal.set_progress(1, 2)
            self.models[key] = model.to(self.args.device)
        return self.models[key]

    def short_batch(self, clips: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Features at each clip's true length, zero-padded to the longest, with the frame mask (on `--device`)."""
        features, mask = pad_frames([log_mel(clip, self.extractor) for clip in clips])
        return self.on_device({"input_features": features, "attention_mask": mask})

    def on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.to(self.args.device) for name, tensor in batch.items()}

    def labels(self, seed: int) -> dict[str, torch.Tensor]:
        """`make_labels` for one batch of `--batch_size`, on `--device`."""
        return self.on_device(make_labels(self.args.batch_size, self.args, self.max_token_id, seed))

    def train(self, model: WhisperForTriLoRA, batch: dict[str, torch.Tensor]) -> Callable[[], float]:
        return training_step(model, new_optimizer(model), batch, self.args.bf16)


def bench_train_padding(ctx: Context) -> dict[str, Any]:
    """(a) Training step at true length (masked mixed-length batch) vs padded to 30 s, same model and clips.

    A third variant runs a length-grouped batch of the same length distribution: what a length-grouping sampler
    would gain over random batches (reported beside the target, which is judged on the random mixed batch).
    """
    args, model = ctx.args, ctx.model("full")
    results: dict[str, Any] = {}
    for index, seconds in enumerate(args.clip_seconds):
        clips = ctx.source.mixed_batch(seconds, args.batch_size, args.length_jitter)
        labels = ctx.labels(args.seed + index)
        short = {**ctx.short_batch(clips), **labels}
        grouped_clips = ctx.source.length_grouped_batch(seconds, args.batch_size, args.length_jitter)
        grouped = {**ctx.short_batch(grouped_clips), **labels}
        features_30s, mask_30s = stock_features(clips, ctx.extractor)
        padded = {**ctx.on_device({"input_features": features_30s, "attention_mask": mask_30s}), **labels}

        def in_mode(mode: str, step: Callable[[], float]) -> Callable[[], float]:
            # One model instance serves both paths (same weights); `encode` reads the mode at call time.
            def run() -> float:
                model.config.input_padding = mode
                try:
                    return step()
                finally:
                    model.config.input_padding = "short"

            return run

        steps = {
            "short": ctx.train(model, short),
            "short_length_grouped": ctx.train(model, grouped),
            "pad_to_30s": in_mode("pad_to_30s", ctx.train(model, padded)),
        }
        repeats = {"short": args.repeats, "short_length_grouped": args.repeats, "pad_to_30s": args.repeats_30s}
        # The 3000-frame shapes are the same at every clip length: one warm-up (at the first length) serves them all.
        warmup = {**{name: args.warmup for name in steps}, "pad_to_30s": args.warmup if index == 0 else 0}
        timings = time_interleaved(steps, repeats, warmup, ctx.memory)
        padded_s = timings["pad_to_30s"]["median_s"]
        results[seconds_key(seconds)] = {
            **timings,
            "shape_short": batch_shape(short),
            "shape_short_length_grouped": batch_shape(grouped),
            "shape_pad_to_30s": batch_shape(padded),
            "speedup": padded_s / timings["short"]["median_s"],
            "speedup_length_grouped": padded_s / timings["short_length_grouped"]["median_s"],
        }
        print(
            f"  train {seconds:g} s: short {timings['short']['median_s']:.3f} s, grouped "
            f"{timings['short_length_grouped']['median_s']:.3f} s, 30 s {padded_s:.3f} s",
            flush=True,
        )
    return results


def bench_heads(ctx: Context) -> dict[str, Any]:
    """(b) Full vs Shared-Head training step on one source batch, and Full + an equally sized target batch (CORAL)."""
    args = ctx.args
    seconds = args.heads_clip_seconds
    source = {
        **ctx.short_batch(ctx.source.mixed_batch(seconds, args.batch_size, args.length_jitter)),
        **ctx.labels(args.seed + 100),
    }
    target = ctx.short_batch(ctx.source.mixed_batch(seconds, args.batch_size, args.length_jitter))
    with_target = {
        **source,
        "target_input_features": target["input_features"],
        "target_attention_mask": target["attention_mask"],
    }
    full, shared = ctx.model("full"), ctx.model("shared_head")
    # The paper's target batch (back-propagated through the LoRA encoder) beside the default recipe's, which encodes
    # the target clips without gradients into the backbone (`target_encoder_gradients`).
    full_target_gradients = ctx.model("full", target_encoder_gradients=True)
    steps = {
        "shared_head": ctx.train(shared, source),
        "full": ctx.train(full, source),
        "full_with_target": ctx.train(full, with_target),
        "full_with_target_gradients": ctx.train(full_target_gradients, with_target),
    }
    timings = time_interleaved(steps, {name: args.repeats for name in steps}, args.warmup, ctx.memory)
    shared_s, full_s = timings["shared_head"]["median_s"], timings["full"]["median_s"]
    result = {
        "clip_seconds": seconds,
        "shape_source": batch_shape(source),
        "shape_target": batch_shape(target),
        **timings,
        "router_heads_aux_overhead_pct": 100 * (full_s / shared_s - 1),
        "target_batch_overhead_pct": 100 * (timings["full_with_target"]["median_s"] / full_s - 1),
        "target_gradients_overhead_pct": 100 * (timings["full_with_target_gradients"]["median_s"] / full_s - 1),
    }
    print(
        f"  heads: shared {shared_s:.3f} s, full {full_s:.3f} s, "
        f"full+target {timings['full_with_target']['median_s']:.3f} s "
        f"(with target gradients {timings['full_with_target_gradients']['median_s']:.3f} s)",
        flush=True,
    )
    return result


def bench_inference(ctx: Context) -> dict[str, Any]:
    """(c) Emotion inference at batch 1 (one clip at the nominal length) and batch `--batch_size`.

    The batch is timed twice: a random mixed-length batch (the target's measure) and a length-grouped one, as an
    offline predictor that sorts clips by duration before batching would run it.
    """
    args, model = ctx.args, ctx.model("full")
    results: dict[str, Any] = {}
    for seconds in args.clip_seconds:
        batched = f"batch_{args.batch_size}"
        batches = {
            "batch_1": ctx.short_batch([ctx.source.clip(ctx.source.num_samples(seconds))]),
            batched: ctx.short_batch(ctx.source.mixed_batch(seconds, args.batch_size, args.length_jitter)),
            f"{batched}_length_grouped": ctx.short_batch(
                ctx.source.length_grouped_batch(seconds, args.batch_size, args.length_jitter)
            ),
        }
        steps = {name: inference_step(model, batch, args.bf16) for name, batch in batches.items()}
        model.eval()
        if args.int8:
            quantized = quantize_for_inference(model)
            steps.update({f"{name}_int8": inference_step(quantized, batch) for name, batch in batches.items()})
            batches.update({f"{name}_int8": batch for name, batch in list(batches.items())})
        with model.merged_lora() if args.merge_lora else contextlib.nullcontext():
            timings = time_interleaved(steps, {name: args.repeats for name in steps}, args.warmup, ctx.memory)
        for name, batch in batches.items():
            size = batch["input_features"].shape[0]
            timings[name].update(
                batch_size=size,
                shape=batch_shape(batch),
                ms_per_clip=1000 * timings[name]["median_s"] / size,
                clips_per_s=size / timings[name]["median_s"],
            )
        results[seconds_key(seconds)] = timings
        for suffix in ("", "_int8") if args.int8 else ("",):
            print(
                f"  inference {seconds:g} s{suffix.replace('_', ' ')}: batch 1 "
                f"{timings[f'batch_1{suffix}']['ms_per_clip']:.1f} ms/clip, batch {args.batch_size} "
                f"{timings[f'{batched}{suffix}']['clips_per_s']:.1f} clips/s "
                f"(length-grouped {timings[f'{batched}_length_grouped{suffix}']['clips_per_s']:.1f})",
                flush=True,
            )
    return results


def bench_features(ctx: Context) -> dict[str, Any]:
    """(d) Log-Mel extraction per clip, one clip per call as the training data pipeline does it."""
    args = ctx.args
    results: dict[str, Any] = {}
    for seconds in args.clip_seconds:
        clips = ctx.source.mixed_batch(seconds, args.batch_size, args.length_jitter)
        steps = {
            "true_length": lambda: [log_mel(clip, ctx.extractor) for clip in clips],
            "pad_to_30s": lambda: [stock_features([clip], ctx.extractor) for clip in clips],
        }
        timings = time_interleaved(steps, {name: args.repeats for name in steps}, args.warmup, ctx.memory)
        for name in steps:
            timings[name]["ms_per_clip"] = 1000 * timings[name]["median_s"] / len(clips)
            timings[name]["clips_per_s"] = len(clips) / timings[name]["median_s"]
        results[seconds_key(seconds)] = timings
        print(f"  features {seconds:g} s: {timings['true_length']['ms_per_clip']:.2f} ms/clip at true length", flush=True)
    return results


SECTION_FUNCTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "train_padding": bench_train_padding,
    "heads": bench_heads,
    "inference": bench_inference,
    "features": bench_features,
}


# -------------------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the report (also printed, and written to `--output_json` / `--output_markdown`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses(args=argv)
    torch.set_num_threads(args.num_threads or available_cores())
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    with tempfile.TemporaryDirectory() as scratch:
        base_model = args.base_model or build_tiny_whisper(os.path.join(scratch, "tiny-whisper"), seed=args.seed)
        extractor = WhisperFeatureExtractor.from_pretrained(base_model)
        ctx = Context(
            args=args,
            extractor=extractor,
            source=ClipSource(args.audio_dir, args.audio_clips, args.seed),
            memory=PeakMemory(),
            max_token_id=0,
            base_model=base_model,
        )
        full = ctx.model("full")
        # Plain transcript tokens sit below the special ones (<|endoftext|> is the first special id).
        ctx.max_token_id = int(min(full.config.vocab_size, full.config.pad_token_id or full.config.vocab_size))
        machine = machine_info(full)
        machine["device"] = args.device
        if torch.device(args.device).type == "cuda":
            machine["cuda_device_name"] = torch.cuda.get_device_name(torch.device(args.device))
        machine["peak_memory_method"] = ctx.memory.method
        results: dict[str, Any] = {}
        machine["load_average_by_section"] = {}
        for section in SECTIONS:
            if section in args.sections:
                machine["load_average_by_section"][section] = load_average()
                print(f"[{section}] load average {load_average()}", flush=True)
                results[section] = SECTION_FUNCTIONS[section](ctx)
        machine["load_average_end"] = load_average()

    report = {
        "command": shlex.join(["python", "benchmarks/benchmark_speed.py", *argv]),
        "machine": machine,
        "arguments": asdict(args),
        "results": results,
        "targets": check_targets(results, args),
    }
    table = markdown_report(report)
    print(table)
    for target in report["targets"]:
        print(f"{target['status']}: {target['target']}")
    if args.output_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_json)), exist_ok=True)
        with open(args.output_json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    if args.output_markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.output_markdown)), exist_ok=True)
        with open(args.output_markdown, "w", encoding="utf-8") as handle:
            handle.write(f"# C-TriLoRA speed benchmark\n\n{table}")
    return report


if __name__ == "__main__":
    main()
