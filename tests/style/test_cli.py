"""The ``nst`` command (happyhouse.style.cli, also ``python -m nst_utils``): the picture written,
one clear line and exit code 2 on bad input."""
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from happyhouse.style import cli

ROOT = Path(__file__).resolve().parents[2]


def test_command_line_writes_the_picture(tmp_path, pictures, capsys):
    out = tmp_path / "painted.jpg"
    code = cli.main([str(pictures[0]), str(pictures[1]), "-o", str(out), "--iterations", "2",
                    "--size", "32x40", "--network", "vgg19-random", "--seed", "1"])
    assert code == 0 and Image.open(out).size == (40, 32)
    assert "vgg19-random: J " in capsys.readouterr().out


def test_command_line_errors(tmp_path, pictures, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    assert cli.main([str(bad), str(pictures[1]), "-o", str(tmp_path / "o"), "--network", "vgg19-random"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "notes.jpg" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(pictures[0]), str(pictures[1]), "--size", "300by400"])
    assert exit_info.value.code == 2 and "HEIGHTxWIDTH" in capsys.readouterr().err
    assert cli.main([str(pictures[0]), str(pictures[1]), "--vgg-weights", str(tmp_path / "x.mat"),
                    "--network", "vgg19"]) == 2
    assert "x.mat" in capsys.readouterr().err


def test_python_m_nst_utils_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "nst_utils", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python -m nst_utils")
    assert "--fetch-vgg" in proc.stdout
    assert proc.stderr == ""  # no TensorFlow start-up lines


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["louvre.jpg"], 2)])
def test_help_and_usage_errors_come_before_tensorflow_loads(argv, code):
    """``nst --help`` and a missing STYLE are answered without importing TensorFlow (seconds each)."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('tensorflow loaded:', 'tensorflow' in sys.modules, file=sys.stderr))\n"
              "from happyhouse.style import cli\n"
              "sys.exit(cli.main())")
    proc = subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code and "tensorflow loaded: False" in proc.stderr, proc.stderr
    said = proc.stdout + proc.stderr
    assert said.startswith("usage: nst ") if code == 0 else said.startswith(
        "nst: error: give CONTENT and at least one STYLE image (or --fetch-vgg, or --resume -o OUT) (see nst --help)\n")


def test_bad_input_fails_before_the_network_loads(tmp_path, pictures, capsys, monkeypatch):
    """An unreadable style, a count under 1 or an output that cannot be written: one line, exit 2,
    and no loss network loaded (no work done that the error would throw away)."""
    from happyhouse.style import networks

    def no_network(*args, **kwargs):
        raise AssertionError("the loss network was loaded before the input was checked")
    monkeypatch.setattr(networks, "load_loss_network", no_network)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = [([str(pictures[0]), str(empty)], "empty.png"),
             ([str(pictures[0]), str(pictures[1]), "--iterations", "0"], "iterations must be at least 1"),
             ([str(pictures[0]), str(pictures[1]), "--noise-ratio", "2"], "noise ratio must be between 0 and 1"),
             ([str(pictures[0]), str(pictures[1]), "--style-scale", "-1"], "style scale must be positive"),
             ([str(pictures[0]), str(pictures[1]), "-o", str(blocker / "painted.png")], "a_file is a file, not a folder"),
             ([str(pictures[0]), str(pictures[1]), "-o", str(blocker / "out")], "a_file is a file, not a folder"),
             ([str(pictures[0]), str(pictures[1]), "-o", "/proc/painted.png"], "/proc: cannot write there")]
    for argv, said in cases:
        assert cli.main(argv + ["--network", "vgg19-random"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"
