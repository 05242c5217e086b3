"""One cross-corpus experiment's data: corpora → harmonised shared classes → splits → log-Mel → collator.

Shared by `examples/train_ctrilora.py`, `examples/evaluate_ctrilora.py` and `examples/run_ablations.py`, so a
checkpoint is always evaluated on exactly the splits it was trained with (the split files in the run folder are
re-read and checked against the corpus).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
from accelerate import PartialState
from transformers import AutoConfig, WhisperFeatureExtractor, WhisperTokenizer

from hub_cards.run_folder import RunFolder

from .data.corpora import LONG_CLIP_POLICIES, MAX_SECONDS, LoadReport, load_corpus
from .data.fingerprints import clip_fingerprint
from .data.features import CTriLoRACollator, add_log_mel
from .data.labels import make_label_maps, make_speaker_map, shared_classes
from .data.sampler import build_transcript_vocab
from .data.splits import TARGET_SPLIT_MODES, apply_splits, expand_splits, read_splits, restrict_to_classes, speaker_independent_split, stratified_split, target_split, write_splits
from .demo.corpus import build_demo_corpus
from .demo.tiny_whisper import build_tiny_whisper

logger = logging.getLogger(__name__)

CACHE_HOME = Path(os.environ.get("CTRILORA_CACHE", Path.home() / ".cache" / "ctrilora"))
# The embedded demo's backbone: small enough to train end to end on 2 CPU cores in minutes.
# init_std 0.2 (Whisper's is 0.02): with small random weights the sinusoidal positions swamp the conv features and the
# pooled state barely depends on the audio.
DEMO_WHISPER = {"init_std": 0.2, "d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
                "decoder_attention_heads": 4, "encoder_ffn_dim": 256, "decoder_ffn_dim": 256}


@dataclass
class DataArguments:
    """Which corpora, and how they are split. With neither `source` nor `target` the embedded Kazakh demo is used."""

    source: str | None = field(default=None, metadata={"help": "Source corpus: metadata.csv folder, KazEmoTTS root or save_to_disk folder."})
    target: str | None = field(default=None, metadata={"help": "Target corpus (same formats); its labels are only used for testing."})
    source_language: str | None = field(default=None, metadata={"help": "Language code of the source corpus when it has no language column (e.g. en, kk)."})
    target_language: str | None = field(default=None, metadata={"help": "Language code of the target corpus when it has no language column."})
    source_split: str = field(default="stratified", metadata={"choices": ("stratified", "speaker_independent"), "help": "'stratified' 80/10/10 by emotion (paper) or 'speaker_independent'."})
    target_adaptation_fraction: float = field(default=0.5, metadata={"help": "Share of the target (by speaker where possible) used unlabeled for adaptation."})
    target_split: str = field(default="speaker", metadata={"choices": TARGET_SPLIT_MODES, "help": "Disjoint target split: 'speaker' (by speaker, default) or 'stratified' (by clip, stratified by emotion; for corpora whose speakers are confounded with emotion, such as URDU)."})
    transductive: bool = field(default=False, metadata={"help": "Use every target clip both for adaptation and for testing (the paper's protocol)."})
    on_bad_audio: str = field(default="error", metadata={"choices": ("error", "skip"), "help": "'error' (stop at the first bad clip) or 'skip' (drop, count and report bad clips)."})
    max_duration: float | None = field(default=None, metadata={"help": "Longest clip in seconds kept whole (default 30, Whisper's window; more than the backbone's window is refused); longer clips follow --long_clips."})
    long_clips: str = field(default="bad_audio", metadata={"choices": LONG_CLIP_POLICIES, "help": "Clips longer than --max_duration: 'bad_audio' (default: a bad clip, so --on_bad_audio stops or skips), 'skip' (drop and report them), 'crop' (keep the first --max_duration seconds) or 'split' (the fewest equal consecutive segments of at most --max_duration seconds, one row each with the clip's label and speaker, all in the clip's split). Counted in the corpus report."})
    label_aliases: str | None = field(default=None, metadata={"help": "JSON object of extra emotion aliases, e.g. '{\"pleased\": \"happy\"}'."})
    demo_dir: str | None = field(default=None, metadata={"help": "Where the embedded demo corpus is built (default: ~/.cache/ctrilora/demo-corpus)."})

    def __post_init__(self):
        if (self.source is None) != (self.target is None):
            raise ValueError("give both --source and --target (or neither, for the embedded demo corpus)")
        if self.source_split not in ("stratified", "speaker_independent"):
            raise ValueError(f"--source_split {self.source_split!r}: expected 'stratified' or 'speaker_independent'")
        if self.on_bad_audio not in ("error", "skip"):
            raise ValueError(f"--on_bad_audio {self.on_bad_audio!r}: expected 'error' or 'skip'")
        if self.long_clips not in LONG_CLIP_POLICIES:
            raise ValueError(f"--long_clips {self.long_clips!r}: expected one of {', '.join(LONG_CLIP_POLICIES)}")
        if self.max_duration is not None and not self.max_duration > 0:
            raise ValueError(f"--max_duration must be a positive number of seconds, got {self.max_duration}")
        if self.target_split not in TARGET_SPLIT_MODES:
            raise ValueError(f"--target_split {self.target_split!r}: expected one of {TARGET_SPLIT_MODES}")
        if not 0 < self.target_adaptation_fraction < 1:
            raise ValueError(f"--target_adaptation_fraction must be in (0, 1), got {self.target_adaptation_fraction}")

    @property
    def is_demo(self) -> bool:
        return self.source is None


# The DataArguments fields that say where the corpora are and which language they speak (results.json records the
# corpora in their own section). Every other field, present or added later, decides which clips land in which split.
CORPUS_FIELDS = ("source", "target", "source_language", "target_language", "demo_dir")


def protocol(data_args: DataArguments, seed: int) -> dict[str, Any]:
    """A run's protocol: its seed and every data argument that decides the splits (`results.json`'s "protocol" and
    the split files' metadata)."""
    return {"seed": seed, **{name: value for name, value in asdict(data_args).items() if name not in CORPUS_FIELDS}}


@dataclass
class ExperimentData:
    """Everything a run needs about its data.

    Attributes:
        source: DatasetDict train/validation/test with `input_features`. target: DatasetDict adaptation/test.
        classes: the emotions both corpora share (the model's label space). speaker2id: source-train speakers.
        collator: pads rows into model inputs. feature_extractor / tokenizer: the backbone's.
        languages: {"source": code, "target": code}. names: {"source": corpus name, "target": ...}.
        load_reports: the corpora loaders' reports (`LoadReport`: counts, and every clip skipped with its problem —
            evaluation writes them into results.json's "skipped_clips" and report.md).
    """

    source: datasets.DatasetDict
    target: datasets.DatasetDict
    classes: list[str]
    speaker2id: dict[str, int]
    collator: CTriLoRACollator
    feature_extractor: WhisperFeatureExtractor
    tokenizer: WhisperTokenizer
    languages: dict[str, str]
    names: dict[str, str]
    load_reports: dict[str, LoadReport]

    @property
    def label2id(self) -> dict[str, int]:
        return make_label_maps(self.classes)[0]

    @property
    def id2label(self) -> dict[int, str]:
        return make_label_maps(self.classes)[1]


def resolve_base_model(base_model: str | None) -> str:
    """`base_model` as given, or the demo's tiny random Whisper (built once into the cache)."""
    if base_model:
        return base_model
    with PartialState().main_process_first():
        return build_tiny_whisper(CACHE_HOME / "tiny-whisper-demo", **DEMO_WHISPER)


def resolve_corpora(data_args: DataArguments) -> tuple[str, str]:
    """The source and target folders; the demo corpus is built (once, idempotently) when none are given."""
    if not data_args.is_demo:
        return data_args.source, data_args.target
    with PartialState().main_process_first():
        folders = build_demo_corpus(data_args.demo_dir or CACHE_HOME / "demo-corpus")
    return str(folders["source"]), str(folders["target"])


# The `DataArguments` fields that name folders: recorded absolute, so evaluation works from any working directory.
_PATH_FIELDS = ("source", "target", "demo_dir")


def _absolute(path: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(path)) if path and os.path.exists(os.path.expanduser(path)) else path


def write_run_arguments(run_dir: str | os.PathLike, data_args: DataArguments, base_model: str) -> Path:
    """Record the data arguments and backbone of a run (`run_arguments.json`), for evaluation to rebuild its data.

    Corpus folders (and a local backbone folder) are stored as absolute paths, so the run can be evaluated from
    another working directory."""
    path = RunFolder(run_dir).run_arguments
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(data_args)
    for name in _PATH_FIELDS:
        data[name] = _absolute(data.get(name))
    recorded = {"base_model": _absolute(base_model), "data": data}
    path.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    return path


def read_run_arguments(run_dir: str | os.PathLike) -> tuple[DataArguments, str]:
    """The `DataArguments` and backbone a run was trained with.

    Raises:
        FileNotFoundError: the file is missing, or a corpus or backbone folder it names is gone (moved or deleted
            since training); the message names the field and says how to point it at the new place.
    """
    path = RunFolder(run_dir).run_arguments
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a run folder written by examples/train_ctrilora.py?")
    recorded = json.loads(path.read_text(encoding="utf-8"))
    named = [(f"data.{name}", recorded["data"].get(name)) for name in _PATH_FIELDS]
    named.append(("base_model", recorded["base_model"]))
    for field_name, value in named:
        # A relative value is a path of an older run folder (relative to where it was trained) or a Hub id.
        if value and os.path.isabs(value) and not os.path.exists(value):
            raise FileNotFoundError(
                f"{path}: {field_name} {value!r} does not exist any more (moved or deleted since training); put it "
                f"back, or edit {field_name!r} in {path} to its new place"
            )
    return DataArguments(**recorded["data"]), recorded["base_model"]


def _language(dataset: datasets.Dataset, given: str | None, role: str) -> str:
    if given:
        return given
    found = sorted({code for code in dataset["language"] if code})
    if len(found) > 1:
        raise ValueError(f"the {role} corpus mixes languages {found}; pass --{role}_language")
    return found[0] if found else ""


# Bumped when the cache key or the features change meaning: version 1 keyed on paths only and could serve stale
# features; version 2 cropped an odd frame count (the frame rule now pads it, modeling_ctrilora.feature_extraction_ctrilora).
FEATURE_CACHE_VERSION = "log-mel-cache-3"


def _cached_log_mel(
    dataset: datasets.Dataset,
    feature_extractor: WhisperFeatureExtractor,
    max_duration: float = MAX_SECONDS,
    long_clips: str = "bad_audio",
) -> datasets.Dataset:
    """Log-Mel features, cached under ~/.cache/ctrilora/features.

    The key is every clip's path and content (:func:`trainer.data.fingerprints.clip_fingerprint`: size, mtime and a
    sha256 of the file) plus the extractor settings, so a clip fixed or re-recorded at the same path is featurised
    again. The log says whether the cache file was reused or written.
    """
    digest = hashlib.sha256(FEATURE_CACHE_VERSION.encode("utf-8") + b"\n")
    for path, audio in zip(dataset["path"], dataset["audio"]):
        digest.update(f"{path}\t{clip_fingerprint(audio)}\n".encode("utf-8"))
    digest.update(feature_extractor.to_json_string().encode("utf-8"))
    if long_clips in ("crop", "split"):  # the rows and features depend on them (other policies keep the old key)
        digest.update(f"long_clips={long_clips}\tmax_duration={max_duration!r}".encode("utf-8"))
    cache_dir = CACHE_HOME / "features"
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = cache_dir / f"{digest.hexdigest()[:24]}.arrow"
    with PartialState().main_process_first():
        if cache_file.is_file():
            logger.info("log-Mel cache: reusing %s for %d clips", cache_file, dataset.num_rows)
        else:
            logger.info("log-Mel cache: computing features of %d clips into %s", dataset.num_rows, cache_file)
        return add_log_mel(dataset, feature_extractor, max_duration=max_duration, long_clips=long_clips,
                           cache_file_name=str(cache_file))


def _splits(dataset: datasets.Dataset, path: Path, make: Any, metadata: dict[str, Any]) -> dict[str, list[int]]:
    """Reuse the run folder's split file `path` when present (evaluation, resume), else make and write it."""
    if path.exists():
        return read_splits(path, dataset=dataset)
    splits = make()
    if PartialState().is_main_process:
        write_splits(splits, path, dataset=dataset, metadata=metadata)
    return splits


def prepare_data(data_args: DataArguments, base_model: str, run_dir: str | os.PathLike, seed: int, padding: str = "short") -> ExperimentData:
    """Load, harmonise, restrict to shared classes, split (written to `run_dir`), featurise and build the collator.

    Clips longer than `data_args.max_duration` (default 30 s, Whisper's window) follow `data_args.long_clips`
    (`trainer.data.corpora`); splits are made on clips, and under "split" each clip's segments follow it.
    """
    run = RunFolder(run_dir)
    source_dir, target_dir = resolve_corpora(data_args)
    aliases = json.loads(data_args.label_aliases) if data_args.label_aliases else None
    max_duration = MAX_SECONDS if data_args.max_duration is None else data_args.max_duration
    if data_args.max_duration is not None:  # checked before the corpora load (the default fits real Whisper)
        encoder = AutoConfig.from_pretrained(base_model)
        extractor = WhisperFeatureExtractor.from_pretrained(base_model)
        window = 2 * encoder.max_source_positions * extractor.hop_length / extractor.sampling_rate
        if max_duration > window:
            raise ValueError(
                f"--max_duration {max_duration:g} s is longer than the backbone's window ({window:g} s, "
                f"{base_model}); give at most {window:g}, with --long_clips crop or split for longer clips"
            )
    loaded, reports = {}, {}
    for role, folder in (("source", source_dir), ("target", target_dir)):
        name = f"kazakh-demo-{role}" if data_args.is_demo else None
        dataset, report = load_corpus(
            folder, label_aliases=aliases, on_bad_audio=data_args.on_bad_audio, corpus_name=name, return_report=True,
            max_duration=max_duration, long_clips=data_args.long_clips,
        )
        loaded[role], reports[role] = dataset, report
        logger.info(report.summary())
    classes = shared_classes(loaded["source"]["emotion"], loaded["target"]["emotion"])
    if len(classes) < 2:
        found = {role: sorted({emotion for emotion in loaded[role]["emotion"] if emotion}) for role in loaded}
        raise ValueError(
            f"the source and target corpora share only one emotion class ({classes[0]!r}; source: "
            f"{', '.join(found['source'])}; target: {', '.join(found['target'])}), so there is nothing to classify. "
            "If the corpora name the same emotion differently, map the names with --label_aliases "
            "'{\"raw name\": \"canonical name\"}'"
        )
    for role in loaded:
        loaded[role], removed = restrict_to_classes(loaded[role], classes)
        if removed:
            logger.info("%s: left out rows of classes outside the shared set: %s", role, removed)
    languages = {role: _language(loaded[role], getattr(data_args, f"{role}_language"), role) for role in loaded}
    names = {role: loaded[role][0]["corpus"] for role in loaded}
    metadata = protocol(data_args, seed)
    make_source = (stratified_split if data_args.source_split == "stratified" else speaker_independent_split)
    source_splits = _splits(loaded["source"], run.source_splits, lambda: make_source(loaded["source"], seed), metadata)
    target_splits = _splits(
        loaded["target"], run.target_splits,
        lambda: target_split(loaded["target"], seed, adaptation_fraction=data_args.target_adaptation_fraction, transductive=data_args.transductive, by=data_args.target_split),
        metadata,
    )
    backbone = AutoConfig.from_pretrained(base_model)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(base_model)
    tokenizer = WhisperTokenizer.from_pretrained(base_model, language=languages["source"] or None, task="transcribe")
    featurised = {role: _cached_log_mel(loaded[role], feature_extractor, max_duration, data_args.long_clips)
                  for role in loaded}
    if data_args.long_clips == "split":  # rows are segments now; each follows its clip's split
        source_splits = expand_splits(source_splits, featurised["source"]["clip_row"])
        target_splits = expand_splits(target_splits, featurised["target"]["clip_row"])
    source = apply_splits(featurised["source"], source_splits)
    target = apply_splits(featurised["target"], target_splits)
    speaker2id = make_speaker_map(source["train"]["speaker"])
    collator = CTriLoRACollator(
        tokenizer,
        make_label_maps(classes)[0],
        speaker2id,
        build_transcript_vocab(loaded["source"]["transcript"]),
        padding=padding,
        max_frames=2 * backbone.max_source_positions,
        max_asr_length=backbone.max_target_positions,
    )
    return ExperimentData(source, target, classes, speaker2id, collator, feature_extractor, tokenizer, languages, names, reports)


__all__ = [
    "CACHE_HOME",
    "DEMO_WHISPER",
    "DataArguments",
    "ExperimentData",
    "prepare_data",
    "protocol",
    "read_run_arguments",
    "resolve_base_model",
    "resolve_corpora",
    "write_run_arguments",
]
