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
#: How identify searches a gallery: "exact" (every embedding), "hnsw" (faiss graph index,
#: approximate) or "auto": HNSW from HNSW_MIN_ROWS up to HNSW_MAX_ROWS embeddings of a model,
#: exact elsewhere. The window is where HNSW's recall@1 held (0.995 at 10^5); at 10^6 it was
#: 0.675 on random vectors, and the exact search's 144 ms is the safer answer there.
SEARCH_MODES = ("auto", "exact", "hnsw")
HNSW_MIN_ROWS, HNSW_MAX_ROWS = 100_000, 200_000
#: HNSW graph degree, construction and search breadth (recall@1 vs exact: bench/identification.py).
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 192

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
"""

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
        self.timeout, self.search = timeout, search
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
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            self._check_and_init(conn)
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
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='people'").fetchone():
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif not {"people", "embeddings"} <= tables or version != SCHEMA_VERSION:
            raise CorruptDatabaseError(
                f"{self.path}: is an SQLite file but not a face database of this version "
                f"(tables {sorted(tables)}, version {version}). Pass --db with another file name.")

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
        sql = ("SELECT p.name, e.dim, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id "
               "WHERE e.model = ?")
        params: tuple = (model,)
        if name is not None:
            sql += " AND p.id = ?"
            params += (self._require(name),)
        rows = self._query(sql + " ORDER BY p.name, e.id", params)
        dims = {r[1] for r in rows}
        if len(dims) > 1:
            raise CorruptDatabaseError(self._corrupt_message(f"model {model} has dimensions {sorted(dims)}"))
        dim = dims.pop() if dims else 0
        names = sorted({r[0] for r in rows})
        index = {n: i for i, n in enumerate(names)}
        owner = np.array([index[r[0]] for r in rows], dtype=np.int64)
        E = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return names, owner, E.astype(np.float32)

    def gallery(self, model: str) -> "Gallery":
        """All embeddings of ``model`` loaded into one searchable matrix.

        Kept in memory between calls and reloaded only when the database changed: SQLite's
        ``PRAGMA data_version`` tells of other processes' commits, a counter of this one's.
        """
        version = (self._query("PRAGMA data_version")[0][0], self._writes)
        cached = self._galleries.get(model)
        if cached is not None and cached[0] == version:
            return cached[1]
        names, owner, E = self.embeddings(model)
        if not names:
            raise FaceDBError(self._nobody_message(model))
        gallery = Gallery(names, owner, E, search=self.search)
        self._galleries[model] = (version, gallery)
        return gallery

    def identify(self, queries: np.ndarray, model: str, k: int = 1) -> list[list[Match]]:
        """The ``k`` nearest people for each query (m, dim): one list of Match per query.

        A person's distance is the smallest L2 distance to any of their embeddings of
        ``model``; all distances come from one matrix operation, or from the HNSW index for
        galleries of HNSW_MIN_ROWS to HNSW_MAX_ROWS embeddings (``search`` of the FaceDB).
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        gallery = self.gallery(model)
        self._check_dim(gallery.E, queries, model)
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

    def distance(self, name: str, query: np.ndarray, model: str) -> float:
        """Smallest L2 distance from ``query`` (dim,) to ``name``'s embeddings of ``model``."""
        query = np.atleast_2d(np.asarray(query, dtype=np.float32))
        self.require(name, model)
        _, _, E = self.embeddings(model, name)
        self._check_dim(E, query, model)
        return float(_l2(query, E).min())

    def _nobody_message(self, model: str) -> str:
        models = [r[0] for r in self._query("SELECT DISTINCT model FROM embeddings")]
        if not models:
            return f"{self.path}: nobody is enrolled yet. Enrol people first (`enroll NAME PHOTO...`)."
        return (f"{self.path}: nobody is enrolled with model {model} (the database holds "
                f"{', '.join(models)}). Use --model {models[0]}, or enrol again with --model {model}.")

    def _check_dim(self, E: np.ndarray, queries: np.ndarray, model: str) -> None:
        if E.shape[1] != queries.shape[1]:
            raise FaceDBError(f"model {model}: stored embeddings have {E.shape[1]} values, "
                              f"the query has {queries.shape[1]}; they cannot be compared.")

    # -- writing -------------------------------------------------------------------------
    def enroll(self, name: str, vectors: np.ndarray, model: str, sources: list[str],
               add: bool = False) -> int:
        """Store ``vectors`` (n, dim) of ``model`` for ``name``, all in one transaction.

        ``sources`` are the photos' sha256. A new name is created; an existing one needs
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
        self.make_private()
        now = time.time()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                conn.executemany(
                    "INSERT INTO embeddings (person_id, model, dim, vector, source_sha256, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(person_id, model, vectors.shape[1], v.astype("<f4").tobytes(), s, now)
                     for v, s in zip(vectors, sources)])
                if _enroll_hook is not None:
                    _enroll_hook(self, name)
                conn.execute("COMMIT")
                self._writes += 1
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise self._translate(err) from None
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
        self.make_private()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                person_id = self._require(name)
                count = self._conn.execute("SELECT count(*) FROM embeddings WHERE person_id = ?",
                                           (person_id,)).fetchone()[0]
                self._conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
                self._conn.execute("DELETE FROM people WHERE id = ?", (person_id,))
                self._conn.execute("COMMIT")
                self._writes += 1
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise self._translate(err) from None
        return count


class Gallery:
    """Embeddings of one model in one matrix, searched without a Python loop.

    ``names`` (p,) people, ``owner`` (n,) index into ``names`` for each row of ``E`` (n, dim).
    ``search``: "exact" compares a query with every row; "hnsw" walks a faiss HNSW graph
    (approximate, built on the first search); "auto" is HNSW from HNSW_MIN_ROWS up to HNSW_MAX_ROWS rows.
    """

    def __init__(self, names: list[str], owner: np.ndarray, E: np.ndarray, search: str = "auto"):
        if search not in SEARCH_MODES:
            raise ValueError(f"search must be one of {SEARCH_MODES}, not {search!r}")
        owner = np.asarray(owner, dtype=np.int64)
        order = np.argsort(owner, kind="stable")            # group each person's rows together
        self.names, self.owner = list(names), owner[order]
        self.E = np.ascontiguousarray(E[order], dtype=np.float32)
        self._sq = (self.E.astype(np.float64) ** 2).sum(1).astype(np.float32)
        self._starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
        self._people = self.owner[self._starts]               # person of each group
        self.mode = search if search != "auto" else (
            "hnsw" if HNSW_MIN_ROWS <= len(self.E) <= HNSW_MAX_ROWS else "exact")
        self._hnsw = None

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Queries (m, dim) -> (person index (m, k), distance (m, k)), nearest first.

        A person's distance is the smallest over their rows.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if self.mode == "hnsw":
            return self._search_hnsw(queries, k)
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
        """The faiss HNSW index over E (built once; seconds per 10^5 rows). Returns it."""
        if self._hnsw is None:
            import faiss
            index = faiss.IndexHNSWFlat(self.E.shape[1], HNSW_M)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.add(self.E)
            self._hnsw = index
        return self._hnsw

    def _search_hnsw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest rows from the graph, then each person's best row: same output as the exact search."""
        index = self.build_index()
        k = min(k, len(self.names))
        rows = min(len(self.E), max(8 * k, 16))                    # room for people with several rows
        index.hnsw.efSearch = max(HNSW_EF_SEARCH, rows)
        d2, found = index.search(np.ascontiguousarray(queries), rows)   # (m, rows), squared L2, nearest first
        people = np.full((len(queries), k), -1, np.int64)
        dist = np.full((len(queries), k), np.inf, np.float32)
        for i, (row_d2, row_idx) in enumerate(zip(d2, found)):
            valid = row_idx >= 0
            owners, first = np.unique(self.owner[row_idx[valid]], return_index=True)
            best = np.argsort(first)[:k]                          # people in order of their nearest row
            people[i, :len(best)] = owners[best]
            dist[i, :len(best)] = np.sqrt(np.maximum(row_d2[valid][first[best]], 0.0))
        return people, dist


def validate_name(name: str) -> str:
    """A person's name, stripped; refuses empty names and control characters."""
    clean = str(name).strip()
    if not clean or any(ord(c) < 32 for c in clean) or len(clean) > 200:
        raise FaceDBError(f"invalid name {name!r}: use 1 to 200 printable characters.")
    return clean


def _l2(queries: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Euclidean distances (m, n) between rows of queries (m, d) and E (n, d)."""
    sq = (queries ** 2).sum(1)[:, None] + (E ** 2).sum(1)[None, :] - 2.0 * (queries @ E.T)
    return np.sqrt(np.maximum(sq, 0.0))
