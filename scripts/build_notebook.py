"""Builds a notebook (.ipynb) from its text source in notebooks/src/<name>.txt.

The source is what we edit and review: header lines `#!title: ...` and `#!summary: ...` (the summary is
the line html-exports/index.html shows), then cells starting with `%% md`, `%% code`, or `%% code figure`
(words after `code` are cell tags; `figure` marks a cell whose export must show an inline figure).
Usage: python scripts/build_notebook.py notebooks/src/NAME.txt notebooks/NAME.ipynb
"""
import json, sys

def build(spec_text, title=None, summary=None):
    cells = []
    cur = None
    for line in spec_text.splitlines(keepends=True):
        if line.startswith("%% "):
            if cur: cells.append(cur)
            parts = line[3:].split()
            kind, tags = parts[0], parts[1:]
            cur = {"cell_type": "markdown" if kind == "md" else "code", "metadata": {}, "source": []}
            if tags: cur["metadata"]["tags"] = tags
            if kind != "md":
                cur["execution_count"] = None; cur["outputs"] = []
        elif cur is not None:
            cur["source"].append(line)
    if cur: cells.append(cur)
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i:02d}"
        while c["source"] and not c["source"][-1].strip(): c["source"].pop()
        if c["source"]: c["source"][-1] = c["source"][-1].rstrip("\n")
    meta = {"kernelspec": {"display_name": "Rust (cnn-explain)", "language": "rust", "name": "rust"},
            "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust",
                              "name": "Rust", "pygment_lexer": "rust", "version": ""}}
    if title or summary:
        meta["cnn_explain"] = {k: v for k, v in [("title", title), ("summary", summary)] if v}
    return {"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}

if __name__ == "__main__":
    src, out = sys.argv[1], sys.argv[2]
    text = open(src).read()
    title = summary = None
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#!"):
        k, v = lines.pop(0)[2:].split(":", 1)
        if k.strip() == "title": title = v.strip()
        if k.strip() == "summary": summary = v.strip()
    json.dump(build("".join(lines), title, summary), open(out, "w"), indent=1)
    open(out, "a").write("\n")
