"""The style-transfer controls (issue 14): colours, blended styles, TV, init, sizes and scales,
Ctrl-C and --resume, the contact sheet, bad input. Small pictures, few steps, vgg19-random."""
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from happyhouse.style import (checkpoint, cli, colors, contact_sheet, cost, images, networks, optimize, sizes, start,
                              transfer)
from happyhouse.style.cost import StyleTransferCost

ROOT = Path(__file__).resolve().parents[2]
NET = "vgg19-random"


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A blue-green gradient content and a red-yellow striped style (very different colours)."""
    folder = tmp_path_factory.mktemp("pictures")
    yy, xx = np.mgrid[0:48, 0:64]
    content = np.stack([20 + xx, 90 + yy * 2, 200 - xx], -1).clip(0, 255).astype(np.uint8)
    stripes = (np.sin(xx / 2.0 + yy / 3.0) > 0)[..., None]
    style = np.where(stripes, [230, 40, 20], [250, 210, 30]).astype(np.uint8)
    other = np.where(((xx // 4 + yy // 4) % 2 == 0)[..., None], [20, 20, 20], [240, 240, 240]).astype(np.uint8)
    paths = {}
    for name, rgb in (("content", content), ("style", style), ("checks", other)):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(rgb).save(paths[name])
    return paths


def run(pictures, tmp_path=None, **kw):
    kw = {"network": NET, "iterations": 10, "size": (32, 40), "seed": 0, "print_every": 0, "progress": False,
          "output_dir": False, **kw}
    return transfer.style_transfer(pictures["content"], kw.pop("style", pictures["style"]), **kw)


@pytest.fixture(scope="module")
def plain(pictures):
    return run(pictures)


def content_at(pictures, hw):
    return images.load_image(pictures["content"], hw)


# ----------------------------------------------------------------------------------- colours
def test_colour_helpers():
    rng = np.random.default_rng(0)
    rgb = rng.integers(60, 200, (8, 9, 3), dtype=np.uint8)  # in gamut with other chroma: no clipping
    np.testing.assert_allclose(colors.ycbcr_to_rgb(colors.rgb_to_ycbcr(rgb)), rgb, atol=1)
    content = rng.integers(60, 200, (8, 9, 3), dtype=np.uint8)
    kept = colors.luminance_transfer(rgb, content)
    assert colors.chroma_gap(kept, content) < 1.5 < colors.chroma_gap(rgb, content)
    np.testing.assert_allclose(colors.rgb_to_ycbcr(kept)[..., 0], colors.rgb_to_ycbcr(rgb)[..., 0], atol=3)
    warm = np.clip(rgb * [1.0, 0.5, 0.2] + [60, 10, 0], 0, 255).astype(np.uint8)
    matched = colors.match_color_histogram(warm, content).reshape(-1, 3).astype(float)
    np.testing.assert_allclose(matched.mean(0), content.reshape(-1, 3).mean(0), atol=3)
    np.testing.assert_allclose(np.cov(matched, rowvar=False), np.cov(content.reshape(-1, 3).astype(float), rowvar=False),
                               rtol=0.15, atol=40)
    with pytest.raises(ValueError, match="one shape"):
        colors.chroma_gap(rgb, rgb[:4])


def test_preserve_colors_shrinks_the_chroma_gap(pictures, plain):
    content = content_at(pictures, (32, 40))
    gap_plain = colors.chroma_gap(plain[0], content)
    gap_luminance = colors.chroma_gap(run(pictures, preserve_colors="luminance")[0], content)
    gap_histogram = colors.chroma_gap(run(pictures, preserve_colors="histogram")[0], content)
    assert gap_luminance < 0.5 * gap_plain, (gap_luminance, gap_plain)  # the bar
    assert gap_histogram < gap_plain, (gap_histogram, gap_plain)  # the content's palette, not per pixel


# ------------------------------------------------------------------------------------ blending
def test_weights_are_normalised_and_checked():
    assert cost.normalise_weights(None, 4) == [0.25] * 4
    np.testing.assert_allclose(cost.normalise_weights([1, 3], 2), [0.25, 0.75])
    with pytest.raises(ValueError, match="2 style weight.*3 style image"):
        cost.normalise_weights([1, 2], 3)
    with pytest.raises(ValueError, match=">= 0"):
        cost.normalise_weights([1, -1], 2)
    with pytest.raises(ValueError, match="all 0"):
        cost.normalise_weights([0, 0], 2)


def test_blended_gram_is_the_weighted_mix(pictures):
    size = (32, 40)
    model = networks.load_loss_network(NET, size)
    content = images.normalize(pictures["content"], size)
    styles = [images.normalize(pictures[n], size) for n in ("style", "checks")]
    one, two = (StyleTransferCost(model, content, s) for s in styles)
    both = StyleTransferCost(model, content, styles, style_weights=[1, 3])
    for name, _ in model.style_layers:
        np.testing.assert_allclose(both._G_S[name], 0.25 * one._G_S[name] + 0.75 * two._G_S[name], rtol=1e-5)
        assert not np.allclose(both._G_S[name], one._G_S[name], rtol=1e-2)
    # the course's cost with the mixed Grams: a generated image equal to style 1 costs what
    # the distance between the two styles' Grams, weighted by 3/4, costs
    _, _, J_style = both(styles[0])
    _, _, J_one = one(styles[0])
    assert float(J_one) < 1e-3 * float(J_style)


# ----------------------------------------------------------------------------------------- TV
def test_total_variation_hand_worked():
    image = np.zeros((1, 2, 3, 3), np.float32)
    image[0, 0, 0] = [3, 0, 0]  # one pixel: right difference 3 (1 of 4 pairs), lower 3 (1 of 3 pairs)
    assert float(cost.total_variation(image)) == pytest.approx(9 / 4 + 9 / 3)


def test_tv_weight_lowers_the_tv_of_the_result(pictures, plain):
    smooth = run(pictures, tv_weight=3e5)[0]
    tv = [float(cost.total_variation(np.asarray(img, np.float32)[None])) for img in (plain[0], smooth)]
    assert tv[1] < 0.7 * tv[0], tv
    with pytest.raises(ValueError, match="tv.weight"):
        run(pictures, tv_weight=-1)


# --------------------------------------------------------------------------------------- init
def test_init_modes():
    content = np.full((1, 6, 8, 3), 30.0, np.float32)
    np.testing.assert_array_equal(start.initial_image(content, "content"), content)
    noisy = start.initial_image(content, "noise", 0.6, seed=1)
    assert np.all(np.abs(noisy - 0.4 * 30) <= 0.6 * 20) and noisy.std() > 3
    np.testing.assert_array_equal(noisy, start.noisy_image(content, start.NOISE_RATIO, seed=1))  # the course's start
    random = start.initial_image(content, "random", seed=1)
    assert np.all(np.abs(random) <= 20) and abs(random.mean()) < 5
    np.testing.assert_array_equal(start.initial_image(content, "noise", 0.25, seed=4),
                                  start.initial_image(content, "noise", 0.25, seed=4))
    with pytest.raises(ValueError, match="init must be one of"):
        start.initial_image(content, "zeros")
    with pytest.raises(ValueError, match="between 0 and 1"):
        start.initial_image(content, "noise", 1.5)


def test_init_content_has_no_content_cost(pictures):
    size = (32, 40)
    content = images.normalize(pictures["content"], size)
    cost = StyleTransferCost(networks.load_loss_network(NET, size), content,
                                images.normalize(pictures["style"], size))
    J_content = {mode: float(cost(start.initial_image(content, mode, 0.6, seed=0))[1]) for mode in start.INIT_MODES}
    assert J_content["content"] == pytest.approx(0, abs=1e-3)
    assert 1 < J_content["noise"] < J_content["random"]


# -------------------------------------------------------------------------------------- sizes
def test_size_parsing_and_schedule():
    assert sizes.parse_size("512") == 512 and sizes.parse_size("300x400") == (300, 400)
    for bad in ("0", "3x", "axb", "1x2x3", "-5"):
        with pytest.raises(ValueError, match="LONG_SIDE or HEIGHTxWIDTH"):
            sizes.parse_size(bad)
    assert sizes.resolve_size(512, (600, 800)) == (384, 512)
    assert sizes.resolve_size(512, (800, 600)) == (512, 384)
    assert sizes.resolve_size((30, 40), (800, 600)) == (30, 40)
    assert sizes.default_scales((384, 512)) == 1
    assert sizes.default_scales((768, 1024)) == 3 and sizes.default_scales((600, 800)) == 3
    assert sizes.default_scales((768, 1024), min_side=200) == 2
    assert sizes.scale_schedule((768, 1024), 3, 50) == [((192, 256), 50), ((384, 512), 16), ((768, 1024), 5)]
    assert sizes.scale_schedule((768, 1024), 3, 2) == [((192, 256), 2), ((384, 512), 1), ((768, 1024), 1)]
    assert sizes.default_optimizer(1) == "adam"  # the course's run keeps the course's Adam
    assert sizes.default_optimizer(3) == "lbfgs"  # coarse to fine, in either precision
    assert sizes.style_size((300, 400), 0.5) == (150, 200)


def test_coarse_to_fine_output_size_iteration_count_and_contact_sheet(pictures, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    passes = []  # (optimizer, iterations) of each scale's pass
    optimise = optimize.optimise
    monkeypatch.setattr(optimize, "optimise", lambda *a, **kw: passes.append((a[4].optimizer, a[3])) or optimise(*a, **kw))
    image, history = run(pictures, size=64, scales=2, iterations=6, output_dir=out, print_every=1, save_every=2)
    assert image.shape == (48, 64, 3)  # long side 64, the content's 3:4 aspect
    assert passes == [("lbfgs", 6), ("lbfgs", 2)]  # coarse to fine: L-BFGS, a third as many at the finer scale
    assert len(history.total) == 6 + 2
    saved = {i: Image.open(p).size for i, p in contact_sheet.saved_iterations(out)}
    assert saved == {0: (32, 24), 2: (32, 24), 4: (32, 24), 6: (64, 48)}  # iterations count on across scales
    assert "Iteration 7 :" in capsys.readouterr().out
    sheet = out / contact_sheet.SHEET_NAME  # the three saved iterations and the result side by side
    assert sheet.is_file() and Image.open(sheet).size[0] > 4 * 64
    assert contact_sheet.write(tmp_path / "no_such_folder") is None


def test_style_scale_rescales_the_grams_and_checks_the_minimum(pictures, monkeypatch):
    size = (32, 40)
    model = networks.load_loss_network(NET, size)
    content = images.normalize(pictures["content"], size)
    style = images.load_image(pictures["checks"], size)  # 4-px checks: the same texture at any size
    bigger = images.normalize(np.tile(style, (2, 2, 1)), (64, 80))  # the texture over 4x the area
    same = StyleTransferCost(model, content, images.normalize(style, size))
    scaled = StyleTransferCost(model, content, bigger)
    generated = images.normalize(style, size)
    _, _, J_same = same(generated)
    _, _, J_scaled = scaled(generated)
    _, _, J_other = same(content)
    scaled._positions = same._positions  # as if the Grams were not rescaled to the generated size
    _, _, J_unscaled = scaled(generated)
    assert float(J_same) < 1e-3 * float(J_other)
    assert float(J_scaled) < 0.5 * float(J_other) and float(J_scaled) < 0.1 * float(J_unscaled), (
        float(J_scaled), float(J_unscaled), float(J_other))
    monkeypatch.setattr(model, "min_size", 24)
    with pytest.raises(ValueError, match="at least 24 px a side; the style image would be 16x20"):
        run(pictures, style_scale=0.5)


# ------------------------------------------------------------------------- interrupt and resume
def test_ctrl_c_saves_and_resume_goes_on(pictures, tmp_path, capsys):
    out = tmp_path / "run"
    args = [str(pictures["content"]), str(pictures["style"]), "-o", str(out), "--network", NET, "--size", "32x40",
            "--seed", "0", "--iterations", "100", "--tv-weight", "10"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "nst_utils", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the loop runs once the first costs are printed
        if line.startswith("Iteration 20 "):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    message = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert proc.returncode == 130, stderr[-2000:]
    assert len(message) == 1 and "Traceback" not in stderr, stderr[-2000:]
    k = int(message[0].split("interrupted at iteration ")[1].split(":")[0])
    assert 20 <= k < 100 and "--resume" in message[0]
    assert Image.open(out / "generated_image.jpg").size == (40, 32)
    state = checkpoint.load(out / checkpoint.STATE_NAME)
    assert state["iteration"] == k and state["image"].shape == (1, 32, 40, 3)
    assert state["optimizer_state"][0] == k  # Adam's step count
    assert state["settings"]["images"] == args[:2] and state["settings"]["tv_weight"] == 10

    assert cli.main(["--resume", "-o", str(out)]) == 0  # no images: the saved settings
    printed = capsys.readouterr().out
    assert printed.startswith(f"resumed from iteration {k}\n")
    printed_iterations = [int(n) for n in re.findall(r"^Iteration (\d+) :", printed, re.M)]
    assert min(printed_iterations) >= k and max(printed_iterations) == 80  # goes on from k, nothing redone
    assert not (out / checkpoint.STATE_NAME).exists()  # finished: the state is gone
    assert (out / "progress.png").is_file()


def test_ctrl_c_in_the_fast_plan_resumes_its_passes(pictures, tmp_path, capsys):
    """The default plan (two L-BFGS passes, no --iterations): Ctrl-C in the half-size pass saves that
    pass's picture; --resume finishes it and runs the full-size pass, numbering on."""
    out = tmp_path / "fast"
    args = [str(pictures["content"]), str(pictures["style"]), "-o", str(out), "--network", NET, "--size", "96x120",
            "--seed", "0", "--precision", "float32"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "nst_utils", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Iteration 0 "):  # the half-size pass has begun
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert lines[0].startswith("Fast plan: 30 L-BFGS iterations at 48x60 then 16 L-BFGS iterations at 96x120")
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    k = int(re.search(r"interrupted at iteration (\d+):", stderr).group(1))
    state = checkpoint.load(out / checkpoint.STATE_NAME)
    assert 1 <= k < 30 and state["iteration"] == k and state["scale"] == 0  # in the half-size pass
    assert state["image"].shape == (1, 48, 60, 3) and state["settings"]["iterations"] is None
    assert Image.open(out / "generated_image.jpg").size == (60, 48)

    assert cli.main(["--resume", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Fast plan: ") and f"resumed from iteration {k}\n" in printed
    printed_iterations = [int(n) for n in re.findall(r"^Iteration (\d+) :", printed, re.M)]
    assert min(printed_iterations) >= k and max(printed_iterations) == 40  # on to the full-size pass, 30..45
    assert Image.open(out / "generated_image.jpg").size == (120, 96)
    assert not (out / checkpoint.STATE_NAME).exists()


def test_resume_from_python_refuses_another_run(pictures, tmp_path, monkeypatch):
    """style_transfer(resume=True) checks the saved run's pictures and settings, not only its size."""
    import contextlib
    import threading

    @contextlib.contextmanager
    def pressed():  # Ctrl-C before the first step
        flag = threading.Event()
        flag.set()
        yield flag

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "sigint_flag", pressed)
        with pytest.raises(checkpoint.Interrupted):
            run(pictures, output_dir=out, iterations=20, alpha=10, precision="float32")
    assert checkpoint.load(out / checkpoint.STATE_NAME)["run"]["alpha"] == 10
    for change, named in (({"style": pictures["checks"]}, "styles (saved ['"), ({"alpha": 20}, "alpha (saved 10, now 20)"),
                          ({"optimizer": "lbfgs"}, "passes (saved [['adam', 'float32']], now [['lbfgs', 'float32']])")):
        with pytest.raises(ValueError, match=re.escape(named)):
            run(pictures, **{"output_dir": out, "iterations": 20, "alpha": 10, "precision": "float32", "resume": True, **change})
    generated, history = run(pictures, output_dir=out, iterations=20, alpha=10, precision="float32", resume=True)
    assert generated.shape == (32, 40, 3) and not (out / checkpoint.STATE_NAME).exists()


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("extra, message", [
    (["--style-weights", "1", "2"], "2 style weight(s) for 1 style image"),
    (["--style-weights", "-1"], "must be finite and >= 0"),
    (["--size", "8x10"], "needs images of at least 16 pixels"),
    (["--resume"], "no saved state in"),
])
def test_bad_input_exits_2(pictures, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(networks.load_loss_network(NET, (32, 40)), "min_size", 16)
    code = cli.main([str(pictures["content"]), str(pictures["style"]), "-o", str(tmp_path / "o"), "--network", NET,
                    "--size", "32x40", "--iterations", "1", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err, err
