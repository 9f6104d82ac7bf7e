#!/usr/bin/env bash
# The crate against Captum, pytorch-grad-cam, torchcam, lime and PyTorch, in one command
# (`make bench-peers`). Writes target/bench-peers/peers.md and peers.json (and the work folder
# target/bench-peers/work/ with the weights, inputs and maps of both sides).
#
#   1. makes the reference environment .venv-ref if it is missing (scripts/reference-env.sh);
#   2. builds and runs the crate side (cargo bench --bench peers, release profile);
#   3. runs the Python side (.venv-ref/bin/python scripts/bench/peers.py) on the same files;
#   4. joins both into the table (cargo bench --bench peers -- --report).
#
# Options (environment): BENCH_THREADS (default 2: both sides), PEERS_REPS (timed runs, default 5),
# PEERS_QUICK=1 (small CNN only, 2 runs: checks the pipeline in a few minutes), PEERS_RESNET50=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
export BENCH_THREADS="${BENCH_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
if [ ! -x .venv-ref/bin/python ] || ! .venv-ref/bin/python -c 'import torch, captum, pytorch_grad_cam, torchcam, lime' 2>/dev/null; then
  # .venv-ref may be a link into the main checkout: let the script make it there.
  ref_root="$(dirname "$(readlink -f .venv-ref 2>/dev/null || echo "$PWD/.venv-ref")")"
  if [ -x "$ref_root/scripts/reference-env.sh" ]; then
    (cd "$ref_root" && scripts/reference-env.sh)
  else
    scripts/reference-env.sh
  fi
fi
target="${CARGO_TARGET_DIR:-target}"
export PEERS_WORK="${PEERS_WORK:-$PWD/$target/bench-peers/work}"
mkdir -p "$PEERS_WORK"
rm -f "$PEERS_WORK"/*.safetensors "$PEERS_WORK"/*.json
start=$(date +%s)
echo "== bench-peers: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $BENCH_THREADS threads"
echo "== 1/3 crate side"
cargo bench --bench peers
echo "== 2/3 Python side"
.venv-ref/bin/python scripts/bench/peers.py --work "$PEERS_WORK" --threads "$BENCH_THREADS"
echo "== 3/3 report"
cargo bench --bench peers -- --report
echo "== bench-peers: $(( $(date +%s) - start )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
