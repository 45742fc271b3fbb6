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

    total = 0
    for p in _family(pid):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_pss(pid: int) -> int:
    """Proportional resident bytes of process ``pid`` and its descendants: pages shared between them (a
    fork's) counted once in all, not once per process as :func:`tree_rss` counts them. Slower (the
    kernel walks each page table: milliseconds per large process); a process whose map cannot be
    read counts its resident bytes."""
    import psutil

    total = 0
    for p in _family(pid):
        try:
            total += p.memory_full_info().pss
        except psutil.AccessDenied:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        except psutil.Error:
            pass
    return total


def _family(pid: int) -> list:
    """psutil processes of ``pid`` and all its descendants ([] when it is gone)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
