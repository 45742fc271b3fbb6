"""The door at a camera: ``door watch`` on a live 640x480 MJPEG stream vs identifying every frame.

A loopback HTTP server plays a camera at 15 frames/s: visits of 1 s of empty hall and 3 s of
one face (the course's camera_0.jpg, younes, scaled to 192 px and drifting 2 px a frame on a
640x480 gradient), over and over. The door knows the course's 12 residents. Measured on the
same stream, one after the other:

* the watcher (happyhouse.door.watch: newest frame only, K=3 of N=5, cooldown 0 so every visit
  is decided): frames processed per second (all, and while a face is in view), latency from the
  frame where the face first appeared (the camera's clock) to the decision, resident memory (RSS) per processed frame;
* the naive way in the same process: every frame read in order and identified
  (recognition.embed_all_faces + identify_result, what POSTing each frame to /identify does,
  minus HTTP), the door opening on the first frame that names someone.

    python -m bench.watch [--quick] [--seconds 600]
    python -m bench.watch --cameras 2 --seconds 60     # one camera, then two at once -> watch_cameras.json
    nice -n 10 python -m bench.watch --minutes 10     # memory only: RSS every 5 s -> watch_memory.json (chrt --idle 0: beside benchmarks)
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from bench import common
from bench.watch_memory import RssSampler, rss_slope

RESIDENTS = ["andrew", "arnaud", "benoit", "bertrand", "dan", "danielle", "felix", "kevin", "kian",
             "sebastiano", "tian", "younes"]
CAMERA_FPS, EMPTY_S, FACE_S = 15, 1.0, 3.0
#: "No growth per frame", as far as RSS samples resolve it: under 0.25 MiB per 1,000 frames (2 MiB
#: over a 10-minute run at 14 frames/s; samples of a steady process scatter by about 1 MiB).
FLAT_MIB_PER_1000 = 0.25


def visit_frames(images: Path) -> tuple[list[bytes], int]:
    """One visit as JPEG frames (EMPTY_S of hall, then FACE_S with the face) and the first face frame's index."""
    import cv2

    from happyhouse.image_io import read_rgb
    y, x = np.mgrid[0:480, 0:640]
    hall = np.repeat((90 + 0.1 * x + 0.15 * y).astype(np.uint8)[..., None], 3, axis=2)
    face = cv2.resize(read_rgb(images / "camera_0.jpg"), (192, 192), interpolation=cv2.INTER_CUBIC)
    empty, shown = int(EMPTY_S * CAMERA_FPS), int(FACE_S * CAMERA_FPS)
    frames = [hall] * empty
    for i in range(shown):
        frame = hall.copy()
        frame[140:332, 180 + 2 * i:372 + 2 * i] = face
        frames.append(frame)
    return [cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames], empty


class Camera(BaseHTTPRequestHandler):
    """Plays ``visit`` in a loop at CAMERA_FPS for ``seconds`` to ``plays`` connections; ``starts`` gets
    each connection's start time by its path (/camera0.mjpg, /camera1.mjpg, ...: several cameras)."""
    visit: list = []
    seconds = 60.0
    starts: dict = {}
    plays = 0

    def do_GET(self):
        if Camera.plays < 1:               # the run is over: the camera is gone
            self.send_error(404)
            return
        Camera.plays -= 1
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        t0 = time.monotonic()
        self.starts[self.path] = t0
        total = int(self.seconds * CAMERA_FPS)
        try:
            for i in range(total):
                jpeg = self.visit[i % len(self.visit)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                                 + jpeg + b"\r\n")
                time.sleep(max(0.0, t0 + (i + 1) / CAMERA_FPS - time.monotonic()))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def appearances(t0: float, seconds: float, per_visit: int, first_face: int) -> np.ndarray:
    """Camera-clock times at which a face first appears in each visit."""
    starts = np.arange(0, seconds * CAMERA_FPS, per_visit) + first_face
    return t0 + starts[starts < seconds * CAMERA_FPS] / CAMERA_FPS


def latencies(appeared: np.ndarray, decided: list[float]) -> list[float]:
    """For each visit, the first decision after its face appeared (and before the next visit's)."""
    out = []
    for i, t in enumerate(appeared):
        end = appeared[i + 1] if i + 1 < len(appeared) else np.inf
        hits = [d for d in decided if t <= d < end]
        if hits:
            out.append(hits[0] - t)
    return out


def run_watcher(db_path: Path, embedder, url: str, seconds: float) -> dict:
    import psutil

    from happyhouse.door import face_db
    from happyhouse.door.events import EventLog
    from happyhouse.door.sources import open_source
    from happyhouse.door.watch import Watcher, WatchSettings
    decided, rss, face_frames = [], [], [0]
    me = psutil.Process()
    with face_db.FaceDB(db_path) as db, EventLog(db_path) as log:
        watcher = Watcher(db, embedder, log, WatchSettings(source=url, cooldown=0.0),
                          emit=lambda e: decided.append(time.monotonic()) if e["name"] != "unknown" else None)
        process, sightings = watcher.process, watcher.sightings

        def measured(frame):
            out = process(frame)
            rss.append(me.memory_info().rss / 2**20)
            return out

        def counted(frame):
            found = sightings(frame)
            face_frames[0] += bool(found)
            return found
        watcher.process, watcher.sightings = measured, counted
        source = open_source(url, give_up_after=0.5)
        t_start = time.monotonic()
        summary = watcher.run(source)
    return {"processed": summary.processed, "seconds": time.monotonic() - t_start, "decided": decided,
            "rss": rss, "events": summary.events, "face_frames": face_frames[0]}


def run_naive(db_path: Path, embedder, url: str, seconds: float) -> dict:
    import cv2

    from happyhouse.door import face_db, recognition
    from happyhouse.door.detect import FaceNotFoundError
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    decided, processed, face_frames = [], 0, 0
    t_start = time.monotonic()
    with face_db.FaceDB(db_path) as db:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            processed += 1
            try:
                faces, vectors = recognition.embed_all_faces(embedder, frame[..., ::-1].copy(), "frame")
            except FaceNotFoundError:
                continue
            face_frames += 1
            _, _, known = recognition.identify_result(db, "frame", faces, vectors, embedder, None, 1)
            if known:
                decided.append(time.monotonic())
    cap.release()
    return {"processed": processed, "seconds": time.monotonic() - t_start, "decided": decided,
            "face_frames": face_frames}


def enrol_residents(db_path: Path, embedder, images: Path) -> None:
    """The course's 12 residents enrolled in a new database at ``db_path``, one photo each."""
    from happyhouse.door import face_db, recognition
    from happyhouse.image_io import read_rgb
    with face_db.FaceDB(db_path) as db:
        for name in RESIDENTS:   # through the enrolment checks, as `door enroll --force` (a photo never
            photo = images / (f"{name}.png" if name == "danielle" else f"{name}.jpg")   # checked decides nothing)
            image = read_rgb(photo)
            faces, vectors = recognition.embed_single_faces(embedder, [image], [name])
            checks = recognition.check_photos(db, embedder, name, [image], faces, vectors, [name])
            recognition.enroll_checked(db, name, vectors, embedder.name, [name], checks, [f.crop for f in faces],
                                       force=True)


def start_camera() -> tuple[ThreadingHTTPServer, str]:
    """The loopback MJPEG camera (serving ``Camera.visit``) and the URL of its first camera."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, camera_url(server, 0)


def camera_url(server: ThreadingHTTPServer, k: int) -> str:
    """The URL of camera ``k`` on the loopback server (each path is a camera of its own)."""
    return f"http://127.0.0.1:{server.server_port}/camera{k}.mjpg"


def main(argv=None) -> dict:
    from happyhouse import data
    from happyhouse.door import recognition

    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="length of the watcher's run (default 600)")
    p.add_argument("--minutes", type=float, default=None,
                   help="memory only: the watcher on the looping camera for M minutes, RSS sampled every "
                        "--every s (writes watch_memory.json)")
    p.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples (--minutes; default 5)")
    p.add_argument("--capture-only", action="store_true",
                   help="with --minutes: only read the camera (no model, no watcher), to tell the stream's "
                        "memory from the watcher's (writes watch_memory_capture.json)")
    p.add_argument("--cameras", type=int, default=1,
                   help="several cameras: one camera, then N at once in one process (what `door watch A B ...` "
                        "runs), each for --seconds (writes watch_cameras.json)")
    args = p.parse_args(argv)
    seconds = 20.0 if args.quick else args.seconds
    naive_seconds = min(seconds, 40.0)
    roof = common.rooflines(args.quick or args.minutes is not None)
    images = data.find_folder("images")
    loads = {"start": [round(x, 2) for x in os.getloadavg()]}
    embedder = recognition.load_embedder("inception-resnet-v1")
    Camera.visit, first_face = visit_frames(images)
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        db_path = Path(tmp) / "faces.db"
        enrol_residents(db_path, embedder, images)
        server, url = start_camera()
        if args.minutes is not None:
            result = memory_main(db_path, embedder, url, args, roof, loads)
            server.shutdown()
            return result
        if args.cameras > 1:
            result = cameras_main(db_path, embedder, server, first_face, args, roof, loads)
            server.shutdown()
            return result
        results = {}
        for how, fn, length in (("watch", run_watcher, seconds), ("naive", run_naive, naive_seconds)):
            Camera.seconds, Camera.starts, Camera.plays = length, {}, 1
            out = fn(db_path, embedder, url, length)
            appeared = appearances(Camera.starts["/camera0.mjpg"], length, len(Camera.visit), first_face)
            out["latency"] = latencies(appeared, out["decided"])
            out["visits"] = len(appeared)
            loads[f"after_{how}"] = [round(x, 2) for x in os.getloadavg()]
            results[how] = out
        server.shutdown()
    return report(results, roof, loads, seconds, naive_seconds, args.out)


def run_cameras(db_path: Path, embedder, urls: list[str]) -> dict:
    """LiveWatch on ``urls`` at once (one thread per camera, one model): per URL its summary and the
    times of its decisions naming someone."""
    from happyhouse.door.live import LiveWatch
    from happyhouse.door.sources import open_source
    from happyhouse.door.watch import WatchSettings
    decided = {url: [] for url in urls}
    cameras = [(WatchSettings(source=url, cooldown=0.0), open_source(url, give_up_after=0.5)) for url in urls]
    live = LiveWatch(db_path, cameras, hooks=[])
    live.emit = lambda e: decided[e["source"]].append(time.monotonic()) if e["name"] != "unknown" else None
    t_start = time.monotonic()
    live.start(embedder, threading.Lock())
    live.wait()
    seconds = time.monotonic() - t_start
    return {url: {"summary": live.summaries[url], "decided": decided[url], "seconds": seconds} for url in urls}


def cameras_main(db_path: Path, embedder, server, first_face: int, args, roof: dict, loads: dict) -> dict:
    """``--cameras N``: one camera alone, then N cameras at once, each playing the visits for --seconds."""
    seconds = 20.0 if args.quick else args.seconds
    rows = []
    for count in (1, args.cameras):
        urls = [camera_url(server, k) for k in range(count)]
        Camera.seconds, Camera.starts, Camera.plays = seconds, {}, count
        runs = run_cameras(db_path, embedder, urls)
        loads[f"after_{count}_cameras"] = [round(x, 2) for x in os.getloadavg()]
        for k, url in enumerate(urls):
            run = runs[url]
            appeared = appearances(Camera.starts[f"/camera{k}.mjpg"], seconds, len(Camera.visit), first_face)
            lat = np.asarray(latencies(appeared, run["decided"])) * 1e3
            rows.append({"cameras": count, "camera": k, "processed_fps": run["summary"].processed / run["seconds"],
                         "visits": len(appeared), "visits_decided": len(lat),
                         "latency_p50_ms": float(np.median(lat)) if lat.size else None,
                         "latency_max_ms": float(lat.max()) if lat.size else None})
    alone = rows[0]
    together = rows[1:]
    total = sum(r["processed_fps"] for r in together)
    worst = max((r["latency_max_ms"] or np.inf) for r in together)
    everyone = all(r["visits_decided"] == r["visits"] for r in together)
    goals = [common.goal(f"{args.cameras} cameras at once: each at least 5 processed frames/s (the one-camera goal)",
                         ">= 5 per camera", round(min(r["processed_fps"] for r in together), 2),
                         min(r["processed_fps"] for r in together) >= 5,
                         f"together {total:.1f}/s = {total / alone['processed_fps']:.2f}x one camera alone "
                         f"({alone['processed_fps']:.1f}/s); one model, one lock"),
             common.goal(f"{args.cameras} cameras at once: every visit decided within 1 s", "<= 1000 ms",
                         None if not np.isfinite(worst) else round(worst), everyone and worst <= 1000,
                         f"one camera alone: worst {common.fmt(alone['latency_max_ms'])} ms")]
    notes = [f"camera: {CAMERA_FPS} fps MJPEG over loopback per connection, visits of {EMPTY_S:g} s empty + "
             f"{FACE_S:g} s face; the cameras start within a few ms of each other, so their faces appear together",
             "the cameras share one model under one lock (happyhouse.door.live.LiveWatch): the frames of "
             "several cameras are processed one after another, never at once",
             f"load average (1, 5, 15 min): {loads}"]
    common.write("watch_cameras", rows, goals, roof, args.out, notes,
                 columns=["cameras", "camera", "processed_fps", "visits", "visits_decided", "latency_p50_ms",
                          "latency_max_ms"], extra={"load_average": loads})
    return {"rows": rows, "goals": goals}


def run_capture_only(url: str, every: float) -> tuple[list, object]:
    """The camera read (OpenCV's FFmpeg on its reader thread) and nothing done with the frames,
    RSS sampled every ``every`` s: (samples, a summary with ``processed``, ``events``, ``seconds``)."""
    from happyhouse.door.sources import open_source
    from happyhouse.door.watch import Summary
    summary, source = Summary(), open_source(url, give_up_after=0.5)
    t0 = time.monotonic()
    with RssSampler(lambda: summary.processed, every) as sampler:
        for _ in source.frames():
            summary.processed += 1
    summary.seconds = time.monotonic() - t0
    return sampler.samples, summary


def run_memory(db_path: Path, embedder, url: str, every: float) -> tuple[list, object]:
    """The watcher on the camera until it stops, RSS sampled every ``every`` s: (samples, summary)."""
    from happyhouse.door import face_db
    from happyhouse.door.events import EventLog
    from happyhouse.door.sources import open_source
    from happyhouse.door.watch import Watcher, WatchSettings
    with face_db.FaceDB(db_path) as db, EventLog(db_path) as log:
        watcher = Watcher(db, embedder, log, WatchSettings(source=url, cooldown=0.0), emit=lambda e: None)
        source = open_source(url, give_up_after=0.5)
        with RssSampler(lambda: watcher.summary.processed, every) as sampler:
            summary = watcher.run(source)
    return sampler.samples, summary


def memory_main(db_path: Path, embedder, url: str, args, roof: dict, loads: dict) -> dict:
    """``--minutes M``: the camera loops its visit for M minutes; RSS against frames processed."""
    seconds = 0.5 * 60 if args.quick else args.minutes * 60
    Camera.seconds, Camera.starts, Camera.plays = seconds, {}, 1
    samples, summary = (run_capture_only(url, args.every) if args.capture_only
                        else run_memory(db_path, embedder, url, args.every))
    loads["end"] = [round(x, 2) for x in os.getloadavg()]
    growth = rss_slope(samples, warmup_s=min(60.0, seconds / 5))
    c_allocator, settings = allocator(), allocator_settings()
    how = c_allocator + (f", {settings}" if settings else "")
    what = "the camera read alone" if args.capture_only else "door watch"
    row = {"how": f"{what} on a looping 640x480 MJPEG camera (memory; {how})", "minutes": seconds / 60,
           "processed": summary.processed, "processed_fps": summary.processed / summary.seconds,
           "events": summary.events, "rss_start_MiB": growth["start_MiB"],
           "rss_after_warmup_MiB": growth["after_warmup_MiB"], "rss_end_MiB": growth["end_MiB"],
           "MiB_per_1000_frames": growth["per_1000_frames"], "floor_MiB_per_1000_frames": growth["floor_per_1000_frames"],
           "MiB_per_minute": growth["per_minute"]}
    goals = [memory_goal(growth, seconds, summary.processed, loads, what)]
    notes = [f"camera: {CAMERA_FPS} fps MJPEG over loopback, visits of {EMPTY_S:g} s empty + {FACE_S:g} s face, "
             + ("no watcher (--capture-only: frames only counted)" if args.capture_only
                else "cooldown 0 (every visit decided and stored)"),
             f"C allocator: {how} (jemalloc: LD_PRELOAD=libjemalloc.so.2)",
             f"RSS sampled every {args.every:g} s ({'psutil' if psutil_here() else '/proc/self/status'}); "
             "slope: least squares of RSS against frames processed, samples after the warm-up; floor: the same of "
             "each minute's lowest sample (a block taken and given back does not tilt it)",
             f"load average (1, 5, 15 min): {loads}; run at {scheduling()} (memory needs no quiet cores: "
             "it is counted per frame; rooflines are the quick ones and mean little here)"]
    name = ("watch_memory" + ("_capture" if args.capture_only else "")
            + ("" if c_allocator == "glibc malloc" else "_" + c_allocator) + ("_tuned" if settings else ""))
    common.write(name, [row], goals, roof, args.out, notes,
                 extra={"rss_MiB": growth, "samples_s_frames_MiB": samples, "load_average": loads})
    return {"rows": [row], "goals": goals}


def memory_goal(growth: dict, seconds: float, processed: int, loads: dict, what: str = "door watch") -> dict:
    """The issue's goal, memory flat over 10 minutes, for ``growth`` (rss_slope's answer) of ``what`` ran."""
    slope, ci95 = growth["per_1000_frames"], growth.get("per_1000_frames_ci95")
    measured = None if slope is None else f"{slope:+.3f}" + ("" if ci95 is None else f" ± {ci95:.3f} (95%)") \
        + " MiB / 1000 frames"
    return common.goal(f"memory flat over a {seconds / 60:g}-minute run of {what} ({processed} frames)",
                       f"no growth per frame (|slope| < {FLAT_MIB_PER_1000} MiB / 1000 frames after warm-up)",
                       measured, slope is not None and abs(slope) < FLAT_MIB_PER_1000 and seconds >= 600,
                       f"floor {growth['floor_per_1000_frames'] or 0:+.3f} MiB / 1000 frames; "
                       f"RSS {growth['start_MiB']:.0f} -> {growth['after_warmup_MiB'] or 0:.0f} (after "
                       f"{growth['warmup_s']:g} s warm-up) -> {growth['end_MiB']:.0f} MiB, max "
                       f"{growth['max_MiB']:.0f}; load average {loads}"
                       + ("" if seconds >= 600 else "; shorter than the 10 minutes asked"))


def allocator() -> str:
    """The C allocator of this process: jemalloc or tcmalloc when preloaded (LD_PRELOAD), else glibc's malloc."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    return next((name for name in ("jemalloc", "tcmalloc") if f"lib{name}" in maps), "glibc malloc")


def allocator_settings() -> str:
    """The allocator's settings from the environment (MALLOC_CONF for jemalloc, MALLOC_ARENA_MAX and
    the other GLIBC tunables for glibc), "" when none are set."""
    names = ("MALLOC_CONF", "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
    return " ".join(f"{n}={os.environ[n]}" for n in names if os.environ.get(n))


def scheduling() -> str:
    """How this process is scheduled, for the notes: the idle class (``chrt --idle 0``), its
    niceness (``nice -n N``) or normal priority."""
    if os.sched_getscheduler(0) == os.SCHED_IDLE:
        return "the idle scheduling class (chrt --idle 0: a core only when no other process wants one)"
    niceness = os.nice(0)
    return f"nice {niceness}" if niceness else "normal priority (nice 0)"


def psutil_here() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def report(results: dict, roof: dict, loads: dict, seconds: float, naive_seconds: float, out_dir) -> dict:
    rows = []
    for how, label in (("watch", "door watch (newest frame, 3 of 5 agree)"),
                       ("naive", "identify every frame (first known frame opens)")):
        r = results[how]
        lat = np.asarray(r["latency"]) * 1e3
        rows.append({"how": label, "stream_s": seconds if how == "watch" else naive_seconds,
                     "processed_fps": r["processed"] / r["seconds"],
                     "face_fps": r["face_frames"] / (r["visits"] * FACE_S), "visits": r["visits"],
                     "visits_decided": len(lat), "latency_p50_ms": float(np.median(lat)) if lat.size else None,
                     "latency_max_ms": float(lat.max()) if lat.size else None})
    rss = np.asarray(results["watch"]["rss"])
    half = len(rss) // 2
    growth = float(rss[half:].mean() - rss[:half].mean()) if half else 0.0
    tail = rss[half:]                      # after warm-up (TensorFlow's first allocations)
    per_kframe = float(np.polyfit(np.arange(len(tail)), tail, 1)[0] * 1000) if len(tail) > 2 else 0.0
    watch, naive = rows
    goals = [
        common.goal("frames processed per second with one face in view, 640x480, 2 cores", ">= 5",
                    round(watch["face_fps"], 2), watch["face_fps"] >= 5,
                    f"all frames (empty hall included): {watch['processed_fps']:.1f}/s; "
                    f"load average {loads['start'][0]} at the start"),
        common.goal("first face frame to decision (worst visit)", "<= 1000 ms",
                    None if watch["latency_max_ms"] is None else round(watch["latency_max_ms"]),
                    watch["latency_max_ms"] is not None and watch["latency_max_ms"] <= 1000
                    and watch["visits_decided"] == watch["visits"],
                    f"p50 {common.fmt(watch['latency_p50_ms'])} ms; "
                    f"{watch['visits_decided']} of {watch['visits']} visits decided"),
        common.goal(f"memory flat over the run ({seconds:.0f} s, {len(rss)} frames)", "no growth per frame",
                    f"{per_kframe:+.2f} MiB / 1000 frames (second half)", abs(per_kframe) < FLAT_MIB_PER_1000,
                    f"RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB; second half minus first half {growth:+.1f} MiB"
                    + ("" if seconds >= 600 else "; shorter than the 10 minutes asked")),
    ]
    notes = [f"camera: {CAMERA_FPS} fps MJPEG over loopback, visits of {EMPTY_S:g} s empty + {FACE_S:g} s face",
             f"the naive loop reads every frame in order (no skipping): it processed {naive['face_fps']:.1f} face "
             f"frames/s against the camera's {CAMERA_FPS} ("
             + ("it kept up" if naive["face_fps"] >= 0.95 * CAMERA_FPS else "it fell behind, so its latency grows")
             + f"); it opens on the first frame that names someone (p50 {common.fmt(naive['latency_p50_ms'])} ms), "
             f"the watcher after {3} agreeing frames (p50 {common.fmt(watch['latency_p50_ms'])} ms): the difference "
             "is the price of not opening on one lucky frame",
             f"load average (1, 5, 15 min): {loads}; other work shared the 2 cores"]
    common.write("watch", rows, goals, roof, out_dir, notes,
                 columns=["how", "stream_s", "processed_fps", "face_fps", "visits", "visits_decided", "latency_p50_ms",
                          "latency_max_ms"],
                 extra={"rss_MiB": {"first": float(rss[0]), "last": float(rss[-1]), "per_1000_frames": per_kframe},
                        "load_average": loads})
    return {"rows": rows, "goals": goals}


if __name__ == "__main__":
    main()
