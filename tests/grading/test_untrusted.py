"""Reading what a submission wrote: pipes, links and oversized files are not read; arrays only as
np.savez stores them (no compression, no pickles, no header claiming more than its member holds)."""
import io
import os
import threading
import zipfile

import numpy as np
import pytest

from happyhouse.grading.untrusted import TooLarge, load_arrays, read_capped


def test_a_named_pipe_is_not_read_and_not_waited_on(tmp_path):
    pipe = tmp_path / "harness.json"
    os.mkfifo(pipe)
    result = []
    reader = threading.Thread(target=lambda: result.append(read_capped(pipe, 100)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive() and result == [None]


def test_links_missing_and_oversized_files(tmp_path):
    target = tmp_path / "secret.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    assert read_capped(tmp_path / "link.json", 100) is None
    assert read_capped(tmp_path / "missing.json", 100) is None
    assert read_capped(target, 100) == b"{}"
    with pytest.raises(TooLarge, match="secret.json"):
        read_capped(target, 1)


def npz_bytes(save=np.savez, **arrays) -> bytes:
    buffer = io.BytesIO()
    save(buffer, **arrays)
    return buffer.getvalue()


def test_arrays_as_np_savez_stores_them():
    arrays = load_arrays(npz_bytes(c0=np.arange(6.0).reshape(2, 3), c1=np.array(True)))
    np.testing.assert_array_equal(arrays["c0"], np.arange(6.0).reshape(2, 3))
    assert arrays["c1"].dtype == bool and arrays["c1"]


def test_compressed_pickled_or_lying_arrays_are_refused():
    with pytest.raises(ValueError, match="uncompressed"):  # 1 MB of zeros in a few kB: a bomb's shape
        load_arrays(npz_bytes(np.savez_compressed, c0=np.zeros(2**20, np.uint8)))
    with pytest.raises(ValueError):
        load_arrays(npz_bytes(c0=np.array([{"a": 1}], dtype=object)))
    honest = np.lib.format.header_data_from_array_1_0(np.zeros(4))
    lying = io.BytesIO()
    np.lib.format.write_array_header_1_0(lying, {**honest, "shape": (2**40,)})
    lying.write(np.zeros(4).tobytes())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("c0.npy", lying.getvalue())
    with pytest.raises(ValueError, match="claims more"):
        load_arrays(archive.getvalue())
