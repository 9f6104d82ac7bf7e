"""Checks exported notebooks: no error output in any cell, and every figure a cell was meant to show
is present in the HTML.

A code cell that is meant to show a figure carries the Jupyter cell tag `figure` (nbconvert writes it
as the CSS class `celltag_figure`); its output must contain an inline `<svg` or an
`<img src="data:image/png`. Any error output (a traceback, an evcxr compile error) fails the check.
Usage: python scripts/check_exports.py NOTEBOOK_DIR EXPORT_DIR
"""
import json
import os
import re
import sys

CELL_START = re.compile(r'<div\s+class="(jp-Cell\s[^"]*)"')
FIGURE = re.compile(r'<svg\b|<img\b[^>]*\bsrc="data:image/png')
ERROR_MARKERS = ["application/vnd.jupyter.error", "jp-OutputArea-output jp-RenderedText\" data-mime-type=\"application/vnd.jupyter.stderr"]


def cells(page):
    """Splits the HTML into (class attribute, chunk) per notebook cell."""
    starts = [(m.start(), m.group(1)) for m in CELL_START.finditer(page)]
    for i, (pos, cls) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(page)
        yield cls, page[pos:end]


def expected_figures(nb_path):
    with open(nb_path) as f:
        nb = json.load(f)
    return sum(1 for c in nb["cells"] if "figure" in c.get("metadata", {}).get("tags", []))


def check(nb_dir, out_dir):
    problems = []
    names = sorted(f[:-6] for f in os.listdir(nb_dir) if f.endswith(".ipynb"))
    for name in names:
        html_path = os.path.join(out_dir, name + ".html")
        if not os.path.exists(html_path):
            problems.append(f"{name}: no export {html_path}")
            continue
        with open(html_path) as f:
            page = f.read()
        want = expected_figures(os.path.join(nb_dir, name + ".ipynb"))
        seen, shown = 0, 0
        for idx, (cls, chunk) in enumerate(cells(page)):
            for marker in ERROR_MARKERS:
                if marker in chunk:
                    text = re.sub(r"<[^>]+>", "", chunk)[-400:].strip()
                    problems.append(f"{name}: cell {idx} has error output: {text}")
            if "celltag_figure" in cls.split():
                seen += 1
                if FIGURE.search(chunk):
                    shown += 1
                else:
                    problems.append(f"{name}: cell {idx} is tagged `figure` but shows no <svg> or PNG image")
        if seen != want:
            problems.append(f"{name}: the notebook tags {want} figure cells but the export has {seen}")
        print(f"check_exports: {name}: {shown}/{want} figures shown")
    if not names:
        problems.append("no notebooks found")
    for p in problems:
        print("check_exports: FAIL " + p, file=sys.stderr)
    return not problems


if __name__ == "__main__":
    sys.exit(0 if check(sys.argv[1], sys.argv[2]) else 1)
