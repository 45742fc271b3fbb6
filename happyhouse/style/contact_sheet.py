"""The contact sheet: the pictures saved every few iterations side by side (progress.png), and the
record of which ``<i>.png`` pictures in an output folder nst wrote (only those are ever replaced)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

SHEET_NAME = "progress.png"
#: The result nst writes into an output folder (the course's name).
RESULT_NAME = "generated_image.jpg"
#: The pictures saved every few iterations, ``<i>.png``.
ITERATION_NAME = re.compile(r"\d+\.png")
#: The list, one file name a line, of the ``<i>.png`` pictures nst wrote into the folder.
RECORD_NAME = "nst_pictures.txt"


def written_by_a_run(name: str) -> bool:
    """Whether a run writes a file of this ``name`` into its output folder (its result, the sheet, an ``<i>.png``)."""
    return name in (RESULT_NAME, SHEET_NAME) or bool(ITERATION_NAME.fullmatch(name))


def record(folder, *pictures) -> None:
    """Note in ``folder``'s RECORD_NAME that nst wrote ``pictures`` (files in it)."""
    known = set(recorded(folder))
    new = [name for name in dict.fromkeys(Path(p).name for p in pictures) if name not in known]
    if new:
        with open(Path(folder) / RECORD_NAME, "a", encoding="utf-8") as f:
            f.write("".join(name + "\n" for name in new))


def recorded(folder) -> list[str]:
    """The names in ``folder``'s RECORD_NAME ([] when there is none)."""
    path = Path(folder) / RECORD_NAME
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]


def saved_iterations(folder) -> list[tuple[int, Path]]:
    """[(iteration, path)] of the ``<i>.png`` pictures nst wrote into ``folder`` (its record), by iteration."""
    found = [(int(Path(name).stem), Path(folder) / name) for name in recorded(folder)
             if ITERATION_NAME.fullmatch(name) and (Path(folder) / name).is_file()]
    return sorted(found)


def foreign_pictures(folder, names) -> list[str]:
    """Those of ``names`` that are files in ``folder`` which nst's record does not list (a user's)."""
    folder = Path(folder)
    ours = set(recorded(folder))
    return [name for name in names if name not in ours and (folder / name).exists()]


def clear_saved(folder) -> list[str]:
    """Remove the ``<i>.png`` pictures an earlier nst run wrote into ``folder`` (its record says
    which; no other file is touched) and the record; returns their names."""
    saved = saved_iterations(folder) if Path(folder).is_dir() else []
    for _, path in saved:
        path.unlink()
    (Path(folder) / RECORD_NAME).unlink(missing_ok=True)
    return [path.name for _, path in saved]


def write(folder, final=None, out=None, columns=6) -> Path | None:
    """Draw the saved iterations of ``folder`` (and ``final``, an (H, W, 3) uint8 result, last)
    in a grid, each titled with its iteration and size; write ``out`` (default
    folder/progress.png). Returns its path, or None when there is nothing to show."""
    from matplotlib.figure import Figure  # no pyplot: works headless and leaves notebooks' backend alone
    from PIL import Image
    items = [(f"iteration {i}", np.asarray(Image.open(p).convert("RGB"))) for i, p in saved_iterations(folder)]
    if final is not None:
        items.append(("result", np.asarray(final)))
    if not items:
        return None
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    fig = Figure(figsize=(2.6 * columns, 2.3 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, picture) in zip(axes.ravel(), items):
        ax.imshow(picture)
        ax.set_title(f"{title} ({picture.shape[1]}x{picture.shape[0]})", fontsize=8)
    fig.tight_layout()
    out = Path(out) if out is not None else Path(folder) / SHEET_NAME
    fig.savefig(out, dpi=80)
    return out
