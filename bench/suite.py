"""The test suite's wall time: the README's test command on one worker (``-n 0``, the naive
baseline) and on two (``pytest.ini``'s default, pytest-xdist), each in a fresh process on the same
machine, with the share of the CPUs busy meanwhile (``/proc/stat``), the counts pytest reports and
its slowest items; on one worker, where the CPU time goes, per test file (bench.pytest_cpu).
``--isa AVX2`` holds oneDNN to AVX2 (``ONEDNN_MAX_CPU_ISA``), the nearest an
AVX-512 CPU comes to an AVX2-only one (issue 24: the whole CI run under 15 minutes there).

    python -m bench.suite [--quick] [--isa AVX2] [--out DIR]

Takes the suite's time twice (24 minutes on 2 Zen 4 cores held to AVX2); ``--quick`` times one small
test file instead (it checks that the script runs; the times mean nothing).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

from bench import common

#: The README's test command, and what each setting adds to it.
COMMAND = [sys.executable, "-m", "pytest", "--durations=3"]
SETTINGS = {"one worker (-n 0)": ["-n", "0", "-p", "bench.pytest_cpu"], "two workers (pytest.ini)": []}
#: How many test files the CPU table lists.
CPU_FILES = 8
QUICK_PATHS = ["tests/test_data_policy.py"]
#: The issue's goal is the whole CI run in 15 minutes; CI's install takes about one of them.
GOAL_TEST_SECONDS = 14 * 60
OUTCOMES = ("passed", "failed", "errors", "error", "skipped", "xfailed", "xpassed")


def cpu_ticks() -> tuple | None:
    """(busy, total) clock ticks of every CPU since boot (``/proc/stat``); None off Linux."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def counts(output: str) -> dict:
    """{"passed": N, "skipped": N, ...} from pytest's last summary line in ``output``."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    if not lines:
        return {}
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", lines[-1]) if word in OUTCOMES}


def slowest(output: str) -> list:
    """The ``--durations`` lines of ``output``: ["208.71s call notebooks/...::Cell 18", ...]."""
    return [" ".join(line.split()) for line in output.splitlines() if re.match(r"\d+\.\d+s (call|setup|teardown) ", line)]


def counts_of(row: dict) -> dict:
    """The outcome counts of one row."""
    return {k: row[k] for k in OUTCOMES if k in row}


def cpu_by_file(times: dict) -> list:
    """[(test file, CPU seconds)], the most first, from bench.pytest_cpu's {nodeid: [wall, own, children]}."""
    per_file = Counter()
    for nodeid, (_, own, children) in times.items():
        per_file[nodeid.split("::")[0]] += own + children
    return [(name, round(seconds, 3)) for name, seconds in per_file.most_common()]


def cpu_columns(times_file: str) -> dict:
    """The CPU columns of a row from bench.pytest_cpu's JSON file (none when it wrote nothing)."""
    try:
        with open(times_file) as f:
            files = cpu_by_file(json.load(f))
    except (OSError, ValueError):
        return {}
    total = sum(seconds for _, seconds in files)
    return {"cpu_seconds": round(total, 3), "cpu_by_file": files[:CPU_FILES],
            "cpu_top_share": round(files[0][1] / total, 3) if total else None}


def run_suite(label: str, extra: list, paths: list) -> dict:
    """Run the test command with ``extra`` options over ``paths`` once: one row of the table."""
    handle, times = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    before, start = cpu_ticks(), time.perf_counter()
    done = subprocess.run(COMMAND + extra + paths, cwd=common.ROOT, capture_output=True, text=True,
                          env={**os.environ, "BENCH_CPU_OUT": times})
    seconds, after = time.perf_counter() - start, cpu_ticks()
    cpu = cpu_columns(times)
    os.unlink(times)
    output = done.stdout + done.stderr
    busy = (after[0] - before[0]) / (after[1] - before[1]) if before and after and after[1] > before[1] else None
    return {"setting": label, "seconds": round(seconds, 1), "minutes": round(seconds / 60, 2),
            "cpu_busy": round(busy, 3) if busy is not None else None, "exit": done.returncode,
            **counts(output), **cpu, "slowest": slowest(output)}


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--isa", choices=["AVX2", "AVX512_CORE"], help="hold oneDNN to this ISA (ONEDNN_MAX_CPU_ISA)")
    args = p.parse_args(argv)
    if args.isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.isa  # before TensorFlow's import: the rooflines and the suites
    roof = common.rooflines(args.quick)
    paths = QUICK_PATHS if args.quick else []
    rows = [run_suite(label, extra, paths) for label, extra in SETTINGS.items()]
    one, two = rows
    for row in rows:
        row["speed_up"] = round(one["seconds"] / row["seconds"], 2)
    held = f"oneDNN held to {args.isa}" if args.isa else "oneDNN as this CPU has it"
    goals = [common.goal(f"the README's test command on two workers ({held})", f"under {GOAL_TEST_SECONDS} s",
                         two["seconds"], two["seconds"] < GOAL_TEST_SECONDS and two["exit"] == 0,
                         "CI's install adds about a minute: the whole run's goal is 15 minutes on an AVX2 CPU"),
             common.goal("two workers pass what one worker passes", "the same counts, exit 0",
                         counts_of(two),
                         two["exit"] == one["exit"] == 0 and counts_of(one) == counts_of(two))]
    notes = [f"{held}; paths: {' '.join(paths) or 'pytest.ini testpaths (the whole suite)'}",
             "cpu_busy: the share of every CPU's time not idle while the run lasted (/proc/stat)",
             "cpu_seconds, cpu_by_file (one worker): the tests' CPU time, their processes' and the children "
             "they waited for (bench.pytest_cpu); cpu_top_share: the first file's share"]
    columns = ["setting", "seconds", "minutes", "speed_up", "cpu_busy", "exit", "passed", "skipped", "failed"]
    common.write(f"suite_{args.isa.lower()}" if args.isa else "suite", rows, goals, roof, args.out, notes, columns)
    for row in rows:
        print(f"{row['setting']}: slowest", "; ".join(row["slowest"]))
    if one.get("cpu_by_file"):
        print(f"CPU seconds on one worker: {one['cpu_seconds']}, by file:",
              "; ".join(f"{name} {seconds}" for name, seconds in one["cpu_by_file"]))
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
