"""Reading what a submission's processes wrote (the sandbox's out/ folder): regular files only,
never through a link, never waiting on a pipe, size-capped; arrays without pickles and without
compression (a small compressed file can unpack to gigabytes)."""
from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np


class TooLarge(ValueError):
    """A file over the size the grader reads."""


def read_capped(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``; None when it is not a regular file (missing, a link, a pipe, a device);
    :class:`TooLarge` over ``limit`` bytes. Opened without blocking: a named pipe cannot stall the grader."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > limit:
            raise TooLarge(f"{path.name}: {info.st_size} bytes, over {limit}")
        return f.read(limit)


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz file's ``data`` as ``np.savez`` writes it (members stored, not compressed),
    read without pickles; ValueError for anything else, or a header claiming more than its member holds."""
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename}: not an array stored uncompressed")
            member = io.BytesIO(archive.read(info))
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{info.filename}: .npy format {version}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
            if dtype.hasobject or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > len(member.getvalue()):
                raise ValueError(f"{info.filename}: its header claims more than it holds")
            member.seek(0)
            arrays[info.filename.removesuffix(".npy")] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays
