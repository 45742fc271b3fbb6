"""How many notebooks to run at once (``--workers auto``) and how much memory one takes.

A notebook's memory is the peak resident memory of its whole process tree (the runner and its
kernel), sampled while it runs. ``auto`` runs as many notebooks as fit in the memory that was
free before grading started, at the largest peak measured so far, and never more than the cores.
"""
from __future__ import annotations

import os

MB = 2**20
#: Share of the free memory that grading may fill: the rest absorbs sampling misses and other programs.
HEADROOM = 0.8


def auto_workers(available_bytes: float, peak_bytes: float | None, cores: int | None = None,
                 headroom: float = HEADROOM) -> int:
    """Notebooks to run at once: ``min(cores, headroom * available // peak)``, at least 1.

    ``peak_bytes`` None (not measured yet) gives 1: the first notebook runs alone and is measured.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    if not peak_bytes or peak_bytes <= 0:
        return 1
    return max(1, min(cores, int(headroom * available_bytes // peak_bytes)))


def available_memory() -> int:
    """Bytes of memory available to new processes now (psutil's ``available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (0 when it is gone)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in family:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total
