"""The contact sheet: the pictures saved every few iterations side by side (progress.png)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

SHEET_NAME = "progress.png"


def saved_iterations(folder) -> list[tuple[int, Path]]:
    """[(iteration, path)] of the ``<i>.png`` pictures in ``folder``, by iteration."""
    found = [(int(p.stem), p) for p in Path(folder).glob("*.png") if re.fullmatch(r"\d+", p.stem)]
    return sorted(found)


def clear_saved(folder) -> int:
    """Remove an earlier run's ``<i>.png`` pictures from ``folder`` (a new run's sheet shows its own
    only); returns how many."""
    saved = saved_iterations(folder) if Path(folder).is_dir() else []
    for _, path in saved:
        path.unlink()
    return len(saved)


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
