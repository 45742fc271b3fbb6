"""Where results go, checked before the work that makes them: a bad path costs no work."""
from __future__ import annotations

import tempfile
from pathlib import Path

from happyhouse.errors import OutputError


def check_folder(folder) -> Path:
    """Check that files can be written in ``folder``, or that it can be made where it is missing
    (a file is made and removed in it, or in its nearest existing parent; nothing is left behind);
    OutputError naming it and the reason otherwise. Returns it as a Path."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{folder}: {existing} is a file, not a folder; choose another output")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise OutputError(f"{folder}: cannot write there ({err.strerror or err}); choose another output") from None
    return folder


def check_file(path) -> Path:
    """:func:`check_folder` on the folder of the file ``path``, which must not be a folder itself.
    Returns it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for this output")
    check_folder(path.parent)
    return path


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, making its missing folders (which :func:`check_file` allowed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
