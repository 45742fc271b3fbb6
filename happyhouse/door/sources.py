"""Frames from what a door camera gives: a video file, an HTTP(S) MJPEG or RTSP URL (OpenCV's
FFmpeg), a camera index, or a folder of frames. Every source yields :class:`Frame` (RGB).

    source = open_source("rtsp://cam.local/stream1")   # SourceError: one clear message
    for frame in source.frames(): ...                   # frame.image (H, W, 3) uint8 RGB

Files and folders give every frame, or one per ``1/fps`` seconds of their own time when
``fps`` is set; their time is the video's position. Live sources (URLs, cameras) are read on
a thread that keeps only the newest frame, so frames that arrive while the door is busy are
skipped; their time is the wall clock since opening. A live source that stops is reopened
with doubling back-off (``backoff`` to ``max_backoff`` s) and the gap logged, until it has been
down ``give_up_after`` seconds (None: never). A frame that cannot be decoded is skipped.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import numpy as np

from happyhouse.door.recognition import UsageError

URL_SCHEMES = ("http", "https", "rtsp", "rtsps")
#: A camera's user name and password, kept out of the command line (process lists show it).
CAMERA_USER_VARIABLE, CAMERA_PASSWORD_VARIABLE = "DOOR_CAMERA_USERNAME", "DOOR_CAMERA_PASSWORD"
FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}
#: A folder's frames are taken as this many per second (a folder has no clock of its own).
FOLDER_FPS = 5.0
#: Consecutive unreadable frames after which a file is taken to have ended.
MAX_BAD_FRAMES = 25


class SourceError(UsageError):
    """The source cannot be opened or read; the message names it and says what to do."""


@dataclass(frozen=True)
class Frame:
    """One frame: ``index`` in the source (skipped frames count), ``t`` seconds on the source's
    clock, ``image`` (H, W, 3) uint8 RGB."""
    index: int
    t: float
    image: np.ndarray


#: Query keys whose values are credentials (cameras that take them in the URL: MJPEG's ``?user=&pwd=``).
#: Words that mark a query key or a path's ``key=value`` as a credential (``pwd``, ``api_key``,
#: ``access_token``, ``Password`` ...): its value is hidden. Hiding a harmless one costs nothing.
SECRET_WORDS = ("user", "usr", "login", "pass", "pwd", "token", "key", "auth", "secret", "sig", "session", "cred")
PATH_SECRET = re.compile(r"(?i)([a-z0-9_.-]*(?:" + "|".join(SECRET_WORDS) + r")[a-z0-9_.-]*?=)[^&_/;?]*")
SCHEME_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/{0,2}")


def redact(url: str) -> str:
    """A URL without its user name and password, before its host, in its query or in its path as
    ``key=value`` (DVRs: ``/user=admin_password=x_channel=1``): what is logged and stored. Text, not a
    parse: a password may hold any character ("#", "/", "?"), so everything up to the last "@" goes,
    and a credential's value becomes ``***`` (in the query, up to the next "&", a "#" included). A
    mistyped URL ("rtsp:admin:pw@cam") loses what comes before its "@" too."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        typo = SCHEME_LIKE.match(url)
        if not typo or "@" not in url:
            return url
        return f"{typo.group(0)}***@{url[url.rfind('@') + 1:]}"   # as typed, but for its credentials
    rest = rest[rest.rfind("@") + 1:]
    base, question, query = rest.partition("?")
    base = PATH_SECRET.sub(r"\1***", base)
    if not question:
        return f"{scheme}://{base}"
    return f"{scheme}://{base}?" + "&".join(redact_pair(pair) for pair in query.split("&"))


def redact_pair(pair: str) -> str:
    """A query's ``key=value`` with the value hidden when the key names a credential (SECRET_WORDS)."""
    key, eq, _ = pair.partition("=")
    return f"{key}=***" if eq and any(word in unquote(key).lower() for word in SECRET_WORDS) else pair


def names_credentials(url: str) -> bool:
    """Whether ``url`` carries a user name or password before its query (an "@": a password may hold
    "#", "/" or "?", so the URL parser's own answer is not enough)."""
    return "@" in url.partition("?")[0]


def with_credentials(url: str, environ=os.environ) -> str:
    """``url`` with the user name (and password) of DOOR_CAMERA_USERNAME (and DOOR_CAMERA_PASSWORD)
    put in, quoted; a URL that names its own user, or no such variable, leaves it as it is."""
    user, password = environ.get(CAMERA_USER_VARIABLE), environ.get(CAMERA_PASSWORD_VARIABLE)
    parts = urlsplit(url)
    if not user or parts.username is not None:
        return url
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((parts.scheme, f"{auth}@{host_and_port(parts)}", parts.path, parts.query, parts.fragment))


def host_and_port(parts) -> str:
    """The host (an IPv6 address in brackets) and port of a urlsplit result, without user or password;
    ValueError for a port that is no number."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


def check_url(text: str) -> None:
    """SourceError unless ``text`` is a URL of a watched scheme with a host (and a port, if any, that
    is a number from 1 to 65535)."""
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port
    except ValueError:  # its message quotes the text, a password included
        raise SourceError(f"{describe(text)}: not a usable URL (its host or port cannot be read; in a password, "
                          "write # / ? @ as %23 %2F %3F %40, or give it in DOOR_CAMERA_PASSWORD).") from None
    if parts.scheme.lower() not in URL_SCHEMES or not parts.hostname or not port_ok:
        raise SourceError(f"{describe(text)}: only {', '.join(s + '://' for s in URL_SCHEMES)} URLs with a host "
                          "and, if any, a port from 1 to 65535 are watched (a local file is given as its path).")


def describe(source: str) -> str:
    """How a source is named in events and messages (credentials removed from URLs, mistyped ones too)."""
    return redact(source)


def to_rgb(frame) -> np.ndarray | None:
    """An OpenCV BGR(A)/grey frame -> (H, W, 3) RGB, or None when it is not a usable picture."""
    import cv2
    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0 or frame.dtype != np.uint8:
        return None
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or min(frame.shape[:2]) < 2:
        return None
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)


# FFmpeg's own messages off ("moov atom not found" ...): OpenCV reads this once, when it first opens
# a video with FFmpeg, so it is set as this module loads, before any video is opened.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def quiet_video_logs() -> None:
    """OpenCV's own warnings off (a source that fails is said once, in the door's words); a level
    the user set in OPENCV_LOG_LEVEL (or OPENCV_FFMPEG_LOGLEVEL, above) is kept."""
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def open_source(text: str, fps: float | None = None, log=None, backoff: float = 0.5, max_backoff: float = 10.0,
                give_up_after: float | None = None):
    """The frame source ``text`` names (see the module docstring); SourceError when it cannot be used."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    quiet_video_logs()
    if text.strip().isdigit():
        return LiveSource(int(text), text, fps, log, backoff, max_backoff, give_up_after)
    if "://" in text or text.lower().startswith(("rtsp:", "http:", "https:")):
        check_url(text)
        return LiveSource(with_credentials(text), describe(text), fps, log, backoff, max_backoff, give_up_after)
    path = Path(text)
    if path.is_dir():
        return FolderSource(path, fps, log)
    if path.is_file():
        return FileSource(path, fps, log)
    raise SourceError(f"{text}: no such file, folder or camera. Give a video file, a folder of frames, "
                      "an http(s):// or rtsp:// URL, or a camera index such as 0.")


class Sampler:
    """Keeps one frame per ``1/fps`` seconds of a source's clock (all frames when fps is None)."""

    def __init__(self, fps: float | None):
        self.period = 1.0 / fps if fps else 0.0
        self.next_t = -1.0

    def keep(self, t: float) -> bool:
        if t + 1e-6 < self.next_t:
            return False
        self.next_t = max(self.next_t + self.period, t) if self.next_t >= 0 else t + self.period
        return True


class FileSource:
    """A video file, read frame by frame through OpenCV's FFmpeg."""

    def __init__(self, path: Path, fps: float | None, log):
        import cv2
        self.name, self.log, self.sampler = str(path), log, Sampler(fps)
        self.cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.cap.isOpened():
            raise SourceError(f"{path}: cannot be read as a video (not a video, damaged, or a codec FFmpeg "
                              "lacks). Give a video file (.mp4, .avi, .mkv), a folder of frames, or a URL.")
        self.rate = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def frames(self):
        index, bad, any_read = -1, 0, False
        while True:
            ok, raw = self.cap.read()
            index += 1
            image = to_rgb(raw) if ok else None
            if image is None:
                bad += 1
                if not ok and (bad > MAX_BAD_FRAMES or index >= self.count):
                    break
                self.log(f"{self.name}: frame {index} cannot be decoded; skipped.")
                continue
            bad, any_read = 0, True
            t = index / self.rate
            if self.sampler.keep(t):
                yield Frame(index, t, image)
        if not any_read:
            raise SourceError(f"{self.name}: no frame could be decoded. Is it a video FFmpeg can read?")
        self.cap.release()

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.cap.release()


class FolderSource:
    """A folder of frames, taken in name order at :data:`FOLDER_FPS`; unreadable ones are skipped."""

    def __init__(self, path: Path, fps: float | None, log):
        self.name, self.log, self.sampler = str(path), log, Sampler(fps)
        self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not self.paths:
            raise SourceError(f"{path}: holds no frames ({', '.join(sorted(FRAME_SUFFIXES))}).")

    def frames(self):
        import cv2
        for index, path in enumerate(self.paths):
            t = index / FOLDER_FPS
            if not self.sampler.keep(t):
                continue
            image = to_rgb(cv2.imread(str(path), cv2.IMREAD_COLOR))
            if image is None:
                self.log(f"{path}: cannot be decoded as a picture; skipped.")
                continue
            yield Frame(index, t, image)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


class LiveSource:
    """A camera or a stream URL, read on a thread that keeps the newest frame (see the module docstring)."""

    def __init__(self, target, name: str, fps: float | None, log, backoff: float, max_backoff: float,
                 give_up_after: float | None):
        self.target, self.name, self.log = target, name, log
        self.period = 1.0 / fps if fps else 0.0
        self.backoff, self.max_backoff, self.give_up_after = backoff, max_backoff, give_up_after
        self.cap = self._open()
        if self.cap is None:
            what = f"camera {target}" if isinstance(target, int) else name
            raise SourceError(f"{what}: cannot be opened (no such camera, the stream is down, or the URL is "
                              "wrong). Check it with `ffprobe`, or give a video file.")
        self.t0 = time.monotonic()
        self.gave_up: str | None = None   # why the stream ended, when it stayed down past give_up_after
        self._latest: Frame | None = None
        self._done = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="door-source", daemon=True)
        self._thread.start()

    def _open(self):
        import cv2
        cap = cv2.VideoCapture(self.target) if isinstance(self.target, int) else \
            cv2.VideoCapture(self.target, cv2.CAP_FFMPEG)
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def _read(self) -> None:
        index = -1
        while not self._stop.is_set():
            ok, raw = self.cap.read() if self.cap is not None else (False, None)
            if not ok:
                if not self._reopen():
                    break
                continue
            index += 1
            image = to_rgb(raw)
            if image is None:
                self.log(f"{self.name}: frame {index} cannot be decoded; skipped.")
                continue
            with self._ready:
                self._latest = Frame(index, time.monotonic() - self.t0, image)
                self._ready.notify()
        with self._ready:
            self._done = True
            self._ready.notify()

    def _reopen(self) -> bool:
        """Reopen after a drop with doubling back-off; False when stopped or down too long."""
        lost, delay = time.monotonic(), self.backoff
        self.log(f"{self.name}: stream lost at t={lost - self.t0:.1f} s; reopening.")
        if self.cap is not None:
            self.cap.release()
        self.cap = None
        while not self._stop.wait(delay):
            self.cap = self._open()
            gap = time.monotonic() - lost
            if self.cap is not None:
                self.log(f"{self.name}: stream back after a gap of {gap:.1f} s.")
                return True
            if self.give_up_after is not None and gap >= self.give_up_after:
                self.log(f"{self.name}: still down after {gap:.1f} s; giving up.")
                self.gave_up = f"the stream stayed down for {gap:.1f} s (--give-up-after {self.give_up_after:g})"
                return False
            delay = min(delay * 2, self.max_backoff)
        return False

    def frames(self):
        last_index, next_t = -1, 0.0
        while True:
            with self._ready:
                while not self._done and not self._stop.is_set() and \
                        (self._latest is None or self._latest.index == last_index):
                    self._ready.wait(0.5)
                frame = self._latest
                if frame is None or frame.index == last_index or self._stop.is_set():
                    return
            last_index = frame.index
            if self.period and frame.t < next_t:
                time.sleep(min(next_t - frame.t, self.period))
                continue
            next_t = frame.t + self.period
            yield frame

    def stop(self) -> None:
        """Ask the reader to stop (safe from a signal handler); ``frames`` then ends."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self.cap is not None:
            self.cap.release()
