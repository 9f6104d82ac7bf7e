#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless with the evcxr kernel and exports it to HTML.
#   scripts/run-notebooks.sh           full mode -> html-exports/<name>.html and html-exports/index.html
#   scripts/run-notebooks.sh --quick   quick mode (CNN_EXPLAIN_QUICK=1: fewer epochs and samples, same
#                                      code paths) -> target/notebook-check/, then checks the exports
#   scripts/run-notebooks.sh [--quick] NAME...   only the named notebooks (notebooks/NAME.ipynb)
# Notebooks run one after another in one shared EVCXR_TMPDIR, so the crate and torch-sys compile once.
# Each export is written under a temporary name and renamed, so a failed run leaves the old export.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mode=full
out=html-exports
if [ "${1:-}" = "--quick" ]; then
  mode=quick
  out=target/notebook-check
  export CNN_EXPLAIN_QUICK=1
  shift
fi
[ -x .tools/bin/evcxr_jupyter ] || { echo "run-notebooks: evcxr_jupyter is missing from .tools/bin: run scripts/setup.sh" >&2; exit 1; }
export EVCXR_TMPDIR="$CNN_ROOT/.cache/evcxr-build"
export CNN_EXPLAIN_CACHE="$CNN_ROOT/.cache/models-$mode"
mkdir -p "$out" "$EVCXR_TMPDIR" "$JUPYTER_RUNTIME_DIR"
work="$(mktemp -d "$CNN_ROOT/.cache/nbrun.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
shopt -s nullglob
notebooks=(notebooks/*.ipynb)
if [ $# -gt 0 ]; then
  notebooks=()
  for name in "$@"; do
    [ -f "notebooks/$name.ipynb" ] || { echo "run-notebooks: no notebook notebooks/$name.ipynb" >&2; exit 1; }
    notebooks+=("notebooks/$name.ipynb")
  done
fi
[ ${#notebooks[@]} -gt 0 ] || { echo "run-notebooks: no notebooks in notebooks/" >&2; exit 1; }
for nb in "${notebooks[@]}"; do
  name="$(basename "$nb" .ipynb)"
  start=$(date +%s)
  echo "run-notebooks [$mode]: $name ..."
  if jupyter nbconvert --to html --execute --ExecutePreprocessor.kernel_name=rust \
      --ExecutePreprocessor.timeout=5400 --output-dir "$work" --output "$name" "$nb" > "$work/$name.log" 2>&1; then
    mv "$work/$name.html" "$out/$name.html"
    echo "run-notebooks [$mode]: $name done in $(( $(date +%s) - start )) s -> $out/$name.html"
  else
    # Keep the whole log: the cell's error can be longer than the tail shown here.
    mkdir -p target/notebook-logs
    cp "$work/$name.log" "target/notebook-logs/$mode-$name.log"
    tail -n 40 "$work/$name.log" >&2
    echo "run-notebooks [$mode]: $name FAILED after $(( $(date +%s) - start )) s (whole log: target/notebook-logs/$mode-$name.log)" >&2
    failed+=("$name")
  fi
done
.venv/bin/python scripts/export_index.py notebooks "$out"
if [ "$mode" = quick ]; then
  .venv/bin/python scripts/check_exports.py notebooks "$out" || failed+=("export checks")
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "run-notebooks: failed: ${failed[*]}" >&2
  exit 1
fi
echo "run-notebooks: all ${#notebooks[@]} notebooks exported to $out/"
