"""The fast paths measured in bench/: the embedders' compiled and bfloat16 runs, and the face
database's in-memory exact search (style transfer's L-BFGS and bfloat16: tests/style/test_optimize.py)."""
import os
import re

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from happyhouse.precision import bfloat16_missing, cpu_has_bfloat16  # noqa: E402


# ------------------------------------------------------------------------------ embedders
def test_course_model_is_compiled_once_and_sees_new_weights():
    from happyhouse.face.embedders import course_embedder
    from happyhouse.face.network import faceRecoModel

    model = faceRecoModel(input_shape=(3, 96, 96))
    first, second = course_embedder(model), course_embedder(model)
    assert first._run is second._run  # one tf.function per model, not one per call
    x = np.random.default_rng(0).random((3, 3, 96, 96)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(first._run(x)), model(x, training=False).numpy(), atol=1e-5)
    dense = model.get_layer("dense_layer")
    dense.set_weights([w * 0 + 0.01 * np.arange(w.size).reshape(w.shape) for w in dense.get_weights()])
    np.testing.assert_allclose(np.asarray(first._run(x)), model(x, training=False).numpy(), atol=1e-5)


def test_bfloat16_embedder_stays_close_to_fp32():
    from happyhouse.face.embedders import load_embedder

    fp32 = load_embedder("inception-resnet-v1", precision="float32")
    if not cpu_has_bfloat16():   # refused when asked for, saying why
        with pytest.raises(ValueError, match=re.escape(f"'bfloat16' was asked for, but {bfloat16_missing()}")):
            load_embedder("inception-resnet-v1", precision="bfloat16")
        return
    bf16 = load_embedder("inception-resnet-v1", precision="bfloat16")
    assert bf16.precision == "bfloat16" and fp32.precision == "float32" and bf16.model is fp32.model
    yy, xx = np.mgrid[0:160, 0:160]
    faces = np.stack([np.stack([(xx * k) % 256, (yy * 2) % 256, (xx + yy * k) % 256], -1)
                      for k in (1, 2, 3)]).astype(np.uint8)
    a, b = fp32.embed(faces), bf16.embed(faces)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-3)
    assert np.linalg.norm(a - b, axis=1).max() < 0.05   # << the 0.7-0.9 thresholds
    assert np.linalg.norm(a - b, axis=1).max() > 0   # it did run in another precision
    with pytest.raises(ValueError, match="precision must be one of"):
        load_embedder("inception-resnet-v1", precision="int8")


# ------------------------------------------------------------------------- face database
def test_gallery_is_kept_until_the_database_changes(tmp_path):
    from happyhouse.door import face_db

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    path = tmp_path / "faces.db"
    with face_db.FaceDB(path) as db, face_db.FaceDB(path) as other:
        db.enroll("ann", vectors[:1], model="m", sources=["a"])
        first = db.gallery("m")
        assert db.gallery("m") is first                       # nothing changed: no reload
        assert db.identify(vectors[1], model="m")[0][0].name == "ann"
        db.enroll("bob", vectors[1:2], model="m", sources=["b"])          # this connection wrote
        assert db.gallery("m") is not first
        assert db.identify(vectors[1], model="m")[0][0].name == "bob"
        kept = db.gallery("m")
        other.enroll("cid", vectors[2:3], model="m", sources=["c"])       # another connection wrote
        assert db.gallery("m") is not kept
        assert db.identify(vectors[2], model="m")[0][0].name == "cid"
        other.remove("cid")
        assert [m.name for m in db.identify(vectors[2], model="m", k=3)[0]] == sorted(
            ["ann", "bob"], key=lambda n: np.linalg.norm(vectors[2] - vectors[0 if n == "ann" else 1]))


def test_gallery_search_is_exact_with_several_rows_per_person():
    from happyhouse.door import face_db

    rng = np.random.default_rng(3)
    E = rng.standard_normal((60, 16)).astype(np.float32)
    owner = rng.integers(0, 20, 60)
    names = [f"p{i}" for i in range(20)]
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    idx, dist = face_db.Gallery(names, owner, E).search(queries, k=4)
    for q, row_i, row_d in zip(queries, idx, dist):
        best = {p: min(np.linalg.norm(q - E[owner == p], axis=1)) for p in set(owner)}
        expected = sorted(best, key=best.get)[:4]
        assert list(row_i) == expected
        np.testing.assert_allclose(row_d, [best[p] for p in expected], rtol=1e-5)
    one_i, one_d = face_db.Gallery(names, owner, E).search(queries, k=1)
    np.testing.assert_array_equal(one_i[:, 0], idx[:, 0])
    np.testing.assert_allclose(one_d[:, 0], dist[:, 0], rtol=1e-6)
