"""Whether bfloat16 pays off on this machine: native bf16 on the CPU, and the log line when it does not.

bf16 autocast on a CPU is fast only where the CPU computes in bf16 natively: x86 with AVX-512 BF16 (Intel Cooper
Lake and later, AMD Zen 4 and later) or AMX (Intel Sapphire Rapids and later), ARM with the BF16 extension. Elsewhere
PyTorch converts to and from fp32 around every matmul, and bf16 is slower than fp32. `BENCHMARKS.md` measured
about 2× faster inference and 1.55× faster training with bf16 on a Zen 4 (AVX-512 BF16).

Example:
    >>> from modeling_ctrilora.hardware import cpu_has_native_bf16, warn_if_bf16_is_slow
    >>> cpu_has_native_bf16()  # doctest: +SKIP
    True
    >>> warn_if_bf16_is_slow("cpu")  # logs a warning and returns False on a CPU without native bf16  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

CPUINFO = "/proc/cpuinfo"
# /proc/cpuinfo flags of native bf16 arithmetic: x86 (AVX-512 BF16, AMX BF16) and aarch64 ("Features: ... bf16").
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
SLOW_BF16_MESSAGE = (
    "bf16 was requested, but this CPU has no native bf16 (no AVX-512 BF16 / AMX / ARM BF16 in {source}): "
    "bf16 would be slower than fp32 here; drop --bf16 (or the bf16 dtype) unless you are checking accuracy"
)


def _cpuinfo_flags(path: str | os.PathLike = CPUINFO) -> set[str] | None:
    """Every flag of every `flags` / `Features` line of `path`; `None` when the file cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(cpuinfo: str | os.PathLike = CPUINFO) -> bool:
    """True when the CPU computes in bf16 natively (AVX-512 BF16, AMX BF16 or ARM BF16).

    Reads the flags of `cpuinfo` (Linux); where that file cannot be read, asks PyTorch's CPU feature probes.
    """
    flags = _cpuinfo_flags(cpuinfo)
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def warn_if_bf16_is_slow(device: str | torch.device | None = "cpu", cpuinfo: str | os.PathLike = CPUINFO) -> bool:
    """Log a warning when bf16 is about to run on a CPU without native bf16; returns whether it warned.

    Args:
        device: where the bf16 work runs (`None` = CPU). Only CPUs are checked: every GPU the configs target
            (Ampere and later) has native bf16, and an older one is refused by PyTorch itself.
    """
    device_type = torch.device(device).type if device is not None else "cpu"
    if device_type != "cpu" or cpu_has_native_bf16(cpuinfo):
        return False
    logger.warning(SLOW_BF16_MESSAGE.format(source=cpuinfo))
    return True


__all__ = ["NATIVE_BF16_FLAGS", "cpu_has_native_bf16", "warn_if_bf16_is_slow"]
