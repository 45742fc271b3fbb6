"""The ``nst`` command leaves what it did not write alone and refuses what it cannot do well: a
user's pictures in the output folder, --resume with other images or options, a missing
--vgg-weights, numbers that are not finite, pictures too large for memory. One line, exit 2."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from happyhouse.runtime import import_tensorflow
from happyhouse.style import checkpoint, cli, contact_sheet, networks, sizes, transfer

TINY = ["--size", "32x40", "--network", "vgg19-random", "--seed", "1", "--optimizer", "adam"]


@pytest.fixture
def no_network(monkeypatch):
    """Loading a loss network fails the test: the error must come before any slow work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the loss network was loaded before the input was checked")
    monkeypatch.setattr(networks, "load_loss_network", refuse)


def run_nst(argv, capsys):
    """(exit code, stdout, stderr) of ``nst argv``."""
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_output_folder_keeps_the_users_pictures(tmp_path, pictures, capsys):
    out = tmp_path / "myphotos"
    out.mkdir()
    mine = {"001.png": b"mine 1", "2024.png": b"mine 2", "holiday.png": b"mine 3", "notes.txt": b"mine 4"}
    for name, body in mine.items():
        (out / name).write_bytes(body)
    argv = [*pictures, "-o", out, "--iterations", "2", *TINY]
    code, said, _ = run_nst(argv, capsys)
    assert code == 0 and (out / "0.png").is_file() and "replacing" not in said
    assert all((out / name).read_bytes() == body for name, body in mine.items())
    assert contact_sheet.recorded(out) == ["0.png"]
    code, said, _ = run_nst(argv, capsys)  # a second run replaces the first one's picture only
    assert code == 0 and f"replacing the pictures an earlier nst run wrote in {out}: 0.png" in said
    assert all((out / name).read_bytes() == body for name, body in mine.items())


def test_a_users_picture_nst_would_overwrite_is_refused(tmp_path, pictures, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "20.png").write_bytes(b"my picture")
    code, _, err = run_nst([*pictures, "-o", out, "--iterations", "30", *TINY], capsys)
    assert code == 2 and err.startswith("error: ") and "20.png" in err and "another -o folder" in err
    assert (out / "20.png").read_bytes() == b"my picture" and sorted(p.name for p in out.iterdir()) == ["20.png"]


def saved_run(tmp_path, pictures, *options):
    """An output folder holding the state of a run of ``nst CONTENT STYLE options`` stopped at iteration 1."""
    out = tmp_path / "run"
    args = cli.build_parser().parse_args([str(pictures[0]), str(pictures[1]), "-o", str(out), *options])
    stop = checkpoint.Interrupted(1, np.zeros((1, 32, 40, 3), np.float32))
    checkpoint.save(checkpoint.state_path(out), stop, {name: getattr(args, name) for name in cli.RESUMED_OPTIONS})
    return out


def test_resume_with_other_images_or_options_is_refused(tmp_path, pictures, capsys, no_network):
    out = saved_run(tmp_path, pictures, "--iterations", "2", *TINY)
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(other)
    code, _, err = run_nst([other, pictures[1], "--resume", "-o", out, "--iterations", "2", *TINY[:-2],
                            "--optimizer", "lbfgs"], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "IMAGE (saved" in err and "other.png" in err and "--optimizer (saved adam, given lbfgs)" in err
    assert "drop --resume" in err and "--network" not in err
    code, _, err = run_nst([*pictures, "--resume", "-o", out], capsys)  # options left out differ too
    assert code == 2 and "--size (saved 32 40, given not given)" in err and "--iterations" in err


def test_resume_without_images_refuses_options_that_differ(tmp_path, pictures, capsys, no_network):
    out = saved_run(tmp_path, pictures, "--iterations", "2", *TINY)
    code, _, err = run_nst(["--resume", "-o", out, "--optimizer", "lbfgs", "--iterations", "5"], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "--iterations (saved 2, given 5)" in err and "--optimizer (saved adam, given lbfgs)" in err
    assert checkpoint.state_path(out).is_file()


def test_resume_without_images_takes_the_same_options(tmp_path, pictures, capsys):
    out = saved_run(tmp_path, pictures, "--iterations", "2", *TINY)
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(out / "0.png")  # the interrupted run's picture
    code, said, _ = run_nst(["--resume", "-o", out, "--iterations", "2", "--network", "vgg19-random"], capsys)
    assert code == 0 and "resumed from iteration 1" in said and not checkpoint.state_path(out).exists()
    assert contact_sheet.recorded(out) == ["0.png"]  # its saved state shows nst wrote it


def test_missing_vgg_weights_path_is_an_error_not_a_fallback(tmp_path, pictures, capsys, no_network):
    code, _, err = run_nst([*pictures, "-o", tmp_path / "o", "--vgg-weights", tmp_path / "nosuch.mat"], capsys)
    assert code == 2 and err.startswith("error: --vgg-weights ") and "nosuch.mat: no such file" in err


@pytest.mark.parametrize("option, said", [
    (["--style-scale", "inf"], "style scale must be positive and finite (--style-scale), got inf"),
    (["--alpha", "nan"], "--alpha must be a finite number >= 0"),
    (["--beta", "nan"], "--beta must be a finite number >= 0"),
    (["--alpha", "-10"], "--alpha must be a finite number >= 0"),
    (["--alpha", "0", "--beta", "0"], "--alpha and --beta are both 0"),
    (["--beta", "1e308"], "--beta must be a finite number >= 0 (at most 3.4e+38, float32's largest), got 1e+308"),
    (["--style-scale", "1e6"], "style image (--style-scale 1e+06) needs about"),
    (["--seed", "-1"], "--seed must be a whole number >= 0, got -1"),
    (["--size", "100000"], "use a smaller --size")])
def test_numbers_it_cannot_use_are_one_line(tmp_path, pictures, capsys, no_network, option, said):
    code, _, err = run_nst([*pictures, "-o", tmp_path / "o", "--network", "vgg19-random", *option], capsys)
    assert code == 2 and err.startswith("error: ") and said in err and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_memory_estimate_limits_the_picture_size():
    sizes.check_memory((300, 400), available=2 ** 30)
    with pytest.raises(ValueError, match=r"4000x4000 picture needs about 46 GiB .*at most about 591x591 here"):
        sizes.check_memory((4000, 4000), available=2 ** 30)


def test_out_of_memory_is_one_line(tmp_path, pictures, capsys, monkeypatch):
    tf = import_tensorflow()

    def exhausted(*args):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    monkeypatch.setattr(transfer, "paint", exhausted)
    code, _, err = run_nst([*pictures, "-o", tmp_path / "o", "--iterations", "1", *TINY], capsys)
    assert code == 2 and err.startswith("error: out of memory painting a 32x40 picture") and "Traceback" not in err


def test_the_output_never_overwrites_an_input(tmp_path, pictures, capsys, no_network):
    """-o naming the CONTENT (or a folder holding a STYLE as generated_image.jpg) replaced the user's photo."""
    content = tmp_path / "mine.png"
    content.write_bytes(pictures[0].read_bytes())
    folder = tmp_path / "out"
    folder.mkdir()
    style = folder / "generated_image.jpg"
    Image.open(pictures[1]).convert("RGB").save(style)
    before = content.read_bytes(), style.read_bytes()
    for argv in ([content, pictures[1], "-o", content], [content, style, "-o", folder]):
        code, _, err = run_nst([*argv, "--iterations", "2", *TINY], capsys)
        assert code == 2 and "the run would write over its IMAGE" in err and err.count("\n") == 1, err
    assert (content.read_bytes(), style.read_bytes()) == before


def test_a_missing_picture_and_a_usage_error_are_one_line(tmp_path, pictures, capsys, no_network):
    code, _, err = run_nst(["nope.jpg", pictures[1], "-o", tmp_path / "o"], capsys)
    assert code == 2 and err.startswith("error: nope.jpg: no such picture") and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as stop:
        cli.main([str(pictures[0]), str(pictures[1]), "--size", "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("nst: error: argument --size") and err.count("\n") == 1, err


def test_a_picture_that_becomes_nan_at_the_last_step_is_refused(tmp_path, pictures, capsys):
    """The cost is checked before each step; the last step's picture was written black, exit 0."""
    code, _, err = run_nst([*pictures, "-o", tmp_path / "o.png", "--iterations", "2", "--tv-weight", "1e30",
                            "--precision", "float32", *TINY], capsys)
    assert code == 2 and "the cost became nan" in err and not (tmp_path / "o.png").exists(), err


def test_style_weights_too_large_to_add_up_are_named():
    from happyhouse.style.cost import normalise_weights
    with pytest.raises(ValueError, match="style weights too large to add up"):   # it said: "all 0"
        normalise_weights([1e308, 1e308], 2)
    assert normalise_weights([3, 1], 2) == [0.75, 0.25]


def test_a_folder_named_with_a_dot_keeps_its_state_inside():
    assert checkpoint.state_path(Path("runs/run.v2")) == Path("runs/run.v2/nst_state.npz")
    assert checkpoint.state_path(Path("runs/pic.JPG")) == Path("runs/pic.JPG.nst_state.npz")


def test_resume_finds_the_pictures_from_another_folder(tmp_path, pictures, monkeypatch):
    """The state records the IMAGEs' full paths (it kept them as typed: relative to where nst ran)."""
    monkeypatch.chdir(pictures[0].parent)
    args = cli.build_parser().parse_args([pictures[0].name, "monet.jpg", "-o", str(tmp_path / "o")])
    saved = cli.settings_from(args, tmp_path / "o", False).saved_settings["images"]
    assert saved[0] == str(pictures[0].resolve()) and saved[1].endswith("images/monet.jpg") and Path(saved[1]).is_absolute()


@pytest.mark.parametrize("options, said", [
    (["--network", "vgg16", "--vgg-weights", "w.mat"], "which --network vgg16 does not use"),
    (["--init", "content", "--noise-ratio", "0.3"], "--noise-ratio is for --init noise"),
    (["--fetch-vgg"], "--fetch-vgg only downloads the weights")])
def test_options_that_would_be_ignored_are_usage_errors(tmp_path, pictures, capsys, options, said):
    with pytest.raises(SystemExit) as stop:
        cli.main([*map(str, pictures), "-o", str(tmp_path / "o"), *options])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and said in err and err.count("\n") == 1, err
