"""What every benchmark shares: the machine's description, its matmul rooflines, timing,
a printed table and the JSON file in ``bench/results/<name>.json``.

Speed claims are ratios measured side by side in the same run; absolute times drift
between runs and machines, so every result file carries the machine and its rooflines
(fp32 and bfloat16 ``tf.linalg.matmul`` GFLOP/s) measured in that same run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:  # `python bench/x.py` as well as `python -m bench.x`
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ----------------------------------------------------------------------------- pictures
def picture_cost(cost, picture, size) -> float:
    """How bench/ scores a style-transfer picture: ``cost`` (a StyleTransferCost in fp32) of
    ``picture`` (a file, or (H, W, 3) uint8 RGB) resized to ``size`` (H, W)."""
    import tensorflow as tf

    from happyhouse.style import images
    return float(cost(tf.constant(images.normalize(picture, size)))[0])


# ----------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = info.get("model name", platform.machine())
    return f"{name} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2", "avx512_vnni")))
    except OSError:
        pass
    return []


def _mem_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def machine() -> dict:
    """The machine this run is on: CPU, cores, memory, ISA flags, load, library versions."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": cores,
        "memory_gib": _mem_gib(),
        "isa": _cpu_flags(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {m: _version(m) for m in
                     ("tensorflow-cpu", "tensorflow", "keras", "numpy", "scipy", "faiss-cpu")
                     if _version(m)},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- rooflines
def matmul_gflops(dtype: str = "float32", n: int = 2048, repeats: int = 5) -> float:
    """Measured ``tf.linalg.matmul`` GFLOP/s on (n, n) @ (n, n) of ``dtype`` (the best of repeats:
    a roofline is what the machine can reach; on a shared VM a neighbour can slow any one call)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((n, n), dtype=np.float32), dtype=dtype)
    b = tf.constant(rng.standard_normal((n, n), dtype=np.float32), dtype=dtype)
    mm = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1, :1], tf.float32)))
    for _ in range(3):  # warm up: trace, oneDNN primitive creation, page faults, AMX power-up
        mm(a, b).numpy()
    times = timeit(lambda: mm(a, b).numpy(), repeats=repeats, warmup=0)
    return 2.0 * n**3 / float(np.min(times)) / 1e9


def precisions_here() -> tuple:
    """The precisions this process can time: ("float32", "bfloat16"), or ("float32",) where it has
    no bfloat16 kernels (happyhouse.precision.bfloat16_missing says why)."""
    from happyhouse.precision import PRECISIONS, bfloat16_missing
    return PRECISIONS if bfloat16_missing() is None else PRECISIONS[:1]


def parse_precision_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``parser.parse_args(argv)``; a usage error saying why where ``--precision bfloat16`` was
    asked for and this process has no bfloat16 kernels."""
    from happyhouse.precision import bfloat16_missing
    args = parser.parse_args(argv)
    missing = bfloat16_missing() if args.precision == "bfloat16" else None
    if missing is not None:
        parser.error(f"--precision bfloat16: {missing}; use --precision float32")
    return args


def share(gflops: float, roof_gflops: float | None) -> float | None:
    """``gflops`` as a share of a roofline; None where that roofline was not measured."""
    return None if roof_gflops is None else gflops / roof_gflops


def rooflines(quick: bool = False) -> dict:
    """fp32 and bfloat16 matmul GFLOP/s of this machine, measured now (bf16: None where this
    process has no bfloat16 kernels, and "how" says why)."""
    from happyhouse.precision import bfloat16_missing
    n32, n16 = (512, 512) if quick else (2048, 4096)  # bf16 runs 4-5x faster: a larger product to time
    missing = bfloat16_missing()
    return {"fp32_gflops": round(matmul_gflops("float32", n32), 1),
            "bf16_gflops": None if missing else round(matmul_gflops("bfloat16", n16), 1),
            "how": f"tf.linalg.matmul of square matrices, n={n32} (fp32) and n={n16} (bf16), "
                   "best of 5 after 3 warm-up calls" + (f"; no bf16 roofline: {missing}" if missing else "")}


# ----------------------------------------------------------------------------- graphs
def count_flops(graph, per_image: bool = False) -> float:
    """2 x multiply-adds of the Conv2D, depthwise convolution and MatMul ops in a TF ``graph``.

    ``per_image``: leave out the batch dimension of convolutions and matmuls (rows = images).
    """
    total = 0.0
    for op in graph.get_operations():
        if op.type == "MatMul":
            a, out = op.inputs[0].shape.as_list(), op.outputs[0].shape.as_list()
            k = a[0] if op.get_attr("transpose_a") else a[1]
            total += 2.0 * out[-1] * k * (1 if per_image else out[0])
        elif op.type in ("Conv2D", "DepthwiseConv2dNative"):
            kernel, out = op.inputs[1].shape.as_list(), op.outputs[0].shape.as_list()
            per_output = kernel[0] * kernel[1] * (1 if op.type == "DepthwiseConv2dNative" else kernel[2])
            total += 2.0 * float(np.prod(out[1:] if per_image else out)) * per_output
    return total


# ----------------------------------------------------------------------------- timing
def timeit(fn, repeats: int = 5, warmup: int = 1) -> np.ndarray:
    """Seconds of each of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def stats(seconds) -> dict:
    """Median, p99, mean and min of a sample of seconds, in milliseconds."""
    s = np.asarray(seconds, dtype=float) * 1e3
    return {"p50_ms": float(np.percentile(s, 50)), "p99_ms": float(np.percentile(s, 99)),
            "mean_ms": float(s.mean()), "min_ms": float(s.min()), "n": int(s.size)}


# ----------------------------------------------------------------------------- output
def fmt(x) -> str:
    if isinstance(x, bool) or x is None:
        return {True: "yes", False: "NO", None: "-"}[x]
    if isinstance(x, float):
        if x == 0 or not np.isfinite(x):
            return f"{x:g}"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        if abs(x) >= 0.01:
            return f"{x:.3g}"
        return f"{x:.2e}"
    return str(x)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts) over ``columns`` (default: the first row's keys)."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def goal(name: str, target: str, measured, met: bool, note: str = "") -> dict:
    """One goal of the issue: what was asked, what was measured, whether it is met."""
    return {"goal": name, "target": target, "measured": measured, "met": bool(met), "note": note}


def write(name: str, rows: list[dict], goals: list[dict], roof: dict, out_dir: Path | None = None,
          notes: list[str] | None = None, columns: list[str] | None = None, extra: dict | None = None) -> Path:
    """Print the table and the goals, and write ``<out_dir>/<name>.json``. Returns the path."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"\n## {name}  (fp32 roofline {roof['fp32_gflops']} GFLOP/s, bf16 {roof['bf16_gflops']} GFLOP/s)")
    print(table(rows, columns))
    for g in goals:
        print(f"goal: {g['goal']}: target {g['target']}, measured {fmt(g['measured'])} -> "
              f"{'MET' if g['met'] else 'NOT MET'}{'; ' + g['note'] if g['note'] else ''}")
    for n in notes or []:
        print("note:", n)
    doc = {"name": name, "machine": machine(), "rooflines": roof, "rows": rows, "goals": goals,
           "notes": notes or [], **(extra or {})}
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


#: Where a --quick run writes when no --out is given: never over the committed results.
QUICK_RESULTS = Path(tempfile.gettempdir()) / "happyhouse-bench-quick"


class BenchParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``--out`` defaults to RESULTS, or to QUICK_RESULTS with ``--quick``."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        if getattr(parsed, "out", "") is None:
            parsed.out = QUICK_RESULTS if getattr(parsed, "quick", False) else RESULTS
        return parsed, rest


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick`` (tiny sizes, a smoke test) and ``--out``."""
    p = BenchParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, times mean nothing")
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for the JSON (default {RESULTS}; with --quick {QUICK_RESULTS}, so a smoke test "
                        "never replaces the committed results)")
    return p


def summary_table(out_dir=None) -> str:
    """One Markdown table of every goal in the JSON files of ``out_dir``; each row names its file (a
    bench's variants and earlier plans, such as ``nst_whole_plan_30_80``, apart from its current run)
    and its run's machine (M1, M2, ... listed under the table with their CPU, rooflines, load and
    date), since the files may come from different runs and machines."""
    out_dir = Path(out_dir) if out_dir is not None else RESULTS
    lines, machines = [], {}
    lines.append("| benchmark | goal | target | measured | met | run |")
    lines.append("|---|---|---|---|---|---|")
    for path in sorted(out_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        described = machine_line(doc.get("machine"), doc.get("rooflines"))
        run = f"M{machines.setdefault(described, len(machines) + 1)}" if described else "-"
        for g in doc.get("goals", []):
            measured = g["measured"]
            if isinstance(measured, dict):
                measured = ", ".join(f"{k} {fmt(v)}" for k, v in measured.items())
            lines.append(f"| {path.stem} | {g['goal']} | {g['target']} | {fmt(measured)} | "
                         f"{'yes' if g['met'] else '**no**'} | {run} |")
    return "\n".join(lines) + "\n\nMachine(s):\n" + "\n".join(f"- M{k}: {m}" for m, k in machines.items())


def machine_line(m: dict | None, r: dict | None) -> str | None:
    """The machine and rooflines of one result file in one line, or None where the file has none."""
    if not m:
        return None
    roofs = f"fp32 {r['fp32_gflops']} / bf16 {r['bf16_gflops']} GFLOP/s; " if r else ""
    return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {roofs}load {m['load_average_1_5_15'][0]}; "
            f"{m['date']}")


class PeakMemory:
    """Context manager: the peak resident memory (``peak_mib``) while inside, sampled every
    ``every`` s (psutil): of this process, or with ``children=True`` of its child processes
    together (notebooks and their kernels)."""

    def __init__(self, children: bool = False, every: float = 0.1):
        import threading
        self.children, self.every, self.peak_mib = children, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss(self, proc) -> int:
        import psutil
        if not self.children:
            return proc.memory_info().rss
        total = 0
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # it ended between listing and reading
                pass
        return total

    def _sample(self):
        import psutil
        proc = psutil.Process()
        while True:
            self.peak_mib = max(self.peak_mib, self._rss(proc) / 2**20)
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
