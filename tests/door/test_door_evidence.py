"""Evidence on the course's images, through the command line, with the offline embedder.

The 12 residents are enrolled with ``enroll`` (in this process, through ``cli.main``,
since each new process pays TensorFlow's start-up; the impostor check runs as
``python -m fr_utils`` to prove the real entry point), then every
camera shot is identified (but camera_1: too close to two residents to tell apart), the impostor claiming to be kian is turned away, and the
residents plus the camera shots (grouped by who they show) are calibrated.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from happyhouse.door import cli
from test_door_detect import group_photo

ROOT = Path(__file__).resolve().parents[2]
RESIDENTS = ["andrew", "arnaud", "benoit", "bertrand", "dan", "danielle", "felix", "kevin", "kian",
             "sebastiano", "tian", "younes"]
#: Who each door camera shot shows (all six are residents).
CAMERA = {0: "younes", 1: "bertrand", 2: "benoit", 3: "bertrand", 4: "dan", 5: "arnaud"}
#: Shots the door no longer names with one photo per resident (issue 22's margin over the next person on
#: whole crops): camera_1 lies 0.512 from bertrand and 0.523 from benoit, too close to tell apart.
TOO_CLOSE = {1}
MODEL = "inception-resnet-v1"
#: Residents whose photo the enrolment checks refuse (a hub: near a face of the public cohort).
FORCED = {"kian"}


def resident_photo(images: Path, name: str) -> Path:
    return images / (f"{name}.png" if name == "danielle" else f"{name}.jpg")


def run_door(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def door_db(course_images, tmp_path_factory):
    """A database with the 12 residents, enrolled through the CLI. kian's photo lies 0.688 from a face of
    the public cohort, under the whole path's 0.7 (the only threshold a query meets a photo stored whole
    with): refused as a hub, stored with --force (it then opens the door only with a second photo agreeing)."""
    db = tmp_path_factory.mktemp("door") / "faces.db"
    for name in RESIDENTS:
        argv = ["--db", str(db), "--model", MODEL, "enroll", name, str(resident_photo(course_images, name))]
        assert cli.main(argv) == (2 if name in FORCED else 0)
        if name in FORCED:
            assert cli.main(argv + ["--force"]) == 0
    return db


def test_residents_enrolled(door_db, capsys):
    code, out, _ = run_door(["--db", door_db, "--json", "list"], capsys)
    people = json.loads(out)["people"]
    assert [p["name"] for p in people] == RESIDENTS
    assert all(p["models"] == {MODEL: {"dim": 512, "embeddings": 1}} for p in people)


@pytest.mark.parametrize("shot", sorted(CAMERA))
def test_identify_names_each_camera_shot(door_db, course_images, capsys, shot):
    code, out, err = run_door(["--db", door_db, "--json", "identify", course_images / f"camera_{shot}.jpg"], capsys)
    result = json.loads(out)
    (face,) = result["faces"]
    assert code == (1 if shot in TOO_CLOSE else 0), err           # 1: nobody known
    assert (face["crop"], face["threshold"]) == ("whole", 0.7)   # the course-crop path keeps 0.7
    assert face["distance"] < face["threshold"]
    if shot in TOO_CLOSE:
        assert face["name"] == "unknown" and face["decision"]["person"] == CAMERA[shot], face
        assert "another person lies only" in face["decision"]["reason"]
    else:
        assert face["name"] == CAMERA[shot], face


def test_group_photo_every_face_named(course_images, tmp_path, capsys):
    """Ordinary photos: residents enrolled from detected, aligned faces; a photo of two people.
    The course's 96 px faces pasted into larger photos are poor enrolment photos: those the checks
    refuse (issue 22) are stored with --force, and such a photo alone does not open the door."""
    db = tmp_path / "aligned.db"
    forced = []
    for name in RESIDENTS:
        photo = tmp_path / f"{name}.png"
        Image.fromarray(group_photo(course_images, [resident_photo(course_images, name).name],
                                    size=(300, 300))).save(photo)
        code, _, err = run_door(["--db", db, "enroll", name, photo], capsys)
        if code == 2 and "Nothing was stored" in err:
            assert "clearer, frontal, colour photo" in err and ("blurred" in err or "lies" in err), err
            code, _, err = run_door(["--db", db, "enroll", name, photo, "--force"], capsys)
            forced.append(name)
        assert code == 0, err
    assert "younes" not in forced and "benoit" in forced
    group = tmp_path / "group.png"
    Image.fromarray(group_photo(course_images, ["camera_0.jpg", "camera_2.jpg"])).save(group)
    code, out, err = run_door(["--db", db, "--json", "identify", group], capsys)
    faces = sorted(json.loads(out)["faces"], key=lambda f: f["face"]["box"][0])
    assert code == 0, err
    assert [f["name"] for f in faces] == ["younes", "unknown"]
    assert faces[1]["decision"]["person"] == "benoit" and "failed the enrolment checks" in faces[1]["decision"]["reason"]


def run_module(*argv):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "fr_utils", *map(str, argv)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_door_opens_for_younes(door_db, course_images, capsys):
    code, out, err = run_door(["--db", door_db, "verify", "younes", course_images / "camera_0.jpg"], capsys)
    assert code == 0, err
    assert out.startswith("it's younes, welcome in!")


def test_command_line_stays_shut_for_fake_kian(door_db, course_images):
    """The real entry point, in its own process: `python -m fr_utils verify kian camera_2.jpg`."""
    proc = run_module("--db", door_db, "verify", "kian", course_images / "camera_2.jpg")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("it's not kian, please go away")
    assert "Traceback" not in proc.stderr


def test_calibrate_on_the_course_images(course_images, tmp_path, capsys):
    folder = tmp_path / "people"
    for name in RESIDENTS:
        (folder / name).mkdir(parents=True)
        photo = resident_photo(course_images, name)
        (folder / name / photo.name).symlink_to(photo)
    for shot, name in CAMERA.items():
        (folder / name / f"camera_{shot}.jpg").symlink_to(course_images / f"camera_{shot}.jpg")
    out = tmp_path / "calibrate"
    code, stdout, err = run_door(["--model", MODEL, "calibrate", folder, "--out", out, "--far", "0.01"], capsys)
    assert code == 0, err
    result = json.loads((out / "calibration.json").read_text())
    assert (result["people"], result["photos"], result["skipped"]) == (12, 18, 0)
    assert (result["genuine_pairs"], result["impostor_pairs"]) == (7, 146)
    assert result["far_at_threshold"] <= 0.01
    # the embedder separates people: genuine pairs are nearer than most impostor pairs
    assert result["genuine_distance"]["median"] < result["impostor_distance"]["median"]
    assert result["eer"] < 0.25
    assert (out / "roc.png").stat().st_size > 10_000
