"""Drop the course's pictures from notebooks before they are committed.

    python tools/strip_pictures.py notebooks/*.ipynb

Cells tagged ``course-pictures`` show the course's own images, which never go into git: their
image outputs are removed, their text stays (so nbval still checks it).
"""
from __future__ import annotations

import os
import sys

import nbformat

#: Cells with this tag show the course's pictures; their images are not committed.
PICTURES_TAG = "course-pictures"


def strip_course_pictures(notebook: str | os.PathLike) -> int:
    """Remove the image data of cells tagged ``course-pictures`` in ``notebook``; how many were removed."""
    nb = nbformat.read(notebook, as_version=4)
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or PICTURES_TAG not in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            for key in [k for k in output.get("data", {}) if k.startswith("image/")]:
                del output["data"][key]
                removed += 1
    nbformat.write(nb, notebook)
    return removed


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for path in paths:
        print(f"{path}: {strip_course_pictures(path)} course picture(s) removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
