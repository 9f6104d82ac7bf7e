"""Writes <out>/index.html: one line per exported notebook, with what it shows.

The line comes from the notebook's metadata `cnn_explain.summary`, else its first heading.
Usage: python scripts/export_index.py NOTEBOOK_DIR EXPORT_DIR
"""
import html
import json
import os
import sys


def summary(path):
    with open(path) as f:
        nb = json.load(f)
    meta = nb.get("metadata", {}).get("cnn_explain", {})
    title, text = meta.get("title"), meta.get("summary")
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            src = "".join(cell.get("source", []))
            for line in src.splitlines():
                if line.startswith("#"):
                    title = title or line.lstrip("#").strip()
                    break
            break
    name = os.path.splitext(os.path.basename(path))[0]
    return title or name, text or ""


def main(nb_dir, out_dir):
    rows = []
    for fn in sorted(os.listdir(nb_dir)):
        if not fn.endswith(".ipynb"):
            continue
        name = fn[: -len(".ipynb")]
        if not os.path.exists(os.path.join(out_dir, name + ".html")):
            continue
        title, text = summary(os.path.join(nb_dir, fn))
        rows.append(
            f'<li><a href="{html.escape(name)}.html">{html.escape(title)}</a>'
            + (f" &mdash; {html.escape(text)}" if text else "")
            + "</li>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cnn-explain notebooks</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.5}} li{{margin:.4em 0}}</style>
</head><body>
<h1>cnn-explain: executed notebooks</h1>
<p>Each notebook was executed headless with the evcxr Rust kernel on the built-in dataset and exported to HTML.</p>
<ul>
{chr(10).join(rows)}
</ul>
</body></html>
"""
    tmp = os.path.join(out_dir, ".index.html.tmp")
    with open(tmp, "w") as f:
        f.write(page)
    os.replace(tmp, os.path.join(out_dir, "index.html"))
    print(f"export_index: {len(rows)} notebooks listed in {out_dir}/index.html")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
