"""Reports: a table per submission, and for a class scores.csv, JSON reports, executed notebooks, a chart."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .mode import describe
from .notebook import shorten


def format_table(report: dict) -> str:
    """A readable per-exercise table of one report."""
    head = f"{report['submission']}  (reference {report['reference']})"
    if report.get("warning"):
        head += f"\nWARNING: {report['warning']}"
    if report["status"] == "error":
        return f"{head}\nERROR: {report['error']}\n"
    rows = [("exercise", "verdict", "expected", "got", "why")]
    for e in report["exercises"]:
        rows.append((e["exercise"], e["verdict"].upper(), shorten(e["expected"], 28),
                     shorten(e["got"], 28), e["reason"]))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    lines.insert(1, "-" * min(120, sum(widths) + 10))
    memory = f", peak {report['peak_memory_mb']:.0f} MB" if report.get("peak_memory_mb") else ""
    if any(e.get("decided_by") == "hidden tests" for e in report["exercises"]):
        lines.append(f"verdicts: hidden tests (seed {report.get('hidden_seed')}); expected / got above are the "
                     "printed outputs, feedback only:")
        lines += [f"  {e['exercise']}: printed output {e['feedback']['verdict']}"
                  + (f" ({e['feedback']['reason']})" if e['feedback']['reason'] else "")
                  for e in report["exercises"] if e.get("feedback")]
    tail = f"{report['passed']}/{report['total']} exercises passed ({report['seconds']:.1f} s{memory})"
    return "\n".join([head, *[line.rstrip() for line in lines], describe(report.get("cells")), tail]) + "\n"


def write_results(reports: list[dict], exercises: list[str], out: Path) -> None:
    """Write ``scores.csv`` (1/0 per exercise), per-notebook JSON and executed notebooks, a chart."""
    (out / "reports").mkdir(parents=True, exist_ok=True)
    (out / "executed").mkdir(exist_ok=True)
    with open(out / "scores.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "status", "score", "passed", "total", *exercises, "skipped", "shortened",
                         "peak_memory_mb", "points", "max_points", "sandbox", "hidden_tests", "notes"])
        for r in reports:
            verdicts = {e["exercise"]: e["verdict"] for e in r["exercises"]}
            notes = r["error"] or "; ".join(f"{e['exercise']}: {e['verdict']}" for e in r["exercises"]
                                            if e["verdict"] != "pass")
            writer.writerow([r["submission"], r["status"], r["score"], r["passed"], r["total"],
                             *[int(verdicts.get(x) == "pass") for x in exercises], *_cells(r),
                             r.get("peak_memory_mb"), r.get("points"), r.get("max_points"),
                             "yes" if r.get("sandbox", True) else "NO (--no-sandbox)",
                             "yes" if r.get("hidden_tests", True) else "NO (printed outputs only)", notes])
    for r in reports:
        write_report(r, out)
    plot_pass_rates(reports, exercises, out / "pass_rates.png")


def write_report(report: dict, out: Path) -> None:
    """``reports/<name>.json`` and ``executed/<name>.ipynb`` (when the report holds it) of one submission."""
    stem = Path(report["submission"]).stem
    (out / "reports").mkdir(parents=True, exist_ok=True)
    (out / "executed").mkdir(exist_ok=True)
    if report.get("executed"):
        _replace(out / "executed" / f"{stem}.ipynb", report["executed"])
    _replace(out / "reports" / f"{stem}.json", json.dumps(public_report(report), indent=1))


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _cells(report: dict) -> tuple[str, str]:
    """The skipped and shortened cells' indices, as '4 6 8' (empty for a full run)."""
    done = report.get("cells") or {}
    return tuple(" ".join(str(c["cell"]) for c in done.get(key, [])) for key in ("skipped", "shortened"))


def public_report(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "executed"}


def plot_pass_rates(reports: list[dict], exercises: list[str], path: Path) -> None:
    """A bar chart of the share of submissions passing each exercise."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it is

    rates = [sum(any(e["exercise"] == x and e["verdict"] == "pass" for e in r["exercises"]) for r in reports)
             / max(1, len(reports)) for x in exercises]
    fig = Figure(figsize=(max(4, 1.2 * len(exercises)), 3))
    ax = fig.subplots()
    ax.bar(exercises, [100 * r for r in rates], color="tab:green")
    ax.set_ylim(0, 100)
    ax.set_ylabel("submissions passing (%)")
    ax.set_title(f"{len(reports)} submissions")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
