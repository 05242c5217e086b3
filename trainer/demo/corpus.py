"""The embedded default demo corpus: synthetic Kazakh emotional speech in two domains, built offline.

With no data arguments the training script trains on this corpus, so a fresh clone can run the whole
pipeline end to end — data loading, the second (target) dataloader, CORAL, the counterfactual pairs, the
ASR head on Kazakh transcripts, evaluation and the report — without any download.

**This demo checks the pipeline, not emotion science.** The "emotions" are eSpeak NG prosody profiles
(pitch level, pitch range, speaking rate, volume and pauses), a caricature of emotional speech: a model
that scores well here has learnt to read eSpeak's parameters, not human emotion. Never report numbers from
this corpus as SER results.

What is built (:func:`build_demo_corpus`):

* ``source/``: every sentence of :data:`DEMO_SENTENCES` (short everyday Kazakh, Cyrillic) in every emotion of
  :data:`DEMO_EMOTIONS`, spoken by eSpeak NG's Kazakh voice ``kk`` with several voice variants as speakers
  (:data:`SOURCE_VARIANTS`), clean. Each clip gets a small seeded jitter of its prosody, so no two clips are
  copies. The same transcript in several emotions gives the counterfactual pairs the counterfactual loss needs.
* ``target/``: the same sentences and emotions from other variants (:data:`TARGET_VARIANTS`) through a
  different channel (:class:`TargetChannel`): a synthetic room (exponentially decaying noise impulse
  response), additive pink noise at a set SNR and telephone band-limiting (300–3400 Hz). This is the
  domain shift CORAL and the cross-corpus evaluation work against.

Each folder holds 16 kHz mono 16-bit FLAC files under ``wav/`` and a ``metadata.csv`` with the columns
``path,emotion,speaker,transcript,gender,language`` (the layout of the project's real corpora, plus
``language`` = ``kk``), and a ``demo_manifest.json`` recording the build parameters: a second call with the same
arguments finds it and returns at once.

eSpeak NG speaks through :mod:`trainer.demo.espeak` (``ctypes``, the ``espeakng-loader`` wheel: no system
packages, no network) and the target channel is :mod:`trainer.demo.channel`. libespeak-ng keeps hidden state
between utterances, so to make a build reproducible sample for sample every speaker is synthesised in a fresh
worker process (which also spreads the build over the CPU cores and keeps the process-global C library out of the
caller's process). A worker imports this module alone: ``trainer`` loads its Trainer (torch, transformers) only
when asked for it.

Example:
    >>> from trainer.demo.corpus import build_demo_corpus
    >>> folders = build_demo_corpus("runs/demo_corpus")  # doctest: +SKIP
    >>> sorted(folders)  # doctest: +SKIP
    ['source', 'target']
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .channel import TargetChannel, apply_channel, room_impulse_response
from .espeak import KAZAKH, ESpeakError, ESpeakSynthesizer

logger = logging.getLogger(__name__)

# The project's canonical emotion names (trainer.data.labels.EMOTIONS) that eSpeak prosody can caricature.
DEMO_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fear", "surprise")

# Short, everyday Kazakh sentences (4–5 words), each natural in any of the six emotions.
DEMO_SENTENCES: tuple[str, ...] = (
    "Бүгін ауа райы өте жақсы.",  # The weather is very nice today.
    "Мен кешке үйге ерте келемін.",  # I will come home early this evening.
    "Біз ертең базарға барамыз.",  # We are going to the bazaar tomorrow.
    "Анам дәмді бауырсақ пісірді.",  # Mother made tasty baursaks.
    "Автобус аялдамада ұзақ тұрды.",  # The bus stood at the stop for a long time.
    "Балалар аулада доп ойнап жүр.",  # The children are playing ball in the yard.
    "Кітапты үстелдің үстіне қойдым.",  # I put the book on the table.
    "Әкем жұмыстан кеш қайтты.",  # Father came back late from work.
    "Дүкен сағат тоғызда ашылады.",  # The shop opens at nine o'clock.
    "Қыста мұнда қар көп жауады.",  # It snows a lot here in winter.
)

# eSpeak NG voice variants (files in espeak-ng-data/voices/!v) used as speakers, genders alternating so any prefix
# is balanced. Source and target never share a variant: the target speakers are unseen in training.
SOURCE_VARIANTS: tuple[str, ...] = ("f1", "m1", "f3", "m3", "f5", "m6")
TARGET_VARIANTS: tuple[str, ...] = ("f2", "m2", "f4", "m4", "m7")

DEMO_LANGUAGE = KAZAKH
AUDIO_SUBDIR = "wav"
METADATA_FILE = "metadata.csv"
MANIFEST_FILE = "demo_manifest.json"
METADATA_COLUMNS: tuple[str, ...] = ("path", "emotion", "speaker", "transcript", "gender", "language")
SPEAKER_PREFIXES: dict[str, str] = {"source": "demo_src", "target": "demo_tgt"}

# Bump when the audio a given set of arguments produces changes, so stale corpora are rebuilt.
FORMAT_VERSION = 1

# Clip length bounds (seconds): long enough for the encoder to see a whole sentence, short enough to train fast.
MIN_CLIP_SECONDS = 1.0
MAX_CLIP_SECONDS = 3.0

# Peak level after normalisation: -1 dBFS leaves headroom for the 16-bit conversion.
PEAK_LEVEL = 10 ** (-1.0 / 20.0)


# ----------------------------------------------------------------------------------------------------------------
# Prosody profiles
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProsodyProfile:
    """eSpeak NG parameters of one caricatured emotion (see :meth:`ESpeakSynthesizer.synthesize` for units)."""

    rate: int
    pitch: int
    pitch_range: int
    volume: int
    word_gap: int = 0


# Textbook directions of vocal emotion (e.g. Scherer 2003, Table 3): anger loud, fast, wide; joy high, wide;
# sadness slow, low, flat, soft; fear high, fast, narrow; surprise high with the widest excursions.
PROSODY_PROFILES: dict[str, ProsodyProfile] = {
    "neutral": ProsodyProfile(rate=160, pitch=45, pitch_range=35, volume=100),
    "happy": ProsodyProfile(rate=185, pitch=68, pitch_range=85, volume=115),
    "sad": ProsodyProfile(rate=125, pitch=30, pitch_range=12, volume=75, word_gap=2),
    "angry": ProsodyProfile(rate=195, pitch=55, pitch_range=70, volume=150),
    "fear": ProsodyProfile(rate=210, pitch=72, pitch_range=28, volume=90),
    "surprise": ProsodyProfile(rate=170, pitch=78, pitch_range=100, volume=120),
}

# Per-clip uniform jitter: relative for rate and volume, absolute (in eSpeak units) for pitch and range.
RATE_JITTER = 0.06
VOLUME_JITTER = 0.08
PITCH_JITTER = 4
PITCH_RANGE_JITTER = 6


def _clip_rng(seed: int, *identity: str) -> np.random.Generator:
    """A generator keyed by the clip's identity, so a clip's randomness does not depend on the list it is in."""
    key = zlib.crc32("\x1f".join(identity).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key]))


def _jittered_profile(profile: ProsodyProfile, rng: np.random.Generator) -> ProsodyProfile:
    limits = ESpeakSynthesizer
    rate = profile.rate * (1 + rng.uniform(-RATE_JITTER, RATE_JITTER))
    pitch = profile.pitch + rng.integers(-PITCH_JITTER, PITCH_JITTER + 1)
    pitch_range = profile.pitch_range + rng.integers(-PITCH_RANGE_JITTER, PITCH_RANGE_JITTER + 1)
    volume = profile.volume * (1 + rng.uniform(-VOLUME_JITTER, VOLUME_JITTER))
    return ProsodyProfile(
        rate=int(np.clip(round(rate), *limits.RATE_LIMITS)),
        pitch=int(np.clip(pitch, *limits.PITCH_LIMITS)),
        pitch_range=int(np.clip(pitch_range, *limits.PITCH_RANGE_LIMITS)),
        volume=int(np.clip(round(volume), *limits.VOLUME_LIMITS)),
        word_gap=profile.word_gap,
    )


# ----------------------------------------------------------------------------------------------------------------
# One speaker's clips (runs in a worker process)
# ----------------------------------------------------------------------------------------------------------------


def _trim_silence(samples: np.ndarray) -> np.ndarray:
    magnitude = np.abs(samples.astype(np.int32))
    active = np.flatnonzero(magnitude > max(32, int(0.005 * magnitude.max())))
    return samples[active[0] : active[-1] + 1] if active.size else samples[:0]


def _speak_fitting(
    synthesizer: ESpeakSynthesizer, text: str, variant: str, profile: ProsodyProfile, max_seconds: float, seed: int
) -> np.ndarray:
    """Synthesise, trimmed; if it would not fit in ``max_seconds`` (slow profile, long text), speak faster."""
    for _ in range(3):
        audio = _trim_silence(synthesizer.synthesize(text, variant=variant, seed=seed, **dataclasses.asdict(profile)))
        if audio.size == 0:
            raise ESpeakError(f"eSpeak NG produced only silence for {text!r} (voice {variant!r}).")
        seconds = audio.size / synthesizer.sample_rate
        if seconds <= max_seconds:
            return audio
        # Duration is roughly inversely proportional to rate; aim 5 % under the limit.
        new_rate = min(ESpeakSynthesizer.RATE_LIMITS[1], int(np.ceil(profile.rate * seconds / (0.95 * max_seconds))))
        if new_rate == profile.rate:
            break
        profile = dataclasses.replace(profile, rate=new_rate, word_gap=0)
    raise ValueError(
        f"The sentence {text!r} takes {seconds:.2f} s even at {profile.rate} words/min, more than the "
        f"{max_seconds:.2f} s a demo clip allows: use shorter sentences (3–7 words)."
    )


def _synthesize_speaker(job: Mapping[str, Any]) -> list[dict[str, str]]:
    """Write every clip of one speaker and return their metadata rows (paths relative to the corpus folder)."""
    import soundfile
    import soxr

    synthesizer = ESpeakSynthesizer(DEMO_LANGUAGE)
    variant = job["variant"]
    sample_rate = int(job["sample_rate"])
    channel = TargetChannel(**job["channel"]) if job["channel"] is not None else None
    seed, domain, speaker = int(job["seed"]), job["domain"], job["speaker"]
    impulse_response = (
        room_impulse_response(channel, sample_rate, _clip_rng(seed, "room", domain, variant)) if channel else None
    )
    audio_dir = Path(job["corpus_dir"]) / AUDIO_SUBDIR
    audio_dir.mkdir(parents=True, exist_ok=True)
    lead_range, trail_range = (0.10, 0.20), (0.15, 0.25)  # pauses around the speech (the tail needs room)
    max_speech = MAX_CLIP_SECONDS - lead_range[1] - trail_range[1]

    rows = []
    for sentence_index, sentence in enumerate(job["sentences"]):
        for emotion in job["emotions"]:
            rng = _clip_rng(seed, domain, variant, sentence, emotion)
            profile = _jittered_profile(ProsodyProfile(**job["profiles"][emotion]), rng)
            espeak_seed = int(rng.integers(0, 2**31 - 1))
            speech = _speak_fitting(synthesizer, sentence, variant, profile, max_speech, espeak_seed)
            speech = speech.astype(np.float64) / 32768.0
            speech = soxr.resample(speech, synthesizer.sample_rate, sample_rate, quality="HQ")

            lead = int(round(rng.uniform(*lead_range) * sample_rate))
            trail = int(round(rng.uniform(*trail_range) * sample_rate))
            shortfall = int(np.ceil(MIN_CLIP_SECONDS * sample_rate)) - (lead + speech.size + trail)
            if shortfall > 0:  # a short, fast sentence: pad with more pause rather than stretch the speech
                lead += shortfall // 2
                trail += shortfall - shortfall // 2
            # Resampling may round up by a sample or two; the trailing pause absorbs it.
            trail -= max(0, lead + speech.size + trail - int(MAX_CLIP_SECONDS * sample_rate))
            audio = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
            if channel is not None:
                speech_span = slice(lead, lead + speech.size)
                audio = apply_channel(audio, speech_span, sample_rate, channel, impulse_response, rng)
            audio = audio * (PEAK_LEVEL / np.max(np.abs(audio)))
            # Quantise here rather than in libsndfile, so the stored samples are exactly what this code decides.
            pcm = np.round(audio * 32767.0).astype(np.int16)

            relative = f"{AUDIO_SUBDIR}/{speaker}_s{sentence_index:02d}_{emotion}.flac"
            soundfile.write(Path(job["corpus_dir"]) / relative, pcm, sample_rate, format="FLAC", subtype="PCM_16")
            rows.append(
                {
                    "path": relative,
                    "emotion": emotion,
                    "speaker": speaker,
                    "transcript": sentence,
                    "gender": job["gender"],
                    "language": DEMO_LANGUAGE,
                }
            )
    return rows


def _worker_main(job_path: str) -> None:
    """Entry point of a worker process: run the job in ``job_path`` and write the rows (or the error) beside it."""
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    try:
        result: dict[str, Any] = {"rows": _synthesize_speaker(job)}
    except (ESpeakError, ValueError, OSError) as error:
        result = {"error": f"{type(error).__name__}: {error}", "error_type": type(error).__name__}
    Path(job["result_path"]).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


# A worker process imports this module by name and runs one job.
_WORKER_COMMAND = "import sys; from trainer.demo.corpus import _worker_main; _worker_main(sys.argv[1])"


def _run_worker(job: dict[str, Any], scratch: Path) -> list[dict[str, str]]:
    job_path = scratch / f"job_{job['speaker']}.json"
    job = {**job, "result_path": str(scratch / f"result_{job['speaker']}.json")}
    job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-c", _WORKER_COMMAND, str(job_path)],
        capture_output=True,
        text=True,
    )
    result_path = Path(job["result_path"])
    if completed.returncode != 0 or not result_path.is_file():
        raise RuntimeError(
            f"Demo-corpus worker for speaker {job['speaker']!r} failed (exit code {completed.returncode}):\n"
            f"{completed.stderr.strip()}"
        )
    result = json.loads(result_path.read_text(encoding="utf-8"))
    if "error" in result:
        error_type = {"ESpeakError": ESpeakError, "ValueError": ValueError}.get(result["error_type"], RuntimeError)
        raise error_type(f"Building the demo corpus for speaker {job['speaker']!r} failed: {result['error']}")
    return result["rows"]


# ----------------------------------------------------------------------------------------------------------------
# The corpus
# ----------------------------------------------------------------------------------------------------------------


def _validate(
    seed: int,
    sentences: Sequence[str],
    emotions: Sequence[str],
    n_source_speakers: int,
    n_target_speakers: int,
    sample_rate: int,
    channel: TargetChannel,
) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if isinstance(emotions, str):
        raise ValueError(f"emotions must be a sequence of names, not the string {emotions!r}.")
    unknown = [emotion for emotion in emotions if emotion not in PROSODY_PROFILES]
    if unknown:
        raise ValueError(
            f"Unknown emotion name(s) {unknown} for the demo corpus; it has prosody profiles for {list(DEMO_EMOTIONS)}."
        )
    if len(emotions) < 2 or len(set(emotions)) != len(emotions):
        raise ValueError(f"emotions must name at least two distinct emotions, got {list(emotions)}.")
    if isinstance(sentences, str):
        raise ValueError("sentences must be a sequence of sentences, not one string.")
    if not sentences or any(not isinstance(s, str) or not s.strip() for s in sentences):
        raise ValueError("sentences must be a non-empty sequence of non-empty strings.")
    if len(set(sentences)) != len(sentences):
        raise ValueError("sentences contains duplicates; each transcript must be unique.")
    for count, name, variants in (
        (n_source_speakers, "n_source_speakers", SOURCE_VARIANTS),
        (n_target_speakers, "n_target_speakers", TARGET_VARIANTS),
    ):
        if not 1 <= count <= len(variants):
            raise ValueError(f"{name} must be between 1 and {len(variants)} (eSpeak variants {variants}), got {count}.")
    if sample_rate < 2 * channel.high_hz + 200:
        raise ValueError(
            f"sample_rate={sample_rate} is too low for the target channel's {channel.high_hz} Hz band edge."
        )


def _espeak_package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("espeakng-loader")
    except PackageNotFoundError:
        return "unknown"


def _manifest_matches(folder: Path, params: Mapping[str, Any]) -> bool:
    """True if ``folder`` is a complete demo corpus built with exactly these parameters."""
    try:
        stored = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        with open(folder / METADATA_FILE, newline="", encoding="utf-8") as handle:
            paths = [row["path"] for row in csv.DictReader(handle)]
    except (OSError, ValueError, KeyError):
        return False
    return (
        stored.get("params") == params
        and stored.get("num_clips") == len(paths)
        and all((folder / path).is_file() for path in paths)
    )


@contextlib.contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    """Serialise builds of one ``out_dir`` across processes (e.g. every rank of ``accelerate launch``)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: builds still swap folders in whole, but two may run at once
        yield
        return
    with open(out_dir / ".demo_corpus.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_replaceable(folder: Path) -> None:
    """Raise unless ``folder`` is absent or a previous build of this module (it holds a manifest)."""
    if folder.exists() and not (folder / MANIFEST_FILE).is_file():
        raise FileExistsError(
            f"{folder} exists and is not a demo corpus built by trainer.demo.corpus (no {MANIFEST_FILE}); "
            "refusing to overwrite it. Choose another out_dir."
        )


def _replace_folder(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``, replacing a previous demo build there but never a folder this module did not make."""
    if final.exists():
        _check_replaceable(final)
        trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(trash)
        new.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(final)


def build_demo_corpus(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    sentences: Sequence[str] | None = None,
    n_source_speakers: int = 4,
    n_target_speakers: int = 3,
    emotions: Sequence[str] = DEMO_EMOTIONS,
    sample_rate: int = 16000,
    channel: TargetChannel | None = None,
    num_workers: int | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Build (or reuse) the synthetic two-domain Kazakh demo corpus under ``out_dir``.

    Every sentence is spoken in every emotion by every speaker, in both domains: the defaults give
    10 sentences × 6 emotions × 4 speakers = 240 source clips and 10 × 6 × 3 = 180 target clips, 1–3 s each
    (about 15 minutes of audio), built in a few seconds on two cores.

    Args:
        out_dir: parent folder; the corpora go to ``out_dir/source`` and ``out_dir/target``.
        seed: seeds the prosody jitter, the pauses, the rooms and the noise (and eSpeak's own noise).
        sentences: transcripts (Kazakh, 3–7 words, so each clip fits in 3 s); default :data:`DEMO_SENTENCES`.
        n_source_speakers: number of source speakers, the first of :data:`SOURCE_VARIANTS`.
        n_target_speakers: number of target speakers, the first of :data:`TARGET_VARIANTS`.
        emotions: emotions to speak, a subset of :data:`DEMO_EMOTIONS` (the canonical project names).
        sample_rate: output sample rate (16 kHz is Whisper's).
        channel: the target domain's channel; default :class:`TargetChannel()`.
        num_workers: worker processes (one per speaker at a time); default ``min(2, os.cpu_count())``.
        force: rebuild even if a matching corpus exists.

    Returns:
        ``{"source": out_dir/source, "target": out_dir/target}``, each a corpus folder with ``metadata.csv``.

    Raises:
        ValueError: unknown emotion name, bad sentences, speaker counts or sample rate; a sentence too long.
        ESpeakError: eSpeak NG or its Kazakh voice cannot be loaded.
        FileExistsError: ``out_dir/source`` or ``out_dir/target`` exists but was not built by this function.

    Example:
        >>> folders = build_demo_corpus("/tmp/demo", sentences=DEMO_SENTENCES[:2])  # doctest: +SKIP
        >>> (folders["source"] / "metadata.csv").read_text().splitlines()[0]  # doctest: +SKIP
        'path,emotion,speaker,transcript,gender,language'
    """
    sentences = list(DEMO_SENTENCES if sentences is None else sentences)
    emotions = list(emotions) if not isinstance(emotions, str) else emotions
    channel = TargetChannel() if channel is None else channel
    _validate(seed, sentences, emotions, n_source_speakers, n_target_speakers, sample_rate, channel)
    out_dir = Path(out_dir)
    folders = {domain: out_dir / domain for domain in ("source", "target")}

    params = {
        "format_version": FORMAT_VERSION,
        "espeakng_loader": _espeak_package_version(),
        "seed": int(seed),
        "sentences": sentences,
        "emotions": emotions,
        "sample_rate": int(sample_rate),
        "source_variants": list(SOURCE_VARIANTS[:n_source_speakers]),
        "target_variants": list(TARGET_VARIANTS[:n_target_speakers]),
        "profiles": {emotion: dataclasses.asdict(PROSODY_PROFILES[emotion]) for emotion in emotions},
        "jitter": {
            "rate": RATE_JITTER, "volume": VOLUME_JITTER, "pitch": PITCH_JITTER, "pitch_range": PITCH_RANGE_JITTER
        },
        "channel": dataclasses.asdict(channel),
        "clip_seconds": [MIN_CLIP_SECONDS, MAX_CLIP_SECONDS],
    }

    def is_built() -> bool:
        return all(_manifest_matches(folder, params) for folder in folders.values())

    if not force and is_built():
        logger.info("Demo corpus already built in %s (same parameters); reusing it.", out_dir)
        return folders
    for folder in folders.values():  # fail before the build, not after it (checked again at the swap)
        _check_replaceable(folder)

    out_dir.mkdir(parents=True, exist_ok=True)
    with _build_lock(out_dir):
        if not force and is_built():  # another process built it while this one waited for the lock
            return folders
        started = time.perf_counter()
        jobs = []
        for domain, variants in (("source", params["source_variants"]), ("target", params["target_variants"])):
            for variant in variants:
                jobs.append(
                    {
                        "domain": domain,
                        "variant": variant,
                        "speaker": f"{SPEAKER_PREFIXES[domain]}_{variant}",
                        "gender": "female" if variant.startswith("f") else "male",
                        "sentences": sentences,
                        "emotions": emotions,
                        "profiles": params["profiles"],
                        "seed": int(seed),
                        "sample_rate": int(sample_rate),
                        "channel": params["channel"] if domain == "target" else None,
                    }
                )
        workers = num_workers if num_workers is not None else min(2, os.cpu_count() or 1)
        with tempfile.TemporaryDirectory(prefix=".demo_build-", dir=out_dir) as scratch_name:
            scratch = Path(scratch_name)
            for job in jobs:
                job["corpus_dir"] = str(scratch / job["domain"])
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                results = list(pool.map(lambda job: _run_worker(job, scratch), jobs))
            for domain, folder in folders.items():
                rows = sorted(
                    (row for job, job_rows in zip(jobs, results) if job["domain"] == domain for row in job_rows),
                    key=lambda row: row["path"],
                )
                built = scratch / domain
                with open(built / METADATA_FILE, "w", newline="", encoding="utf-8") as handle:
                    writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
                    writer.writeheader()
                    writer.writerows(rows)
                manifest = {
                    "params": params,
                    "domain": domain,
                    "num_clips": len(rows),
                    "build_seconds": round(time.perf_counter() - started, 2),
                    "note": "Synthetic eSpeak NG speech: checks the pipeline, not emotion recognition.",
                }
                (built / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
                _replace_folder(built, folder)
        logger.info(
            "Built the demo corpus in %s: %d source + %d target clips in %.1f s.",
            out_dir,
            sum(len(r) for job, r in zip(jobs, results) if job["domain"] == "source"),
            sum(len(r) for job, r in zip(jobs, results) if job["domain"] == "target"),
            time.perf_counter() - started,
        )
    return folders


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m trainer.demo.corpus OUT_DIR [--seed N] [--force]``; prints the two folders."""
    import argparse

    parser = argparse.ArgumentParser(description="Build the synthetic Kazakh two-domain demo corpus (eSpeak NG).")
    parser.add_argument("out_dir", help="parent folder of source/ and target/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_source_speakers", type=int, default=4)
    parser.add_argument("--n_target_speakers", type=int, default=3)
    parser.add_argument("--num_workers", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching corpus exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folders = build_demo_corpus(
        args.out_dir,
        seed=args.seed,
        n_source_speakers=args.n_source_speakers,
        n_target_speakers=args.n_target_speakers,
        num_workers=args.num_workers,
        force=args.force,
    )
    for domain, folder in folders.items():
        print(f"{domain}: {folder}")


if __name__ == "__main__":
    main()


__all__ = [
    "DEMO_EMOTIONS",
    "DEMO_SENTENCES",
    "PROSODY_PROFILES",
    "ProsodyProfile",
    "SOURCE_VARIANTS",
    "TARGET_VARIANTS",
    "build_demo_corpus",
]
