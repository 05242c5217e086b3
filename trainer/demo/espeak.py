"""Kazakh (or any eSpeak NG language) text to speech through libespeak-ng and ``ctypes``.

eSpeak NG comes from the ``espeakng-loader`` wheel (it bundles ``libespeak-ng`` and its data, Kazakh included), so
neither system packages nor network are needed. The library keeps hidden state between utterances (the
pitch-flutter phase, the automatic gain control, the roughness cycle counter), so the same call synthesises slightly
different audio depending on what was spoken before in the same process: for reproducible audio, synthesise the same
sequence of utterances in a fresh process, as :func:`trainer.demo.corpus.build_demo_corpus` does.

Example:
    >>> from trainer.demo.espeak import ESpeakSynthesizer
    >>> audio = ESpeakSynthesizer("kk").synthesize("Сәлем!", variant="f3")  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KAZAKH = "kk"  # eSpeak NG's Kazakh voice

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
        self, language: str = KAZAKH, *, library_path: str | None = None, data_path: str | None = None
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


__all__ = ["KAZAKH", "ESpeakError", "ESpeakSynthesizer"]
