"""The demo target domain's recording channel: a synthetic room, pink background noise, a telephone band.

This is the domain shift CORAL and the cross-corpus evaluation of the demo work against
(:func:`trainer.demo.corpus.build_demo_corpus` puts every target clip through :func:`apply_channel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def room_impulse_response(channel: TargetChannel, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
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


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum, closer to room and street background than white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(spectrum.size, dtype=np.float64)
    frequencies[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(frequencies), n=length)


def apply_channel(
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
    noise = pink_noise(wet.size, rng)
    snr_db = channel.snr_db + rng.uniform(-channel.snr_jitter_db, channel.snr_jitter_db)
    noise *= np.sqrt(speech_power / (np.mean(noise**2) * 10 ** (snr_db / 10.0)))
    # Noise enters before the band-pass: background picked up by the handset goes down the same line.
    band = [channel.low_hz, channel.high_hz]
    sos = butter(channel.filter_order, band, btype="bandpass", fs=sample_rate, output="sos")
    return sosfilt(sos, wet + noise)


__all__ = ["TargetChannel", "apply_channel", "pink_noise", "room_impulse_response"]
