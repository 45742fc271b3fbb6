"""`door watch`: videos and an MJPEG stream made here from the photos in ../shared/faces, watched with
the offline embedder; bad sources; SIGTERM and kill -9 in a subprocess.

The door knows barack_obama and kit_harington from two photos each; the videos show their OTHER
photos panned and zoomed, strangers (paul_rudd, shea_whigham), two people at once, a frame of
noise and cuts. Expected: each known person decided once with the right name, each stranger
"unknown" with a snapshot, nobody else admitted, and the rows in the database as printed.
"""
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from happyhouse.door import cli
from happyhouse.door import face_db, watch_cli
from happyhouse.door.sources import FileSource, FolderSource, SourceError, open_source
from happyhouse.image_io import read_rgb

ROOT = Path(__file__).resolve().parents[2]
KNOWN = {"barack_obama": ["1.jpg", "2.jpg"], "kit_harington": ["1.jpg", "2.jpg"]}
SIZE, FPS = (640, 480), 5


def fit(photo: np.ndarray, box_w: int, box_h: int, zoom: float) -> np.ndarray:
    s = min(box_w / photo.shape[1], box_h / photo.shape[0]) * zoom
    return cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)


def paste(canvas, picture, cx, cy):
    """``picture`` centred on (cx, cy) of ``canvas``, clipped at its edges."""
    h, w = picture.shape[:2]
    x0, y0 = cx - w // 2, cy - h // 2
    sx, sy = max(0, -x0), max(0, -y0)
    x1, y1 = min(canvas.shape[1], x0 + w), min(canvas.shape[0], y0 + h)
    canvas[max(0, y0):y1, max(0, x0):x1] = picture[sy:sy + y1 - max(0, y0), sx:sx + x1 - max(0, x0)]


def scene(photos: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """``photos`` side by side, panned 60 px and zoomed 0.85 -> 1.1 over ``frames`` frames (RGB 640x480)."""
    out = []
    for i in range(frames):
        f = i / max(1, frames - 1)
        canvas = np.full((SIZE[1], SIZE[0], 3), 96, np.uint8)
        slot = SIZE[0] // len(photos)
        for j, photo in enumerate(photos):
            paste(canvas, fit(photo, slot - 20, 420, 0.85 + 0.25 * f), slot * j + slot // 2 - 30 + int(60 * f),
                  SIZE[1] // 2)
        out.append(canvas)
    return out


def noise(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    size = (frames[0].shape[1], frames[0].shape[0])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


def photo(faces_data, person, name):
    return read_rgb(faces_data / "people" / person / name)


@pytest.fixture(scope="module")
def door(faces_data, tmp_path_factory):
    """A database knowing barack_obama and kit_harington (two photos each), and the scenes."""
    folder = tmp_path_factory.mktemp("watch")
    db = folder / "faces.db"
    for person, names in KNOWN.items():
        assert cli.main(["--db", str(db), "enroll", person,
                              *[str(faces_data / "people" / person / n) for n in names]]) == 0
    p = lambda person, name: photo(faces_data, person, name)  # noqa: E731
    scenes = {"obama": scene([p("barack_obama", "3.jpg")], 8),
              "stranger": scene([p("paul_rudd", "1.jpg")], 8),
              "two": scene([p("kit_harington", "3.jpg"), p("shea_whigham", "1.jpg")], 8),
              "obama_again": scene([p("barack_obama", "4.jpg")], 7)}
    return db, folder, scenes


def watch(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def rows(db):
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM events")}


def check_stored(db, events):
    """Every printed event is a row with the same fields; unknown visitors' snapshots exist, 0600."""
    stored = rows(db)
    for e in events:
        row = stored[e["id"]]
        assert (row["name"], row["track"], row["frames"], json.loads(row["box"]), row["snapshot"]) == \
            (e["name"], e["track"], e["frames"], e["box"], e["snapshot"])
        if e["name"] == "unknown":
            snap = Path(e["snapshot"])
            assert stat.S_IMODE(snap.stat().st_mode) == 0o600 and stat.S_IMODE(snap.parent.stat().st_mode) == 0o700
            assert min(cv2.imread(str(snap)).shape[:2]) >= 40      # a face, not a sliver
        else:
            assert e["snapshot"] is None


def test_video_each_person_decided_once(door, tmp_path, capsys):
    db, _, s = door
    video = write_video(tmp_path / "door.avi", s["obama"] + s["stranger"] + [noise()] + s["two"] + s["obama_again"])
    names = tmp_path / "admitted.txt"
    hook = tmp_path / "hook.py"
    hook.write_text("import os, sys\nopen(sys.argv[1], 'a').write(os.environ['DOOR_NAME'] + '\\n')\n")
    code, events, err = watch(["--db", db, "watch", video, "--on-match", f"{sys.executable} {hook} {names}"], capsys)
    assert code == 0, err
    assert [e["name"] for e in events] == ["barack_obama", "unknown", "kit_harington", "unknown"], events
    obama, rudd, kit, shea = events
    assert obama["frames"] >= 3 and obama["distance"] < obama["threshold"]
    assert rudd["frames"] == 5 and rudd["distance"] >= rudd["threshold"]
    assert kit["box"][0] + kit["box"][2] <= 320 < shea["box"][0]       # each face decided where it is
    assert len({e["track"] for e in events}) == 4 and all(e["source"] == str(video) for e in events)
    assert "1 repeat admission(s) held back by the cooldown" in err      # obama's second photo after the cut
    check_stored(db, events)
    assert names.read_text().split() == ["barack_obama", "kit_harington"]


def test_several_cameras_in_one_process(door, tmp_path, capsys):
    db, _, s = door
    front = write_video(tmp_path / "front.avi", s["obama"] + [noise()])
    back = write_video(tmp_path / "back.avi", s["stranger"])
    code, events, err = watch(["--db", db, "watch", front, back, "--cooldown", "600"], capsys)
    assert code == 0, err
    assert sorted((e["source"], e["name"]) for e in events) == [(str(back), "unknown"), (str(front), "barack_obama")]
    assert f"watch: {front}: watched" in err and f"watch: {back}: watched" in err, err
    check_stored(db, events)


class BreaksWhenRead:
    """A source that opens, then fails on its first read (as a file none of whose frames decodes)."""
    def frames(self):
        raise SourceError("broken.avi: no frame could be decoded. Is it a video FFmpeg can read?")
        yield

    def stop(self):
        pass

    def close(self):
        pass


def test_a_camera_failing_mid_run_stops_alone_and_the_exit_says_so(door, tmp_path, capsys, monkeypatch):
    db, _, s = door
    front = write_video(tmp_path / "front.avi", s["obama"] + [noise()])
    monkeypatch.setattr(watch_cli, "open_source",
                        lambda text, *a, **k: BreaksWhenRead() if text == "broken.avi" else open_source(text, *a, **k))
    code, events, err = watch(["--db", db, "watch", front, "broken.avi", "--cooldown", "600"], capsys)
    assert code == 2 and "watch: broken.avi stopped: broken.avi: no frame could be decoded" in err, err
    assert [(e["source"], e["name"]) for e in events] == [(str(front), "barack_obama")]   # the other went on
    assert f"watch: {front}: watched" in err and "Traceback" not in err
    code, events, err = watch(["--db", db, "watch", "broken.avi"], capsys)                # one source: the same
    assert code == 2 and events == [] and err.count("stopped: broken.avi") == 1, err


def test_folder_with_a_corrupt_frame(door, tmp_path, capsys):
    db, _, s = door
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(s["stranger"][:4] + s["stranger"][4:]):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), frame[..., ::-1])
    (folder / "003b.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    code, events, err = watch(["--db", db, "watch", folder, "--snapshots", tmp_path / "snaps"], capsys)
    assert code == 0, err
    assert [e["name"] for e in events] == ["unknown"] and "003b.jpg: cannot be decoded" in err
    assert Path(events[0]["snapshot"]).parent == tmp_path / "snaps"
    check_stored(db, events)


class MJPEG(BaseHTTPRequestHandler):
    """Each GET serves the next clip in ``clips`` as multipart JPEG at FPS, then closes; 404 after the last."""
    clips: list = []

    def do_GET(self):
        if not self.clips:
            self.send_error(404)
            return
        clip = self.clips.pop(0)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for frame in clip:
            jpeg = cv2.imencode(".jpg", frame[..., ::-1])[1].tobytes()
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                             + jpeg + b"\r\n")
            time.sleep(1 / FPS)

    def log_message(self, *args):
        pass


def test_mjpeg_stream_dropped_and_reopened(door, capsys):
    db, _, s = door
    MJPEG.clips = [s["obama"] + s["obama"][::-1], s["stranger"] + s["stranger"][::-1]]   # 16 frames each
    server = ThreadingHTTPServer(("127.0.0.1", 0), MJPEG)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/door.mjpg"
    try:
        code, events, err = watch(["--db", db, "watch", url, "--give-up-after", "1"], capsys)
    finally:
        server.shutdown()
    assert code == 2, err   # a camera that stayed down failed (systemd's Restart=on-failure restarts it)
    assert [e["name"] for e in events] == ["barack_obama", "unknown"], (events, err)
    assert "stream lost" in err and "stream back after a gap of" in err and "giving up" in err
    assert "stopped: the stream stayed down for" in err
    assert all(e["source"] == url for e in events)
    check_stored(db, events)


# -- bad sources: one clear error, exit 2 ---------------------------------------------------
@pytest.fixture
def tiny_db(tmp_path):
    db = tmp_path / "faces.db"
    with face_db.FaceDB(db) as conn:
        conn.enroll("kian", np.ones((1, 4), np.float32), "m", ["a"])
    return db


@pytest.mark.parametrize("source, message", [
    ("file:///etc/passwd", "only http://, https://, rtsp://, rtsps:// URLs"),
    ("ftp://example.org/cam", "only http://"),
    ("http://", "only http://"),
    ("rtsp://admin:hunter2@cam.local:abc/stream1", "rtsp://cam.local:abc/stream1: not a usable URL"),
    ("http://[::1", "not a usable URL"),
    ("rtsp://cam.local:0/stream1", "a port from 1 to 65535"),
    ("/no/such/video.mp4", "no such file, folder or camera"),
    ("9", "camera 9: cannot be opened"),
    ("NOTVIDEO", "cannot be read as a video"),
    ("EMPTYDIR", "holds no frames"),
])
def test_bad_source_is_one_clear_error(tiny_db, tmp_path, capfd, source, message):
    """One line on the process's stderr (capfd: OpenCV's and FFmpeg's own lines would show there)."""
    if source == "NOTVIDEO":
        source = tmp_path / "notes.mp4"
        source.write_text("not a video")
    elif source == "EMPTYDIR":
        source = tmp_path / "empty"
        source.mkdir()
    code, _, err = watch(["--db", tiny_db, "watch", source], capfd)
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert "hunter2" not in err


@pytest.mark.parametrize("argv, message", [
    (["--agree", "6"], "--agree 6 must be between 1 and --window 5"),
    (["--fps", "0"], "--fps must be positive"),
    (["--webhook", "file:///tmp/x"], "http:// or https://"),
])
def test_bad_options(tiny_db, tmp_path, capsys, argv, message):
    code, _, err = watch(["--db", tiny_db, "watch", tmp_path, *argv], capsys)
    assert code == 2 and message in err, err


def test_url_credentials_never_stored(tiny_db, capsys):
    code, _, err = watch(["--db", tiny_db, "watch", "rtsp://admin:hunter2@127.0.0.1:1/stream"], capsys)
    assert code == 2 and "hunter2" not in err and "rtsp://127.0.0.1:1/stream" in err


def test_sampling_by_the_sources_clock(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(10)]
    video = write_video(tmp_path / "v.avi", frames)
    assert [f.index for f in FileSource(video, fps=2.5, log=print).frames()] == [0, 2, 4, 6, 8]
    assert [f.index for f in open_source(str(video)).frames()] == list(range(10))
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i}.png"), frame)
    assert [f.t for f in FolderSource(tmp_path, fps=None, log=print).frames()] == [i / 5 for i in range(10)]


# -- stopping: SIGTERM cleanly, kill -9 without losing a stored event ------------------------------
def start_watch(db, video):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "fr_utils", "--db", str(db), "watch", str(video)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_event(proc):
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


def test_sigterm_stops_cleanly(door, tmp_path):
    db, _, s = door
    video = write_video(tmp_path / "long.avi", s["obama"] + s["stranger"] * 4)
    proc = start_watch(db, video)
    event = first_event(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping after this frame" in err and "watched" in err
    check_stored(db, [event] + [json.loads(line) for line in out.splitlines()])


def test_kill_9_keeps_every_stored_event_and_the_database(door, tmp_path):
    db, _, s = door
    video = write_video(tmp_path / "long.avi", s["stranger"] + s["obama"] * 4)
    before = len(rows(db))
    proc = start_watch(db, video)
    event = first_event(proc)
    time.sleep(0.3)                                          # somewhere in the next frames
    proc.kill()
    proc.wait(30)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check_stored(db, [event])
    assert len(rows(db)) >= before + 1
    with face_db.FaceDB(db) as reopened:                      # the door still opens it
        assert sorted(reopened.names()) == sorted(KNOWN)


def test_camera_credentials_come_from_the_environment_not_the_command_line():
    from happyhouse.door.sources import describe, with_credentials
    env = {"DOOR_CAMERA_USERNAME": "admin", "DOOR_CAMERA_PASSWORD": "p@ss:w/rd"}
    url = with_credentials("rtsp://cam.local:554/stream1", env)
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@cam.local:554/stream1" and "p%40ss" not in describe(url)
    assert with_credentials("rtsp://[fe80::1]/s", env).startswith("rtsp://admin:p%40ss%3Aw%2Frd@[fe80::1]/s")
    assert with_credentials("rtsp://other:secret@cam.local/s", env) == "rtsp://other:secret@cam.local/s"
    assert with_credentials("rtsp://cam.local/s", {}) == "rtsp://cam.local/s"


def test_a_redacted_ipv6_camera_keeps_its_brackets():
    from happyhouse.door.sources import redact
    assert redact("rtsp://admin:secret@[fe80::1]:554/s") == "rtsp://[fe80::1]:554/s"
    assert redact("rtsp://admin:secret@cam.local/s") == "rtsp://cam.local/s"


@pytest.mark.parametrize("url, shown", [
    ("rtsp://admin:12345#ab@127.0.0.1:9/stream", "rtsp://127.0.0.1:9/stream"),   # "#" in the password
    ("rtsp://admin:pass/word?x@cam/stream", "rtsp://cam/stream"),               # "/" and "?" in it
    ("http://cam.local/videostream.cgi?user=admin&pwd=s3cret&rate=5", "http://cam.local/videostream.cgi?user=***&pwd=***&rate=5"),
    ("http://cam.local/s?Password=x#top", "http://cam.local/s?Password=***"),    # "#" may be in the password
    ("http://cam/video.cgi?user=admin&pwd=se#cret", "http://cam/video.cgi?user=***&pwd=***"),
    ("http://cam/s?api_key=abc&access_token=def&rate=5", "http://cam/s?api_key=***&access_token=***&rate=5"),
    ("rtsp://cam/user=admin_password=S3cret_channel=1", "rtsp://cam/user=***_password=***_channel=1"),   # DVRs
    ("rtsp:admin:s3cret@cam/x", "rtsp:***@cam/x"), ("http:/admin:s3cret@cam/x", "http:/***@cam/x"),   # typos
    ("/videos/door@home.mp4", "/videos/door@home.mp4"),
    ("rtsp://cam.local/stream1", "rtsp://cam.local/stream1"),
])
def test_passwords_the_url_parser_cannot_read_are_redacted_too(url, shown):
    """A password with "#", "/" or "?" unescaped, or credentials in the query (MJPEG cameras), were
    printed, stored and published as they were."""
    from happyhouse.door.sources import SourceError, check_url, describe
    assert describe(url) == shown
    with pytest.raises(SourceError) as refused:
        check_url("rtsp://admin:hunter#77@cam/stream")  # its port reads as "hunter"
    assert "hunter" not in str(refused.value) and "%23" in str(refused.value)


def test_webhook_and_mqtt_urls_never_echo_a_password():
    from happyhouse.door.hooks import check_webhook
    from happyhouse.door.mqtt import MqttSettings
    for url in ("http://door:S3cretPw@127.0.0.1/hook", "http://127.0.0.1:99999/hook"):
        with pytest.raises(ValueError) as refused:
            check_webhook(url)
        assert "S3cretPw" not in str(refused.value)
    assert check_webhook("https://ha.local/api/webhook/door?x=1") == "https://ha.local/api/webhook/door?x=1"
    for url in ("mqtt://door:S3#cret@127.0.0.1/x", "mqtt:door:S3cret@127.0.0.1"):
        with pytest.raises(ValueError, match="put no user name or password") as refused:
            MqttSettings.from_url(url, "cam")
        assert "S3" not in str(refused.value)


def test_tracking_options_without_watch_and_impossible_values_are_refused(tmp_path):
    from happyhouse.door import recognition, watch_cli
    from happyhouse.door.cli import build_parser
    args = build_parser().parse_args(["--db", str(tmp_path / "f.db"), "serve", "--cooldown", "5"])
    with pytest.raises(recognition.UsageError, match="--cooldown only work with --watch"):
        watch_cli.prepare_live(args, tmp_path / "f.db")
    for option, value in (("--cooldown", "nan"), ("--give-up-after", "-5"), ("--give-up-after", "nan")):
        args = build_parser().parse_args(["watch", "x.mp4", option, value])
        args.threshold, args.crop = None, "auto"   # (cli.main's defaults)
        with pytest.raises(recognition.UsageError, match=option):
            watch_cli.watch_settings(args, "x.mp4")
    args = build_parser().parse_args(["watch", "x.mp4", "--on-match", '"unbalanced'])
    with pytest.raises(recognition.UsageError, match="--on-match: No closing quotation"):
        watch_cli.make_hooks(args)
