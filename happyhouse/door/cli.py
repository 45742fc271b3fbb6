"""The door's command line: ``door COMMAND ...`` (or ``python -m fr_utils``, ``python -m happyhouse.door``).

    enroll NAME PHOTO...     store a person's faces (one face per photo; --add for more photos);
                             each photo is checked first (--check: report only; --force: store anyway)
    audit                    re-check every stored photo: hubs, people too close to each other
    verify NAME PHOTO        is the one face in PHOTO this person?      exit 0 yes, 1 no
    identify PHOTO           name every face in PHOTO, or "unknown"      exit 0 someone known, 1 nobody
    list                     the enrolled people
    remove NAME              forget a person
    calibrate FOLDER         <person>/<photo> folder -> ROC plot, EER, threshold at a chosen FAR
    fetch                    download the course data (``door fetch --help``)
    serve                    the same over HTTP with one warm model (happyhouse/door/service.py)
                             (--watch SOURCE, repeatable: also watch cameras; /events, /events/stream)
    watch SOURCE [SOURCE...] watch cameras/streams/videos; one event per person (happyhouse/door/watch_cli.py)
    log                      the watcher's stored events (--name, --since, --keep-days)

Options (before or after the command): --db FILE, --model NAME, --threshold T, --json,
--crop auto|align|whole, --search auto|exact|ivf|hnsw, --timeout SECONDS. Exit codes: 0 match / done, 1 no match, 2 error
(one message on stderr, nothing written).

Each face is judged with the model's threshold for the path its crop took ("whole": a small
square face photo used as it is, the course's crops; "aligned": a face cut from a larger
photo), unless --threshold (below 2) overrides it; ``--json`` says which path and threshold.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import numpy as np

from happyhouse.door import face_db, recognition, watch_cli
from happyhouse.door.detect import CROP_MODES, FaceNotFoundError, one_face
from happyhouse.door.recognition import (UsageError, embed_all_faces, embed_single_faces, face_threshold,
                                         progress_bar,
                                         identify_result, load_embedder, refuse_duplicate, require_someone,
                                         verify_result)
from happyhouse.errors import DataNotFoundError, OutputError, WeightsError
from happyhouse.face.embedders import EMBEDDER_NAMES
from happyhouse.face import thresholds
from happyhouse.face.thresholds import check_threshold
from happyhouse.image_io import ImageReadError, read_rgb
from happyhouse.outputs import check_folder

EXIT_MATCH, EXIT_NO_MATCH, EXIT_ERROR = 0, 1, 2
MODELS = EMBEDDER_NAMES
DEFAULT_MODEL = "inception-resnet-v1"
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean a user's mistake or missing data: one message, exit 2."""
    from happyhouse.door.calibration import CalibrationError
    from happyhouse.door.cohort import CohortError
    return (CohortError, UsageError, ImageReadError, FaceNotFoundError, face_db.FaceDBError, CalibrationError,
            DataNotFoundError, WeightsError, OutputError, recognition.EnrolmentRefused)


# -- parsing ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=argparse.SUPPRESS,
                        help=f"face database file (default ${face_db.ENV_VAR} or ./{face_db.DEFAULT_PATH})")
    common.add_argument("--model", choices=MODELS, default=argparse.SUPPRESS,
                        help=f"face embedder (default {DEFAULT_MODEL}; works offline)")
    common.add_argument("--threshold", type=float, default=argparse.SUPPRESS,
                        help="L2 distance below which two faces are the same person, below 2 (default: the "
                             "model's for the path each face's crop took, whole or aligned)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON on stdout")
    common.add_argument("--crop", choices=CROP_MODES, default=argparse.SUPPRESS,
                        help="auto: detect faces, use small square face crops whole (default); "
                             "align: always detect and align; whole: the photo is one face")
    common.add_argument("--search", choices=face_db.SEARCH_MODES, default=argparse.SUPPRESS,
                        help=f"identify: exact, ivf or hnsw (faiss indexes, approximate) or auto: in `serve`, "
                             f"ivf from {face_db.APPROX_MIN_ROWS:,} embeddings and exact below; exact in one-shot "
                             "commands, where building an index costs more than one search (default auto)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                        help=f"seconds to wait for another process's write (default {face_db.DEFAULT_TIMEOUT:g})")

    parser = argparse.ArgumentParser(prog="door", parents=[common],
                                     description="The Happy House door: enrol, verify and identify faces.",
                                     epilog="Exit codes: 0 match (or command done), 1 no match, 2 error. "
                                            "`door fetch` downloads the course data.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("enroll", parents=[common], help="store a person's faces")
    p.add_argument("name", metavar="NAME")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument("--add", action="store_true", help="add photos to someone already enrolled")
    p.add_argument("--force", action="store_true",
                   help="store photos that fail the enrolment checks (with a warning; they then open the door "
                        "only when a second photo agrees)")
    p.add_argument("--check", action="store_true", help="report on the photos without storing anything "
                                                        "(exit 0 all pass, 1 some fail)")
    p.add_argument("--cohort", type=Path, default=None,
                   help="a folder of photos of strangers to check against, besides the public cohort")
    p = sub.add_parser("audit", parents=[common],
                       help="re-check every stored photo: hubs, people too close (exit 0 clean, 1 found some)")
    p.add_argument("--cohort", type=Path, default=None, help="a folder of photos of strangers, as for enroll")
    p = sub.add_parser("verify", parents=[common], help="is the face in PHOTO this person? (exit 0 yes, 1 no)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("photo", type=Path)
    p = sub.add_parser("identify", parents=[common], help="name every face in PHOTO (exit 0 someone known)")
    p.add_argument("photo", type=Path)
    p.add_argument("--top-k", type=int, default=3, help="candidates listed per face (default 3)")
    sub.add_parser("list", parents=[common], help="list the enrolled people")
    p = sub.add_parser("remove", parents=[common], help="forget a person")
    p.add_argument("name", metavar="NAME")
    p = sub.add_parser("calibrate", parents=[common], help="ROC, EER and threshold from a <person>/<photo> folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--far", type=float, default=0.01, help="false-accept rate to choose the threshold at (default 0.01)")
    p.add_argument("--out", type=Path, default=Path("output/calibrate"),
                   help="folder for roc.png and calibration.json (default output/calibrate)")
    p = sub.add_parser("serve", parents=[common], help="an HTTP API with one warm model (FastAPI; /docs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs --token-file)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--token-file", type=Path, default=None,
                   help="file holding the bearer token that /people needs (default: none, loopback only)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MiB (default 20)")
    p.add_argument("--watch", dest="source", action="append", default=None, metavar="SOURCE",
                   help="also watch SOURCE (as `watch SOURCE`) on a thread beside the API: /events, "
                        "/events/stream; repeat it for several cameras")
    watch_cli.add_watch_options(p)
    watch_cli.add_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command (``fetch``: the course data); returns the exit code (0 match, 1 no match, 2 error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch"]:
        from happyhouse import data

        return data.main_fetch(argv[1:])
    args = build_parser().parse_args(argv)
    for key, value in (("db", None), ("model", DEFAULT_MODEL), ("threshold", None), ("json", False),
                       ("crop", "auto"), ("timeout", face_db.DEFAULT_TIMEOUT),
                       ("search", "auto")):
        if not hasattr(args, key):
            setattr(args, key, value)
    for key in ("check", "force", "cohort"):
        setattr(args, key, getattr(args, key, None if key == "cohort" else False))
    try:
        if not 0 < args.timeout < float("inf"):
            raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout}.")
        if args.threshold is not None:
            if not args.threshold > 0:
                raise UsageError(f"--threshold must be a positive distance, not {args.threshold}.")
            try:
                check_threshold(args.threshold)
            except ValueError as err:
                raise UsageError(f"--threshold {args.threshold:g} refused: {err}") from None
        return COMMANDS[args.command](args)
    except _user_errors() as err:
        if isinstance(err, recognition.EnrolmentRefused) and args.json:
            print(json.dumps({"refused": True, "detail": str(err), "checks": err.checks}, indent=2))
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; nothing was written for the unfinished command.", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # a bug, not a user's mistake: its trace for the report, and never exit 1 ("no match")
        traceback.print_exc()
        print(f"error: door {args.command} failed unexpectedly (a bug: please report it with the trace above).",
              file=sys.stderr)
        return EXIT_ERROR


# -- helpers ------------------------------------------------------------------------------
def _emit(args, payload: dict, text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def _open_db(args, create: bool = False) -> face_db.FaceDB:
    """The database for one command. ``--search auto`` is exact here: a one-shot process searches
    once, and building an index costs more than it saves (8 s against 15 ms at 10^5 rows);
    ``serve`` keeps its index warm and uses auto as documented."""
    search = "exact" if args.search == "auto" else args.search
    return face_db.FaceDB(args.db, create=create, timeout=args.timeout, search=search)


def _report_notices(db: face_db.FaceDB) -> None:
    for notice in db.notices:
        print(f"note: {notice}", file=sys.stderr)



def _read_photos(paths: list[Path], desc: str) -> list[np.ndarray]:
    """Read every photo first, so a bad one stops the command before anything is computed."""
    return [read_rgb(p) for p in progress_bar(paths, desc)]


# -- commands -----------------------------------------------------------------------------
def cmd_enroll(args) -> int:
    name = face_db.validate_name(args.name)
    path = args.db or face_db.default_path()
    if path.is_dir() or not path.absolute().parent.is_dir():
        raise face_db.FaceDBError(f"{path}: --db must name a file in an existing folder.")
    if path.is_file() and not args.check:  # fail fast, before loading any model
        with _open_db(args) as db:
            refuse_duplicate(db, name, args.add)
    images = _read_photos(args.photos, "reading")
    hashes = [face_db.sha256_of(p) for p in args.photos]
    embedder = load_embedder(args.model)
    whats = [str(p) for p in args.photos]
    faces, vectors = embed_single_faces(embedder, images, whats, args.crop, progress=True)
    if args.check:
        return _report_checks(args, path, embedder, name, images, faces, vectors, whats)
    if not path.exists():  # refused, a first enrolment must leave no new, empty database behind
        recognition.refuse_failed(recognition.check_photos(_EmptyDB(), embedder, name, images, faces, vectors, whats,
                                                           args.threshold, args.cohort), args.force)
    with _open_db(args, create=True) as db:                       # all computed before the write
        recognition.say_audit_on_open(db, embedder, args.cohort)
        checks = recognition.check_photos(db, embedder, name, images, faces, vectors, whats, args.threshold,
                                          args.cohort)
        payload, text = recognition.enroll_checked(db, name, vectors, embedder.name, hashes, checks,
                                                   [f.crop for f in faces], add=args.add, force=args.force)
        _report_notices(db)
    _emit(args, payload, text)
    return EXIT_MATCH


def _report_checks(args, path: Path, embedder, name, images, faces, vectors, whats) -> int:
    """``enroll --check``: each photo's checks against the database (if any) and the cohort; stores nothing."""
    from contextlib import nullcontext
    with (_open_db(args) if path.is_file() else nullcontext(None)) as db:
        checks = recognition.check_photos(db or _EmptyDB(), embedder, name, images, faces, vectors, whats,
                                          args.threshold, args.cohort)
    payload = {"checked": name, "stored": False, "photos": [c.to_dict() for c in checks]}
    lines = [f"{c.what}\t" + ("ok" if c.ok else "REFUSED: " + "; ".join(m for _, m in c.problems))
             + (f"\t(nearest other: {c.nearest[0]} {c.nearest[1]:.3f})" if c.nearest else "") for c in checks]
    _emit(args, payload, "\n".join(lines) + "\nnothing was stored (--check)")
    return EXIT_MATCH if all(c.ok for c in checks) else EXIT_NO_MATCH


class _EmptyDB:
    """No database yet: nobody to compare with but the cohort."""

    @staticmethod
    def rows(model, dim=None):
        return [], np.zeros((0, dim or 0), np.float32), np.zeros(0, np.int64)

    @staticmethod
    def checks(ids):
        return {}


def cmd_verify(args) -> int:
    args.name = face_db.validate_name(args.name)  # as enroll stored it
    with _open_db(args) as db:
        db.require(args.name)  # an unknown name fails before any model loads
        image = read_rgb(args.photo)
        embedder = load_embedder(args.model)
        recognition.say_audit_on_open(db, embedder)
        faces, vectors = embed_single_faces(embedder, [image], [str(args.photo)], args.crop)
        payload, text, match = verify_result(db, args.name, faces[0], vectors[0], embedder,
                                             args.threshold)
    _emit(args, payload, text)
    return EXIT_MATCH if match else EXIT_NO_MATCH


def cmd_identify(args) -> int:
    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}.")
    with _open_db(args) as db:
        require_someone(db)
        image = read_rgb(args.photo)
        embedder = load_embedder(args.model)
        recognition.say_audit_on_open(db, embedder)
        faces, vectors = embed_all_faces(embedder, image, str(args.photo), args.crop)
        payload, text, known = identify_result(db, str(args.photo), faces, vectors, embedder,
                                               args.threshold, args.top_k)
    _emit(args, payload, text)
    return EXIT_MATCH if known else EXIT_NO_MATCH


def cmd_list(args) -> int:
    with _open_db(args) as db:
        people = db.people()
    text = "\n".join(f"{p['name']}\t" + ", ".join(f"{m}: {v['embeddings']}" for m, v in p["models"].items())
                     for p in people) or "nobody is enrolled"
    _emit(args, {"people": people}, text)
    return EXIT_MATCH


def cmd_remove(args) -> int:
    args.name = face_db.validate_name(args.name)  # as enroll stored it
    with _open_db(args) as db:
        count = db.remove(args.name)
        _report_notices(db)
    _emit(args, {"removed": args.name, "embeddings": count}, f"removed {args.name} ({count} embeddings)")
    return EXIT_MATCH


def cmd_calibrate(args) -> int:
    from happyhouse.door import calibration

    if not 0 < args.far < 1:
        raise UsageError(f"--far must be between 0 and 1 (e.g. 0.01), not {args.far}.")
    check_folder(args.out)  # before the photos are embedded, not after
    photos = calibration.photos_by_person(args.folder, PHOTO_SUFFIXES)
    embedder = load_embedder(args.model)
    crops, labels, kinds, sizes = calibration_faces(photos, embedder, args.crop)
    counts = {kind: kinds.count(kind) for kind in sorted(set(kinds))}
    path_taken = max(counts, key=counts.get) if counts else "aligned"   # the crop path most photos took
    if len(counts) > 1:
        print(f"note: the photos took both crop paths ({counts}); the default threshold reported is the one "
              f"for {path_taken} crops. Use --crop align (or whole) to calibrate one path.", file=sys.stderr)
    vectors = embedder.embed(crops) if crops else np.zeros((0, embedder.dim), np.float32)
    threshold, threshold_from = face_threshold(embedder, path_taken, args.threshold)
    result = calibration.calibrate(vectors, labels, far=args.far, model=embedder.name, default_threshold=threshold)
    result["crops"] = counts
    result["default"].update(crop=path_taken, threshold_from=threshold_from)
    result["skipped"] = len(photos) - len(crops)
    result["by_face_size"] = calibration.by_face_size(vectors, labels, sizes, args.far, thresholds.SMALL_FACE_PX,
                                                      threshold) if len(set(labels)) > 1 else None
    args.out.mkdir(parents=True, exist_ok=True)
    result["plot"] = str(calibration.plot_roc(result, args.out / "roc.png"))
    (args.out / "calibration.json").write_text(json.dumps(result, indent=2))
    _emit(args, result, calibration_text(result, args.far, embedder.name) +
          f"wrote {result['plot']} and {args.out / 'calibration.json'}")
    return EXIT_MATCH


def calibration_faces(photos, embedder, crop: str) -> tuple[list, list, list, list]:
    """(crops (H, W, 3), person, crop path taken, face size in px) of each (person, path) in
    ``photos`` holding one face; the others are skipped, each said on stderr after the progress bar."""
    crops, labels, kinds, sizes, skipped = [], [], [], [], []
    for person, path in progress_bar(photos, "detecting"):
        try:
            face, face_crop = one_face(read_rgb(path), embedder.input_size, crop, what=str(path))
        except (ImageReadError, FaceNotFoundError) as err:  # one bad photo should not stop a folder
            skipped.append(f"skipped: {err}")
            continue
        crops.append(face_crop)
        labels.append(person)
        kinds.append(face.crop)
        sizes.append(min(face.box[2:]))
    print(*skipped, sep="\n", file=sys.stderr, end="\n" if skipped else "")
    return crops, labels, kinds, sizes


def calibration_text(result: dict, far: float, model: str) -> str:
    """What ``door calibrate`` prints of ``result`` (calibration.calibrate's, completed)."""
    rec, held, default = result["recommended"], result["held_out"], result["default"]
    return (f"{result['people']} people, {result['photos']} photos: {result['genuine_pairs']} genuine and "
            f"{result['impostor_pairs']} impostor pairs ({model})\n"
            f"EER {result['eer']:.3f} at threshold {result['eer_threshold']:.3f}\n"
            f"threshold at FAR <= {far:g}: {result['threshold']:.3f} "
            f"(true-accept rate {result['tar_at_threshold']:.3f})\n"
            f"recommended threshold (widest margin at that true-accept rate): {rec['threshold']:.3f} "
            f"(false-accept rate {rec['far']:.3f}, true-accept rate {rec['tar']:.3f})\n"
            + (f"  checked leaving each person out: true-accept rate {held['tar']:.3f} "
               f"({held['genuine_accepted']}/{held['genuine']}), false-accept rate {held['far']:.3f} "
               f"({held['impostor_accepted']}/{held['impostor']}), thresholds chosen "
               f"{held['threshold_min']:.3f}-{held['threshold_max']:.3f}\n" if held else
               "  (too few people with several photos to check it leaving one person out)\n")
            + f"at threshold {default['threshold']:g} ({default['threshold_from']}): "
            f"false-accept rate {default['far']:.3f}, true-accept rate {default['tar']:.3f}\n"
            + _size_lines(result["by_face_size"]))


def cmd_audit(args) -> int:
    with _open_db(args) as db:
        require_someone(db)
        embedder = load_embedder(args.model)
        result = recognition.audit(db, embedder, args.cohort)
        _report_notices(db)
    lines = [f"{result['photos']} photos of {args.model} in {result['db']}"]
    lines += [f"hub: a photo of {h['name']} (row {h['id']}) lies {h['distance']:.3f} from {h['nearest']}"
              for h in result["hubs"]]
    lines += [f"too close: {p['a']} and {p['b']} ({p['distance']:.3f})" for p in result["close_people"]]
    lines += [f"stored under --force: a photo of {f['name']} (row {f['id']})" for f in result["forced"]]
    clean = not (result["hubs"] or result["close_people"] or result["forced"])
    lines.append("every photo passes" if clean else
                 "a hub opens the door only when a second photo of the same person agrees; replace it with a "
                 "clearer, frontal, colour photo (`remove` and enrol again)")
    _emit(args, result, "\n".join(lines))
    return EXIT_MATCH if clean else EXIT_NO_MATCH


def _size_lines(by_size: dict | None) -> str:
    """``calibrate``'s lines per face size (pairs with a face under SMALL_FACE_PX, and the others)."""
    if not by_size:
        return ""
    lines = []
    for band, label in (("small", f"pairs with a face under {by_size['small_px']} px"),
                        ("large", f"faces of {by_size['small_px']} px or more")):
        row = by_size.get(band)
        lines.append(f"{label}: " + ("no genuine or no impostor pairs" if row is None else
                     f"{row['genuine_pairs']} genuine / {row['impostor_pairs']} impostor pairs, recommended threshold "
                     f"{row['recommended']:.3f}" + (f" (at the default: TAR {row['tar']:.3f}, FAR {row['far']:.3f})"
                                                    if "tar" in row else "")))
    return "\n".join(lines) + "\n"


def cmd_serve(args) -> int:
    from happyhouse.door import service
    return service.serve(args)


COMMANDS = {"serve": cmd_serve, "enroll": cmd_enroll, "verify": cmd_verify, "identify": cmd_identify, "list": cmd_list,
            "remove": cmd_remove, "calibrate": cmd_calibrate, "audit": cmd_audit, **watch_cli.COMMANDS}

if __name__ == "__main__":
    sys.exit(main())
