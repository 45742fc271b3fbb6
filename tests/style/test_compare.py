"""The loss-network comparison: every network x style painted (or reused), its table, and a grid
of generated pictures only, labelled by network and style."""
import numpy as np
from PIL import Image

from happyhouse.style import compare
from happyhouse.style.optimize import CostHistory


def test_compare_paints_each_pair_reuses_done_ones_and_draws_a_labelled_grid(tmp_path):
    rng = np.random.default_rng(0)
    content, styles = tmp_path / "c.png", [tmp_path / "a.png", tmp_path / "b.png"]
    for path in [content, *styles]:
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    done_picture = np.zeros((32, 40, 3), np.uint8)
    done_history = CostHistory("vgg19-random", total=[2.0, 1.0], content=[0.1, 0.1], style=[0.0, 0.0], seconds=1.0)
    done = {("vgg19-random", str(styles[0])): (done_picture, done_history)}
    results = compare.compare_networks(content, [str(s) for s in styles], ["vgg19-random"], iterations=2,
                                       optimizer="adam", size=(32, 40), done=done)
    assert list(results) == [("vgg19-random", str(styles[0])), ("vgg19-random", str(styles[1]))]
    assert results[("vgg19-random", str(styles[0]))][0] is done_picture
    picture, history = results[("vgg19-random", str(styles[1]))]
    assert picture.shape == (32, 40, 3) and len(history.total) == 2
    table = compare.seconds_table(results).splitlines()
    assert len(table) == 3 and table[1].split()[:4] == ["VGG-19", "random", "a", "2"]
    fig = compare.grid_figure(results)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("VGG-19 random · a\n2 steps, 0.50 s/step") and titles[1].startswith("VGG-19 random · b")
    assert all(len(ax.get_images()) == 1 for ax in fig.axes)  # generated pictures only: one per network x style


def test_compare_command_line_writes_the_grid_and_refuses_bad_input(tmp_path, capsys):
    rng = np.random.default_rng(1)
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    for path in (content, style):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    out = tmp_path / "grid.png"
    assert compare.main(["--content", str(content), "--styles", str(style), "--networks", "vgg19-random",
                         "--iterations", "2", "--optimizer", "adam", "--size", "32x40", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert Image.open(out).size[0] > 0 and f"wrote {out}" in printed and "VGG-19" in printed
    assert compare.main(["--content", str(tmp_path / "missing.png"), "--styles", str(style), "--networks",
                         "vgg19-random", "--size", "32x40", "--out", str(out)]) == 2
    assert "missing.png" in capsys.readouterr().err
