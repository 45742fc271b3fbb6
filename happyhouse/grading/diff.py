"""Diffs of two notebooks with nbdime: in the terminal, and as a standalone HTML page."""
from __future__ import annotations

import difflib
import html
import io
from pathlib import Path
from types import SimpleNamespace

from happyhouse.outputs import write_text

from .notebook import output_text, read_notebook


def _diff(a, b, outputs_only: bool):
    from nbdime import diff_notebooks
    from nbdime.diffing.notebooks import reset_notebook_differ, set_notebook_diff_targets

    set_notebook_diff_targets(sources=not outputs_only, outputs=True, attachments=not outputs_only,
                              metadata=False, identifier=False, details=False)
    try:
        return diff_notebooks(a, b)
    finally:
        reset_notebook_differ()


def diff_text(a_path, b_path, outputs_only: bool = False, color: bool = False) -> str:
    """nbdime's terminal diff of two notebooks (sources and outputs; no metadata, ids, counts).

    Returns "" when they do not differ.
    """
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_notebook_diff

    a, b = read_notebook(a_path), read_notebook(b_path)
    diff = _diff(a, b, outputs_only)
    buffer = io.StringIO()
    include = SimpleNamespace(sources=not outputs_only, outputs=True, attachments=not outputs_only,
                              metadata=False, id=False, details=False)
    config = PrettyPrintConfig(out=buffer, include=include, use_git=False, use_diff=False, use_color=color)
    pretty_print_notebook_diff(str(a_path), str(b_path), a, diff, config)
    return buffer.getvalue()


def diff_html(a_path, b_path, html_path, outputs_only: bool = False) -> int:
    """Write a standalone HTML page (no server) showing the changed cells of two notebooks side by side.

    Uses nbdime's diff to find added, removed and changed cells; changed sources and output texts
    are shown with difflib, changed images both. Returns the number of changed cells.
    """
    a, b = read_notebook(a_path), read_notebook(b_path)
    diff = _diff(a, b, outputs_only)
    cell_ops = next((e.diff for e in diff if e.key == "cells"), [])
    blocks, ai, bi = [], 0, 0
    for op in cell_ops:
        ai, bi = ai + (op.key - ai), bi + (op.key - ai)
        if op.op == "addrange":
            for cell in op.valuelist:
                blocks.append(_cell_block(None, cell, None, bi, outputs_only))
                bi += 1
        elif op.op == "removerange":
            for _ in range(op.length):
                blocks.append(_cell_block(a.cells[ai], None, ai, None, outputs_only))
                ai += 1
        elif op.op == "patch":
            blocks.append(_cell_block(a.cells[ai], b.cells[bi], ai, bi, outputs_only))
            ai, bi = ai + 1, bi + 1
    blocks = [block for block in blocks if block]  # patches of ids only show nothing
    title = f"{Path(a_path).name} vs {Path(b_path).name}"
    summary = f"{len(blocks)} cell(s) differ" if blocks else "The notebooks' sources and outputs are the same."
    page = _HTML.format(title=html.escape(title), a=html.escape(str(a_path)), b=html.escape(str(b_path)),
                        summary=summary, body="\n".join(blocks))
    write_text(html_path, page)
    return len(blocks)


def _images(cell) -> list[str]:
    return [o["data"]["image/png"] for o in (cell or {}).get("outputs", [])
            if "image/png" in o.get("data", {})]


def _cell_block(a_cell, b_cell, ai, bi, outputs_only) -> str:
    """HTML for one added, removed or changed cell; "" when nothing shown differs."""
    label = f"cell {ai if ai is not None else '-'} &rarr; {bi if bi is not None else '-'}"
    kind = "removed" if b_cell is None else "added" if a_cell is None else "changed"
    parts = [f'<h2 class="{kind}">{label}: {kind}</h2>']
    sections = [("output", output_text)] if outputs_only else [("source", lambda c: c.get("source", "")),
                                                                  ("output", output_text)]
    for what, get in sections:
        old = get(a_cell) if a_cell is not None else ""
        new = get(b_cell) if b_cell is not None else ""
        if old != new:
            table = difflib.HtmlDiff(wrapcolumn=80).make_table(
                old.splitlines(), new.splitlines(), f"{what} (A)", f"{what} (B)")
            parts.append(table)
    old_img, new_img = _images(a_cell), _images(b_cell)
    if old_img != new_img:
        imgs = "".join("<td>" + "".join(f'<img src="data:image/png;base64,{html.escape("".join(i.split()))}">'
                                        for i in side)
                       + "</td>" for side in (old_img, new_img))
        parts.append(f'<table class="images"><tr><th>images (A)</th><th>images (B)</th></tr><tr>{imgs}</tr></table>')
    return "<section>" + "\n".join(parts) + "</section>" if len(parts) > 1 else ""


_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table.diff {{ font-family: monospace; border-collapse: collapse; margin: 0.5em 0; }}
table.diff td, table.diff th {{ padding: 0 0.4em; vertical-align: top; }}
.diff_header {{ background: #eee; color: #888; }}
.diff_add {{ background: #c8f0c8; }} .diff_chg {{ background: #f6f0a0; }} .diff_sub {{ background: #f8c8c8; }}
h2 {{ font-size: 1em; margin-top: 1.5em; }} h2.added {{ color: #070; }} h2.removed {{ color: #a00; }}
table.images img {{ max-width: 45vw; }}
</style></head><body>
<h1>{title}</h1>
<p>A: <code>{a}</code><br>B: <code>{b}</code></p>
<p>{summary}</p>
{body}
</body></html>
"""
