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

eSpeak NG is driven through ``ctypes`` from the ``espeakng-loader`` wheel (it bundles ``libespeak-ng`` and its
data, Kazakh included), so the build needs neither system packages nor network. The library keeps hidden state
between utterances (the pitch-flutter phase, the automatic gain control, the roughness cycle counter), so the
same call synthesises slightly different audio depending on what was spoken before in the same process. To make
a build reproducible sample for sample, every speaker is synthesised in a fresh worker process (which also
spreads the build over the CPU cores and keeps the process-global C library out of the caller's process).

Example:
    >>> from trainer.demo_corpus import build_demo_corpus
    >>> folders = build_demo_corpus("runs/demo_corpus")  # doctest: +SKIP
    >>> sorted(folders)  # doctest: +SKIP
    ['source', 'target']

The module imports nothing from the rest of the project: its worker processes load this file on its own, without
importing the ``trainer`` package (and its heavy dependencies) once per speaker.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# The project's canonical emotion names (trainer.labels.EMOTIONS) that eSpeak prosody can caricature.
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

DEMO_LANGUAGE = "kk"
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
# eSpeak NG through ctypes
# ----------------------------------------------------------------------------------------------------------------

# Constants of espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_ESPEAK_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE, _ESPEAK_WORDGAP = 1, 2, 3, 4, 7

# int t_espeak_callback(short *wav, int numsamples, espeak_EVENT *events); the events are not used here.
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class ESpeakError(RuntimeError):
    """eSpeak NG could not be loaded, lacks a requested voice, or failed to synthesise."""


@dataclass
class _Engine:
    """The one initialised libespeak-ng of this process (the C library keeps global state)."""

    lib: ctypes.CDLL
    library_path: str
    data_path: str
    sample_rate: int
    version: str
    callback: Any  # the ctypes callback object; must stay referenced while the library may call it
    chunks: list[np.ndarray]


_ENGINE: _Engine | None = None
# espeak-ng is not re-entrant: initialisation, voice/parameter setting and synthesis are one critical section.
_ENGINE_LOCK = threading.RLock()


def _default_espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as error:
        raise ESpeakError(
            "eSpeak NG is needed to build the demo corpus: install the pip package `espeakng-loader` "
            "(it bundles libespeak-ng and its voice data)."
        ) from error
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except RuntimeError as error:
        raise ESpeakError(f"espeakng-loader is installed but its voice data is missing: {error}") from error


def _load_engine(library_path: str, data_path: str) -> _Engine:
    if not Path(library_path).is_file():
        raise ESpeakError(f"libespeak-ng not found at {library_path!r}.")
    if not (Path(data_path) / "phontab").is_file():
        raise ESpeakError(f"{data_path!r} is not an espeak-ng-data folder (no 'phontab').")
    try:
        lib = ctypes.CDLL(library_path)
    except OSError as error:
        raise ESpeakError(f"Could not load libespeak-ng from {library_path!r}: {error}") from error

    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    # text, size, position, position_type, end_position, flags, unique_identifier, user_data
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int]
    lib.espeak_Synth.argtypes += [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None

    # Buffer length 0 = the library default (200 ms chunks); the return value is the output sample rate.
    sample_rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_path), _ESPEAK_INITIALIZE_DONT_EXIT
    )
    if sample_rate <= 0:
        raise ESpeakError(f"espeak_Initialize failed (returned {sample_rate}) with data path {data_path!r}.")

    chunks: list[np.ndarray] = []

    def on_audio(wav: Any, num_samples: int, events: Any) -> int:
        if wav and num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = continue synthesis

    callback = _SYNTH_CALLBACK(on_audio)
    lib.espeak_SetSynthCallback(callback)
    version = (lib.espeak_Info(None) or b"unknown").decode("ascii", "replace")
    return _Engine(lib, library_path, data_path, sample_rate, version, callback, chunks)


class ESpeakSynthesizer:
    """Kazakh (or any eSpeak NG language) text to int16 speech, through libespeak-ng and ``ctypes``.

    libespeak-ng is a process-global C library: it is loaded and initialised once per process (the first
    instance does it; later instances share it) and every call runs under one lock, so instances are safe to use
    from several threads, though calls are serialised.

    The library keeps state between utterances (pitch-flutter phase, gain control), so the same call gives
    slightly different samples depending on what this process synthesised before; for reproducible audio
    synthesise the same sequence of utterances in a fresh process, as :func:`build_demo_corpus` does.

    Args:
        language: eSpeak NG voice (language) name, e.g. ``"kk"`` for Kazakh.
        library_path: path of ``libespeak-ng``; default: the one bundled with ``espeakng-loader``.
        data_path: path of ``espeak-ng-data``; default: the one bundled with ``espeakng-loader``.

    Raises:
        ESpeakError: the library or its data cannot be loaded, or the voice ``language`` does not exist.

    Example:
        >>> synthesizer = ESpeakSynthesizer("kk")  # doctest: +SKIP
        >>> audio = synthesizer.synthesize("Сәлем!", variant="f3", rate=160, pitch=60)  # doctest: +SKIP
        >>> audio.dtype, synthesizer.sample_rate  # doctest: +SKIP
        (dtype('int16'), 22050)
    """

    # Parameter ranges accepted by espeak_SetParameter (speak_lib.h); volume above 100 may saturate.
    RATE_LIMITS = (80, 450)
    VOLUME_LIMITS = (0, 200)
    PITCH_LIMITS = (0, 100)
    PITCH_RANGE_LIMITS = (0, 100)
    WORD_GAP_LIMITS = (0, 100)

    def __init__(
        self, language: str = DEMO_LANGUAGE, *, library_path: str | None = None, data_path: str | None = None
    ) -> None:
        global _ENGINE
        if library_path is None or data_path is None:
            default_library, default_data = _default_espeak_paths()
            library_path = library_path or default_library
            data_path = data_path or default_data
        library_path, data_path = str(library_path), str(data_path)
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = _load_engine(library_path, data_path)
            elif (_ENGINE.library_path, _ENGINE.data_path) != (library_path, data_path):
                raise ESpeakError(
                    "libespeak-ng is already initialised in this process with "
                    f"{_ENGINE.library_path!r} / {_ENGINE.data_path!r}; it cannot be re-initialised with "
                    f"{library_path!r} / {data_path!r}."
                )
            self._engine = _ENGINE
            self.language = language
            status = self._engine.lib.espeak_SetVoiceByName(language.encode("utf-8"))
            if status != _EE_OK:
                raise ESpeakError(
                    f"eSpeak NG voice {language!r} could not be loaded (status {status}) from {data_path!r}; "
                    "the `espeakng-loader` wheel ships the Kazakh voice as 'kk'."
                )

    @property
    def sample_rate(self) -> int:
        """Output sample rate of the library (22050 Hz for eSpeak NG's formant synthesiser)."""
        return self._engine.sample_rate

    @property
    def version(self) -> str:
        """libespeak-ng version string, e.g. ``"1.52.0"``."""
        return self._engine.version

    def variants(self) -> list[str]:
        """Names of the voice variants (``voices/!v``) available to ``synthesize(variant=...)``."""
        variant_dir = Path(self._engine.data_path) / "voices" / "!v"
        return sorted(entry.name for entry in variant_dir.iterdir() if entry.is_file()) if variant_dir.is_dir() else []

    def synthesize(
        self,
        text: str,
        *,
        variant: str | None = None,
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
        volume: int = 100,
        word_gap: int = 0,
        seed: int = 0,
    ) -> np.ndarray:
        """Speak ``text`` and return the samples.

        Args:
            text: UTF-8 text in the voice's language.
            variant: voice variant (e.g. ``"f3"``, ``"m1"``), one of :meth:`variants`; ``None`` = the plain voice.
            rate: speaking rate, words per minute (80–450; eSpeak's default 175).
            pitch: base pitch, 0–100 (default 50).
            pitch_range: pitch range (intonation excursion), 0–100 (default 50; 0 = monotone).
            volume: amplitude, 0–200 (default 100).
            word_gap: extra pause between words, in units of 10 ms.
            seed: seed of eSpeak's own noise generator (breathiness), for repeatable output.

        Returns:
            int16 array of shape ``(num_samples,)`` at :attr:`sample_rate`.

        Raises:
            ESpeakError: unknown variant, synthesis failure or no audio produced.
            ValueError: a parameter outside its range.
        """
        settings = {
            "rate": (rate, self.RATE_LIMITS, _ESPEAK_RATE),
            "volume": (volume, self.VOLUME_LIMITS, _ESPEAK_VOLUME),
            "pitch": (pitch, self.PITCH_LIMITS, _ESPEAK_PITCH),
            "pitch_range": (pitch_range, self.PITCH_RANGE_LIMITS, _ESPEAK_RANGE),
            "word_gap": (word_gap, self.WORD_GAP_LIMITS, _ESPEAK_WORDGAP),
        }
        for name, (value, (low, high), _) in settings.items():
            if not low <= int(value) <= high:
                raise ValueError(f"{name}={value} is outside eSpeak's range [{low}, {high}].")
        voice = self.language
        if variant is not None:
            # espeak_SetVoiceByName silently ignores an unknown variant, so check the file ourselves.
            available = self.variants()
            if variant not in available:
                raise ESpeakError(
                    f"eSpeak NG voice variant {variant!r} not found in {self._engine.data_path!r}; "
                    f"available: {available}."
                )
            voice = f"{self.language}+{variant}"
        encoded = text.encode("utf-8") + b"\0"

        engine = self._engine
        with _ENGINE_LOCK:
            status = engine.lib.espeak_SetVoiceByName(voice.encode("utf-8"))
            if status != _EE_OK:
                raise ESpeakError(f"eSpeak NG voice {voice!r} could not be loaded (status {status}).")
            # Set after the voice: a voice change must not leave one utterance with stale parameters.
            for _, (value, _, parameter) in settings.items():
                engine.lib.espeak_SetParameter(parameter, int(value), 0)
            engine.lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
            engine.chunks.clear()
            status = engine.lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            chunks = list(engine.chunks)
            engine.chunks.clear()
        if status != _EE_OK:
            raise ESpeakError(f"espeak_Synth failed with status {status} for {text!r}.")
        if not chunks:
            raise ESpeakError(f"eSpeak NG produced no audio for {text!r}.")
        return np.concatenate(chunks).astype(np.int16, copy=False)


# ----------------------------------------------------------------------------------------------------------------
# Prosody profiles and the target channel
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


@dataclass(frozen=True)
class TargetChannel:
    """The target domain's recording channel: a room, background noise, then a telephone band.

    Args:
        snr_db: signal-to-noise ratio of the additive pink noise, measured over the speech (not the pauses).
        snr_jitter_db: per-clip uniform jitter of the SNR (±).
        low_hz: lower edge of the pass band.
        high_hz: upper edge of the pass band (300–3400 Hz is the classic telephone band).
        filter_order: order of the Butterworth band-pass.
        rt60_s: reverberation time of the synthetic room; each target speaker gets one room, jittered ±20 %.
        direct_to_reverberant_db: energy ratio of the direct path to the reverberant tail.
        impulse_response_s: length of the impulse response.
    """

    snr_db: float = 15.0
    snr_jitter_db: float = 3.0
    low_hz: float = 300.0
    high_hz: float = 3400.0
    filter_order: int = 4
    rt60_s: float = 0.35
    direct_to_reverberant_db: float = 4.0
    impulse_response_s: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.low_hz < self.high_hz:
            raise ValueError(f"Need 0 < low_hz < high_hz, got {self.low_hz} and {self.high_hz}.")
        if self.filter_order < 1:
            raise ValueError(f"filter_order must be >= 1, got {self.filter_order}.")
        if self.rt60_s <= 0 or self.impulse_response_s <= 0:
            raise ValueError("rt60_s and impulse_response_s must be positive.")
        if self.snr_jitter_db < 0:
            raise ValueError(f"snr_jitter_db must be >= 0, got {self.snr_jitter_db}.")


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


def _room_impulse_response(channel: TargetChannel, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Direct path plus an exponentially decaying noise tail (a standard stand-in for a measured room)."""
    length = max(2, int(round(channel.impulse_response_s * sample_rate)))
    rt60 = channel.rt60_s * rng.uniform(0.8, 1.2)
    t = np.arange(length) / sample_rate
    # -60 dB of energy at rt60: amplitude envelope exp(-3 ln(10) t / rt60).
    tail = rng.standard_normal(length) * np.exp(-3.0 * np.log(10.0) * t / rt60)
    tail[: max(1, int(0.003 * sample_rate))] = 0.0  # ~3 ms before the first reflections arrive
    tail *= np.sqrt(10 ** (-channel.direct_to_reverberant_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    return tail


def _pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum, closer to room and street background than white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(spectrum.size, dtype=np.float64)
    frequencies[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n=length)


def _apply_channel(
    audio: np.ndarray,
    speech: slice,
    sample_rate: int,
    channel: TargetChannel,
    impulse_response: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    from scipy.signal import butter, fftconvolve, sosfilt

    # The reverberant tail spills into the trailing pause; cutting at the clip end keeps the planned length.
    wet = fftconvolve(audio, impulse_response)[: audio.size]
    speech_power = float(np.mean(wet[speech] ** 2))
    noise = _pink_noise(wet.size, rng)
    snr_db = channel.snr_db + rng.uniform(-channel.snr_jitter_db, channel.snr_jitter_db)
    noise *= np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10.0)))
    # Noise enters before the band-pass: background picked up by the handset goes down the same line.
    band = [channel.low_hz, channel.high_hz]
    sos = butter(channel.filter_order, band, btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, wet + noise)


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
        _room_impulse_response(channel, sample_rate, _clip_rng(seed, "room", domain, variant)) if channel else None
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
                audio = _apply_channel(audio, speech_span, sample_rate, channel, impulse_response, rng)
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


# Loads this file as a stand-alone module: importing the `trainer` package would pull in torch and transformers
# for every worker, and running the file as a script would put trainer/ first on sys.path, where
# trainer/statistics.py shadows the standard library's `statistics`.
_WORKER_BOOTSTRAP = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_ctrilora_demo_corpus_worker", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
module._worker_main(sys.argv[2])
"""


def _run_worker(job: dict[str, Any], scratch: Path) -> list[dict[str, str]]:
    job_path = scratch / f"job_{job['speaker']}.json"
    job = {**job, "result_path": str(scratch / f"result_{job['speaker']}.json")}
    job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-c", _WORKER_BOOTSTRAP, str(Path(__file__).resolve()), str(job_path)],
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
            f"{folder} exists and is not a demo corpus built by trainer.demo_corpus (no {MANIFEST_FILE}); "
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
    """Command line: ``python -m trainer.demo_corpus OUT_DIR [--seed N] [--force]``; prints the two folders."""
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
    "ESpeakError",
    "ESpeakSynthesizer",
    "PROSODY_PROFILES",
    "ProsodyProfile",
    "SOURCE_VARIANTS",
    "TARGET_VARIANTS",
    "TargetChannel",
    "build_demo_corpus",
]
