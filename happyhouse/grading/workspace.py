"""The student's workspace: what ``grading release`` writes and what the sandbox shows the notebook.

A folder with the student version of each notebook, the course's modules (the project's top-level
``*.py``) and a copy of the ``happyhouse`` package without ``happyhouse.grading`` (the notebooks
do not use it; the hidden tests and the grader stay out of the student's reach). Data set by
``COURSE_DATA`` / ``FACES_DATA`` stay where they are (their data folders shown read-only in the
sandbox); a handout carries only the data folders' README.md. An empty ``output/`` is where the
notebooks save their pictures (in the sandbox, a private tmpfs over the read-only workspace). Nothing beside the references
(``hidden_tests/``) is copied.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from .notebook import PROJECT_ROOT, GradingError

#: The checkout's data folders a grading workspace copies (a handout: their README.md only).
DATA_FOLDERS = ("images", "weights", "pretrained-model")
#: The folder the notebooks write their pictures into (nst_utils' output/), relative to the workspace.
OUTPUT = "output"
#: Parts of the package a notebook never needs, left out of every workspace.
EXCLUDED = ("grading",)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def course_modules(root: Path = PROJECT_ROOT) -> list[Path]:
    """The project's top-level modules (fr_utils.py, nst_utils.py, inception_blocks_v2.py, ...)."""
    return sorted(p for p in root.glob("*.py") if not p.name.startswith(("_", ".", "setup")))


def check_target(folder: str | Path, root: Path = PROJECT_ROOT) -> Path:
    """GradingError when a workspace written into ``folder`` would copy the project onto itself: the
    project's own folder, or a folder inside what is copied (the package, the data folders)."""
    target = Path(folder).resolve()
    sources = [root / name for name in ("happyhouse", *DATA_FOLDERS)]
    if target == root.resolve() or any(target == s.resolve() or s.resolve() in target.parents for s in sources):
        raise GradingError(f"{folder}: a workspace there would copy the project ({root}) onto itself; "
                           "choose a folder outside it (or --notebook-only)")
    return Path(folder)


def write_workspace(folder: str | Path, root: Path = PROJECT_ROOT, data: bool = True) -> Path:
    """Copy the course modules and the package (without grading) into ``folder``; returns it.

    ``data``: also the checkout's images/, weights/ and pretrained-model/ (a grading workspace: the
    kernel's lookup finds them there when COURSE_DATA is not set); without it (a handout, ``grading
    release``) only their README.md, which says where the data come from. Folders are made 0755
    and files 0644 so the sandbox's own user can read them.
    """
    folder = check_target(folder, root)
    folder.mkdir(parents=True, exist_ok=True)
    for module in course_modules(root):
        shutil.copyfile(module, folder / module.name)
    package = folder / "happyhouse"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(root / "happyhouse", package, ignore=lambda d, names: (
        IGNORED(d, names) | ({n for n in names if n in EXCLUDED} if Path(d) == root / "happyhouse" else set())))
    for kind in DATA_FOLDERS:
        if data and (root / kind).is_dir():  # the kernel's own lookup finds the checkout's data here
            shutil.copytree(root / kind, folder / kind, dirs_exist_ok=True, ignore=IGNORED)
        elif (root / kind / "README.md").is_file():  # a handout: only where the data come from
            (folder / kind).mkdir(exist_ok=True)
            shutil.copyfile(root / kind / "README.md", folder / kind / "README.md")
    (folder / OUTPUT).mkdir(exist_ok=True)  # where the notebooks save pictures (the sandbox: a private tmpfs)
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return folder


_written: dict[str, str] = {}


def default_workspace() -> Path:
    """A workspace written from this project once per process (removed when it exits)."""
    key = str(PROJECT_ROOT)
    if key not in _written or not Path(_written[key]).is_dir():
        folder = tempfile.mkdtemp(prefix="grading-workspace-")
        atexit.register(shutil.rmtree, folder, True)
        write_workspace(folder)
        _written[key] = folder
    return Path(_written[key])
