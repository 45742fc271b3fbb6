"""A face database in one SQLite file: people and their face embeddings.

Each embedding row keeps the embedder's name, its dimension, the vector (float32 blob),
the sha256 of the photo it came from and the time it was added. Searches only ever compare
embeddings of the same model. The file is created with mode 0600 (it holds biometric data),
runs in WAL mode so several processes can enrol and identify at once, and every enrolment
is one transaction: all of a person's new embeddings are stored, or none. A database file
(or its -wal/-shm journal) that other users can read or write is set back to 0600 before
the next write, and ``FaceDB.notices`` says so.

    db = FaceDB("faces.db")
    db.enroll("younes", vectors, model="inception-resnet-v1", sources=[sha])   # (n, dim)
    db.identify(queries, model="inception-resnet-v1", k=3)                     # (m, dim)
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from happyhouse.data import file_sha256

#: Database used when neither ``--db`` nor this environment variable names one.
ENV_VAR = "FACE_DB"
DEFAULT_PATH = "faces.db"
SCHEMA_VERSION = 1
#: Seconds a process waits for another one's write before giving up (SQLite busy timeout).
DEFAULT_TIMEOUT = 10.0
#: How identify searches a gallery: "exact" (every embedding), "ivf" (faiss inverted-file index,
#: approximate), "hnsw" (faiss HNSW graph, approximate) or "auto": IVF from APPROX_MIN_ROWS
#: embeddings of a model, exact below. Recall@1 against the exact search and speed are measured in
#: bench/identification.py: IVF held recall >= 0.99 at 10^5 and 10^6 x 512 (4 ms at 10^6, exact 144 ms);
#: HNSW's fell to 0.675 at 10^6 on random vectors and took 20 minutes to build, so auto never picks it.
SEARCH_MODES = ("auto", "exact", "ivf", "hnsw")
APPROX_MIN_ROWS = 100_000
#: IVF: about 4 sqrt(n) lists (a power of two), a quarter of them scanned per query on d/8 4-bit
#: product-quantiser codes (faiss fast scan), the best IVF_REFINE rows re-ranked by exact distance.
IVF_PROBE_FRACTION, IVF_REFINE = 0.25, 16
#: IVF training: k-means on IVF_TRAIN_PER_LIST random rows per list, IVF_TRAIN_ITERATIONS rounds.
IVF_TRAIN_PER_LIST, IVF_TRAIN_ITERATIONS = 40, 10
#: HNSW graph degree, construction and search breadth.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 192
#: An index is updated in place after enrolments and deletions (FaceDB.gallery) unless the change
#: adds or deletes more than this share of its rows; then it is rebuilt.
INDEX_REBUILD_SHARE = 0.2

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    id            INTEGER PRIMARY KEY,
    person_id     INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,
    dim           INTEGER NOT NULL CHECK (dim > 0),
    vector        BLOB NOT NULL CHECK (length(vector) = 4 * dim),
    source_sha256 TEXT NOT NULL,
    created       REAL NOT NULL,
    UNIQUE (person_id, model, source_sha256)
);
CREATE INDEX IF NOT EXISTS embeddings_by_model ON embeddings (model, person_id);
CREATE INDEX IF NOT EXISTS embeddings_by_time ON embeddings (model, created);
"""
#: Added after version 1 without changing it (older code ignores it): lets a large gallery's
#: index find the rows added and deleted since it was loaded without reading every vector.
ROWS_INDEX = "CREATE INDEX IF NOT EXISTS embeddings_by_time ON embeddings (model, created)"
#: Added after version 1 the same way (issue 22): the enrolment checks' verdict on each stored photo.
#: ``status``: "ok" (passed), "forced" (failed, stored with --force), "flagged" (found failing by an
#: audit, e.g. a photo stored before the checks existed); ``report``: the checks as JSON. A row
#: without a verdict was stored before the checks existed and is audited on the next open.
CHECKS_TABLE = """CREATE TABLE IF NOT EXISTS photo_checks (
    embedding_id INTEGER PRIMARY KEY REFERENCES embeddings(id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('ok', 'forced', 'flagged')),
    report       TEXT NOT NULL,
    checked      REAL NOT NULL
)"""
#: The status of a photo that passed the checks; any other (``forced``, ``flagged``) or none (never
#: audited) opens the door only with another photo agreeing (recognition.judge).
CHECKED = "ok"

# Called inside the enrolment transaction after the rows are written and before COMMIT.
# Only tests set it (to kill a process at exactly that point); production leaves it None.
_enroll_hook = None


class FaceDBError(RuntimeError):
    """The face database cannot do what was asked; the message says why and what to do."""


class DatabaseLockedError(FaceDBError):
    """Another process held the database longer than the busy timeout."""


class CorruptDatabaseError(FaceDBError):
    """The file is not a face database, or its pages are damaged."""


class UnknownNameError(FaceDBError, KeyError):
    """No person of that name is enrolled."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


class DuplicateEnrollmentError(FaceDBError):
    """The person, or the same photo, is already enrolled."""


@dataclass(frozen=True)
class Match:
    """One candidate for a query face: the person and the smallest L2 distance to them."""
    name: str
    distance: float


#: Hex sha256 of a file's bytes (the source hash stored with each embedding).
sha256_of = file_sha256


def default_path() -> Path:
    """``$FACE_DB`` if set, else ``faces.db`` in the current folder."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


class FaceDB:
    """A face database file. ``create=False`` refuses to make a new file (read commands)."""

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, search: str = "auto"):
        self.path = Path(path) if path is not None else default_path()
        self.timeout, self.search, self.create = timeout, search, create
        if self.path.is_dir():
            raise FaceDBError(f"{self.path}: is a folder; --db must name a database file.")
        if not self.path.exists():
            if not create:
                raise FaceDBError(f"{self.path}: no face database here yet. "
                                  "Enrol someone first (`enroll NAME PHOTO...`), or pass --db.")
            self._create_private_file()
        self.notices: list[str] = []  # what was done on the user's behalf (e.g. permissions fixed)
        self._galleries: dict = {}   # model -> ((data_version, own writes), Gallery)
        self._writes = 0             # commits made through this connection
        self._conn = self._connect()

    # -- opening -------------------------------------------------------------------------
    def _create_private_file(self) -> None:
        if not self.path.parent.is_dir():
            raise FaceDBError(f"{self.path}: folder {self.path.parent} does not exist.")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # another process created it first
        except OSError as err:
            raise FaceDBError(f"{self.path}: cannot create the database ({err.strerror}).") from None
        os.close(fd)
        os.chmod(self.path, 0o600)  # whatever the umask

    def make_private(self) -> list[str]:
        """Set the database file and its journal files back to 0600 where others could use them.

        Returns (and adds to ``notices``) one message per file changed. Called before each write.
        """
        import stat
        changed = []
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                continue
            if mode & 0o077:
                try:
                    os.chmod(path, 0o600)
                except OSError as err:
                    raise FaceDBError(f"{path}: other users can access it (mode {mode:04o}) and it cannot be "
                                      f"made private ({err.strerror}); nothing was written. "
                                      f"Run `chmod 600 {path}`.") from None
                changed.append(f"{path} was readable by others (mode {mode:04o}, it holds biometric data); "
                               "set it back to 0600.")
        self.notices += changed
        return changed

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise FaceDBError(f"{self.path}: cannot open the database ({err}).") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._check_and_init(conn)  # first: a foreign file is refused before anything is written to it
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as err:
            conn.close()
            raise self._translate(err) from None
        except FaceDBError:
            conn.close()
            raise
        return conn

    def _check_and_init(self, conn: sqlite3.Connection) -> None:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CorruptDatabaseError(self._corrupt_message("; ".join(problems[:3])))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if not tables and not self.create:
            raise FaceDBError(f"{self.path}: holds no face database yet (an SQLite file without tables). "
                              "Enrol someone first (`enroll NAME PHOTO...`), or pass --db.")
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='people'").fetchone():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(CHECKS_TABLE)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif not {"people", "embeddings"} <= tables or version != SCHEMA_VERSION:
            raise CorruptDatabaseError(
                f"{self.path}: is an SQLite file but not a face database of this version "
                f"(tables {sorted(tables)}, version {version}). Pass --db with another file name.")
        else:
            for name, statement in (("embeddings_by_time", ROWS_INDEX), ("photo_checks", CHECKS_TABLE)):
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone():
                    try:
                        conn.execute(statement)   # a file from before it: add it once
                    except sqlite3.OperationalError:
                        pass                      # read-only or busy: without it, as before

    def _corrupt_message(self, detail: str) -> str:
        return (f"{self.path}: the face database is corrupt or not a database ({detail}). "
                "Nothing was changed. Restore it from a backup, or move it away and enrol again.")

    def _translate(self, err: sqlite3.Error) -> FaceDBError:
        text = str(err)
        if "locked" in text or "busy" in text:
            return DatabaseLockedError(
                f"{self.path}: the database is locked by another process (waited {self.timeout:g} s). "
                "Nothing was changed. Try again when the other enrolment has finished.")
        if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError) \
                or "malformed" in text or "not a database" in text:
            return CorruptDatabaseError(self._corrupt_message(text))
        if "unable to open" in text or "readonly" in text:
            return FaceDBError(f"{self.path}: cannot be opened for reading and writing ({text}). The database "
                               f"needs to write beside it (its -wal and -shm files): make {self.path.parent} "
                               "writable, or copy the file to a folder you can write to.")
        return FaceDBError(f"{self.path}: database error ({text}).")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading -------------------------------------------------------------------------
    def _query(self, sql: str, params=()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise self._translate(err) from None

    def names(self) -> list[str]:
        """Every enrolled name, sorted."""
        return [r[0] for r in self._query("SELECT name FROM people ORDER BY name")]

    def people(self) -> list[dict]:
        """One dict per person: name, created time, and embedding counts per model."""
        rows = self._query(
            "SELECT p.name, p.created, e.model, e.dim, count(e.id) FROM people p "
            "LEFT JOIN embeddings e ON e.person_id = p.id GROUP BY p.id, e.model ORDER BY p.name, e.model")
        out: dict[str, dict] = {}
        for name, created, model, dim, count in rows:
            person = out.setdefault(name, {"name": name, "created": created, "models": {}})
            if model is not None:
                person["models"][model] = {"dim": dim, "embeddings": count}
        return list(out.values())

    def _require(self, name: str) -> int:
        row = self._query("SELECT id FROM people WHERE name = ?", (name,))
        if not row:
            known = ", ".join(self.names()) or "nobody yet"
            raise UnknownNameError(f"{name!r} is not enrolled in {self.path}. Enrolled: {known}.")
        return row[0][0]

    def embeddings(self, model: str, name: str | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """All embeddings of ``model`` (optionally one person's) as one matrix.

        Returns (names, owner, E): ``names`` the people, ``owner`` (n,) int index into
        ``names`` for each row of ``E`` (n, dim) float32.
        """
        row_names, E, _, _ = self._rows(model, name=name)
        return (*_people_of(row_names), E)

    def _rows(self, model: str, name: str | None = None, ids=None) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                           np.ndarray]:
        """Embedding rows of ``model`` (all, one person's, or those of row ``ids``), ordered by name and id.

        Returns (person name of each row, E (n, dim) float32, row ids (n,), created times (n,)).
        """
        sql = ("SELECT p.name, e.dim, e.vector, e.id, e.created FROM embeddings e "
               "JOIN people p ON p.id = e.person_id WHERE e.model = ?")
        if name is not None:
            rows = self._query(sql + " AND p.id = ? ORDER BY p.name, e.id", (model, self._require(name)))
        elif ids is None:
            rows = self._query(sql + " ORDER BY p.name, e.id", (model,))
        else:
            ids = [int(i) for i in ids]
            rows = [r for at in range(0, len(ids), 500) for r in self._query(
                sql + f" AND e.id IN ({','.join('?' * len(ids[at:at + 500]))})", (model, *ids[at:at + 500]))]
        dims = {r[1] for r in rows}
        if len(dims) > 1:
            raise CorruptDatabaseError(self._corrupt_message(f"model {model} has dimensions {sorted(dims)}"))
        dim = dims.pop() if dims else 0
        E = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return ([r[0] for r in rows], E.astype(np.float32), np.array([r[3] for r in rows], np.int64),
                np.array([r[4] for r in rows], np.float64))

    def gallery(self, model: str) -> "Gallery":
        """All embeddings of ``model`` loaded into one searchable matrix or index.

        Kept in memory between calls and refreshed only when the database changed: SQLite's
        ``PRAGMA data_version`` tells of other processes' commits, a counter of this one's. A built
        index (large galleries) is updated in place with the rows added and deleted since.
        """
        version = (self._query("PRAGMA data_version")[0][0], self._writes)
        cached = self._galleries.get(model)
        if cached is not None and cached[0] == version:
            return cached[1]
        if cached is not None and cached[1].indexed and self._update_in_place(cached[1], model):
            gallery = cached[1]
        else:
            self._galleries.pop(model, None)                     # free the old one before loading
            row_names, E, row_ids, created = self._rows(model)
            if not row_names:
                raise FaceDBError(self._nobody_message(model))
            gallery = Gallery(*_people_of(row_names), E, search=self.search, row_ids=row_ids, created=created)
        self._galleries[model] = (version, gallery)
        return gallery

    def _update_in_place(self, gallery: "Gallery", model: str) -> bool:
        """Bring ``gallery``'s index up to date with the rows added and deleted since it was loaded.

        A row is the same when its id and creation time are. Returns False (the caller reloads
        everything) when the change is more than INDEX_REBUILD_SHARE of the rows, or nothing is left.
        """
        rows = self._query("SELECT id, created FROM embeddings WHERE model = ?", (model,))
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        created = np.fromiter((r[1] for r in rows), np.float64, len(rows))
        live = np.flatnonzero(~gallery._dead)
        _, at_live, at_db = np.intersect1d(gallery.row_ids[live], ids, assume_unique=True, return_indices=True)
        same = gallery.created[live[at_live]] == created[at_db]
        kept = np.zeros(len(live), bool)
        kept[at_live[same]] = True
        known = np.zeros(len(ids), bool)
        known[at_db[same]] = True
        dead, new_ids = live[~kept], ids[~known]
        if not len(ids) or len(dead) + len(new_ids) > INDEX_REBUILD_SHARE * len(live):
            return False
        if len(new_ids):
            row_names, E, row_ids, row_created = self._rows(model, ids=new_ids)
            if E.shape[1] != gallery.dim:
                return False                                   # the full load reports the mixed dimensions
        else:
            row_names, E, row_ids, row_created = [], np.empty((0, gallery.dim), np.float32), [], []
        gallery.update(dead, row_names, E, row_ids, row_created)
        return True

    def identify(self, queries: np.ndarray, model: str, k: int = 1) -> list[list[Match]]:
        """The ``k`` nearest people for each query (m, dim): one list of Match per query.

        A person's distance is the smallest L2 distance to any of their embeddings of
        ``model``; all distances come from one matrix operation, or from the IVF index for
        galleries of APPROX_MIN_ROWS embeddings or more (``search`` of the FaceDB).
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        gallery = self.gallery(model)
        self._require_dim(gallery.dim, queries.shape[1], model)
        idx, dist = gallery.search(queries, k)
        return [[Match(gallery.names[j], float(d)) for j, d in zip(row, drow) if j >= 0]  # HNSW may find fewer
                for row, drow in zip(idx, dist)]

    def require(self, name: str, model: str | None = None) -> None:
        """Raise UnknownNameError, or FaceDBError when ``name`` has no embeddings of ``model``."""
        person_id = self._require(name)
        if model is None:
            return
        models = [r[0] for r in self._query("SELECT DISTINCT model FROM embeddings WHERE person_id = ?",
                                             (person_id,))]
        if model not in models:
            raise FaceDBError(f"{name!r} has no embeddings for model {model} (enrolled with "
                              f"{', '.join(models) or 'none'}); use --model {models[0] if models else model} "
                              f"or enrol them again with --model {model}.")

    def person_rows(self, name: str, model: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``name``'s embeddings of ``model``: (row ids (n,), E (n, dim)); FaceDBError when ``dim`` is given
        and the stored rows have another."""
        self.require(name, model)
        _, E, ids, _ = self._rows(model, name=name)
        self._require_dim(E.shape[1], dim, model)
        return ids, E

    def rows(self, model: str, dim: int | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Every embedding of ``model``: (person name of each row (n,), E (n, dim), row ids (n,));
        FaceDBError when ``dim`` is given and the stored rows have another."""
        names, E, ids, _ = self._rows(model)
        self._require_dim(E.shape[1], dim, model)
        return names, E, ids

    def statuses(self, model: str) -> dict[int, str]:
        """Row id -> the enrolment checks' status ("ok", "forced", "flagged") for rows of ``model`` that
        have one (rows stored before the checks existed have none until audited)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE name = 'photo_checks'"):
            return {}
        return dict(self._query("SELECT c.embedding_id, c.status FROM photo_checks c JOIN embeddings e "
                                "ON e.id = c.embedding_id WHERE e.model = ?", (model,)))

    def reports(self, model: str) -> dict[int, dict]:
        """Row id -> the stored checks' report (JSON dict) for rows of ``model`` that have one."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE name = 'photo_checks'"):
            return {}
        return {i: json.loads(r) for i, r in self._query(
            "SELECT c.embedding_id, c.report FROM photo_checks c JOIN embeddings e ON e.id = c.embedding_id "
            "WHERE e.model = ?", (model,))}

    def checks(self, ids) -> dict[int, tuple[str, str | None]]:
        """Row id -> (the enrolment checks' status, the crop path its report names or None), for rows of
        ``ids`` that have a verdict, in one query."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE name = 'photo_checks'"):
            return {}
        ids = [int(i) for i in ids]
        return {i: (status, crop) for at in range(0, len(ids), 500) for i, status, crop in self._query(
            "SELECT embedding_id, status, json_extract(report, '$.crop') FROM photo_checks WHERE embedding_id IN "
            f"({','.join('?' * len(ids[at:at + 500]))})", tuple(ids[at:at + 500]))}

    def unchecked(self, model: str) -> list[int]:
        """Row ids of ``model`` with no verdict yet (stored before the enrolment checks existed)."""
        if not self._query("SELECT 1 FROM sqlite_master WHERE name = 'photo_checks'"):
            return [r[0] for r in self._query("SELECT id FROM embeddings WHERE model = ?", (model,))]
        return [r[0] for r in self._query("SELECT e.id FROM embeddings e LEFT JOIN photo_checks c "
                                          "ON c.embedding_id = e.id WHERE e.model = ? AND c.embedding_id IS NULL",
                                          (model,))]

    @contextlib.contextmanager
    def _write_transaction(self):
        """One write: the file made private, BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error (nothing
        half-stored); SQLite's errors become FaceDBError. Yields the connection."""
        self.make_private()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._writes += 1
        except sqlite3.Error as err:
            raise self._translate(err) from None

    def set_statuses(self, verdicts: list[tuple[int, str, str]]) -> None:
        """Store (row id, status, JSON report) verdicts in one transaction (an audit's); rows are never removed."""
        with self._write_transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO photo_checks VALUES (?, ?, ?, ?)",
                             [(int(i), st, rep, time.time()) for i, st, rep in verdicts])

    def distance(self, name: str, query: np.ndarray, model: str) -> float:
        """Smallest L2 distance from ``query`` (dim,) to ``name``'s embeddings of ``model``."""
        query = np.atleast_2d(np.asarray(query, dtype=np.float32))
        self.require(name, model)
        _, _, E = self.embeddings(model, name)
        self._require_dim(E.shape[1], query.shape[1], model)
        return float(_l2(query, E).min())

    def _nobody_message(self, model: str) -> str:
        models = [r[0] for r in self._query("SELECT DISTINCT model FROM embeddings")]
        if not models:
            return f"{self.path}: nobody is enrolled yet. Enrol people first (`enroll NAME PHOTO...`)."
        return (f"{self.path}: nobody is enrolled with model {model} (the database holds "
                f"{', '.join(models)}). Use --model {models[0]}, or enrol again with --model {model}.")

    def _require_dim(self, stored: int, given: int | None, model: str) -> None:
        """FaceDBError when ``model``'s stored rows (``stored`` values each; 0: none) cannot meet embeddings
        of ``given`` values (None: not checked)."""
        if given is not None and stored and stored != given:
            raise FaceDBError(f"{self.path}: model {model}: stored embeddings have {stored} values, "
                              f"the query has {given}; they cannot be compared (the database was written "
                              "by another model of that name). Enrol again into a new --db.")

    # -- writing -------------------------------------------------------------------------
    def enroll(self, name: str, vectors: np.ndarray, model: str, sources: list[str],
               add: bool = False, checks: list[tuple[str, str]] | None = None) -> int:
        """Store ``vectors`` (n, dim) of ``model`` for ``name``, all in one transaction.

        ``sources`` are the photos' sha256; ``checks`` (status, JSON report) per photo, the
        enrolment checks' verdicts, stored in the same transaction. A new name is created; an existing one needs
        ``add=True``. A photo already enrolled (for anyone, same model) is refused.
        Returns the number of embeddings stored.
        """
        name = validate_name(name)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0 or vectors.shape[1] == 0:
            raise FaceDBError(f"enrolment of {name!r}: expected an (n, dim) array of embeddings, got {vectors.shape}.")
        if len(sources) != len(vectors):
            raise FaceDBError(f"enrolment of {name!r}: {len(vectors)} embeddings but {len(sources)} source hashes.")
        if not np.all(np.isfinite(vectors)):
            raise FaceDBError(f"enrolment of {name!r}: an embedding holds NaN or infinity; nothing stored.")
        if len(set(sources)) != len(sources):
            raise DuplicateEnrollmentError(f"enrolment of {name!r}: the same photo is given twice; nothing stored.")
        now = time.time()
        with self._write_transaction() as conn:
            row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row and not add:
                raise DuplicateEnrollmentError(
                    f"{name!r} is already enrolled in {self.path}. Nothing was stored. "
                    f"To add photos use `enroll --add {name} PHOTO...`; to start over, `remove {name}` first.")
            self._refuse_known_photos(conn, name, model, sources)
            dims = conn.execute("SELECT DISTINCT dim FROM embeddings WHERE model = ?", (model,)).fetchall()
            if dims and dims[0][0] != vectors.shape[1]:
                raise FaceDBError(f"model {model} is stored with {dims[0][0]} values per embedding, "
                                  f"these have {vectors.shape[1]}; nothing stored.")
            person_id = row[0] if row else conn.execute(
                "INSERT INTO people (name, created) VALUES (?, ?)", (name, now)).lastrowid
            for k, (v, s) in enumerate(zip(vectors, sources)):
                row = conn.execute(
                    "INSERT INTO embeddings (person_id, model, dim, vector, source_sha256, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (person_id, model, vectors.shape[1], v.astype("<f4").tobytes(),
                                                  s, now)).lastrowid
                if checks is not None:
                    conn.execute("INSERT INTO photo_checks VALUES (?, ?, ?, ?)", (row, *checks[k], now))
            if _enroll_hook is not None:
                _enroll_hook(self, name)
        return len(vectors)

    def _refuse_known_photos(self, conn, name, model, sources) -> None:
        marks = ",".join("?" * len(sources))
        seen = conn.execute(
            f"SELECT p.name, e.source_sha256 FROM embeddings e JOIN people p ON p.id = e.person_id "
            f"WHERE e.model = ? AND e.source_sha256 IN ({marks})", (model, *sources)).fetchall()
        if seen:
            who, sha = seen[0]
            raise DuplicateEnrollmentError(
                f"photo {sha[:12]}... is already enrolled as {who!r} (model {model}); "
                f"nothing was stored for {name!r}. Leave that photo out.")

    def remove(self, name: str) -> int:
        """Delete ``name`` and all their embeddings; returns how many embeddings went."""
        with self._write_transaction() as conn:
            person_id = self._require(name)
            count = conn.execute("SELECT count(*) FROM embeddings WHERE person_id = ?", (person_id,)).fetchone()[0]
            conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
            conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return count


class Gallery:
    """Embeddings of one model, searched without a Python loop.

    ``names`` (p,) people, ``owner`` (n,) index into ``names`` for each row of ``E`` (n, dim);
    ``row_ids`` and ``created`` (n,) say which database rows they are (for updates in place).
    ``search``: "exact" compares a query with every row; "ivf" and "hnsw" search a faiss index
    (approximate, built on the first search; the rows then live only in the index); "auto" is
    IVF from APPROX_MIN_ROWS rows, exact below.
    """

    def __init__(self, names: list[str], owner: np.ndarray, E: np.ndarray, search: str = "auto",
                 row_ids: np.ndarray | None = None, created: np.ndarray | None = None):
        if search not in SEARCH_MODES:
            raise ValueError(f"search must be one of {SEARCH_MODES}, not {search!r}")
        owner = np.asarray(owner, dtype=np.int64)
        order = np.argsort(owner, kind="stable")            # group each person's rows together
        self.names, self.owner = list(names), owner[order]
        self.E = np.ascontiguousarray(E[order], dtype=np.float32)
        self.dim = self.E.shape[1]
        n = len(self.E)
        self.row_ids = (np.arange(n) if row_ids is None else np.asarray(row_ids, np.int64)[order])
        self.created = (np.zeros(n) if created is None else np.asarray(created, np.float64)[order])
        self.mode = search if search != "auto" else ("ivf" if n >= APPROX_MIN_ROWS else "exact")
        self._index = None
        self._dead = np.zeros(n, bool)        # rows deleted since the index was built
        self._params = None                   # faiss search parameters (probes, deleted rows)
        self._position = None                 # name -> index into names, built on the first update
        self._faiss_refs = ()                 # faiss objects the search parameters point to
        if self.mode == "exact":
            self._sq = (self.E.astype(np.float64) ** 2).sum(1).astype(np.float32)
            self._starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
            self._people = self.owner[self._starts]           # person of each group

    def __len__(self) -> int:
        """Rows searched (deleted ones excluded)."""
        return len(self.owner) - int(self._dead.sum())

    @property
    def indexed(self) -> bool:
        """True once an approximate index is built (it can then be updated in place)."""
        return self._index is not None

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Queries (m, dim) -> (person index (m, k), distance (m, k)), nearest first.

        A person's distance is the smallest over their rows. An approximate search may find fewer
        than k people (index -1, distance inf).
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if self.mode != "exact":
            return self._search_index(queries, k)
        d2 = self._sq - 2.0 * (queries @ self.E.T)                # (m, n): squared distance - |q|^2
        if len(self._starts) != len(self.E):
            d2 = np.minimum.reduceat(d2, self._starts, axis=1)    # (m, people)
        k = min(k, d2.shape[1])
        if k == 1:
            top = d2.argmin(axis=1)[:, None]
        elif k < d2.shape[1]:
            top = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(d2.shape[1]), (len(d2), 1))
        q_sq = np.einsum("ij,ij->i", queries, queries)[:, None]
        top_d = np.sqrt(np.maximum(np.take_along_axis(d2, top, axis=1) + q_sq, 0.0))  # only k square roots
        order = np.argsort(top_d, axis=1, kind="stable")
        return self._people[np.take_along_axis(top, order, axis=1)], np.take_along_axis(top_d, order, axis=1)

    def build_index(self):
        """The faiss index over E (IVF: a minute per 10^6 rows; HNSW: 20). Returns it."""
        if self._index is None and self.mode != "exact":
            import faiss
            n, d = self.E.shape
            if self.mode == "hnsw":
                index = faiss.IndexHNSWFlat(d, HNSW_M)
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            else:
                nlist = ivf_lists(n)
                # fast scan needs an even count of 8-d parts, and 39 rows for each of a part's 16 centres
                codes = f"PQ{d // 8}x4fs" if d % 16 == 0 and n >= 39 * 16 else "Flat"
                index = faiss.index_factory(d, f"IVF{nlist},{codes},RFlat")
                sample = np.random.default_rng(0).permutation(n)[:IVF_TRAIN_PER_LIST * nlist]
                faiss.extract_index_ivf(index).cp.niter = IVF_TRAIN_ITERATIONS
                index.train(self.E[np.sort(sample)])
                faiss.extract_index_ivf(index).parallel_mode = 1    # one query's lists on every core
            index.add(self.E)
            self._index, self.E = index, None      # the index holds the rows now
            self._set_params()
        return self._index

    def _set_params(self) -> None:
        """faiss search parameters: breadth, and the deleted rows left out."""
        import faiss
        dead = np.flatnonzero(self._dead).astype(np.int64)
        batch = faiss.IDSelectorBatch(dead) if len(dead) else None
        sel = faiss.IDSelectorNot(batch) if batch is not None else None
        if self.mode == "hnsw":
            inner = None
            self._params = faiss.SearchParametersHNSW(efSearch=HNSW_EF_SEARCH, sel=sel)
        else:
            nprobe = max(1, int(faiss.extract_index_ivf(self._index).nlist * IVF_PROBE_FRACTION))
            inner = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
            self._params = faiss.IndexRefineSearchParameters(k_factor=IVF_REFINE, base_index_params=inner)
        # SWIG keeps only pointers to nested objects: hold every one as long as the parameters
        self._faiss_refs = (batch, sel, inner)

    def update(self, dead_rows: np.ndarray, names: list[str], E: np.ndarray,
               row_ids: np.ndarray, created: np.ndarray) -> None:
        """Change a built index in place: rows at positions ``dead_rows`` deleted, rows ``E`` (n, dim)
        of people ``names`` (n,) added with their ``row_ids`` and ``created`` (n,)."""
        index = self.build_index()
        self._dead[np.asarray(dead_rows, np.int64)] = True
        if len(E):
            if self._position is None:                        # name -> index, kept for later updates
                self._position = {name: i for i, name in enumerate(self.names)}
            position = self._position
            for name in names:
                if name not in position:
                    position[name] = len(self.names)
                    self.names.append(name)
            self.owner = np.r_[self.owner, [position[name] for name in names]].astype(np.int64)
            self.row_ids = np.r_[self.row_ids, row_ids].astype(np.int64)
            self.created = np.r_[self.created, created].astype(np.float64)
            self._dead = np.r_[self._dead, np.zeros(len(E), bool)]
            index.add(np.ascontiguousarray(E, dtype=np.float32))
        self._set_params()

    def _search_index(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest rows from the index, then each person's best row: same output as the exact search."""
        index = self.build_index()
        k = min(k, len(self.names))
        rows = 1 if k == 1 else min(len(self.owner), max(8 * k, 16))   # room for people with several rows
        if self.mode == "hnsw":
            self._params.efSearch = max(HNSW_EF_SEARCH, rows)
        else:       # re-rank IVF_REFINE candidates for the nearest row, fewer per row when more are asked
            self._params.k_factor = max(2.0, IVF_REFINE / rows)
        d2, found = index.search(np.ascontiguousarray(queries), rows, params=self._params)  # squared L2
        people = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        for i, (row_d2, row_idx) in enumerate(zip(d2, found)):
            valid = row_idx >= 0
            owners, first = np.unique(self.owner[row_idx[valid]], return_index=True)
            best = np.argsort(first)[:k]                          # people in order of their nearest row
            people[i, :len(best)] = owners[best]
            dist[i, :len(best)] = np.sqrt(np.maximum(row_d2[valid][first[best]], 0.0))
        return people, dist


def ivf_lists(rows: int) -> int:
    """Inverted lists for an IVF index of ``rows`` vectors: the power of two nearest 4 sqrt(rows),
    with at least 39 rows to train each list's centre (faiss's minimum)."""
    return max(1, min(2 ** int(np.round(np.log2(4 * np.sqrt(max(rows, 1))))), rows // 39))


def _people_of(row_names: list[str]) -> tuple[list[str], np.ndarray]:
    """The sorted people (p,) and, for each row, its person's index (n,)."""
    names = sorted(set(row_names))
    index = {n: i for i, n in enumerate(names)}
    return names, np.array([index[n] for n in row_names], dtype=np.int64)


def validate_name(name: str) -> str:
    """A person's name, stripped; refuses empty names and characters that do not print (control and
    format characters such as a right-to-left override, which would show another name than is stored)."""
    clean = str(name).strip()
    if not clean or not clean.isprintable() or len(clean) > 200:
        raise FaceDBError(f"invalid name {name!r}: use 1 to 200 printable characters.")
    return clean


def _l2(queries: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Euclidean distances (m, n) between rows of queries (m, d) and E (n, d)."""
    sq = (queries ** 2).sum(1)[:, None] + (E ** 2).sum(1)[None, :] - 2.0 * (queries @ E.T)
    return np.sqrt(np.maximum(sq, 0.0))
