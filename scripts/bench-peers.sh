#!/usr/bin/env bash
# The crate against Captum, pytorch-grad-cam, torchcam, lime and PyTorch, in one command
# (`make bench-peers`). Writes target/bench-peers/peers.md and peers.json (and the work folder
# target/bench-peers/work/ with the weights, inputs and maps of both sides).
#
#   1. makes the reference environment .venv-ref if it is missing (scripts/reference-env.sh);
#   2. builds and runs `cargo bench --bench peers` (release profile). It starts the Python side
#      once as a server (.venv-ref/bin/python scripts/bench/peers.py --serve), exports each case
#      (weights, inputs, targets), then times both sides interleaved run by run (crate run i, each
#      peer's run i, crate run i + 1, ...; calls under 2 s each right after an untimed call of the
#      same side), so that every pair of runs sees the same load; then checks the maps of both
#      sides against each other and writes the table.
#
# `cargo bench --bench peers -- --report` re-makes the table from the work folder of the last run.
#
# Options (environment): BENCH_THREADS (default 2: both sides), PEERS_REPS (timed runs, default 5),
# PEERS_QUICK=1 (small CNN only, 2 runs: checks the pipeline in a few minutes), PEERS_PRE_RUN_BELOW
# (seconds, default 2: calls shorter than that are timed right after an untimed one), PEERS_FULL=1,
# PEERS_RESNET50=1, PEERS_SLOW=1 (with PEERS_RESNET50=1: Score-CAM, occlusion and LIME on ResNet-50
# too, about an hour more), PEERS_TIMEOUT (seconds to wait for one answer of the Python side,
# default 1800; a timed call gets 3 times its warm-up if longer), PEERS_RESUME=1 (go on with the stopped run in the work folder: its finished rows
# are kept and skipped, a row stopped midway goes on from its next timed call, after a warm-up on
# the first image), PEERS_WARM_FIRST_IMAGE=1 (the slow methods at batch 16 warm up on the first
# image from their start), PEERS_METHODS=scorecam (only these rows), PEERS_CARRY=folder (the run's
# crate.json and peers.json are copied there after every save, and a resumed run takes them from
# there when the work folder has none: for a row measured over sittings on machines that do not
# keep their files; {cpu} in it stands for the kind of CPU), PEERS_RESUME=auto (go on with the run
# in the work folder or PEERS_CARRY if there is one, start one if not). See benches/peers.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
# libtorch for the crate's side (the rest of the project's setup is not needed here).
[ -e .venv/torch/lib/libtorch_cpu.so ] || CNN_SETUP=libtorch scripts/setup.sh
source scripts/env.sh
export BENCH_THREADS="${BENCH_THREADS:-2}"
# Idle OpenMP threads sleep instead of spinning while the other side runs.
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
export PEERS_PYTHON="${PEERS_PYTHON:-$PWD/.venv-ref/bin/python}"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export PEERS_WORK="${PEERS_WORK:-$target/bench-peers/work}"
mkdir -p "$PEERS_WORK"
# PEERS_RESUME=1 (or auto) goes on with the stopped run in the work folder: keep its files.
if [ -z "${PEERS_RESUME:-}" ] || [ "${PEERS_RESUME}" = 0 ]; then
  rm -f "$PEERS_WORK"/*.safetensors "$PEERS_WORK"/*.json
fi
start=$(date +%s)
echo "== bench-peers: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $BENCH_THREADS threads"
cargo bench --bench peers -- --run
echo "== bench-peers: $(( $(date +%s) - start )) s; load $(cut -d' ' -f1-3 /proc/loadavg)"
