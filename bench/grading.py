"""Grading a class: one submission of each notebook in grading mode (the reference's
``grading:skip`` / ``grading:short`` cells) against a full ``execute`` of it in the same run, then a
class of copies with ``--workers auto``, extrapolated to a class of 100; peak memory throughout.

A submission is the notebook with its outputs cleared (a student's fresh copy). The full run is
the grader's own ``python -m happyhouse.grading execute`` process (a fresh kernel, every cell);
grading mode is ``grading.grade`` (the same process on the prepared copy, plus comparing).
Memory is the peak resident memory of a notebook's process tree (runner + kernel), and for the
class the peak of all of them together. The class's time to 100 is extrapolated linearly from
the class measured (conservative: the first notebook of a class runs alone to be measured).

    python -m bench.grading [--quick] [--class-size 20] [--only style face] [--parallel] [--no-full]
                            [--startup-runs 20] [--no-sandbox]

Submissions run in the bubblewrap sandbox with the hidden tests (the default of ``grade`` and
``class``); ``--no-sandbox`` measures the same without it. The sandbox's start-up cost per
submission is measured first: ``python -c pass`` inside a sandbox like a submission's against the
same command without it (the naive baseline), the median of ``--startup-runs``.

``--no-full`` leaves out the full ``execute`` (the style notebook's takes many minutes): the
grading-mode / full ratio is then not measured in this run.

``--parallel`` benchmarks the notebooks at the same time (one thread each: twice the load, so every
time is pessimistic; the ratios within a notebook stay side by side), for a busy machine.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import common

NOTEBOOKS = {"style": "Neural_Style_Transfer.ipynb", "face": "Face_Recognition.ipynb"}
GOAL_RATIO = 0.25         # a style-transfer submission in grading mode: < 1/4 of the full run
GOAL_CLASS_SECONDS = 1800  # a class of 100 of each notebook within 30 minutes on 2 cores
GOAL_STARTUP_SECONDS = 0.5  # the sandbox's start-up per submission


def sandbox_startup(runs: int) -> dict:
    """Median seconds of ``python -c pass`` in a submission's sandbox, and without one (the baseline)."""
    import statistics
    import subprocess
    import sys
    from functools import partial

    from happyhouse.grading import sandbox
    from happyhouse.grading.workspace import default_workspace

    sandbox.check()
    workspace = default_workspace()
    limits = sandbox.Limits()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp, sandbox.uid_slot() as uid:
        in_dir, out_dir = Path(tmp, "in"), Path(tmp, "out")
        in_dir.mkdir()
        out_dir.mkdir()
        root = os.geteuid() == 0
        sandbox.prepare(out_dir, in_dir, uid if root else None)
        drop = f"import os; os.setgroups([]); os.setresgid({uid}, {uid}, {uid}); os.setresuid({uid}, {uid}, {uid})"
        inside = sandbox.command([sys.executable, "-c", drop if root else "pass"], workspace, in_dir, out_dir,
                                 sandbox.environment(), limits, None)
        plain = [sys.executable, "-c", "pass"]
        times = {"sandbox": [], "plain": []}
        for _ in range(runs):
            for key, cmd, pre in (("sandbox", inside, partial(sandbox.apply_limits, limits)), ("plain", plain, None)):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, preexec_fn=pre, stdout=subprocess.DEVNULL)
                times[key].append(time.perf_counter() - t0)
    sandboxed, plain_s = statistics.median(times["sandbox"]), statistics.median(times["plain"])
    return {"runs": runs, "python_in_sandbox_s": round(sandboxed, 4), "python_plain_s": round(plain_s, 4),
            "startup_cost_s": round(sandboxed - plain_s, 4),
            "max_startup_cost_s": round(max(times["sandbox"]) - plain_s, 4)}


def student_copy(reference: Path, target: Path) -> None:
    """The reference with every output cleared: what a student hands in."""
    import nbformat

    nb = nbformat.read(reference, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, target)


def bench_notebook(key: str, class_size: int, tmp: Path, full: bool = True,
                   use_sandbox: bool = True) -> tuple[dict, dict]:
    """(single-submission row, class row) for one notebook."""
    import nbformat
    from happyhouse import grading
    from happyhouse.grading.execute import run_submission

    reference = common.ROOT / "notebooks" / NOTEBOOKS[key]
    options = grading.Options(cell_timeout=1800, notebook_timeout=3600, sandbox=use_sandbox)
    submission = tmp / f"{key}_student.ipynb"
    student_copy(reference, submission)

    full_seconds = full_ok = full_peak = None
    if full:
        print(f"[{key}] full execute of one submission ...", flush=True)
        t0 = time.perf_counter()
        executed, problem, _ = run_submission(nbformat.read(submission, as_version=4), options, reference.parent)
        full_seconds = time.perf_counter() - t0
        full_ok = not problem and all(c["status"] in ("ok", "skipped")
                                      for c in executed.metadata["grading"]["cells"].values())
        full_peak = executed.metadata["grading"]["peak_memory_mb"]

    print(f"[{key}] one submission in grading mode ...", flush=True)
    report = grading.grade(submission, reference, options)
    print(f"[{key}] full {full_seconds if full else 'not run'} s, grading mode {report['seconds']:.1f} s", flush=True)
    single = {"notebook": key, "full_execute_s": round(full_seconds, 1) if full else None, "full_ok": full_ok,
              "full_peak_mb": full_peak,
              "grading_mode_s": report["seconds"], "grading_peak_mb": report["peak_memory_mb"],
              "ratio": round(report["seconds"] / full_seconds, 3) if full else None,
              "passed": f"{report['passed']}/{report['total']}",
              "decided_by_hidden_tests": sum(e.get("decided_by") == "hidden tests" for e in report["exercises"]),
              "sandbox": report["sandbox"],
              "skipped_cells": len(report["cells"]["skipped"]), "shortened_cells": len(report["cells"]["shortened"])}

    folder = tmp / f"{key}_class"
    folder.mkdir()
    for k in range(class_size):
        shutil.copy(submission, folder / f"student_{k:03d}.ipynb")
    print(f"[{key}] a class of {class_size} with --workers auto ...", flush=True)
    free = grading.available_memory()
    with common.PeakMemory(children=True, every=0.2) as memory:
        t0 = time.perf_counter()
        reports = grading.grade_class(folder, reference, options, workers="auto", progress=True)
        class_seconds = time.perf_counter() - t0
    peaks = [r["peak_memory_mb"] for r in reports if r["peak_memory_mb"]]
    workers = grading.auto_workers(free, max(peaks) * 2**20 if peaks else None, os.cpu_count())
    every_pass = all(r["status"] == "graded" and r["passed"] == r["total"] for r in reports)
    print(f"[{key}] class of {class_size}: {class_seconds:.1f} s", flush=True)
    klass = {"notebook": key, "class_size": class_size, "class_s": round(class_seconds, 1),
             "per_submission_s": round(class_seconds / class_size, 1),
             "class_of_100_s": round(class_seconds * 100 / class_size, 0),
             "workers_auto": workers, "free_gib": round(free / 2**30, 1),
             "notebook_peak_mb": max(peaks) if peaks else None,
             "class_peak_mb": round(memory.peak_mib, 1), "all_passed": every_pass}
    return single, klass


def main(argv=None) -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--class-size", type=int, default=20, help="copies per class (default 20)")
    p.add_argument("--only", nargs="+", choices=sorted(NOTEBOOKS), default=list(NOTEBOOKS))
    p.add_argument("--parallel", action="store_true", help="benchmark the notebooks at the same time")
    p.add_argument("--startup-runs", type=int, default=20, help="sandbox start-ups measured (default 20)")
    p.add_argument("--no-sandbox", action="store_true", help="grade without the sandbox (for comparison)")
    p.add_argument("--no-full", action="store_true",
                   help="leave out the full execute of one submission (the ratio goal is then not measured)")
    args = p.parse_args(argv)
    class_size = 2 if args.quick else args.class_size
    load_before = [round(x, 2) for x in os.getloadavg()]
    roof = common.rooflines(quick=True)
    startup = sandbox_startup(3 if args.quick else args.startup_runs)
    print(f"sandbox start-up: {startup}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        if args.parallel:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(len(args.only)) as pool:
                results = list(pool.map(lambda key: bench_notebook(key, class_size, Path(tmp), not args.no_full,
                                                                      not args.no_sandbox), args.only))
        else:
            results = [bench_notebook(key, class_size, Path(tmp), not args.no_full, not args.no_sandbox)
                       for key in args.only]
    singles, classes = [r[0] for r in results], [r[1] for r in results]
    load_after = [round(x, 2) for x in os.getloadavg()]
    goals = [common.goal("sandbox start-up per submission (python -c pass, sandbox - plain, median)",
                         f"< {GOAL_STARTUP_SECONDS} s", startup["startup_cost_s"],
                         startup["startup_cost_s"] < GOAL_STARTUP_SECONDS,
                         f"{startup['runs']} runs; worst {startup['max_startup_cost_s']} s")]
    for s in singles:
        if s["notebook"] == "style" and s["ratio"] is not None:
            goals.append(common.goal("style-transfer submission, grading mode / full execute", f"< {GOAL_RATIO}",
                                     s["ratio"], s["ratio"] < GOAL_RATIO and bool(s["full_ok"]),
                                     f"{s['grading_mode_s']} s vs {s['full_execute_s']} s"
                                     + ("" if s["full_ok"] else " (the full execute did not run every cell: not a baseline)")))
    for c in classes:
        goals.append(common.goal(f"class of 100 {c['notebook']} notebooks (from {c['class_size']}, workers auto)",
                                 f"< {GOAL_CLASS_SECONDS} s", c["class_of_100_s"],
                                 c["class_of_100_s"] < GOAL_CLASS_SECONDS and c["all_passed"],
                                 f"{c['workers_auto']} workers, class peak {c['class_peak_mb']} MB"))
    if len(classes) > 1:
        both = sum(c["class_of_100_s"] for c in classes)
        goals.append(common.goal("class of 100 of each notebook, one after the other", f"< {GOAL_CLASS_SECONDS} s",
                                 both, both < GOAL_CLASS_SECONDS))
    notes = [f"load average (1, 5, 15 min) before {load_before}, after {load_after}: other work shared the "
             f"{os.cpu_count()} cores, so absolute times are pessimistic; the ratio is measured side by side",
             "full = `python -m happyhouse.grading execute` of a fresh copy (every cell); grading mode = "
             "`grading grade` (reference's grading:skip cells skipped, grading:short cells short)",
             f"class of 100 = class time x 100 / {class_size} (linear; the first notebook runs alone to be measured)"]
    if args.no_full:
        notes.append("--no-full: the full execute was not run, so the grading-mode / full ratio was not measured")
    if args.parallel:
        notes.append(f"--parallel: {', '.join(args.only)} were benchmarked at the same time, each competing with "
                     "the other for the cores (and --workers auto in each class sized without knowing the other)")
    print("\n## one submission")
    print(common.table(singles))
    common.write("grading", classes, goals, roof, args.out, notes,
                 extra={"single": singles, "sandbox_startup": startup, "sandboxed": not args.no_sandbox,
                        "load_before": load_before, "load_after": load_after,
                        "quick": args.quick})


if __name__ == "__main__":
    main()
