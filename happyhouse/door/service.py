"""The door as an HTTP service: one warm model behind FastAPI (``python -m fr_utils serve``).

    GET    /health          {"status": "ok", "model": ..., "people": N}
    POST   /identify        multipart ``photo`` -> the JSON of ``identify --json``
    POST   /verify          multipart ``name``, ``photo`` -> the JSON of ``verify --json``
    GET    /people          the JSON of ``list --json``                      (bearer token)
    POST   /people/{name}   one or more ``photo`` fields -> 201, enrols   (bearer token)
                            ?force=true stores photos failing the checks, ?check=true stores nothing
    GET    /audit           the JSON of ``audit --json``                     (bearer token)
    DELETE /people/{name}   forgets a person                               (bearer token)
    GET    /events          the watcher's events, /events/stream (server-sent events),
                            /events/{id}/snapshot (door.event_api)             (bearer token)

With ``--watch SOURCE`` the watcher runs on a thread beside the API (door.live), on the same
database and model. Privacy: an answer to a client without the token names nobody it did not
ask about (/identify lists only the person a face was matched to; a 404 for an unknown name
lists nobody), and no answer carries a path on the server (the database's is replaced by words).

Answers are computed by the same functions as the command line (door.recognition), so JSON and
error messages match. Errors are ``{"detail": message}``: 400 unreadable image or no face,
422 photos refused by the enrolment checks (``{"detail", "checks"}``, every photo's report),
401 missing or wrong token, 404 unknown name, 409 already enrolled, 413 request body over
--max-upload-mb (counted while it streams in), 422 missing field, 503 database locked.
Concurrency: detection and embedding share one model under a lock; reads (identify,
verify, list) go through one long-lived FaceDB connection on its own thread, which keeps the
gallery in memory until another connection commits (SQLite's data_version); each write opens
its own FaceDB, one transaction, exactly as the CLI does, so the CLI can run beside the server.
"""

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from happyhouse.door import face_db, live, recognition, watch_cli
from happyhouse.door.cohort import cohort_gallery
from happyhouse.door.detect import FaceNotFoundError, face_crops
from happyhouse.door.event_api import Wakeup, add_event_routes
from happyhouse.door.events import EventLog, default_snapshots
from happyhouse.face.thresholds import check_threshold
from happyhouse.image_io import ImageReadError, read_rgb

#: Exception -> HTTP status; the most specific class in an exception's MRO wins.
STATUS = {ImageReadError: 400, FaceNotFoundError: 400, recognition.UsageError: 400, face_db.FaceDBError: 400,
          face_db.UnknownNameError: 404, face_db.DuplicateEnrollmentError: 409,
          face_db.DatabaseLockedError: 503, face_db.CorruptDatabaseError: 500}


class UploadTooLarge(HTTPException):
    """The request body passed the limit while it was being read."""

    def __init__(self, limit: int):
        super().__init__(413, f"the upload is larger than the server's limit of {limit / 2**20:g} MiB; "
                              "send a smaller photo (a 640x480 JPEG is plenty).",
                         headers={"Connection": "close"})   # stop reading the rest of the body


def host_name(value: str) -> str:
    """The host of a Host header or an Origin ("http://[::1]:8000" -> "::1"), lower case."""
    value = value.split("://", 1)[-1].split("/", 1)[0]
    host = value[1:value.index("]")] if value.startswith("[") and "]" in value else value.rsplit(":", 1)[0]
    return host.lower()


class LoopbackOnly:
    """ASGI middleware for a server without a token: every request must name a loopback host (Host
    header) and come from no other site (Origin header, when a browser sends one), else 403. A web
    page the door's browser opens can neither post a face to it (cross-site request) nor reach it
    under its own name (DNS rebinding)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host, origin = headers.get(b"host", b"").decode("latin-1"), headers.get(b"origin")
        if not is_loopback(host_name(host)) or (origin is not None and
                                                not is_loopback(host_name(origin.decode("latin-1")))):
            detail = ("a server without a token answers loopback requests only (Host 127.0.0.1, localhost or "
                      "[::1], and no other site's Origin); give it a --token-file to serve other hosts")
            return await JSONResponse({"detail": detail}, 403)(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes from its Content-Length, or as soon
    as the bytes read so far pass it (chunked uploads), before the app sees the rest."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise UploadTooLarge(self.limit)
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except UploadTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send):
        error = UploadTooLarge(self.limit)
        await JSONResponse({"detail": error.detail}, 413, headers=error.headers)({"type": "http"}, None, send)


class Door:
    """The warm model and the database, shared by every request (thread-safe)."""

    def __init__(self, db_path: Path, embedder, crop: str = "auto", threshold: float | None = None,
                 token: str | None = None, search: str = "auto", snapshots: Path | None = None,
                 timeout: float = face_db.DEFAULT_TIMEOUT):
        self.db_path, self.embedder, self.crop, self.token = Path(db_path), embedder, crop, token
        self.timeout = timeout   # seconds a write waits for another process's (--timeout)
        self.threshold = threshold   # None: the model's default for each face's crop path
        self.snapshots = Path(snapshots) if snapshots else default_snapshots(self.db_path)
        self.model_lock = threading.Lock()
        self.wakeup = Wakeup()
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="face-db-reader")
        self._reader = self._reader_thread.submit(face_db.FaceDB, self.db_path, create=True,
                                                  search=search, timeout=timeout).result()
        self._events = self._reader_thread.submit(EventLog, self.db_path, self.snapshots, timeout).result()

    def read(self, fn, *args):
        """Run ``fn(db, *args)`` on the shared read connection (its own thread; SQLite objects stay there)."""
        return self._reader_thread.submit(fn, self._reader, *args).result()

    @contextlib.contextmanager
    def writer(self):
        """A FaceDB of its own for one write, as the CLI opens one."""
        with face_db.FaceDB(self.db_path, create=False, timeout=self.timeout) as db:
            yield db

    def read_events(self, fn, *args):
        """Run ``fn(event_log, *args)`` on the reader thread's EventLog."""
        return self._reader_thread.submit(fn, self._events, *args).result()

    async def read_events_async(self, fn, *args):
        """``read_events`` for a coroutine (the event loop is not blocked while it waits)."""
        return await asyncio.wrap_future(self._reader_thread.submit(fn, self._events, *args))

    def token_ok(self, given: str | None) -> bool:
        """Is ``given`` the server's token (constant-time)? True for anyone when the server has none."""
        if self.token is None:
            return True   # loopback without a token file (serve refuses any other address)
        return hmac.compare_digest((given or "").encode(), self.token.encode())

    def redact(self, text: str) -> str:
        """``text`` without the server's paths (the database's and the snapshot folder's, as given and resolved)."""
        words = {}
        for path, word in ((self.snapshots, "the snapshot folder"), (self.db_path, "the face database"),
                           (self.db_path.parent, "the server's folder")):
            for form in (path, path.absolute(), path.resolve()):
                words.setdefault(str(form), word)
        for form in sorted(words, key=len, reverse=True):
            if form not in (".", "/"):
                text = text.replace(form, words[form])
        return text

    def warm_up(self) -> None:
        """Run detection and the embedder once, and load the gallery (building its index when it is
        large), so the first request does not pay for them."""
        blank = np.full((480, 640, 3), 128, np.uint8)
        with self.model_lock:
            face_crops(blank, self.embedder.input_size, self.crop)
            self.embedder.embed([np.zeros((self.embedder.input_size,) * 2 + (3,), np.uint8)])
            cohort_gallery(self.embedder)                      # the enrolment checks' public faces
        with contextlib.suppress(face_db.FaceDBError):          # nobody enrolled yet
            self.read(lambda db: db.gallery(self.embedder.name).build_index())
        with self.writer() as db:                               # photos stored before the checks existed
            recognition.say_audit_on_open(db, self.embedder)


#: An upload's pixels at most (a 24-megapixel camera's photo; the door detects faces on at most
#: 1280 px anyway): a small, flat PNG of 64 MP decodes to about 0.9 GB.
UPLOAD_MAX_PIXELS = 25_000_000
#: Faces named per /identify request, the largest (a photo of 60 faces held the model's lock, which a
#: watched camera shares, for 2 s).
MAX_FACES_PER_REQUEST = 20
#: Uploads decoded at once: the rest wait (decoding runs outside the model's lock, on the server's threads).
DECODING = threading.BoundedSemaphore(2)


def read_upload(upload: UploadFile) -> tuple[np.ndarray, str, str]:
    """An uploaded photo -> (RGB (H, W, 3) uint8, sha256 of its bytes, its name for messages)."""
    what = f"upload {upload.filename or 'photo'!r}"
    data = upload.file.read()
    try:
        with DECODING:
            return read_rgb(data, UPLOAD_MAX_PIXELS), hashlib.sha256(data).hexdigest(), what
    except ImageReadError as err:
        raise ImageReadError(str(err).replace("<bytes>", what, 1)) from None


def create_app(door: Door, max_upload_bytes: int, watching: live.LiveWatch | None = None) -> FastAPI:
    """The FastAPI application around ``door``; request bodies over ``max_upload_bytes`` get 413;
    ``watching``: the watcher started with the app and stopped at its shutdown."""
    app = FastAPI(title="Happy House door", version="1", lifespan=lifespan(door, watching),
                  description="Face recognition for the Happy House door: identify, verify, enrol, the watcher's "
                              "events. Management endpoints (/people, /audit, /events) need "
                              "`Authorization: Bearer <token>`.")
    app.add_middleware(BodyLimit, limit=max_upload_bytes)
    if door.token is None:
        app.add_middleware(LoopbackOnly)
    bearer = HTTPBearer(auto_error=False, description="the content of the server's --token-file")
    add_error_handlers(app, door)

    def has_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> bool:
        return door.token_ok(credentials.credentials if credentials else None)

    def authorised(trusted: Annotated[bool, Depends(has_token)]) -> None:
        if not trusted:
            raise HTTPException(401, "missing or wrong bearer token: send `Authorization: Bearer <token>` "
                                     "with the content of the server's --token-file.",
                                headers={"WWW-Authenticate": "Bearer"})

    add_photo_routes(app, door, has_token)
    add_people_routes(app, door, [Depends(authorised)])
    add_event_routes(app, door, [Depends(authorised)])
    return app


def lifespan(door: Door, watching: live.LiveWatch | None):
    """Start the watcher (if any) with the app; at shutdown end the event streams and stop it."""
    @contextlib.asynccontextmanager
    async def span(app: FastAPI):
        door.wakeup.bind(asyncio.get_running_loop())
        if watching is not None:
            watching.start(door.embedder, door.model_lock, door.wakeup.notify)
        try:
            yield
        finally:
            door.wakeup.close()
            if watching is not None:
                await asyncio.to_thread(watching.stop)
    return span


def add_error_handlers(app: FastAPI, door: Door) -> None:
    """Errors as ``{"detail": message}`` (with no server path in it)."""
    for error, status in STATUS.items():
        app.add_exception_handler(error, _error_handler(status, door.redact))

    @app.exception_handler(RequestValidationError)
    async def missing_field(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": "; ".join(_field_message(e) for e in exc.errors())}, status_code=422)

    @app.exception_handler(recognition.EnrolmentRefused)
    async def refused(request: Request, exc: recognition.EnrolmentRefused):
        return JSONResponse({"detail": door.redact(str(exc)), "checks": exc.checks}, status_code=422)


Photo = Annotated[UploadFile, File(description="a photo (JPEG, PNG, ...)")]


def add_photo_routes(app: FastAPI, door: Door, has_token) -> None:
    """/health, /identify and /verify: open to anyone; a client without the token learns no other names."""
    Trusted = Annotated[bool, Depends(has_token)]

    @app.get("/health")
    def health() -> dict:
        """Liveness, the model and how many people are enrolled."""
        return {"status": "ok", "model": door.embedder.name, "people": len(door.read(face_db.FaceDB.names))}

    @app.post("/identify")
    def identify(photo: Photo, trusted: Trusted, top_k: Annotated[int, Query(ge=1, le=100)] = 3) -> dict:
        """Name every face in the photo (its MAX_FACES_PER_REQUEST largest), or "unknown" (the JSON of
        `identify --json`; without the token, each face names only the person it was matched to)."""
        door.read(recognition.require_someone)
        image, _, what = read_upload(photo)
        with door.model_lock:
            faces, vectors = recognition.embed_all_faces(door.embedder, image, what, door.crop,
                                                         MAX_FACES_PER_REQUEST)
        payload, _, _ = door.read(recognition.identify_result, photo.filename or "photo", faces, vectors,
                                  door.embedder, door.threshold, top_k)
        return payload if trusted else matched_only(payload)

    @app.post("/verify")
    def verify(name: Annotated[str, Form()], photo: Photo, trusted: Trusted) -> dict:
        """Is the one face in the photo this person? (the JSON of `verify --json`)"""
        name = face_db.validate_name(name)
        door.read(require_person, name, trusted)
        image, _, what = read_upload(photo)
        with door.model_lock:
            faces, vectors = recognition.embed_single_faces(door.embedder, [image], [what], door.crop)
        payload, _, _ = door.read(recognition.verify_result, name, faces[0], vectors[0], door.embedder,
                                  door.threshold)
        return payload


def add_people_routes(app: FastAPI, door: Door, admin: list) -> None:
    """/audit and /people (token): list, enrol, forget. Answers carry no server path."""

    @app.get("/audit", dependencies=admin)
    def audit() -> dict:
        """Re-check every stored photo: hubs and people too close (the JSON of `audit --json`, without `db`)."""
        with door.writer() as db:
            return without_path(recognition.audit(db, door.embedder))

    @app.get("/people", dependencies=admin)
    def people() -> dict:
        """Everyone enrolled, with embedding counts per model (the JSON of `list --json`)."""
        return {"people": door.read(face_db.FaceDB.people)}

    @app.post("/people/{name}", status_code=201, dependencies=admin)
    def enroll(name: str, photo: Annotated[list[UploadFile], File(description="photos, one face each")],
               response: Response, add: bool = False, force: bool = False, check: bool = False) -> dict:
        """Enrol a person from one or more `photo` fields, one face each; `?add=true` adds photos.
        Photos failing the enrolment checks are refused (422) unless `?force=true`; `?check=true`
        reports on them and stores nothing (200, not 201: nothing is created)."""
        name = face_db.validate_name(name)
        if not check:
            door.read(recognition.refuse_duplicate, name, add)   # 409 before any model work
        images, hashes, whats = zip(*(read_upload(p) for p in photo))
        with door.model_lock:
            faces, vectors = recognition.embed_single_faces(door.embedder, list(images), list(whats), door.crop)
            checks = door.read(recognition.check_photos, door.embedder, name, images, faces, vectors, whats,
                               door.threshold)
        if check:
            response.status_code = 200
            return {"checked": name, "stored": False, "photos": [c.to_dict() for c in checks]}
        with door.writer() as db:
            payload, _ = recognition.enroll_checked(db, name, vectors, door.embedder.name, list(hashes), checks,
                                                    [f.crop for f in faces], add=add, force=force)
        return without_path(payload)

    @app.delete("/people/{name}", dependencies=admin)
    def remove(name: str) -> dict:
        """Forget a person and all their embeddings."""
        name = face_db.validate_name(name)
        with door.writer() as db:
            count = db.remove(name)
        return {"removed": name, "embeddings": count}


def require_person(db: face_db.FaceDB, name: str, trusted: bool) -> None:
    """UnknownNameError when ``name`` is not enrolled; for a client without the token it names nobody else."""
    try:
        db.require(name)
    except face_db.UnknownNameError:
        if trusted:
            raise
        raise face_db.UnknownNameError(f"{name!r} is not enrolled.") from None


def matched_only(payload: dict) -> dict:
    """An identify answer for a client without the token: each face keeps only the person it was matched
    to (no other candidates; an unknown face names nobody)."""
    faces = []
    for face in payload["faces"]:
        known = face["name"] != "unknown"
        faces.append({**face, "decision": {k: v for k, v in face["decision"].items() if known or k != "person"},
                      "candidates": [c for c in face["candidates"] if known and c["name"] == face["name"]]})
    return {**payload, "faces": faces}


def without_path(payload: dict) -> dict:
    """``payload`` without its ``db`` entry (the database's path on the server)."""
    return {k: v for k, v in payload.items() if k != "db"}


def _error_handler(status: int, redact):
    async def handler(request: Request, exc: Exception):
        return JSONResponse({"detail": redact(str(exc))}, status_code=status)
    return handler


def _field_message(error: dict) -> str:
    field = ".".join(str(p) for p in error.get("loc", ())[1:]) or "body"
    if error.get("type") == "missing":
        how = f"-F {field}=NAME" if field == "name" else f"-F {field}=@face.jpg"
        return f"missing field {field!r}: send it as multipart/form-data (curl {how})."
    return f"field {field!r}: {error.get('msg', 'invalid')}"


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path | None) -> str | None:
    """The bearer token in ``path`` (stripped), or None without a file; UsageError if unusable."""
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as err:
        raise recognition.UsageError(f"--token-file {path}: cannot read it ({err.strerror}).") from None
    except UnicodeDecodeError:
        raise recognition.UsageError(f"--token-file {path}: not UTF-8 text; write the token as text.") from None
    if len(token) < 16:
        raise recognition.UsageError(f"--token-file {path}: the token must be at least 16 characters "
                                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe())' > FILE`).")
    if Path(path).stat().st_mode & 0o077:
        print(f"warning: {path} is readable by other users; `chmod 600 {path}`.", file=sys.stderr)
    return token


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, or UsageError saying why not (port taken, unknown address)."""
    if not 0 <= port <= 65535:
        raise recognition.UsageError(f"--port must be from 0 to 65535, not {port}.")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as err:
        raise recognition.UsageError(f"cannot listen on {host}:{port} ({err.strerror or err}); "
                                "pick another --port or --host.") from None


def check_options(args) -> tuple[str | None, Path]:
    """``serve``'s token and database path, or UsageError/FaceDBError saying what is wrong."""
    token = read_token(args.token_file)
    if token is None and not is_loopback(args.host):
        raise recognition.UsageError(f"refusing to listen on {args.host} without --token-file: anyone on the "
                                "network could enrol faces. Give a token file, or use --host 127.0.0.1.")
    if not 0 < args.max_upload_mb <= 1024:
        raise recognition.UsageError(f"--max-upload-mb must be between 0 and 1024, not {args.max_upload_mb}.")
    if args.threshold is not None:
        try:
            check_threshold(args.threshold, what="--threshold")
        except ValueError as err:
            raise recognition.UsageError(str(err)) from None
    path = args.db or face_db.default_path()
    if path.is_dir() or not path.absolute().parent.is_dir():
        raise face_db.FaceDBError(f"{path}: --db must name a file in an existing folder.")
    return token, path


def make_server(app: FastAPI, door: Door, watching: live.LiveWatch | None):
    """The uvicorn server; Ctrl-C/SIGTERM also end the event streams and ask the watcher to stop at once
    (uvicorn would otherwise wait for the open streams)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            door.wakeup.close()
            if watching is not None:
                watching.request_stop()
            super().handle_exit(sig, frame)

    return Server(uvicorn.Config(app, log_level="info", timeout_graceful_shutdown=5))


def serve(args) -> int:
    """``serve``: check the options, load and warm the model, then answer HTTP until Ctrl-C
    (with ``--watch SOURCE``, watching it on a thread beside the API)."""
    token, path = check_options(args)
    sock = listen(args.host, args.port)
    watching = watch_cli.prepare_live(args, path)
    try:
        embedder = recognition.load_embedder(args.model)
        door = Door(path, embedder, crop=args.crop, threshold=args.threshold, token=token, search=args.search,
                    snapshots=args.snapshots, timeout=args.timeout)
        door.warm_up()
    except BaseException:
        if watching is not None:
            watching.close()
        raise
    app = create_app(door, int(args.max_upload_mb * 2**20), watching)
    host, port = sock.getsockname()[:2]
    people = len(door.read(face_db.FaceDB.names))
    print(f"the door listens on http://{host}:{port} (model {embedder.name}, {people} people in {path}; "
          f"docs at /docs{'' if token else '; /people open to this machine: no --token-file'}"
          f"{f'; watching {watching.where}' if watching else ''})", file=sys.stderr, flush=True)
    make_server(app, door, watching).run(sockets=[sock])
    return 0
