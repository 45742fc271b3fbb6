"""The ``nst`` command's fast default plan (happyhouse.style.fast): a half-size L-BFGS pass from
the course's noisy start, then L-BFGS at full size, in the run's precision; the flags
still give the course's Adam run, and the library's default stays the course's. Tiny pictures, few
steps, vgg19-random (no weights)."""
import dataclasses

import numpy as np
import pytest
from PIL import Image

from happyhouse import precision
from happyhouse.style import cli, fast, optimize, transfer

NET = "vgg19-random"


@pytest.fixture
def passes(monkeypatch):
    """Record (optimizer, precision, steps, (H, W), start cost) of each optimise() call; fewer
    iterations in the fast plan, and a CPU without bfloat16 (the plan's float32 path). A test that
    pretends a CPU with bfloat16 on one without its kernels gets its passes computed in float32."""
    monkeypatch.setattr(fast, "COARSE_ITERATIONS", 6)
    monkeypatch.setattr(fast, "FINE_ITERATIONS", {"float32": 3, "bfloat16": 3})
    has_bfloat16 = precision.cpu_has_bfloat16()   # this process, before any pretending
    monkeypatch.setattr(precision, "bfloat16_kind", lambda flags=None: None)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)   # the CPU pretended, oneDNN not held
    seen, optimise = [], optimize.optimise

    def spy(model, start, cost, steps, options):
        seen.append((options.optimizer, options.precision, steps, tuple(np.shape(start)[1:3])))
        if not has_bfloat16:
            options = dataclasses.replace(options, precision="float32")
        return optimise(model, start, cost, steps, options)
    monkeypatch.setattr(optimize, "optimise", spy)
    return seen


def run_cli(pictures, tmp_path, *flags):
    out = tmp_path / "painted.png"
    code = cli.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--size", "64x80", "--network", NET,
                     "--seed", "1", *flags])
    assert code == 0 and Image.open(out).size == (80, 64)
    return out


def test_the_plan_halves_the_size_and_falls_back_when_too_small():
    coarse, fine = fast.fast_schedule((300, 400), 32)
    assert coarse[0] == (150, 200) and coarse[2:] == ("lbfgs", "float32")
    assert fine == ((300, 400), fast.FINE_ITERATIONS["float32"], "lbfgs", "float32")
    assert coarse[1] == fast.COARSE_ITERATIONS
    assert [p[2:] for p in fast.fast_schedule((300, 400), 32, "bfloat16")] == [("lbfgs", "bfloat16")] * 2
    assert fast.fast_schedule((40, 60), 32) == [((40, 60), fast.SMALL_ITERATIONS, "lbfgs", "float32")]  # 20x30: too small


def test_the_plan_runs_in_the_precision_this_cpu_gains_by(pictures, tmp_path, passes, monkeypatch, capsys):
    monkeypatch.setattr(precision, "bfloat16_kind", lambda flags=None: "avx512_bf16")   # where bf16 wins
    monkeypatch.setattr(precision, "onednn_enabled", lambda: True)
    run_cli(pictures, tmp_path)
    assert passes == [("lbfgs", "bfloat16", 6, (32, 40)), ("lbfgs", "bfloat16", 3, (64, 80))]
    assert ("then 3 L-BFGS iterations at 64x80 in bfloat16 (the CPU has avx512_bf16 and oneDNN is on;"
            in capsys.readouterr().out)
    passes.clear()
    run_cli(pictures, tmp_path, "--precision", "float32")
    assert passes == [("lbfgs", "float32", 6, (32, 40)), ("lbfgs", "float32", 3, (64, 80))]
    assert "at 64x80 in float32 (asked for;" in capsys.readouterr().out


def test_nst_default_runs_the_fast_plan_and_lowers_the_cost(pictures, tmp_path, passes, capsys):
    run_cli(pictures, tmp_path)
    assert passes == [("lbfgs", "float32", 6, (32, 40)), ("lbfgs", "float32", 3, (64, 80))]
    out = capsys.readouterr().out
    assert ("Fast plan: 6 L-BFGS iterations at 32x40 then 3 L-BFGS iterations at 64x80 in float32 "
            "(the CPU has neither AMX nor AVX512-BF16;") in out
    first, last = (float(v) for v in out.split(f"{NET}: J ")[1].split("; wrote")[0].split(" -> "))
    assert last < first  # the start is the noisy content at 32x40, the last cost is at 64x80
    assert "; from the course's noisy content); --optimizer adam runs the course's 200 steps." in out


def coarse_start(pictures, monkeypatch, init) -> np.ndarray:
    """The image the fast plan's coarse pass starts from (1, 32, 40, 3), for ``init`` (None: the plan's)."""
    starts = []
    optimise = optimize.optimise
    monkeypatch.setattr(optimize, "optimise", lambda m, s, c, n, o: starts.append(np.array(s)) or optimise(m, s, c, n, o))
    settings = transfer.TransferSettings(network=NET, size=(64, 80), output_dir=False, progress=False, print_every=0,
                                         fast=True, init=init, seed=3)
    transfer.run(pictures[0], [pictures[1]], settings)
    return starts[0]


def test_the_fast_plan_starts_from_the_course_noisy_content(pictures, monkeypatch, passes):
    content = transfer.images.normalize(pictures[0], (32, 40))   # from the content, fine textures stall
    noisy = transfer.start.initial_image(content, "noise", 0.6, seed=3)
    np.testing.assert_allclose(coarse_start(pictures, monkeypatch, None), noisy)
    np.testing.assert_allclose(coarse_start(pictures, monkeypatch, "content"), content)   # --init still chooses


def test_flags_still_force_the_course_adam_run(pictures, tmp_path, passes, capsys):
    run_cli(pictures, tmp_path, "--optimizer", "adam", "--iterations", "3")
    assert passes == [("adam", "float32", 3, (64, 80))]  # one pass at full size, fp32
    assert "Fast plan" not in capsys.readouterr().out
    passes.clear()
    run_cli(pictures, tmp_path, "--iterations", "2")  # any of --optimizer/--iterations/--scales: the course's plan
    assert passes == [("adam", "float32", 2, (64, 80))]


def test_the_library_default_stays_the_course_run(pictures, passes):
    plan = transfer.make_plan(pictures[0], [pictures[1]], transfer.TransferSettings(network=NET, size=(64, 80),
                                                                                   output_dir=False))
    assert plan.schedule == [((64, 80), 200)] and plan.passes == [("adam", "float32")]
    assert plan.settings.init == "noise"
