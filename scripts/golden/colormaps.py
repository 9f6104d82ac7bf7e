"""Anchor tables and golden values for cnn_explain::viz::colormap.

Made with matplotlib 3.11.2 (from /work/main/.venv-ref, the reference environment).
Prints the Rust anchor tables (viridis, inferno: every 8th entry of matplotlib's 256-entry lists
plus the last; RdBu: ColorBrewer's 11 colours) and writes tests/fixtures/colormaps.json with
matplotlib's colours at t = 0, 0.05, ..., 1 for each map (jet, viridis, inferno, RdBu_r).
Run by hand: /work/main/.venv-ref/bin/python scripts/golden/colormaps.py
"""
import json
import matplotlib
from matplotlib import colormaps
import numpy as np

def anchors(name):
    cm = colormaps[name].resampled(256)
    idx = list(range(0, 256, 8)) + [255]
    return [tuple(float(c) for c in cm(i)[:3]) for i in idx]

for name in ["viridis", "inferno"]:
    print(f"// {name}: matplotlib {matplotlib.__version__}, entries 0, 8, ..., 248, 255")
    for r, g, b in anchors(name):
        print(f"    [{r:.6f}, {g:.6f}, {b:.6f}],")
print("// RdBu reversed (blue -> white -> red)")
from matplotlib._cm import _RdBu_data
for r, g, b in reversed(_RdBu_data):
    print(f"    [{r:.6f}, {g:.6f}, {b:.6f}],")

ts = [i / 20 for i in range(21)]
out = {"matplotlib": matplotlib.__version__, "t": ts}
for name in ["jet", "viridis", "inferno", "RdBu_r"]:
    cm = colormaps[name]
    out[name] = [[int(round(c * 255)) for c in cm(t)[:3]] for t in ts]
json.dump(out, open("tests/fixtures/colormaps.json", "w"), indent=1)
