"""The `ctrilora` command line.

Subcommands are argparse sub-parsers; each is installed by an `add_<name>_parser(subparsers)` function listed in
`COMMANDS`, which registers its arguments and sets `handler` to the function that runs it and returns the exit status.
`ctrilora adapt` (`modeling_ctrilora.adapt`) adapts a checkpoint to unlabeled audio; `ctrilora train` /
`ctrilora evaluate` would plug in the same way.

`ctrilora predict FILE... --model PATH_OR_HUB_ID` prints, per file, the emotion and its calibrated confidence (the
`audio-classification` pipeline of `modeling_ctrilora.pipeline`: true-length features, the fitted temperature of
`--domain`), optionally the top-k scores and the transcript from the model's own decoder (`--transcribe`). `--bf16` runs
the model forwards under bfloat16 autocast (weights and feature extraction stay fp32; about 2× faster on CPUs with
AVX-512 BF16 or AMX, slower on CPUs without native bf16, which the log then says). `--int8` runs an int8
dynamic-quantised copy of the model on the CPU instead (`modeling_ctrilora.quantization`: the choice for CPUs without
native bf16; BENCHMARKS.md has its speed and what it changes). A file that
is missing, unreadable, longer than the model's window or refused by the audio check that training applies too
(`feature_extraction_ctrilora.check_audio`: NaN/inf samples, digital silence, shorter than 0.1 s) gets an error line
on stderr naming it; the other files are
still processed and the exit status is 1. `--json` prints one JSON document: a list with one object per file.

Long recordings: `--chunk_seconds S [--hop_seconds H]` scores each file in segments of S seconds (at most the model's
window, 30 s for Whisper) starting every H seconds (default H = S; H < S overlaps them), all segments of a file
batched through the model (`--segment_batch_size` per forward), and prints the whole-file emotion — the
duration-weighted mean of the segment probabilities — then one line per segment with its start/end times (seconds)
and calibrated scores; `--json` gives the same as `"segments"`. A last segment shorter than the audio check's 0.1 s
is merged into the previous one; a segment of digital silence is listed unscored and left out of the whole-file
label (`modeling_ctrilora.timeline` holds these rules). Without `--chunk_seconds` a file longer than the window is
an error that says to pass it. `--plot PATH_OR_DIR` (needs `--chunk_seconds` and matplotlib, the `plots` extra)
writes an emotion-timeline PNG per file: into a folder as `<file stem>.timeline.png`, or to PATH itself when it
ends in `.png` and one file is given. With `--transcribe`, each segment gets its own transcript.

A folder argument stands for every audio file in it (``.wav .flac .ogg .mp3``, not its subfolders, in name order);
a folder without any is reported like a bad file.

Exit status: 0 all files predicted; 1 at least one file failed; 2 bad arguments (checked before the model loads: a
`--device` this torch does not have, such as `cuda:0` on a CPU-only build, an unknown `--language`) or a model that
cannot be loaded (a `--model` path that does not exist is "neither a folder nor a Hub id"), each as one line.

Example:
    $ ctrilora predict clip1.wav clip2.flac --model me/ctrilora-kazemotts --domain target --top_k 3
    clip1.wav: angry 0.712, neutral 0.153, sad 0.081
    clip2.flac: sad 0.644, happy 0.201, neutral 0.090
    $ ctrilora predict long.wav --model me/ctrilora-kazemotts --chunk_seconds 5 --plot plots/
    long.wav: neutral 0.412 (75.0 s, 15 segments of 5 s, duration-weighted mean of the segment probabilities)
        0.00-5.00 s: neutral 0.480
        5.00-10.00 s: angry 0.391
        ...
    $ ctrilora predict clip1.wav --model runs/full/checkpoint-500 --transcribe --language kk --json
    [{"file": "clip1.wav", "emotion": "angry", "confidence": 0.712, ...}]

    >>> from modeling_ctrilora.cli import main
    >>> main(["predict", "clip1.wav", "--model", "runs/full/checkpoint-500"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from importlib import metadata
from typing import Any, Callable

from tqdm import tqdm
import torch
from transformers import AutoFeatureExtractor, AutoTokenizer, pipeline

from . import adapt
from .modeling_ctrilora import WhisperForTriLoRA
from .feature_extraction_ctrilora import AUDIO_EXTENSIONS, BadAudioError, extract_batch_features, max_clip_samples
from .pipeline import SEGMENT_BATCH_SIZE, AudioInputError, extract_features, load_audio
from .quantization import quantize_for_inference
from .timeline import PLOTS_EXTRA, check_chunking, plot_timeline, segment_bounds
from .transcribe import transcribe

PROG = "ctrilora"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    """Install `ctrilora predict`."""
    parser = subparsers.add_parser(
        "predict",
        help="emotion (and optionally transcript) of audio files",
        description="Predict the emotion of each audio file with a C-TriLoRA model: calibrated confidence, "
        "optionally the top-k emotions and the transcript from the model's decoder.",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="audio files (WAV, FLAC, OGG, MP3; ≤ 30 s each unless --chunk_seconds); a folder stands for every "
        "audio file in it "
        f"({', '.join(AUDIO_EXTENSIONS)}; not its subfolders), in name order",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hugging Face Hub id")
    parser.add_argument(
        "--domain",
        choices=("in_domain", "target"),
        default="in_domain",
        help="temperature: 'in_domain' for source-like audio, 'target' (domain-adaptive) for target-like audio",
    )
    parser.add_argument("--top_k", type=_positive_int, default=1, help="emotions listed per file (default 1)")
    parser.add_argument("--transcribe", action="store_true", help="also transcribe with the model's decoder")
    parser.add_argument("--language", default=None, help="transcription language, e.g. 'kk' (default: detected)")
    parser.add_argument(
        "--max_new_tokens", type=_positive_int, default=128, help="longest transcript in tokens (default 128)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text lines")
    parser.add_argument("--device", default=None, help="torch device, e.g. 'cuda:0' (default: CPU)")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="run the model under bfloat16 autocast (weights and features stay fp32): about 2x faster on CPUs with "
        "AVX-512 BF16 or AMX and on GPUs, slower on other CPUs; changes a few predictions (see BENCHMARKS.md)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="CPU only: run an int8 dynamic-quantised copy of the model (LoRA merged first; features and "
        "temperatures stay fp32): faster than fp32 on CPUs without native bf16; changes a few predictions "
        "(see BENCHMARKS.md)",
    )
    long = parser.add_argument_group("long recordings (emotion over time)")
    long.add_argument(
        "--chunk_seconds",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="score each file in segments of S seconds (0.1 s to the model's window, 30 s for Whisper) and print "
        "per-segment emotions with start/end times plus the whole-file emotion (duration-weighted mean of the "
        "segment probabilities); needed for files longer than the window. A last segment under 0.1 s is merged "
        "into the previous one",
    )
    long.add_argument(
        "--hop_seconds",
        type=_positive_seconds,
        default=None,
        metavar="H",
        help="seconds between segment starts (default: --chunk_seconds, consecutive segments); less than "
        "--chunk_seconds overlaps them, more is refused (audio would go unscored)",
    )
    long.add_argument(
        "--segment_batch_size",
        type=_positive_int,
        default=SEGMENT_BATCH_SIZE,
        metavar="N",
        help=f"segments per model forward (default {SEGMENT_BATCH_SIZE}); scores do not depend on it",
    )
    long.add_argument(
        "--plot",
        default=None,
        metavar="PATH_OR_DIR",
        help="write an emotion-timeline PNG per file (needs --chunk_seconds and matplotlib: "
        f"{PLOTS_EXTRA}): into folder PATH_OR_DIR as <file stem>.timeline.png, or to PATH_OR_DIR itself when it "
        "ends in .png and one file is given",
    )
    parser.set_defaults(handler=run_predict)


def _report(message: str, kind: str = "error", command: str = "predict") -> None:
    # tqdm.write keeps the progress bar intact when both share the terminal.
    tqdm.write(f"{PROG} {command}: {kind}: {message}", file=sys.stderr)


def _text_line(record: dict[str, Any]) -> str:
    line = f"{record['file']}: " + ", ".join(f"{item['label']} {item['score']:.3f}" for item in record["scores"])
    if "segments" in record:
        segments = record["segments"]
        hop = "" if record["hop_seconds"] == record["chunk_seconds"] else f", every {record['hop_seconds']:g} s"
        line += (f" ({record['duration']:.1f} s, {len(segments)} segment{'s' if len(segments) != 1 else ''} of "
                 f"{record['chunk_seconds']:g} s{hop}, {record['aggregation']})")
        top_k = len(record["scores"])
        for segment in segments:
            line += f"\n    {segment['start']:.2f}-{segment['end']:.2f} s: "
            if segment["probabilities"] is None:
                line += f"not scored ({segment['skipped']})"
            else:
                best = sorted(segment["probabilities"].items(), key=lambda item: -item[1])[:top_k]
                line += ", ".join(f"{label} {score:.3f}" for label, score in best)
            if segment.get("transcript") is not None:
                line += f"\n        transcript: {segment['transcript']}"
        for note in record["notes"]:
            line += f"\n    note: {note}"
        if record.get("plot"):
            line += f"\n    plot: {record['plot']}"
    if record.get("transcript") is not None:
        line += f"\n    transcript: {record['transcript']}"
    return line


def _expand_folders(paths: list[str]) -> tuple[list[str], list[str]]:
    """Folders replaced by their audio files (name order, not recursive); returns (files, folders without audio)."""
    files, empty = [], []
    for path in paths:
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(
            os.path.join(path, name) for name in os.listdir(path)
            if name.lower().endswith(AUDIO_EXTENSIONS) and os.path.isfile(os.path.join(path, name))
        )
        files.extend(found)
        if not found:
            empty.append(path)
    return files, empty


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with `--device` or `--language`, checked before the model loads; `None` when nothing is."""
    if args.device is not None:
        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError):
            return f"--device {args.device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:0', 'mps')"
        if device.type == "cuda" and not torch.cuda.is_available():
            return (f"--device {args.device}: this torch has no usable CUDA (torch {torch.__version__}, "
                    f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or install a CUDA build of torch")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            return f"--device {args.device}: only {torch.cuda.device_count()} CUDA device(s) here"
    if args.int8 and args.bf16:
        return "--int8 and --bf16 are two ways to speed inference up; choose one"
    if args.int8 and args.device is not None and torch.device(args.device).type != "cpu":
        return f"--int8 runs on the CPU (int8 dynamic quantisation); drop --device {args.device} or --int8"
    if args.chunk_seconds is None and (args.hop_seconds is not None or args.plot is not None):
        return f"{'--hop_seconds' if args.hop_seconds is not None else '--plot'} needs --chunk_seconds (the segment length)"
    if args.chunk_seconds is not None:
        try:
            check_chunking(args.chunk_seconds, args.hop_seconds)
        except ValueError as error:
            return f"--chunk_seconds/--hop_seconds: {error}"
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return f"--plot needs matplotlib, which is not installed: {PLOTS_EXTRA}"
        if args.plot.lower().endswith(".png") and len(args.files) > 1:
            return f"--plot {args.plot}: one PNG path for {len(args.files)} inputs; give a folder instead"
    if args.language is not None:
        from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

        if args.language.lower() not in LANGUAGES and args.language.lower() not in TO_LANGUAGE_CODE:
            return (f"--language {args.language!r} is not a Whisper language; give a code such as 'kk', 'en', 'de' "
                    "or a name such as 'kazakh'")
    return None


def _load_problem(model: str, error: Exception) -> str:
    """One line on why `--model` did not load; a path that does not exist is named as neither folder nor Hub id."""
    if not os.path.exists(model):
        return f"cannot load model {model!r}: neither a folder nor a Hub id that loads (Hub: {_first_line(error)})"
    return f"cannot load model {model!r}: {_first_line(error)}"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_predict(args: argparse.Namespace) -> int:
    """Run `ctrilora predict`; returns the exit status."""
    problem = _usage_problem(args)
    if problem is not None:
        _report(problem)
        return 2
    try:
        model = WhisperForTriLoRA.from_pretrained(args.model).eval()
        feature_extractor = AutoFeatureExtractor.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model) if args.transcribe else None
    except (OSError, ValueError) as error:
        _report(_load_problem(args.model, error))
        return 2
    if args.int8:
        model = quantize_for_inference(model)
    files, empty_folders = _expand_folders(args.files)
    for folder in empty_folders:
        _report(f"{folder}: a folder without audio files ({', '.join(AUDIO_EXTENSIONS)})")
    # bf16 is autocast around the model forward inside the pipeline (the pipeline also warns when this CPU has no
    # native bf16); the features it extracts stay fp32.
    dtype = torch.bfloat16 if args.bf16 else None
    classifier = pipeline(
        "audio-classification", model=model, feature_extractor=feature_extractor, device=args.device, dtype=dtype
    )
    if args.domain == "target" and model.config.target_temperature is None:
        _report("the model has no domain-adaptive temperature; using the in-domain one", kind="warning")

    rate = feature_extractor.sampling_rate
    limit = max_clip_samples(model.config, feature_extractor)
    if args.chunk_seconds is not None:
        try:
            check_chunking(args.chunk_seconds, args.hop_seconds, limit / rate)
        except ValueError as error:
            _report(f"--chunk_seconds: {error}")
            return 2
    plot_names: set[str] = set()
    records, failures = [], len(empty_folders)
    # One merge of the LoRA updates for all files (~30 ms on whisper-base) drops the adapters' extra matmuls
    # from every clip's forward (BENCHMARKS.md: about -10 % at batch 16); the weights are restored on the way out.
    with model.merged_lora():
        # One file needs no bar; for several, tqdm shows one on stderr when it is a terminal (disable=None).
        progress = tqdm(files, desc="predict", unit="file", file=sys.stderr, disable=True if len(files) < 2 else None)
        for path in progress:
            try:
                audio = load_audio(path, rate, max_seconds=None)  # the model's window is checked below
                if args.chunk_seconds is not None:
                    record = _predict_timeline(args, path, audio, rate, classifier)
                else:
                    if len(audio) > limit:
                        raise AudioInputError(
                            f"{path}: clip is {len(audio) / rate:.1f} s; this model takes at most {limit / rate:.1f} s "
                            f"— pass --chunk_seconds S (at most {limit / rate:g}) to predict it segment by segment"
                        )
                    try:
                        scores = classifier({"raw": audio, "sampling_rate": rate}, top_k=args.top_k, domain=args.domain)
                    except AudioInputError as error:
                        raise AudioInputError(f"{path}: {error}") from None
                    record = {
                        "file": path,
                        "emotion": scores[0]["label"],
                        "confidence": scores[0]["score"],
                        "scores": scores,
                        "domain": args.domain,
                        "error": None,
                    }
            except AudioInputError as error:
                failures += 1
                _report(str(error))
                records.append({"file": path, "error": str(error)})
                continue
            if args.plot is not None:
                record["plot"] = str(plot_timeline(record, _plot_path(args.plot, path, plot_names),
                                                   title=f"{os.path.basename(path)}: emotion over time "
                                                   f"(whole file: {record['emotion']} {record['confidence']:.2f})"))
            if tokenizer is not None and args.chunk_seconds is not None:
                _transcribe_segments(args, record, audio, rate, model, feature_extractor, tokenizer)
            elif tokenizer is not None:
                # The pipeline extracted the same features for the emotion; the decoder needs them here too.
                features = extract_features(feature_extractor, audio, model.config).to(model.device)
                autocast = (torch.autocast(device_type=model.device.type, dtype=torch.bfloat16) if args.bf16
                            else contextlib.nullcontext())
                with autocast:
                    record["transcript"] = transcribe(
                        model, features["input_features"], features["attention_mask"], tokenizer,
                        language=args.language, max_new_tokens=args.max_new_tokens,
                    )[0]
            records.append(record)
            if not args.json:
                tqdm.write(_text_line(record), file=sys.stdout)
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    return 1 if failures else 0


def _predict_timeline(args: argparse.Namespace, path: str, audio, rate: int, classifier) -> dict[str, Any]:
    """One file's emotion timeline as a `ctrilora predict` record (the pipeline's chunked call does the work)."""
    try:
        timeline = classifier(
            {"raw": audio, "sampling_rate": rate}, chunk_length_s=args.chunk_seconds, hop_length_s=args.hop_seconds,
            segment_batch_size=args.segment_batch_size, top_k=args.top_k, domain=args.domain,
        )
    except AudioInputError as error:
        raise AudioInputError(f"{path}: {error}") from None
    record = {"file": path, "emotion": timeline.pop("label"), "confidence": timeline.pop("score"),
              "scores": timeline.pop("scores"), "domain": args.domain, "error": None}
    record.update(timeline)
    return record


def _plot_path(target: str, path: str, used: set[str]) -> str:
    """Where `--plot` writes the timeline of `path`: `target` itself (a .png) or `<target>/<stem>.timeline.png`;
    a stem seen before (same name, another folder) gets `-2`, `-3`, ... instead of overwriting."""
    if target.lower().endswith(".png"):
        return target
    stem = os.path.splitext(os.path.basename(path))[0]
    name, number = f"{stem}.timeline.png", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}.timeline.png"
    used.add(name)
    return os.path.join(target, name)


def _transcribe_segments(args, record, audio, rate, model, feature_extractor, tokenizer) -> None:
    """Each scored segment's transcript (the model's decoder), `args.segment_batch_size` segments per batch."""
    bounds = segment_bounds(len(audio), rate, args.chunk_seconds, args.hop_seconds,
                            max_samples=max_clip_samples(model.config, feature_extractor))
    scored = [index for index, segment in enumerate(record["segments"]) if segment["probabilities"] is not None]
    autocast = (torch.autocast(device_type=model.device.type, dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    for first in range(0, len(scored), args.segment_batch_size):
        batch = scored[first:first + args.segment_batch_size]
        features = extract_batch_features(
            feature_extractor, [audio[bounds[i][0]:bounds[i][1]] for i in batch], model.config
        ).to(model.device)
        with autocast:
            texts = transcribe(model, features["input_features"], features["attention_mask"], tokenizer,
                               language=args.language, max_new_tokens=args.max_new_tokens)
        for index, text in zip(batch, texts):
            record["segments"][index]["transcript"] = text


def add_adapt_parser(subparsers: argparse._SubParsersAction) -> None:
    """Install `ctrilora adapt`: adapt a checkpoint to a folder (or CSV) of unlabeled clips and save it."""
    parser = subparsers.add_parser(
        "adapt", help="adapt a checkpoint to your own unlabeled audio (AdaBN, optional source-free IM)",
        description=adapt.__doc__.split("\n\nExample:")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub id")
    parser.add_argument("--audio", required=True, help="folder of audio files (searched recursively; a metadata.csv in "
                        "it is used instead) or a CSV with a 'path' column")
    parser.add_argument("--output_dir", required=True, help="where the adapted checkpoint is saved")
    parser.add_argument("--steps", type=int, default=0, help="information-maximisation steps on the LoRA matrices "
                        "(default 0: target statistics only)")
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--diversity_weight", type=float, default=1.0, help="β of the diversity term (1 in SHOT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--on_bad_audio", choices=("error", "skip"), default="error",
                        help="'error' stops at the first bad clip; 'skip' leaves it out and lists it")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    parser.set_defaults(handler=run_adapt)


def run_adapt(args: argparse.Namespace) -> int:
    """Run `ctrilora adapt` (`modeling_ctrilora.adapt.adapt_to_audio`); returns the exit status (0 done, 1 a bad
    clip, 2 bad arguments or model)."""
    try:
        result = adapt.adapt_to_audio(
            args.model, args.audio, args.output_dir, steps=args.steps, learning_rate=args.learning_rate,
            batch_size=args.batch_size, diversity_weight=args.diversity_weight, seed=args.seed,
            on_bad_audio=args.on_bad_audio, device=args.device,
        )
    except BadAudioError as error:
        _report(f"{error} (pass --on_bad_audio skip to leave bad clips out)", command="adapt")
        return 1
    except (OSError, ValueError) as error:
        _report(_first_line(error), command="adapt")
        return 2
    for path, problem in result.skipped:
        _report(f"{path}: {problem}", kind="skipped", command="adapt")
    summary = f"adapted to {result.clips} clips ({result.objective}"
    if result.steps:
        summary += f", {result.steps} steps, loss {result.loss_first:.3f} -> {result.loss_last:.3f}"
    print(summary + f"); saved to {result.output_dir}")
    return 0


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (add_predict_parser, add_adapt_parser)


def _version() -> str:
    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `ctrilora` parser with every subcommand in `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="C-TriLoRA: cross-corpus speech emotion recognition on Whisper."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for install in COMMANDS:
        install(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ctrilora` console script; returns the exit status.

    Example:
        >>> main(["predict", "a.wav", "b.wav", "--model", "me/ctrilora-kazemotts", "--json"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    return args.handler(args)


__all__ = ["COMMANDS", "add_adapt_parser", "add_predict_parser", "build_parser", "main", "run_adapt", "run_predict"]


if __name__ == "__main__":
    sys.exit(main())
