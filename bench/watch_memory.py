"""Memory of a long ``door watch`` run: resident memory (RSS) sampled every few seconds on a thread,
and its slope against frames processed after a warm-up (used by ``python -m bench.watch --minutes M``).

    with RssSampler(count=lambda: watcher.summary.processed, every=5.0) as sampler:
        watcher.run(source)
    growth = rss_slope(sampler.samples, warmup_s=60.0)    # {"per_1000_frames": MiB, ...}
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np


def proc_status_rss(status: Path = Path("/proc/self/status")) -> float:
    """VmRSS of ``status`` in MiB (NaN when the file has none)."""
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    """This process's resident memory in MiB: psutil when installed, else /proc/self/status."""
    try:
        import psutil
    except ImportError:
        return proc_status_rss()
    return psutil.Process().memory_info().rss / 2**20


class RssSampler:
    """Context manager: every ``every`` s, one sample (seconds since entering, ``count()``, RSS MiB)
    appended to ``samples``; one more on leaving."""

    def __init__(self, count, every: float = 5.0):
        self.count, self.every, self.samples = count, every, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="rss-sampler", daemon=True)
        self.t0 = time.monotonic()

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.t0, int(self.count()), rss_mib()))

    def loop(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def __enter__(self) -> "RssSampler":
        self.t0 = time.monotonic()
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.sample()


def floor_slope(tail: np.ndarray, window_s: float) -> float | None:
    """MiB per 1000 frames of the RSS floor: the least-squares slope of each ``window_s`` window's
    lowest sample against its frames. ``tail``: (seconds, frames, MiB) rows. A block the allocator
    takes and gives back (jemalloc's purges) moves the samples between levels and tilts the plain
    slope by when it is caught; the floor is what stays."""
    windows = np.floor((tail[:, 0] - tail[0, 0]) / window_s)
    found, counts = np.unique(windows, return_counts=True)
    full = found[counts >= max(2, np.median(counts) / 2)]    # a last window of a sample or two is no floor
    lows = np.array([rows[np.argmin(rows[:, 2])] for rows in (tail[windows == w] for w in full)])
    if len(lows) < 3 or np.ptp(lows[:, 1]) == 0:
        return None
    return float(np.polyfit(lows[:, 1], lows[:, 2], 1)[0] * 1000)


def rss_slope(samples: list[tuple[float, int, float]], warmup_s: float, window_s: float = 60.0) -> dict:
    """Least-squares slope of RSS (MiB) against frames processed, over the samples taken after
    ``warmup_s`` seconds: MiB per 1000 frames (with its 95% interval) and per minute, the floor's
    slope (:func:`floor_slope` over ``window_s`` windows), with the RSS at start, after warm-up and
    at the end. ``samples``: (seconds, frames, MiB) rows as :class:`RssSampler` takes them."""
    s = np.asarray(samples, dtype=float).reshape(-1, 3)
    tail = s[s[:, 0] >= warmup_s]
    per_kframe = per_minute = ci95 = floor = None
    if len(tail) >= 3 and np.ptp(tail[:, 1]) > 0:
        floor = floor_slope(tail, window_s)
        with_interval = len(tail) >= 5         # the slope's 95% interval, from the samples' scatter
        fit = np.polyfit(tail[:, 1], tail[:, 2], 1, cov=with_interval)
        slope, ci95 = (fit[0][0], float(1.96 * np.sqrt(fit[1][0, 0]) * 1000)) if with_interval else (fit[0], None)
        per_kframe = float(slope * 1000)
        per_minute = float(np.polyfit(tail[:, 0], tail[:, 2], 1)[0] * 60)
    return {"start_MiB": float(s[0, 2]), "after_warmup_MiB": float(tail[0, 2]) if len(tail) else None,
            "end_MiB": float(s[-1, 2]), "max_MiB": float(s[:, 2].max()), "per_1000_frames": per_kframe,
            "per_1000_frames_ci95": ci95, "floor_per_1000_frames": floor,
            "per_minute": per_minute, "frames_after_warmup": int(np.ptp(tail[:, 1])) if len(tail) else 0,
            "samples": len(s), "warmup_s": warmup_s}
