"""The project as an installable package: build the wheel, install it into a temporary folder, and
run each console script and ``python -m fr_utils calibrate`` from a folder outside the project."""
import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "requirements.txt", "README.md", "fr_utils.py", "inception_blocks_v2.py",
           "nst_utils.py", "happyhouse"]
SCRIPTS = {"door": "happyhouse.door.cli:main", "nst": "happyhouse.style.cli:main", "grading": "happyhouse.grading.cli:main"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, built from a copy of the sources (no build files in the checkout) and installed with
    ``pip install --target``; returns that folder (its console scripts are in ``bin/``)."""
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"),
                                  str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel, = (tmp / "dist").glob("happyhouse-*.whl")
    target = tmp / "site"
    done = subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def run(target, argv, cwd, **env):
    """``argv`` in ``cwd`` with only the installed copy importable (not the checkout)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_DATA")}
    environ.update(PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="2", **env)
    return subprocess.run(argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def test_wheel_holds_the_course_modules_the_package_and_the_scripts(installed):
    for name in ("fr_utils.py", "inception_blocks_v2.py", "nst_utils.py",
                 "happyhouse/course_data_manifest.tsv", "happyhouse/door/cli.py", "happyhouse/grading/cli.py"):
        assert (installed / name).is_file(), name
    assert not (installed / "tests").exists() and not (installed / "bench").exists()
    entry_points = configparser.ConfigParser()
    entry_points.read(installed / "happyhouse-0.1.0.dist-info" / "entry_points.txt")
    assert dict(entry_points["console_scripts"]) == SCRIPTS
    requires = [line.split(": ", 1)[1] for line in
                (installed / "happyhouse-0.1.0.dist-info" / "METADATA").read_text().splitlines()
                if line.startswith("Requires-Dist: ")]
    runtime = [r for r in requires if "extra ==" not in r]
    pinned = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert len(runtime) == len(pinned) and all("==" in r for r in requires)
    test_tools = {r.split("==")[0] for r in requires if r.endswith('extra == "test"')}
    assert test_tools == {"pytest", "pytest-xdist", "nbval"}  # the `test` extra only: users never get them


def test_console_scripts_answer_help_from_any_folder(installed, tmp_path):
    where = run(installed, [sys.executable, "-c", "import happyhouse, fr_utils; print(happyhouse.__file__, "
                            "fr_utils.__file__)"], tmp_path)
    assert where.returncode == 0 and where.stdout.count(str(installed)) == 2, where.stdout + where.stderr
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_DATA")}
    environ.update(PYTHONPATH=str(installed), TF_CPP_MIN_LOG_LEVEL="2")
    procs = {script: subprocess.Popen([str(installed / "bin" / script), "--help"], cwd=tmp_path, env=environ,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for script in SCRIPTS}  # at once: nst's --help imports TensorFlow
    for script, words in {"door": "enroll", "nst": "style", "grading": "reference"}.items():
        stdout, stderr = procs[script].communicate(timeout=300)
        assert procs[script].returncode == 0, f"{script}: {stderr}"
        assert stdout.startswith("usage:") and words in stdout, script


def test_installed_data_lookup_says_where_it_looked(installed, tmp_path, course_images):
    code = "from happyhouse import data; print(data.find_folder('images'))"
    missing = run(installed, [sys.executable, "-c", code], tmp_path)
    assert missing.returncode == 1 and "Traceback" in missing.stderr  # a plain script, not a CLI
    assert "COURSE_DATA is not set" in missing.stderr and "(nowhere)" in missing.stderr
    assert f"installed in {installed}" in missing.stderr
    found = run(installed, [sys.executable, "-c", code], tmp_path, COURSE_DATA=str(course_images.parent))
    assert found.returncode == 0 and Path(found.stdout.strip()) == course_images.absolute()


def test_calibrate_from_another_folder(installed, tmp_path, course_images):
    people = {"younes": ["younes.jpg", "camera_0.jpg"], "bertrand": ["bertrand.jpg", "camera_1.jpg"],
              "dan": ["dan.jpg", "camera_4.jpg"]}
    for person, photos in people.items():
        (tmp_path / "people" / person).mkdir(parents=True)
        for photo in photos:
            (tmp_path / "people" / person / photo).symlink_to(course_images / photo)
    proc = run(installed, [sys.executable, "-m", "fr_utils", "--crop", "whole", "calibrate", "people"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "output" / "calibrate" / "calibration.json").read_text())  # under cwd
    assert (result["people"], result["photos"], result["genuine_pairs"], result["impostor_pairs"]) == (3, 6, 3, 12)
    assert (tmp_path / "output" / "calibrate" / "roc.png").stat().st_size > 1000
    assert "EER" in proc.stdout
