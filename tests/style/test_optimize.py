"""The optimisers measured in bench/: the cost object's style cost, L-BFGS, the loop with
L-BFGS, bfloat16 steps, the precision scope, and the command line's optimiser options."""
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from happyhouse.precision import PRECISIONS, bfloat16_missing, cpu_has_bfloat16
from happyhouse.style import cli, images, networks, optimize, start
from happyhouse.style.cost import StyleTransferCost


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    content = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(tmp_path / "content.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    return tmp_path / "content.png", tmp_path / "style.png"


@pytest.fixture
def problem(pictures):
    size = (32, 40)
    content = images.normalize(pictures[0], size)
    model = networks.load_loss_network("vgg19-random", size)
    cost = StyleTransferCost(model, content, images.normalize(pictures[1], size))
    return model, cost, start.noisy_image(content, start.NOISE_RATIO, seed=0)


# ------------------------------------------------------------------------ style transfer
def test_cost_object_gives_the_course_style_cost(problem):
    model, cost, begin = problem
    a_G = model.activations(begin, [n for n, _ in cost.style_layers])
    course = 0.0  # the course's definition in numpy: G = A A^T of the (n_C, n_H*n_W) unrolling
    for name, coeff in cost.style_layers:
        _, n_H, n_W, n_C = a_G[name].shape
        S, G = (np.asarray(a[name], np.float64).reshape(n_H * n_W, n_C).T for a in (cost.a_S, a_G))
        course += coeff * np.sum((S @ S.T - G @ G.T) ** 2) / (4.0 * n_C ** 2 * (n_H * n_W) ** 2)
    assert float(cost.style_cost(a_G)) == pytest.approx(float(course), rel=1e-5)
    J, J_content, J_style = cost(tf.constant(begin))
    assert float(J_style) == pytest.approx(model.style_scale * float(course), rel=1e-5)


def test_lbfgs_lowers_the_cost_and_counts_its_work(problem):
    _, cost, start = problem
    J0 = float(cost(tf.constant(start))[0])
    result = optimize.lbfgs_minimize(cost, start, max_iterations=6)
    totals = [c[0] for c in result["costs"]]
    assert result["iterations"] == len(totals) == 6
    assert result["evaluations"] >= result["iterations"]
    assert totals[-1] < 0.5 * J0 and all(b <= a for a, b in zip(totals, totals[1:]))
    assert result["image"].shape == start.shape and result["image"].dtype == np.float32
    assert float(cost(tf.constant(result["image"]))[0]) == pytest.approx(totals[-1], rel=1e-4)


def test_lbfgs_stops_at_the_target(problem):
    _, cost, start = problem
    first = optimize.lbfgs_minimize(cost, start, max_iterations=8)
    target = first["costs"][2][0]
    again = optimize.lbfgs_minimize(cost, start, max_iterations=8, target=target)
    assert again["iterations"] == 3 and again["costs"][-1][0] <= target


def test_lbfgs_keeps_the_picture_in_the_pixel_range(problem):
    """Bounded by images.pixel_range, L-BFGS paints nothing deprocess would clip (unbounded it
    does, from a start pushed out of range), and the loop always bounds it."""
    model, cost, begin = problem
    low, high = images.pixel_range()
    wild = 2.5 * begin                                                  # far out of range
    inside = lambda image: bool(np.all(image >= low - 1e-3) and np.all(image <= high + 1e-3))  # noqa: E731
    assert not inside(optimize.lbfgs_minimize(cost, wild, max_iterations=6)["image"])
    bounded = optimize.lbfgs_minimize(cost, wild, max_iterations=6, bounds=(low, high))
    assert inside(bounded["image"]) and bounded["costs"][-1][0] < float(cost(tf.constant(np.clip(wild, low, high)))[0])
    generated, _ = optimize.optimise(model, wild, cost, 4, optimize.LoopOptions("lbfgs", progress=False, print_every=0))
    assert inside(generated)


def test_the_loop_with_lbfgs_prints_saves_and_records(problem, tmp_path, capsys):
    model, cost, start = problem
    generated, history = optimize.optimise(model, start, cost, 4, optimize.LoopOptions(
        "lbfgs", output_dir=tmp_path / "out", save_every=2, print_every=2, progress=False))
    assert len(history.total) == 4 and history.total[-1] < float(cost(tf.constant(start))[0])
    np.testing.assert_allclose(history.total, 10 * np.array(history.content) + 40 * np.array(history.style),
                               rtol=1e-4)
    np.testing.assert_allclose(model["input"].numpy(), generated)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png", "generated_image.jpg",
                                                                        "nst_pictures.txt"]
    printed = capsys.readouterr().out
    assert "Iteration 0 :\ntotal cost = " in printed and "Iteration 2 :" in printed


def test_bfloat16_step_follows_the_fp32_step(problem):
    import keras
    _, cost, start = problem
    if not cpu_has_bfloat16():   # refused before any graph runs, saying why
        with pytest.raises(ValueError, match=re.escape(f"'bfloat16' was asked for, but {bfloat16_missing()}")):
            optimize.make_train_step(cost, tf.Variable(start), keras.optimizers.Adam(2.0), "bfloat16")()
        return
    results = {}
    for precision in PRECISIONS:
        variable = tf.Variable(start)
        step = optimize.make_train_step(cost, variable, keras.optimizers.Adam(2.0, epsilon=1e-8), precision)
        before = [float(step()[0]) for _ in range(3)]
        results[precision] = (before, variable.numpy())
    (J32, img32), (J16, img16) = results["float32"], results["bfloat16"]
    np.testing.assert_allclose(J16, J32, rtol=0.02)       # same costs to bf16's 3 digits
    # Adam moves every pixel by about 2 per step; the two runs moved them alike
    assert np.abs(img16 - img32).mean() < 0.5 and np.abs(img32 - start).mean() > 3
    assert J16[-1] < J16[0]


def test_the_precision_is_checked():  # the bfloat16 scope itself: tests/test_bench.py
    with pytest.raises(ValueError, match="precision must be one of"):
        optimize.make_train_step(None, None, None, precision="float16")


def test_bad_optimizer_name(problem):
    model, cost, start = problem
    with pytest.raises(ValueError, match="optimizer must be one of"):
        optimize.optimise(model, start, cost, 2, optimize.LoopOptions("sgd"))


def test_lbfgs_goes_on_in_float32_where_the_bfloat16_line_search_gives_up(problem, monkeypatch, capsys):
    model, cost, start = problem
    calls, lbfgs = [], optimize.lbfgs_minimize
    runs_in = "bfloat16" if cpu_has_bfloat16() else "float32"   # the fallback's logic on any CPU
    monkeypatch.setattr("happyhouse.precision.bfloat16_missing", lambda: None)

    def gives_up_in_bfloat16(cost, begin, iterations, precision="float32", **kwargs):
        calls.append((precision, iterations))
        if precision == "float32":
            return lbfgs(cost, begin, iterations, precision=precision, **kwargs)
        result = lbfgs(cost, begin, 2, precision=runs_in, **kwargs)
        return {**result, "status": 2, "message": "ABNORMAL: "}
    monkeypatch.setattr(optimize, "lbfgs_minimize", gives_up_in_bfloat16)
    options = optimize.LoopOptions("lbfgs", precision="bfloat16", print_every=0, progress=False)
    image, history = optimize.optimise(model, start, cost, 5, options)
    assert calls == [("bfloat16", 5), ("float32", 3)] and len(history.total) == 5
    assert history.total[-1] < history.total[0] and image.shape == start.shape
    assert "gave up in bfloat16 after 2 iterations (ABNORMAL: ); the other 3 run in float32" in capsys.readouterr().err


def test_command_line_lbfgs_either_precision(tmp_path, pictures, capsys):
    out = tmp_path / "painted.png"
    code = cli.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2", "--size", "32x40",
                    "--network", "vgg19-random", "--seed", "1", "--optimizer", "lbfgs"])
    assert code == 0 and Image.open(out).size == (40, 32)
    assert "vgg19-random: J " in capsys.readouterr().out
    for optimizer in ("adam", "lbfgs"):
        code = cli.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2", "--size", "32x40",
                        "--network", "vgg19-random", "--optimizer", optimizer, "--precision", "bfloat16"])
        printed = capsys.readouterr()
        if cpu_has_bfloat16():
            assert code == 0 and "vgg19-random: J " in printed.out
        else:   # one line saying why and what to use, no traceback
            assert code == 2 and "'bfloat16' was asked for, but" in printed.err and "Traceback" not in printed.err


def test_command_line_refuses_bfloat16_where_the_cpu_has_none(tmp_path, pictures, capsys, monkeypatch):
    monkeypatch.setattr("happyhouse.precision.bfloat16_kind", lambda flags=None: None)   # an AVX2-only CPU
    code = cli.main([str(pictures[0]), str(pictures[1]), "-o", str(tmp_path / "painted.png"), "--iterations", "2",
                     "--size", "32x40", "--network", "vgg19-random", "--precision", "bfloat16"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "painted.png").exists() and "Traceback" not in err
    assert ("error: precision 'bfloat16' was asked for, but the CPU has neither AMX nor AVX512-BF16: use precision "
            "'auto' (float32 here) or 'float32'") in err


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_cost_that_becomes_nan_stops_the_run(problem, optimizer):
    """A NaN cost paints a blank picture: the loop stops with optimize.NonFiniteCost (exit 2 in nst)."""
    model, cost, begin = problem

    def nan_cost(image):
        return tuple(c * float("nan") for c in cost(image))
    options = optimize.LoopOptions(optimizer, print_every=0, progress=False)
    with pytest.raises(optimize.NonFiniteCost, match="the cost became nan at iteration 0"):
        optimize.optimise(model, begin, nan_cost, 3, options)
