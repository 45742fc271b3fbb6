"""happyhouse.door.face_db: the SQLite face database (no TensorFlow here: fast).

Concurrency and crash safety run real separate processes on one database file.
"""
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from happyhouse.door import face_db
from happyhouse.door.face_db import FaceDB

ROOT = Path(__file__).resolve().parents[2]


def unit(rng, n, dim=16):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def shas(prefix, n):
    return [f"{prefix}-{i:04d}".ljust(64, "0") for i in range(n)]


@pytest.fixture
def db(tmp_path):
    with FaceDB(tmp_path / "faces.db") as d:
        yield d


def test_file_is_private_and_wal(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "faces.db"
        with FaceDB(path) as d:
            d.enroll("ann", unit(np.random.default_rng(0), 2), "m", shas("a", 2))
            mode = d._conn.execute("PRAGMA journal_mode").fetchone()[0]
            side_files = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
            side_modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in side_files}
        assert mode == "wal"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert side_files, "WAL mode keeps -wal/-shm files while a connection is open"
        assert set(side_modes.values()) == {0o600}, side_modes
    finally:
        os.umask(old)


def test_files_others_can_use_are_made_private_before_the_next_write(tmp_path):
    path = tmp_path / "faces.db"
    with FaceDB(path) as d:
        d.enroll("ann", unit(np.random.default_rng(0), 1), "m", shas("a", 1))
        side = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
        for p in [path, *side]:
            os.chmod(p, 0o644)
        assert d.names() == ["ann"] and d.notices == []             # reading leaves the modes alone
        d.enroll("bob", unit(np.random.default_rng(1), 1), "m", shas("b", 1))
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *side]} == \
            {p.name: 0o600 for p in [path, *side]}
        assert len(d.notices) == 1 + len(side) and "mode 0644" in d.notices[0]
        assert d.make_private() == []                               # nothing left to fix


def test_enroll_identify_top_k_matches_brute_force(db):
    rng = np.random.default_rng(1)
    people = {f"p{i}": unit(rng, 1 + i % 3) for i in range(12)}
    for name, vectors in people.items():
        assert db.enroll(name, vectors, "m", shas(name, len(vectors))) == len(vectors)
    queries = unit(rng, 5)
    got = db.identify(queries, "m", k=3)
    for q, matches in zip(queries, got):
        brute = sorted((float(np.linalg.norm(v - q, axis=1).min()), n) for n, v in people.items())[:3]
        assert [m.name for m in matches] == [n for _, n in brute]
        np.testing.assert_allclose([m.distance for m in matches], [d for d, _ in brute], atol=1e-5)
    # an enrolled vector finds its owner at distance ~0
    assert db.identify(people["p4"][1:2], "m")[0][0].name == "p4"
    assert db.identify(people["p4"][1:2], "m")[0][0].distance < 1e-3


def test_models_never_mixed(db):
    rng = np.random.default_rng(2)
    db.enroll("ann", unit(rng, 1, 16), "model-a", shas("a", 1))
    db.enroll("bob", unit(rng, 1, 8), "model-b", shas("b", 1))
    assert [m.name for m in db.identify(unit(rng, 1, 8), "model-b", k=5)[0]] == ["bob"]
    with pytest.raises(face_db.FaceDBError, match="no embeddings for model model-b"):
        db.distance("ann", unit(rng, 1, 8)[0], "model-b")
    with pytest.raises(face_db.FaceDBError, match="nobody is enrolled with model model-c"):
        db.identify(unit(rng, 1, 8), "model-c")
    with pytest.raises(face_db.FaceDBError, match="cannot be compared"):
        db.identify(unit(rng, 1, 4), "model-b")
    with pytest.raises(face_db.FaceDBError, match="stored with 16 values"):
        db.enroll("cid", unit(rng, 1, 4), "model-a", shas("c", 1))
    assert db.names() == ["ann", "bob"]


def test_duplicates_refused_and_nothing_written(db):
    rng = np.random.default_rng(3)
    db.enroll("ann", unit(rng, 2), "m", shas("a", 2))
    before = db.people()
    with pytest.raises(face_db.DuplicateEnrollmentError, match="already enrolled.*--add"):
        db.enroll("ann", unit(rng, 1), "m", shas("new", 1))
    with pytest.raises(face_db.DuplicateEnrollmentError, match="already enrolled as 'ann'"):
        db.enroll("bob", unit(rng, 2), "m", [shas("new", 1)[0], shas("a", 1)[0]])
    with pytest.raises(face_db.DuplicateEnrollmentError, match="same photo is given twice"):
        db.enroll("bob", unit(rng, 2), "m", shas("x", 1) * 2)
    assert db.people() == before  # bob not half-created
    assert db.enroll("ann", unit(rng, 1), "m", shas("more", 1), add=True) == 1
    assert db.people()[0]["models"]["m"]["embeddings"] == 3


def test_unknown_name_lists_known_ones(db):
    db.enroll("ann", unit(np.random.default_rng(4), 1), "m", shas("a", 1))
    with pytest.raises(face_db.UnknownNameError, match=r"'zed' is not enrolled.*Enrolled: ann\."):
        db.remove("zed")
    with pytest.raises(face_db.UnknownNameError, match="'zed' is not enrolled"):
        db.distance("zed", np.zeros(16, np.float32), "m")
    assert db.remove("ann") == 1
    assert db.names() == []
    assert db._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "x" * 201])
def test_bad_names(db, bad):
    with pytest.raises(face_db.FaceDBError, match="invalid name"):
        db.enroll(bad, np.ones((1, 4), np.float32), "m", shas("a", 1))


def test_bad_vectors_refused(db):
    with pytest.raises(face_db.FaceDBError, match="NaN"):
        db.enroll("ann", np.full((1, 4), np.nan, np.float32), "m", shas("a", 1))
    with pytest.raises(face_db.FaceDBError, match="source hashes"):
        db.enroll("ann", np.ones((2, 4), np.float32), "m", shas("a", 1))
    assert db.names() == []


def test_read_commands_do_not_create_a_file(tmp_path):
    path = tmp_path / "none.db"
    with pytest.raises(face_db.FaceDBError, match="no face database here yet"):
        FaceDB(path, create=False)
    assert not path.exists()
    with pytest.raises(face_db.FaceDBError, match="is a folder"):
        FaceDB(tmp_path)


def test_locked_database_gives_clear_error(tmp_path):
    path = tmp_path / "faces.db"
    rng = np.random.default_rng(5)
    with FaceDB(path) as d:
        d.enroll("ann", unit(rng, 1), "m", shas("a", 1))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with FaceDB(path, timeout=0.2) as d:
            with pytest.raises(face_db.DatabaseLockedError, match="locked by another process.*Nothing was changed"):
                d.enroll("bob", unit(rng, 1), "m", shas("b", 1))
            assert d.names() == ["ann"]  # readers still work under WAL
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def corrupt_copies(tmp_path):
    """A garbage file, and a real database with its pages overwritten."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite " * 300)
    damaged = tmp_path / "damaged.db"
    with FaceDB(damaged) as d:
        rng = np.random.default_rng(6)
        for i in range(30):
            d.enroll(f"p{i}", unit(rng, 4, 128), "m", shas(f"p{i}", 4))
    data = bytearray(damaged.read_bytes())
    page = 4096
    data[page:len(data)] = os.urandom(len(data) - page)  # keep the header, wreck every page after it
    damaged.write_bytes(bytes(data))
    return [garbage, damaged]


def test_corrupted_database_gives_clear_error(tmp_path):
    for path in corrupt_copies(tmp_path):
        before = path.read_bytes()
        with pytest.raises(face_db.CorruptDatabaseError, match=f"{path.name}: the face database is corrupt"):
            FaceDB(path)
        assert path.read_bytes() == before


def test_foreign_sqlite_file_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE songs (title TEXT)").connection.commit()
    before = path.read_bytes()
    with pytest.raises(face_db.CorruptDatabaseError, match="not a face database"):
        FaceDB(path)
    assert path.read_bytes() == before  # not even switched to WAL (header bytes 18-19)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(face_db.FaceDBError, match="no face database yet"):
        FaceDB(empty, create=False)  # a read command: no schema written into it
    assert empty.stat().st_size == 0


def test_a_database_that_cannot_be_opened_for_writing_says_what_to_do(tmp_path):
    """SQLite's "unable to open database file" (a read-only folder: WAL writes its -wal and -shm files
    beside the database) becomes what to do; tested on the error itself, as root writes anywhere."""
    with FaceDB(tmp_path / "faces.db") as db:
        for text in ("unable to open database file", "attempt to write a readonly database"):
            message = str(db._translate(sqlite3.OperationalError(text)))
            assert "faces.db" in message and f"make {tmp_path} writable" in message, message


WORKER = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from happyhouse.door import face_db
    path, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(abs(hash(who)) % 2**32)
    db = face_db.FaceDB(path, timeout=30)
    for r in range(rounds):
        v = rng.normal(size=(3, 16)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        if who.startswith("writer"):
            db.enroll(f"{{who}}-{{r}}", v, "m", [f"{{who}}-{{r}}-{{k}}" for k in range(3)])
            assert db.identify(v[:1], "m")[0][0].name == f"{{who}}-{{r}}"
        else:
            try:
                db.identify(v, "m", k=2)
            except face_db.FaceDBError as err:
                assert "nobody is enrolled" in str(err)
    print("done", who)
""")


def test_several_processes_enrol_and_identify_at_once(tmp_path):
    path = tmp_path / "faces.db"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    who = ["writer0", "writer1", "writer2", "reader0", "reader1"]
    procs = [subprocess.Popen([sys.executable, str(script), str(path), w, "15"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in who]
    outs = [p.communicate(timeout=120) for p in procs]
    for w, p, (out, err) in zip(who, procs, outs):
        assert p.returncode == 0, f"{w} failed:\n{err}"
        assert f"done {w}" in out
    with FaceDB(path) as d:
        people = d.people()
        assert len(people) == 45
        assert all(p["models"]["m"]["embeddings"] == 3 for p in people)
        assert d._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


KILLED = textwrap.dedent("""
    import sys, time, pathlib, numpy as np
    sys.path.insert(0, {root!r})
    from happyhouse.door import face_db
    path, marker = sys.argv[1], pathlib.Path(sys.argv[2])
    db = face_db.FaceDB(path)
    v = np.eye(5, 16, dtype=np.float32)
    db.enroll("survivor", v[:2], "m", ["s0", "s1"])
    def pause(db, name):  # inside the transaction, rows written, COMMIT not reached
        marker.write_text(name)
        time.sleep(60)
    face_db._enroll_hook = pause
    db.enroll("victim", v[2:], "m", ["v0", "v1", "v2"])
""")


def test_process_killed_mid_enrolment_loses_nothing_committed(tmp_path):
    path, marker = tmp_path / "faces.db", tmp_path / "paused"
    script = tmp_path / "killed.py"
    script.write_text(KILLED.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), str(path), str(marker)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the enrolment never reached its transaction"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with FaceDB(path, timeout=2) as d:
        assert d.names() == ["survivor"]
        conn = d._conn
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM embeddings WHERE person_id NOT IN "
                            "(SELECT id FROM people)").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # the killed writer's lock is gone: the same enrolment now goes through whole
        assert d.enroll("victim", np.eye(5, 16, dtype=np.float32)[2:], "m", ["v0", "v1", "v2"]) == 3
        assert d.identify(np.eye(5, 16, dtype=np.float32)[:1], "m")[0][0].name == "survivor"


def test_gallery_search_groups_rows_by_person_in_any_order():
    rng = np.random.default_rng(7)
    E = unit(rng, 9, 8)
    owner = np.array([2, 0, 1, 2, 0, 3, 1, 2, 3])  # rows of a person need not be adjacent
    names = ["a", "b", "c", "d"]
    gallery = face_db.Gallery(names, owner, E)
    queries = unit(rng, 4, 8)
    idx, dist = gallery.search(queries, k=10)  # k larger than the number of people
    assert idx.shape == dist.shape == (4, 4)
    for q, row, drow in zip(queries, idx, dist):
        brute = sorted((float(np.linalg.norm(E[owner == p] - q, axis=1).min()), p) for p in range(4))
        assert row.tolist() == [p for _, p in brute]
        np.testing.assert_allclose(drow, [d for d, _ in brute], atol=1e-5)
    idx1, dist1 = gallery.search(queries[0], k=1)
    assert idx1.shape == (1, 1) and idx1[0, 0] == idx[0, 0]


@pytest.mark.parametrize("mode", ["ivf", "hnsw"])
def test_approximate_search_agrees_with_the_exact_one(mode):
    """Several rows per person, noisy queries: the index names the same nearest person as the exact
    search, with that person's exact distance, nearest first."""
    rng = np.random.default_rng(3)
    people, rows_each, dim = 700, 3, 64          # 2,100 rows: the IVF compresses them (PQ fast scan)
    E = rng.standard_normal((people * rows_each, dim)).astype(np.float32)
    owner = np.repeat(np.arange(people), rows_each)
    rng.shuffle(owner)
    names = [f"p{i}" for i in range(people)]
    queries = E[rng.integers(0, len(E), 200)] + 0.3 * rng.standard_normal((200, dim)).astype(np.float32)
    exact = face_db.Gallery(names, owner, E, search="exact")
    approx = face_db.Gallery(names, owner, E, search=mode)
    (ei, ed), (ai, ad) = exact.search(queries, k=3), approx.search(queries, k=3)
    assert ai.shape == ei.shape == (200, 3)
    assert (ai[:, 0] == ei[:, 0]).mean() >= 0.99
    for q, row, drow in zip(queries, ai, ad):
        found = row >= 0
        brute = [np.linalg.norm(E[owner == p] - q, axis=1).min() for p in row[found]]
        np.testing.assert_allclose(drow[found], brute, rtol=1e-4)   # the distances are exact ones
    assert np.all(np.diff(ad, axis=1) >= 0)
    assert approx.indexed and approx.E is None                     # the index holds the rows now


def test_auto_search_is_exact_for_small_galleries_and_ivf_from_the_threshold(monkeypatch):
    rng = np.random.default_rng(0)
    E = unit(rng, 50)
    assert face_db.Gallery([f"p{i}" for i in range(50)], np.arange(50), E).mode == "exact"
    monkeypatch.setattr(face_db, "APPROX_MIN_ROWS", 50)
    assert face_db.Gallery([f"p{i}" for i in range(50)], np.arange(50), E).mode == "ivf"
    assert face_db.Gallery([f"p{i}" for i in range(49)], np.arange(49), E[:49]).mode == "exact"
    with pytest.raises(ValueError, match="search must be one of"):
        face_db.Gallery(["a"], [0], E[:1], search="fast")


def test_ivf_lists_follow_four_square_roots_and_stay_trainable():
    assert face_db.ivf_lists(10**6) == 4096 and face_db.ivf_lists(10**5) == 1024
    assert face_db.ivf_lists(1000) == 25                        # 128 wanted, 39 rows per list needed
    assert face_db.ivf_lists(3) == 1
    three = unit(np.random.default_rng(1), 3)
    tiny = face_db.Gallery(["a", "b", "c"], [0, 1, 2], three, search="ivf")
    assert tiny.search(three[1])[0][0, 0] == 1


@pytest.mark.parametrize("mode", ["ivf", "hnsw"])
def test_index_is_updated_in_place_after_enrolments_and_removals(tmp_path, mode):
    """Another connection enrols and removes people; the reader's built index follows without a
    rebuild, including a row id that SQLite hands out again after the last row was deleted."""
    rng = np.random.default_rng(5)
    path = tmp_path / "faces.db"
    vectors = unit(rng, 60, dim=32)
    with FaceDB(path) as writer:
        for i, v in enumerate(vectors):
            writer.enroll(f"p{i:02d}", v[None], model="m", sources=shas(f"p{i}", 1))
    with FaceDB(path, search=mode) as reader:
        assert reader.identify(vectors[7], "m")[0][0].name == "p07"
        gallery = reader.gallery("m")
        assert gallery.indexed
        newcomer = unit(rng, 2, dim=32)
        with FaceDB(path) as writer:
            writer.enroll("p07", unit(rng, 1, dim=32), model="m", sources=shas("p07-more", 1), add=True)
            writer.enroll("newcomer", newcomer, model="m", sources=shas("new", 2))
        assert reader.identify(newcomer[1], "m")[0][0].name == "newcomer"
        assert reader.gallery("m") is gallery and len(gallery) == 63         # updated, not rebuilt
        with FaceDB(path) as writer:
            writer.remove("newcomer")                                       # it held the last row ids
            writer.remove("p03")
            writer.enroll("late", newcomer[1:], model="m", sources=shas("late", 1))   # reuses a row id
        assert reader.identify(newcomer[1], "m")[0][0].name == "late"
        assert "p03" not in [m.name for m in reader.identify(vectors[3], "m", k=5)[0]]
        assert reader.gallery("m") is gallery and len(gallery) == 61
        with FaceDB(path) as writer:                                        # most of the gallery goes:
            for i in range(10, 60):
                writer.remove(f"p{i:02d}")
        assert reader.identify(vectors[5], "m")[0][0].name == "p05"
        assert reader.gallery("m") is not gallery and len(reader.gallery("m")) == 11   # rebuilt


def test_a_file_from_before_the_rows_index_gets_it_on_open(tmp_path):
    path = tmp_path / "faces.db"
    FaceDB(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX embeddings_by_time")
    with FaceDB(path) as db:
        assert db._query("SELECT 1 FROM sqlite_master WHERE name = 'embeddings_by_time'")
