"""A pytest plugin for bench.suite: each test's CPU time, its process's and its children's
(``resource.getrusage``), written as JSON to ``$BENCH_CPU_OUT`` when the session ends.

    BENCH_CPU_OUT=cpu.json python -m pytest -n 0 -p bench.pytest_cpu

A child's time counts once it has been waited for, so a notebook's kernel, a server or a broker
counts at the test that stops it. One process only (``-n 0``): workers would each write the file.
"""
from __future__ import annotations

import json
import os
import resource
import time

import pytest

#: nodeid -> [wall seconds, CPU seconds of this process, CPU seconds of its children]
TIMES: dict = {}


def cpu_seconds() -> tuple[float, float]:
    """(this process's, its waited-for children's) user + system CPU seconds so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start, (own, children) = time.perf_counter(), cpu_seconds()
    yield
    own_after, children_after = cpu_seconds()
    TIMES[item.nodeid] = [round(time.perf_counter() - start, 3), round(own_after - own, 3),
                          round(children_after - children, 3)]


def pytest_sessionfinish(session):
    out = os.environ.get("BENCH_CPU_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(TIMES, f)
