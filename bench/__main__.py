"""``python -m bench``: run every benchmark and write ``bench/results/<name>.json``.

    python -m bench                      # all fourteen, full sizes (well over an hour on 2 cores; each says its time)
    python -m bench --quick              # tiny sizes: checks that every script runs
    python -m bench --only identification style_step
    python -m bench --table              # print the README table from the JSON files

Run it on a quiet machine (load average well under 1): every speed-up is measured side by
side with its baseline in the same run, and each file records the machine and its rooflines.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from bench import common

BENCHMARKS = ("weights_load", "embedding", "identification", "style_step", "convergence", "style_vgg16",
              "service", "style_large", "grading", "watch", "precision", "precision_quality",
              "nst_whole", "detect_memory")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; times mean nothing)")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS, metavar="NAME",
                   help=f"run only these: {', '.join(BENCHMARKS)}")
    p.add_argument("--out", default=None, help=f"folder for the JSON files (default {common.RESULTS}; with "
                                               f"--quick {common.QUICK_RESULTS})")
    p.add_argument("--table", action="store_true", help="only print the summary table of the JSON files in --out")
    args = p.parse_args(argv)
    args.out = str(args.out or (common.QUICK_RESULTS if args.quick else common.RESULTS))
    if args.table:
        print(common.summary_table(args.out))
        return 0
    load = os.getloadavg()[0]
    if load > 1.0 and not args.quick:
        print(f"warning: load average {load:.2f}: other work is running, timings will be noisy", file=sys.stderr)
    failed = []
    for name in args.only:
        t0 = time.perf_counter()
        print(f"\n=== bench.{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        try:
            module.main((["--quick"] if args.quick else []) + ["--out", args.out])
        except Exception as err:  # one broken benchmark must not hide the others' results
            import traceback
            traceback.print_exc()
            failed.append(f"{name}: {type(err).__name__}: {err}")
        print(f"=== bench.{name}: {time.perf_counter() - t0:.0f} s ===", flush=True)
    print("\n" + common.summary_table(args.out))
    for f in failed:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
