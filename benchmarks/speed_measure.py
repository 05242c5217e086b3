"""Measurement for `benchmark_speed.py`: interleaved step timing, per-step peak memory, the machine and its load."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import peft
import torch
import transformers


class PeakMemory:
    """Peak resident set size of one timed region, absolute and above the region's starting RSS.

    Linux lets a process reset its own high-water mark (``echo 5 > /proc/self/clear_refs``), which gives the peak of
    each step on its own; elsewhere only the process-wide peak since start (``ru_maxrss``) exists, which is reported
    instead and labelled as such in the JSON (`method`). glibc keeps freed heap pages mapped, so after a 3000-frame
    step every later step would inherit its RSS: `reset` hands free heap back first (`malloc_trim`) and the
    step's own cost is reported as `peak_rss_increase_mib`.
    """

    def __init__(self) -> None:
        self.method = "VmHWM" if self._can_reset() else "ru_maxrss"
        self.start_mib = 0.0
        try:
            self._malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._malloc_trim = None

    @staticmethod
    def _can_reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return PeakMemory._status_kib("VmHWM") is not None
        except OSError:
            return False

    @staticmethod
    def _status_kib(field_name: str) -> int | None:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(f"{field_name}:"):
                    return int(line.split()[1])
        return None

    def reset(self) -> None:
        if self._malloc_trim is not None:
            self._malloc_trim(0)
        if self.method == "VmHWM":
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.start_mib = self._status_kib("VmRSS") / 1024
        else:
            self.start_mib = self.peak_mib()

    def peak_mib(self) -> float:
        if self.method == "VmHWM":
            return self._status_kib("VmHWM") / 1024
        # ru_maxrss is KiB on Linux, bytes on macOS.
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def summarise(times: list[float], peaks: list[float], increases: list[float], utilisation: list[float]) -> dict[str, Any]:
    """Median/min step time in seconds, peak RSS and its rise during the step (MiB), median CPU utilisation."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "times_s": times,
        "peak_rss_mib": max(peaks),
        "peak_rss_increase_mib": max(increases),
        "cpu_utilisation": statistics.median(utilisation),
    }


def time_interleaved(
    steps: dict[str, Callable[[], Any]], repeats: dict[str, int], warmup: int | dict[str, int], memory: PeakMemory
) -> dict[str, dict[str, Any]]:
    """Time each step function `repeats[name]` times after `warmup` (per variant, or one count for all) untimed calls.

    Round r runs every variant that still needs timings once, starting at variant r mod n, so slow drifts and bursts
    of outside load are shared by all variants rather than landing on whichever happened to run then.
    """
    names = list(steps)
    warmups = warmup if isinstance(warmup, dict) else {name: warmup for name in names}
    for name in names:
        for _ in range(warmups[name]):
            steps[name]()
    collected: dict[str, tuple[list[float], ...]] = {name: ([], [], [], []) for name in names}
    for round_index in range(max(repeats.values())):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            if len(collected[name][0]) >= repeats[name]:
                continue
            gc.collect()
            memory.reset()
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            steps[name]()
            wall = time.perf_counter() - wall_start
            cpu = time.process_time() - cpu_start
            times, peaks, increases, utilisation = collected[name]
            times.append(wall)
            peaks.append(memory.peak_mib())
            increases.append(max(peaks[-1] - memory.start_mib, 0.0))
            utilisation.append(cpu / wall)
    return {name: summarise(*collected[name]) for name in names}


def load_average() -> list[float] | None:
    """1/5/15-minute load averages (None where the OS has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow), else `os.cpu_count()`."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info(model: torch.nn.Module) -> dict[str, Any]:
    """Hardware, library versions, threading and attention settings, and the load when the run started."""
    return {
        "nproc": available_cores(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        # OpenMP threads spin while waiting; on cores shared with other busy processes that spinning, not the work,
        # can dominate (see the report), and OMP_WAIT_POLICY=PASSIVE changes it.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()),
        "attn_implementation": model.config._attn_implementation,
        "load_average_start": load_average(),
    }


__all__ = [
    "PeakMemory", "available_cores", "cpu_model", "load_average", "machine_info", "summarise", "time_interleaved"
]
