"""The benchmark scripts' own pieces (no timing asserts: speed lives in bench/results)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import common, identification, suite, weights_load
from happyhouse.precision import bfloat16_missing

ROOT = common.ROOT


def test_flop_count_matches_hand_count():
    import keras
    import tensorflow as tf

    x = keras.Input((5, 5, 2))
    y = keras.layers.Conv2D(4, 3)(x)                       # 3x3 outputs x 4 filters x (3*3*2) MACs
    y = keras.layers.Dense(3)(keras.layers.Flatten()(y))   # 36 inputs x 3 outputs MACs
    model = keras.Model(x, y)
    graph = tf.function(lambda t: model(t)).get_concrete_function(tf.TensorSpec((7, 5, 5, 2))).graph
    per_image = 2 * (3 * 3 * 4 * 3 * 3 * 2) + 2 * (36 * 3)
    assert common.count_flops(graph, per_image=True) == per_image
    assert common.count_flops(graph) == 7 * per_image


def test_bfloat16_scope_restores_the_options(monkeypatch):
    import tensorflow as tf

    from happyhouse import precision
    from happyhouse.precision import compute_precision
    monkeypatch.setattr(precision, "bfloat16_missing", lambda: None)   # no graph runs: any CPU will do
    key = "auto_mixed_precision_onednn_bfloat16"
    before = tf.config.optimizer.get_experimental_options().get(key, False)

    with compute_precision("bfloat16"):
        assert tf.config.optimizer.get_experimental_options()[key] is True
    assert tf.config.optimizer.get_experimental_options().get(key, False) == before


def test_our_search_agrees_with_the_course_loop():
    rng = np.random.default_rng(1)
    E = identification.make_gallery(500, 128, rng)
    names = [f"p{i}" for i in range(len(E))]
    queries, truth = identification.make_queries(E, 20, rng)
    search, _ = identification.searcher(names, E)
    database = {n: E[i:i + 1].copy() for i, n in enumerate(names)}
    for q, t in zip(queries, truth):
        idx, dist = search(q[None])
        min_dist, identity = identification.course_who_is_it(q[None], database)
        assert names[idx[0]] == identity == names[t]
        assert dist[0] == pytest.approx(min_dist, abs=1e-4)


def test_course_csv_loader_reads_what_was_written(tmp_path):
    shapes = {"conv1_w.csv": (4, 3, 2, 2), "conv1_b.csv": (4,),
              **{f"bn1_{p}.csv": (4,) for p in "wbmv"}}
    weights_load.write_csv_folder(tmp_path, shapes, np.random.default_rng(0))
    text = (tmp_path / "conv1_w.csv").read_text()
    assert "\n" not in text and text.count(",") == 4 * 3 * 2 * 2 - 1  # one line, as the course's files
    loaded = weights_load.course_load_weights(tmp_path, ["conv1", "bn1"], {"conv1": [4, 3, 2, 2]})
    flat = np.array(text.split(","), dtype=float)
    np.testing.assert_array_equal(loaded["conv1"][0], flat.reshape(4, 3, 2, 2).transpose(2, 3, 1, 0))
    assert [w.shape for w in loaded["bn1"]] == [(4,)] * 4


def test_results_file_and_summary_table(tmp_path):
    roof = {"fp32_gflops": 100.0, "bf16_gflops": 400.0}
    goals = [common.goal("fast enough", ">= 3x", 2.5, False), common.goal("same", "equal", 0.0, True)]
    path = common.write("demo", [{"a": 1, "b": 0.5}], goals, roof, tmp_path)
    doc = json.loads(path.read_text())
    assert doc["rooflines"] == roof and doc["machine"]["cores"] >= 1
    assert [g["met"] for g in doc["goals"]] == [False, True]
    table = common.summary_table(tmp_path)
    assert "| demo | fast enough | >= 3x | 2.5 | **no** | M1 |" in table
    assert "| demo | same | equal | 0 | yes | M1 |" in table and "- M1: " in table
    (tmp_path / "older.json").write_text(json.dumps({"rows": [], "goals": [common.goal("kept", "0", 0, True)]}))
    assert "| older | kept | 0 | 0 | yes | - |" in common.summary_table(tmp_path)  # no machine: still listed
    (tmp_path / "demo_plan_1.json").write_text(json.dumps({"name": "demo", "goals": [common.goal("old plan", "<1", 2, False)]}))
    assert "| demo_plan_1 | old plan |" in common.summary_table(tmp_path)  # a variant is named by its file


def test_bench_command_writes_json(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "identification",
                             "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((tmp_path / "identification.json").read_text())
    assert doc["rooflines"]["fp32_gflops"] > 0
    if bfloat16_missing() is None:
        assert doc["rooflines"]["bf16_gflops"] > 0
    else:    # not measured, and the file says why
        assert doc["rooflines"]["bf16_gflops"] is None and bfloat16_missing() in doc["rooflines"]["how"]
    assert all(r["agrees_with_loop"] for r in doc["rows"])
    assert {r["index"] for r in doc["approx"]} == {"ivf", "hnsw"}
    assert all(r["recall1_d0.5"] >= 0.9 for r in doc["approx"])          # 20 queries at quick sizes
    assert all(u["newcomer_found"] and u["removed_gone"] and u["others_found"] for u in doc["updates"])
    assert "Machine(s):" in result.stdout  # the summary table of the run


def test_style_large_command_writes_json_and_pictures(tmp_path, course_images):
    """bench.style_large end to end at a tiny size: both runs, their costs, the goals and the pictures."""
    picture = tmp_path / "c2f.png"
    result = subprocess.run([sys.executable, "-m", "bench.style_large", "--quick", "--size", "64", "--iterations", "3",
                             "--network", "vgg19-random", "--out", str(tmp_path), "--picture", str(picture)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((tmp_path / "style_large.json").read_text())
    c2f, single = doc["rows"]
    assert "coarse to fine, lbfgs iterations: 24x32 (3) -> 48x64 (1)" == c2f["run"]  # L-BFGS by default there
    assert c2f["full_size_steps"] == single["full_size_steps"] == 1
    assert all(row["cost_at_full_size"] > 0 and row["peak_rss_mib"] > 0 for row in doc["rows"])
    assert [g["goal"].split(" ")[0] for g in doc["goals"]] == ["64", "cost"]
    for path in (picture, tmp_path / "c2f_single.png", tmp_path / "c2f_vs_single.png"):
        assert path.stat().st_size > 0


def test_peak_memory_of_this_process_and_of_its_children():
    """PeakMemory sees this process's memory, and with children=True a child's 200 MB allocation."""
    child_code = "import time; b = bytearray(200 * 2**20); time.sleep(1.0)"
    with common.PeakMemory(every=0.05) as mine, common.PeakMemory(children=True, every=0.05) as kids:
        subprocess.run([sys.executable, "-c", child_code], check=True)
    assert mine.peak_mib > 10                      # this Python process itself
    assert kids.peak_mib > 200                     # the child, while it held its bytes


def test_whole_picture_goal_follows_the_cpu_kind():
    from bench.nst_whole import whole_picture_goal
    row = {"strategy": "fast", "seconds": 20.0, "reached_target": True}
    amx = whole_picture_goal(row, ["amx_bf16", "avx2", "avx512_bf16", "avx512f"])
    assert amx["target"].startswith("< 15 s") and not amx["met"]          # 20 s misses AMX's goal
    assert whole_picture_goal(row, ["avx2"])["met"] and "AVX2" in whole_picture_goal(row, ["avx2"])["target"]
    capped = whole_picture_goal({**row, "strategy": "fast-avx2"}, ["amx_bf16", "avx2"])
    assert capped["target"].startswith("< 45 s") and "lower bound" in capped["note"]
    assert not whole_picture_goal({**row, "reached_target": False}, ["avx2"])["met"]


def test_fast_plan_bench_scores_each_pass_against_the_course(tmp_path, course_images):
    """bench.fast_plan at a tiny size: per pair the course's target, then each full-size pass scored
    (L-BFGS after each iteration, Adam every 5 steps), where it crossed, and the plot."""
    from bench import fast_plan
    fast_plan.main(["--quick", "--out", str(tmp_path), "--plot", str(tmp_path / "plan.png")])
    doc = json.loads((tmp_path / "fast_plan_quick.json").read_text())
    here = fast_plan.passes_here()   # bfloat16's pass only where this process has its kernels
    assert here == [p for p in fast_plan.PASSES if p[1] != "bfloat16" or bfloat16_missing() is None]
    assert [(r["optimizer"], r["precision"]) for r in doc["rows"]] == [("course", "auto"), *here] * 3
    for pair, passes in doc["costs"].items():
        target = next(r["target"] for r in doc["rows"] if r["pair"] == pair)
        for optimizer, precision in here:
            steps, costs = zip(*passes[f"{optimizer}/{precision}"])
            assert steps == ((1, 2, 3, 4) if optimizer == "lbfgs" else (5, 10)) and all(c > 0 for c in costs)
            row = next(r for r in doc["rows"] if r["pair"] == pair and (r["optimizer"], r["precision"]) == (optimizer, precision))
            assert row["crosses_target_at"] == next((s for s, c in passes[f"{optimizer}/{precision}"] if c <= target), None)
            assert (row["evaluations"] or 0) >= (4 if optimizer == "lbfgs" else 0)
    assert [g["goal"].split(" in ")[1].split(" ")[0] for g in doc["goals"]] == list(common.precisions_here())
    assert (tmp_path / "plan.png").stat().st_size > 0


def test_a_bench_refuses_bfloat16_where_this_process_has_none(monkeypatch, capsys):
    """--precision bfloat16 on a CPU without bfloat16 kernels: a usage error saying why (exit 2)."""
    parser = common.parser("demo")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    monkeypatch.setattr("happyhouse.precision.bfloat16_missing", lambda: "the CPU has neither AMX nor AVX512-BF16")
    assert common.parse_precision_args(parser, ["--precision", "float32"]).precision == "float32"
    with pytest.raises(SystemExit) as stop:
        common.parse_precision_args(parser, ["--precision", "bfloat16"])
    assert stop.value.code == 2
    assert "--precision bfloat16: the CPU has neither AMX nor AVX512-BF16; use --precision float32" in capsys.readouterr().err
    monkeypatch.setattr("happyhouse.precision.bfloat16_missing", lambda: None)
    assert common.parse_precision_args(parser, ["--precision", "bfloat16"]).precision == "bfloat16"


def test_suite_bench_reads_what_pytest_reports():
    output = ("....s\n============ slowest 3 durations ============\n208.71s call     notebooks/N.ipynb::Cell 18\n"
              "57.23s setup    tests/a.py::test_b\n====== 557 passed, 2 skipped, 1 failed in 529.10s (0:08:49) ======\n")
    assert suite.counts(output) == {"passed": 557, "skipped": 2, "failed": 1}
    assert suite.counts("6 passed in 3.50s\n") == {"passed": 6}
    assert suite.counts("no tests ran in 0.01s\n") == {}
    assert suite.slowest(output) == ["208.71s call notebooks/N.ipynb::Cell 18", "57.23s setup tests/a.py::test_b"]
    busy, total = suite.cpu_ticks()
    assert 0 <= busy <= total
    times = {"nb.ipynb::Cell 1": [9.0, 0.0, 400.0], "tests/a.py::t1": [2.0, 1.5, 0.5], "tests/a.py::t2": [1.0, 1.0, 0.0],
             "tests/b.py::t": [3.0, 0.2, 3.0]}
    assert suite.cpu_by_file(times) == [("nb.ipynb", 400.0), ("tests/b.py", 3.2), ("tests/a.py", 3.0)]


def test_suite_bench_times_one_worker_against_two(tmp_path):
    """bench.suite --quick: the README's test command over one small file, on one worker and on two."""
    result = subprocess.run([sys.executable, "-m", "bench.suite", "--quick", "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    doc = json.loads((tmp_path / "suite.json").read_text())
    one, two = doc["rows"]
    assert (one["setting"], two["setting"]) == tuple(suite.SETTINGS)
    assert one["exit"] == two["exit"] == 0 and one["passed"] == two["passed"] > 0
    assert one["speed_up"] == 1 and two["seconds"] > 0 and 0 < two["cpu_busy"] <= 1
    assert doc["goals"][1]["met"] and "-n 0" in one["setting"]
    assert one["cpu_seconds"] > 0 and one["cpu_by_file"][0][0] == suite.QUICK_PATHS[0] and one["cpu_top_share"] == 1
    assert "cpu_seconds" not in two


def test_a_quick_run_never_writes_over_the_committed_results():
    """--quick without --out wrote its meaningless times over bench/results' JSON."""
    p = common.parser("a bench")
    assert p.parse_args([]).out == common.RESULTS
    assert p.parse_args(["--quick"]).out == common.QUICK_RESULTS != common.RESULTS
    assert p.parse_args(["--quick", "--out", "elsewhere"]).out == Path("elsewhere")
