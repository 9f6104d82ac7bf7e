"""Turns a notebook spec (notebooks/src/<name>.txt, the format of nb.py) into examples/nb_<name>.rs, so the
notebook's code compiles and runs as a plain example: `use` lines go to the top, the code cells in order
into `main`, the last expression of each `figure` cell is saved to target/nb-<name>/NN.png, and the last
expression of any other cell is evaluated and dropped.
Usage: python3 notebooks/src/spec2example.py notebooks/src/lime.txt examples/nb_lime.rs lime"""
import sys

src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
cells, cur = [], None
for line in open(src).read().splitlines():
    if line.startswith("#!"):
        continue
    if line.startswith("%% "):
        cur = {"kind": line[3:].split(), "lines": []}
        cells.append(cur)
    elif cur is not None:
        cur["lines"].append(line)

uses, body, fig = [], [], 0
for c in cells:
    if c["kind"][0] != "code":
        continue
    lines = [l for l in c["lines"]]
    while lines and not lines[-1].strip():
        lines.pop()
    if any(l.startswith(":dep") for l in lines):
        continue
    rest = []
    for l in lines:
        (uses if l.startswith("use ") else rest).append(l)
    if not rest:
        continue
    # A figure cell that shows its figure explicitly (`fig.show();`, `….figure().show();`) saves it instead.
    shows = [i for i, l in enumerate(rest) if l.rstrip().endswith(".show();")]
    if "figure" in c["kind"] and shows:
        for i in shows:
            fig += 1
            rest[i] = rest[i].rstrip()[: -len(".show();")] + f'.save(out.join("{fig:02}.png"))?;'
        body.append("\n".join(rest))
        continue
    # The cell's last expression: from the last top-level line starting an expression.
    last = rest[-1]
    if not last.rstrip().endswith((";", "}")) or (last == "}" and "figure" in c["kind"]):
        start = len(rest) - 1
        if last == "}":
            start = max(i for i, l in enumerate(rest) if l == "{" or (l and not l[0].isspace() and l.rstrip().endswith("{") and not l.startswith(("fn ", "for ", "if ", "let ", "impl ", "struct "))))
        if "figure" in c["kind"]:
            fig += 1
            rest[start] = "let fig = " + rest[start]
            rest[-1] = rest[-1] + ";"
            rest.append(f'fig.save(out.join("{fig:02}.png"))?;')
        else:
            rest[start] = "let _shown = " + rest[start]
            rest[-1] = rest[-1] + ";"
    body.append("\n".join(rest))

text = f"""//! Generated from `notebooks/src/{name}.txt` by `notebooks/src/spec2example.py`: the code of
//! `notebooks/{name}.ipynb`, cell by cell, with each figure saved to `target/nb-{name}/NN.png`.
//!
//! `CNN_EXPLAIN_CACHE=/work/main/.cache/models-full cargo run --example nb_{name.replace('-', '_')}`
//! (`CNN_EXPLAIN_QUICK=1` for the quick mode).
#![allow(clippy::needless_range_loop)]
{chr(10).join(uses)}

fn main() -> cnn_explain::Result<()> {{
let out = std::path::Path::new("target/nb-{name}");
{(chr(10) + chr(10)).join(body)}
println!("wrote {{}}", out.display());
Ok(())
}}
"""
open(dst, "w").write(text)
