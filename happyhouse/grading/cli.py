"""The grading command line (``grading COMMAND --help``, or ``python -m happyhouse.grading``)::

    grade SUBMISSION.ipynb --reference REF.ipynb     one notebook: a table, a JSON report, an exit code
    class FOLDER --reference REF.ipynb               every *.ipynb in FOLDER, in parallel or on a Dask
                                                     cluster (--scheduler ADDRESS): CSV of scores
    diff A.ipynb B.ipynb [--html OUT.html]           nbdime diff of two notebooks, for instructors
    execute NOTEBOOK.ipynb -o OUT.ipynb              run a notebook exactly as the grader does
    release REFERENCE.ipynb -o FOLDER                the student version: solutions -> placeholders
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from happyhouse.errors import OutputError
from happyhouse.outputs import check_file, check_folder, write_text

from .diff import diff_html, diff_text
from .execute import execute_notebook
from .grader import exit_code, grade, grade_class
from .notebook import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, GradingError, Options, read_notebook
from .release import graded_function, release
from .report import public_report, format_table
from .workspace import check_target, write_workspace

DESCRIPTION = "Grading: re-execute students' notebooks, compare their graded cells with a reference, diff notebooks."


def _add_grading_options(parser: argparse.ArgumentParser) -> None:
    d = Options()
    parser.add_argument("--reference", required=True, help="the reference notebook, with graded cells tagged exercise:<name>")
    parser.add_argument("--timeout", type=float, default=d.cell_timeout, help=f"seconds per cell (default {d.cell_timeout:g})")
    parser.add_argument("--notebook-timeout", type=float, default=d.notebook_timeout,
                        help=f"seconds per notebook before it is killed (default {d.notebook_timeout:g})")
    parser.add_argument("--rtol", type=float, default=d.rtol, help=f"relative tolerance for numbers (default {d.rtol:g})")
    parser.add_argument("--atol", type=float, default=d.atol, help=f"absolute tolerance for numbers (default {d.atol:g})")
    parser.add_argument("--kernel", default=d.kernel, help="Jupyter kernel name (default python3)")
    parser.add_argument("--workdir", default=None, help="working folder of the kernel, with --no-sandbox (default: the "
                                                        "reference's folder); the sandbox runs every notebook in /workspace")
    parser.add_argument("--execute-reference", action="store_true",
                        help="execute the reference first (in the same mode) instead of using its recorded outputs")
    parser.add_argument("--full", action="store_true",
                        help="run every cell; by default the reference's grading:skip cells are skipped and its "
                             "grading:short cells run with their short settings")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run notebooks with the grader's rights, without bubblewrap (trusted notebooks only; "
                             "every report says so)")
    parser.add_argument("--workspace", default=None,
                        help="the student's workspace (`grading release` output) the sandbox shows the notebook "
                             "(default: written from this project)")
    parser.add_argument("--hidden-tests", default=None,
                        help="the hidden tests' module (default: hidden_tests/<reference stem>.py beside the reference)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the hidden tests' inputs (default: drawn)")
    parser.add_argument("--memory-limit", type=float, default=d.memory_mb, metavar="MB",
                        help=f"address space of each process in the sandbox, and resident memory of all of them "
                             f"together (default {d.memory_mb:g} MB)")
    parser.add_argument("--max-output", type=float, default=d.max_output_mb, metavar="MB",
                        help=f"outputs kept per notebook (default {d.max_output_mb:g} MB)")


def _options(args) -> Options:
    if args.workdir and not args.no_sandbox:
        raise GradingError("--workdir sets the kernel's folder only with --no-sandbox; in the sandbox every notebook "
                           "runs in /workspace, the student's workspace (--workspace).")
    return Options(cell_timeout=args.timeout, notebook_timeout=args.notebook_timeout, rtol=args.rtol,
                   atol=args.atol, kernel=args.kernel, workdir=args.workdir, full=args.full,
                   sandbox=not args.no_sandbox, workspace=args.workspace, hidden_tests=args.hidden_tests,
                   seed=args.seed, memory_mb=args.memory_limit, max_output_mb=args.max_output)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of notebooks (1 or more) or 'auto'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grading", description=DESCRIPTION,
        epilog="Graded cells carry the cell tag exercise:<name> in the reference notebook. Exit codes: "
               "0 every exercise passed (diff: no differences), 1 some exercise did not pass (diff: the "
               "notebooks differ), 2 could not grade (not a notebook, unusable reference, missing file).")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("grade", help="grade one submission against the reference")
    p.add_argument("submission")
    _add_grading_options(p)
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--executed", help="save the executed submission here (.ipynb)")

    p = commands.add_parser("class", help="grade every *.ipynb in a folder (in parallel, or on Dask)")
    p.add_argument("folder")
    _add_grading_options(p)
    p.add_argument("--workers", type=_workers, default=None,
                   help="notebooks run at once here: a number, or auto (as many as fit in free memory at the "
                        "peak measured per notebook, at most the CPU count); default: CPU count")
    p.add_argument("--notebook-memory", type=float, default=None, metavar="MB",
                   help="with --workers auto: a recorded peak per notebook (MB), so the first one need not run alone")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--out", default="grading-results",
                   help="folder for scores.csv, pass_rates.png, reports/, executed/ (default grading-results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = commands.add_parser("diff", help="diff two notebooks with nbdime (terminal, and HTML)")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--html", help="also write a standalone HTML page here")
    p.add_argument("--outputs-only", action="store_true", help="compare outputs only, not sources")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")

    p = commands.add_parser("execute", help="run a trusted notebook (a reference) as the grader's kernels run, "
                                            "WITHOUT the sandbox: with your rights; students' notebooks go to grade")
    p.add_argument("notebook")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--timeout", type=float, default=Options.cell_timeout)
    p.add_argument("--kernel", default=Options.kernel)
    p.add_argument("--workdir", default=None, help="working folder (default: the notebook's folder)")

    p = commands.add_parser("release", help="write the student version of a reference notebook")
    p.add_argument("reference", help="the reference notebook, solutions between ### BEGIN/END SOLUTION")
    p.add_argument("-o", "--out", required=True, help="folder for the student version (same file name)")
    p.add_argument("--notebook-only", action="store_true",
                   help="write only the notebook, not the workspace (course modules, the happyhouse package)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 all passed / same, 1 some failed / differ, 2 error)."""
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args)
        if args.command == "grade":
            report = grade(args.submission, args.reference, _options(args), args.execute_reference)
            print(format_table(report), end="")
            if args.json:
                write_text(args.json, json.dumps(public_report(report), indent=1))
            if args.executed and report["executed"]:
                write_text(args.executed, report["executed"])
            return exit_code([report])
        if args.command == "class":
            reports = grade_class(args.folder, args.reference, _options(args), args.workers, args.scheduler,
                                  args.out, args.execute_reference, progress=not args.no_progress,
                                  notebook_memory_mb=args.notebook_memory)
            for said in sorted({r["warning"] for r in reports if r.get("warning")}):
                print(f"WARNING: {said}")
            for r in reports:
                verdicts = ", ".join(f"{e['exercise']}={e['verdict']}" for e in r["exercises"]) or r["error"]
                print(f"{r['submission']}: {r['passed']}/{r['total']}  {verdicts}")
            print(f"scores: {Path(args.out) / 'scores.csv'}")
            return EXIT_PASS if all(r["status"] == "graded" and r["passed"] == r["total"] for r in reports) else EXIT_FAIL
        if args.command == "diff":
            color = sys.stdout.isatty() if args.color == "auto" else args.color == "always"
            text = diff_text(args.a, args.b, args.outputs_only, color)
            same = "The notebooks' outputs are the same." if args.outputs_only else \
                "The notebooks' sources and outputs are the same."
            print(text or same, end="" if text else "\n")
            if args.html:
                diff_html(args.a, args.b, args.html, args.outputs_only)
                print(f"HTML diff: {args.html}")
            return EXIT_FAIL if text else EXIT_PASS
        if args.command == "release":
            if not args.notebook_only:
                check_target(args.out)  # before anything is written
            target = release(args.reference, args.out)
            if not args.notebook_only:
                write_workspace(args.out, data=False)
            names = [graded_function(c.source) for c in read_notebook(target).cells if c.cell_type == "code"]
            names = [n for n in names if n]
            print(f"{target}: {len(names)} graded functions ({', '.join(names)}), solutions replaced by "
                  "placeholders, outputs cleared" + ("" if args.notebook_only else
                  f"; workspace (course modules, happyhouse without grading) in {args.out}"))
            return EXIT_PASS
        if args.command == "execute":
            source = Path(args.notebook)
            execute_notebook(source, Path(args.output), args.timeout,
                             Path(args.workdir) if args.workdir else source.resolve().parent, args.kernel)
            return EXIT_PASS
    except (GradingError, OutputError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        stopped = ("the cluster's running jobs are left to it" if getattr(args, "scheduler", None)
                   else "the running notebooks were stopped")
        kept = (f"; the reports written in {args.out} are kept and the same command grades the rest"
                if args.command == "class" else "")
        print(f"interrupted: {stopped}{kept}.", file=sys.stderr)
        return 130
    return EXIT_ERROR


def check_outputs(args) -> None:
    """Every file and folder the command will write, checked before it grades or runs anything."""
    for name in ("json", "executed", "html", "output"):
        if getattr(args, name, None):
            check_file(getattr(args, name))
    if args.command in ("class", "release"):
        check_folder(args.out)
