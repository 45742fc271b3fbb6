"""happyhouse.door.cli: the door's commands, exit codes, and the corpus of bad inputs.

Most tests call ``cli.main`` in this process. The database plumbing uses a TEST DOUBLE
embedder (a 4x4 thumbnail, not a face model) so it needs no model; detection errors use
the real MTCNN; the real embedder is exercised in test_door_evidence.py.
"""
import io
import json
import os
import re
import sqlite3
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from happyhouse.door import face_db
from happyhouse.door import cli

ROOT = Path(__file__).resolve().parents[2]


class ThumbnailEmbedder:
    """TEST DOUBLE, not a face model: a crop's 4x4 grey thumbnail, centred and unit-norm."""
    name, input_size, dim, threshold, description = "test-double", 96, 16, 0.3, "test double"

    def embed(self, faces, batch_size=64):
        rows = []
        for face in faces:
            g = cv2.resize(face, (4, 4), interpolation=cv2.INTER_AREA).mean(axis=2).ravel().astype(np.float32)
            g -= g.mean()
            rows.append(g / np.linalg.norm(g))
        return np.stack(rows)


@pytest.fixture
def double(monkeypatch):
    monkeypatch.setattr(cli, "load_embedder", lambda name: ThumbnailEmbedder())


def pattern(path, seed):
    """A 96x96 blocky picture, distinct per seed (for the test double; it has no face)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(cv2.resize(blocks, (96, 96), interpolation=cv2.INTER_NEAREST)).save(path)
    return path


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_commands_round_trip(tmp_path, capsys, double):
    db = tmp_path / "faces.db"
    a1, a2, b1, c1 = (pattern(tmp_path / f"{n}.png", s) for n, s in (("a1", 1), ("a2", 2), ("b1", 3), ("c1", 4)))
    opts = ["--db", db, "--crop", "whole"]
    assert run([*opts, "enroll", "ann", a1, a2], capsys)[0] == 0
    code, out, _ = run(["enroll", "bob", b1, *opts, "--json"], capsys)  # options after the command too
    assert code == 0 and json.loads(out) == {"enrolled": "bob", "embeddings": 1, "model": "test-double",
                                             "db": str(db)}
    code, out, _ = run([*opts, "--json", "list"], capsys)
    assert {p["name"]: p["models"]["test-double"]["embeddings"] for p in json.loads(out)["people"]} == \
        {"ann": 2, "bob": 1}

    code, out, _ = run([*opts, "--json", "identify", a2], capsys)
    faces = json.loads(out)["faces"]
    assert code == 0 and faces[0]["name"] == "ann" and faces[0]["distance"] < 1e-3
    assert [c["name"] for c in faces[0]["candidates"]] == ["ann", "bob"]
    code, out, _ = run([*opts, "identify", c1], capsys)
    assert code == 1 and out.startswith("unknown\t")
    code, out, _ = run([*opts, "--threshold", "1.99", "identify", c1], capsys)
    assert code == 0 and not out.startswith("unknown")

    code, out, _ = run([*opts, "verify", "ann", a1], capsys)
    assert code == 0 and out.startswith("it's ann, welcome in!")
    code, out, _ = run([*opts, "verify", "bob", a1], capsys)
    assert code == 1 and "it's not bob" in out
    code, out, _ = run([*opts, "remove", "bob"], capsys)
    assert code == 0 and "removed bob (1 embeddings)" in out
    code, out, _ = run([*opts, "list"], capsys)
    assert out.split() == ["ann", "test-double:", "2"]
    assert run([*opts, "remove", "ann"], capsys)[0] == 0
    code, out, err = run([*opts, "identify", a1], capsys)
    assert code == 2 and "nobody is enrolled yet" in err


# -- the corpus of bad inputs -----------------------------------------------------------------
def png_claiming(width, height):
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def jpeg_bytes(seed=0, size=(240, 320)):
    rgb = np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def corpus(tmp_path):
    """Bad photos written by the test: name -> (path, what the message must say)."""
    folder = tmp_path / "bad"
    folder.mkdir()
    good = jpeg_bytes()
    files = {
        "missing": (None, "no such file"),
        "empty": (b"", r"empty \(0 bytes\)"),
        "truncated": (good[: len(good) // 2], "truncated or corrupt"),
        "corrupt": (good[:20] + os.urandom(3000), "truncated or corrupt|not an image file"),
        "not-an-image": (b"name,age\nann,31\n" * 20, "not an image file"),
        "bomb": (png_claiming(20000, 20000), "decompression bomb"),
        "folder": ("dir", "is a folder"),
    }
    out = {}
    for name, (data, message) in files.items():
        path = folder / f"{name}.jpg"
        if data == "dir":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        out[name] = (path, message)
    return out


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "corrupt", "not-an-image", "bomb", "folder"])
def test_bad_photo_one_message_nothing_written(tmp_path, capsys, double, corpus, case):
    path, message = corpus[case]
    db = tmp_path / "new.db"
    code, out, err = run(["--db", db, "enroll", "ann", path], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}")
    assert any(re.search(m, err) for m in message.split("|")), err
    assert not db.exists()  # nothing written, not even an empty database

    good_db = tmp_path / "good.db"
    assert run(["--db", good_db, "--crop", "whole", "enroll", "bob", pattern(tmp_path / "b.png", 1)], capsys)[0] == 0
    before = face_db.FaceDB(good_db).people()
    for argv in (["verify", "bob", path], ["identify", path],
                 ["enroll", "--add", "bob", pattern(tmp_path / "b2.png", 2), path]):
        code, out, err = run(["--db", good_db, *argv], capsys)
        assert code == 2 and err.startswith(f"error: {path}") and "Traceback" not in err, (argv, err)
    assert face_db.FaceDB(good_db).people() == before


def test_no_face_and_several_faces(tmp_path, capsys, double, course_images):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((240, 320, 3), 190, np.uint8)).save(blank)
    group = tmp_path / "group.png"
    faces = [cv2.resize(np.asarray(Image.open(course_images / n).convert("RGB")), (192, 192))
             for n in ("younes.jpg", "arnaud.jpg")]
    canvas = np.full((260, 480, 3), 128, np.uint8)
    canvas[30:222, 20:212], canvas[30:222, 250:442] = faces
    Image.fromarray(canvas).save(group)
    db = tmp_path / "faces.db"
    code, out, err = run(["--db", db, "enroll", "ann", blank], capsys)
    assert code == 2 and f"error: {blank}: no face found" in err
    code, out, err = run(["--db", db, "enroll", "ann", group], capsys)
    assert code == 2 and f"error: {group}: 2 faces found" in err and "where one is expected" in err
    assert not db.exists()
    # identify takes every face of a group photo
    assert run(["--db", db, "--crop", "whole", "enroll", "ann", pattern(tmp_path / "a.png", 1)], capsys)[0] == 0
    code, out, err = run(["--db", db, "--json", "identify", group], capsys)
    assert len(json.loads(out)["faces"]) == 2
    code, out, err = run(["--db", db, "identify", blank], capsys)
    assert code == 2 and "no face found" in err


def test_name_and_duplicate_errors(tmp_path, capsys, double):
    db = tmp_path / "faces.db"
    a1, a2 = pattern(tmp_path / "a1.png", 1), pattern(tmp_path / "a2.png", 2)
    opts = ["--db", db, "--crop", "whole"]
    assert run([*opts, "enroll", "ann", a1], capsys)[0] == 0
    cases = [
        (["verify", "zed", a1], r"'zed' is not enrolled .* Enrolled: ann\."),
        (["remove", "zed"], "'zed' is not enrolled"),
        (["enroll", "ann", a2], "'ann' is already enrolled .* --add"),
        (["enroll", "--add", "ann", a1], "is already enrolled as 'ann'"),
        (["enroll", "bob", a1], "is already enrolled as 'ann'"),
        (["enroll", "bob", a2, a2], "same photo is given twice"),
        (["enroll", " ", a2], "invalid name"),
        (["--threshold", "-1", "verify", "ann", a1], "--threshold must be a positive distance"),
        (["--threshold", "2", "verify", "ann", a1], "--threshold 2 refused: .* open the door for anyone"),
        (["--threshold", "5", "identify", a1], "--threshold 5 refused: .* never more than 2 apart"),
        (["--threshold", "inf", "enroll", "--add", "ann", a2], "--threshold inf refused"),
    ]
    for argv, message in cases:
        code, out, err = run([*opts, *argv], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert re.search(message, err), (argv, err)
    people = face_db.FaceDB(db).people()
    assert [(p["name"], p["models"]) for p in people] == [("ann", {"test-double": {"dim": 16, "embeddings": 1}})]


def test_a_database_others_can_read_is_made_private_on_the_next_write(tmp_path, capsys, double):
    db = tmp_path / "faces.db"
    opts = ["--db", db, "--crop", "whole"]
    assert run([*opts, "enroll", "ann", pattern(tmp_path / "a.png", 1)], capsys)[0] == 0
    os.chmod(db, 0o644)
    code, _, err = run([*opts, "list"], capsys)                  # reading changes nothing
    assert code == 0 and err == "" and db.stat().st_mode & 0o777 == 0o644
    code, _, err = run([*opts, "enroll", "bob", pattern(tmp_path / "b.png", 2)], capsys)
    assert code == 0 and db.stat().st_mode & 0o777 == 0o600
    assert f"note: {db} was readable by others (mode 0644" in err and "set it back to 0600" in err
    os.chmod(db, 0o660)
    code, _, err = run([*opts, "remove", "bob"], capsys)
    assert code == 0 and db.stat().st_mode & 0o777 == 0o600 and "mode 0660" in err
    code, _, err = run([*opts, "remove", "ann"], capsys)
    assert code == 0 and err == ""                               # already private: nothing to say


def test_json_says_which_crop_path_and_threshold(tmp_path, capsys, double):
    db = tmp_path / "faces.db"
    a1 = pattern(tmp_path / "a1.png", 1)
    assert run(["--db", db, "--crop", "whole", "enroll", "ann", a1], capsys)[0] == 0
    code, out, _ = run(["--db", db, "--crop", "whole", "--json", "verify", "ann", a1], capsys)
    result = json.loads(out)
    assert code == 0 and (result["crop"], result["threshold"], result["threshold_from"]) == \
        ("whole", ThumbnailEmbedder.threshold, "model default for whole crops")
    assert result["face"]["crop"] == "whole"
    code, out, _ = run(["--db", db, "--crop", "whole", "--threshold", "0.5", "--json", "identify", a1], capsys)
    (face,) = json.loads(out)["faces"]
    assert (face["crop"], face["threshold"], face["threshold_from"]) == ("whole", 0.5, "--threshold")


def test_missing_locked_and_corrupted_database(tmp_path, capsys, double):
    photo = pattern(tmp_path / "a.png", 1)
    missing = tmp_path / "nowhere.db"
    for argv in (["list"], ["identify", photo], ["verify", "ann", photo], ["remove", "ann"]):
        code, _, err = run(["--db", missing, *argv], capsys)
        assert code == 2 and "no face database here yet" in err
    assert not missing.exists()
    code, _, err = run(["--db", tmp_path / "no" / "such" / "folder.db", "enroll", "ann", photo], capsys)
    assert code == 2 and "must name a file in an existing folder" in err

    db = tmp_path / "faces.db"
    assert run(["--db", db, "--crop", "whole", "enroll", "ann", photo], capsys)[0] == 0
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, _, err = run(["--db", db, "--timeout", "0.2", "--crop", "whole", "enroll", "bob",
                            pattern(tmp_path / "b.png", 2)], capsys)
        assert code == 2 and "locked by another process" in err and "Nothing was changed" in err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert face_db.FaceDB(db).names() == ["ann"]

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not a database\xff" * 500)
    for argv in (["list"], ["identify", photo], ["--crop", "whole", "enroll", "ann", photo]):
        code, out, err = run(["--db", garbage, *argv], capsys)
        assert code == 2 and "the face database is corrupt" in err, (argv, err)
    assert garbage.read_bytes() == b"\x00not a database\xff" * 500


def test_incomplete_course_weights_error(tmp_path, capsys, course_weights, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(course_weights.parent))
    code, out, err = run(["--db", tmp_path / "f.db", "--model", "nn4.small2", "enroll", "ann",
                          pattern(tmp_path / "a.png", 1)], capsys)
    assert code == 2 and err.startswith("error: ") and "inception_5b_3x3_conv2_w.csv" in err
    assert not (tmp_path / "f.db").exists()


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["fly"], ["verify", "ann"], ["--model", "vgg", "list"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "usage:" in capsys.readouterr().err


def test_entry_points_without_traceback(tmp_path, corpus):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    path = corpus["truncated"][0]
    for module in ("fr_utils", "happyhouse.door.cli", "happyhouse.door"):
        proc = subprocess.run([sys.executable, "-m", module, "--db", str(tmp_path / "f.db"), "enroll", "ann",
                               str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"error: {path}") and "Traceback" not in proc.stderr
    assert not (tmp_path / "f.db").exists()


@pytest.mark.parametrize("asked, used", [("auto", "exact"), ("exact", "exact"), ("ivf", "ivf"), ("hnsw", "hnsw")])
def test_one_shot_commands_search_exactly_unless_told(tmp_path, asked, used):
    """A one-shot identify would build an index for one search: auto means exact there."""
    import argparse
    args = argparse.Namespace(db=tmp_path / "faces.db", timeout=1.0, search=asked)
    with cli._open_db(args, create=True) as db:
        assert db.search == used


def test_a_database_of_another_dimension_is_one_clear_error_and_nothing_is_written(tmp_path, capsys, double):
    """Rows of 8 values stored under the test double's name (it gives 16): verify, enroll and identify
    each say so (exit 2, not a traceback with exit 1, "no match"); the audit on open writes no verdict."""
    db = tmp_path / "faces.db"
    with face_db.FaceDB(db) as conn:
        conn.enroll("ann", np.ones((1, 8), np.float32) / 8 ** 0.5, "test-double", ["a"])
    photo = pattern(tmp_path / "p.png", 1)
    for argv in (["verify", "ann", photo], ["enroll", "bob", photo], ["identify", photo]):
        code, _, err = run(["--db", db, "--crop", "whole", *argv], capsys)
        assert code == 2 and "stored embeddings have 8 values" in err and "Traceback" not in err, (argv, err)
    with face_db.FaceDB(db) as conn:
        assert conn.statuses("test-double") == {} and conn.names() == ["ann"]


def test_an_unexpected_failure_is_exit_2_with_its_trace(tmp_path, capsys, monkeypatch, double):
    """A bug is not "no match" (exit 1): its trace, one line saying so, exit 2."""
    def broken(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setitem(cli.COMMANDS, "list", broken)
    code, _, err = run(["--db", tmp_path / "faces.db", "list"], capsys)
    assert code == 2 and "ZeroDivisionError: a bug" in err and "failed unexpectedly" in err


def test_identify_over_http_embeds_the_largest_faces_only(monkeypatch):
    """A photo of 60 faces held the model's lock (shared with a watched camera) for 2 s: the service
    names its MAX_FACES_PER_REQUEST largest, in the photo's order."""
    from happyhouse.door import recognition, service
    from happyhouse.door.detect import Face
    sizes = np.random.default_rng(0).permutation(np.arange(10, 40))
    faces = [Face((0, 0, int(s), int(s)), 0.99) for s in sizes]
    crops = list(np.random.default_rng(1).integers(0, 256, (len(faces), 96, 96, 3), dtype=np.uint8))
    monkeypatch.setattr(recognition, "face_crops", lambda image, size, crop: (faces, crops))
    kept, vectors = recognition.embed_all_faces(ThumbnailEmbedder(), np.zeros((8, 8, 3), np.uint8), "x",
                                                max_faces=service.MAX_FACES_PER_REQUEST)
    assert len(kept) == len(vectors) == service.MAX_FACES_PER_REQUEST == 20
    assert [f.box[2] for f in kept] == [int(s) for s in sizes if s >= 20]  # the largest, in order
