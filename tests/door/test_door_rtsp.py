"""`door watch rtsp://...` against a real RTSP server: GStreamer's gst-rtsp-server on loopback
(tests/door/rtsp_camera.py, run by the system's Python with PyGObject), playing the same scenes as
the MJPEG test, one clip per connection, then gone, as RTP/JPEG and as H.264 (what most IP cameras
send). Expected: the known person named once, the stranger "unknown", the drop and the reconnection
logged, giving up once the camera stays away.

Without GStreamer's RTSP server the test skips, saying why; in CI (``CI`` set) it fails instead.
"""
import os
import subprocess
from pathlib import Path

import cv2
import pytest

from system_packages import missing
from test_door_watch import FPS, SIZE, check_stored, door, watch  # noqa: F401 (door: a fixture)

CAMERA = Path(__file__).with_name("rtsp_camera.py")
#: Debian's Python, the one its python3-gi and gir1.2-gst-rtsp-server-1.0 packages serve.
SYSTEM_PYTHON = os.environ.get("RTSP_PYTHON", "/usr/bin/python3")
INSTALL = "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
#: The GStreamer elements each codec's camera needs (rtsp_camera.PAYLOADS).
ELEMENTS = {"jpeg": ["imagesequencesrc", "capssetter", "rtpjpegpay"],
            "h264": ["imagesequencesrc", "capssetter", "jpegdec", "videoconvert", "x264enc", "rtph264pay"]}


def need_gstreamer(codec: str) -> None:
    probe = ("import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import Gst, GstRtspServer; "
             f"Gst.init(None); assert all(Gst.ElementFactory.find(e) for e in {ELEMENTS[codec]!r})")
    try:
        found = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except OSError:
        found = False
    if not found:
        missing(f"GStreamer's RTSP server with {', '.join(ELEMENTS[codec])} for {SYSTEM_PYTHON}", INSTALL)


@pytest.fixture(params=["jpeg", "h264"])
def rtsp_camera(request, tmp_path):
    """start(clips) -> the URL of an RTSP camera playing each clip (RGB frames) to one connection,
    as RTP/JPEG or H.264 (the fixture's two runs)."""
    codec = request.param
    need_gstreamer(codec)
    procs = []

    def start(clips) -> str:
        folders = []
        for n, clip in enumerate(clips):
            folder = tmp_path / f"{codec}{n}"
            folder.mkdir()
            for i, frame in enumerate(clip):
                cv2.imwrite(str(folder / f"{i:05d}.jpg"), frame[..., ::-1])
            folders.append(str(folder))
        proc = subprocess.Popen([SYSTEM_PYTHON, str(CAMERA), codec, str(FPS), *map(str, SIZE), *folders],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"the RTSP camera did not start: {proc.stderr.read()}"
        return f"rtsp://127.0.0.1:{port}/door"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


def test_rtsp_stream_decided_dropped_and_reopened(door, rtsp_camera, capsys):
    db, _, s = door
    # FFmpeg reads about 2 s of a new RTSP stream before it opens; each clip lasts 6.4 s at 5 fps.
    url = rtsp_camera([(s["obama"] + s["obama"][::-1]) * 2, (s["stranger"] + s["stranger"][::-1]) * 2])
    code, events, err = watch(["--db", db, "watch", url, "--give-up-after", "1"], capsys)
    assert code == 2, err   # a camera that stayed down failed (systemd's Restart=on-failure restarts it)
    assert [e["name"] for e in events] == ["barack_obama", "unknown"], (events, err)
    assert "stream lost" in err and "stream back after a gap of" in err and "giving up" in err
    assert "stopped: the stream stayed down for" in err
    assert all(e["source"] == url for e in events)
    check_stored(db, events)
