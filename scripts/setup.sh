#!/usr/bin/env bash
# One-time, idempotent, project-local setup: everything below lives inside the checkout and is ignored
# by git (.venv/, .tools/, .cache/). A second run only checks and takes a few seconds.
#   .venv/            Python venv: the torch==2.13.0 wheel (libtorch for tch 0.26), nbconvert, jupyterlab
#   .venv/torch       stable link to the wheel's torch folder (LIBTORCH), whatever the Python version
#   .tools/bin/       evcxr_jupyter 0.22.0, the Rust Jupyter kernel
#   .venv/share/jupyter/kernels/rust   the kernel registered inside the venv, not in your home
# CNN_SETUP=libtorch: the venv and libtorch only (enough to build, test and bench the library).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TORCH_VERSION=2.13.0
CUDA_RUNTIME=nvidia-cuda-runtime==13.0.96
CUDA_CUPTI=nvidia-cuda-cupti==13.0.85
EVCXR_VERSION=0.22.0
NBCONVERT=nbconvert==7.17.2
JUPYTERLAB=jupyterlab==4.6.6

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# --- prerequisites ---------------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found. Install Rust (https://rustup.rs), open a new shell, run again."
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
  || die "no C/C++ compiler: torch-sys builds a C++ wrapper. Debian/Ubuntu: apt-get install build-essential"
command -v python3 >/dev/null 2>&1 || die "python3 not found. Debian/Ubuntu: apt-get install python3 python3-venv"

# --- the venv ----------------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "creating the Python venv in .venv"
  if ! python3 -m venv .venv 2>/tmp/cnn-explain-venv.$$.log; then
    cat /tmp/cnn-explain-venv.$$.log >&2 || true
    rm -rf .venv
    die "'python3 -m venv' failed: the venv module is missing. Debian/Ubuntu: apt-get install python3-venv (or python3.X-venv for your Python), then run again."
  fi
  .venv/bin/python -m pip install -q --upgrade pip
fi
PY=.venv/bin/python
pkg_version() { "$PY" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print('')" "$1"; }

# --- libtorch from the torch wheel --------------------------------------------------------------------
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
want_flavour=cpu; [ "$gpu" = 1 ] && want_flavour=cuda
have_torch="$(pkg_version torch)"
have_flavour="$(cat .venv/.torch-flavour 2>/dev/null || echo none)"
if [ "$have_torch" != "$TORCH_VERSION" ] || { [ "$want_flavour" = cuda ] && [ "$have_flavour" != cuda ]; }; then
  if [ -n "$have_torch" ] && [ "$have_torch" != "$TORCH_VERSION" ]; then
    say "the venv has torch $have_torch, but tch 0.26 needs exactly torch $TORCH_VERSION: replacing it"
  fi
  if [ "$want_flavour" = cuda ]; then
    say "NVIDIA GPU found: installing the full torch==$TORCH_VERSION wheel with CUDA (about 4.7 GB)"
    "$PY" -m pip install -q "torch==$TORCH_VERSION"
  else
    say "installing libtorch for CPU: torch==$TORCH_VERSION without its CUDA dependencies (about 1.3 GB)"
    "$PY" -m pip install -q --no-deps "torch==$TORCH_VERSION" "$CUDA_RUNTIME" "$CUDA_CUPTI"
  fi
  echo "$want_flavour" > .venv/.torch-flavour
  # A different libtorch under the same path: make torch-sys rebuild against it.
  rm -rf target/debug/build/torch-sys-* target/release/build/torch-sys-* 2>/dev/null || true
fi
site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
[ -f "$site/torch/lib/libtorch_cpu.so" ] || die "$site/torch/lib/libtorch_cpu.so is missing: the torch wheel is broken. Remove .venv and run again."
ln -sfn "$site/torch" .venv/torch
# CNN_SETUP=libtorch stops here: the venv with libtorch is all that building the library, its tests
# and the benchmarks need (scripts/bench-peers.sh asks for no more); the notebooks' kernel and
# Jupyter come with the full setup, which a later run without it completes.
if [ "${CNN_SETUP:-}" = libtorch ]; then
  say "ready: torch $TORCH_VERSION ($want_flavour) in .venv (CNN_SETUP=libtorch: no Jupyter, no kernel)"
  exit 0
fi

# --- Jupyter: nbconvert for headless runs, JupyterLab for interactive use ----------------------------------
if [ -z "$(pkg_version nbconvert)" ] || [ -z "$(pkg_version jupyterlab)" ]; then
  say "installing $NBCONVERT $JUPYTERLAB"
  # --no-warn-conflicts: the CPU set of torch leaves out its CUDA and Python-side dependencies on
  # purpose (libtorch is all tch needs), which pip would otherwise list as "dependency conflicts".
  "$PY" -m pip install -q --no-warn-conflicts "$NBCONVERT" "$JUPYTERLAB"
fi

# --- the evcxr Jupyter kernel -------------------------------------------------------------------------
EVCXR=.tools/bin/evcxr_jupyter
# evcxr_jupyter has no --version: cargo's install record says which version sits in .tools.
if [ ! -x "$EVCXR" ] || ! grep -q "^\"evcxr_jupyter $EVCXR_VERSION " .tools/.crates.toml 2>/dev/null; then
  say "building evcxr_jupyter $EVCXR_VERSION into .tools (cargo install --locked; about 10 minutes, once)"
  cargo install --quiet --locked evcxr_jupyter --version "$EVCXR_VERSION" --root .tools \
    || die "cargo install evcxr_jupyter failed (see above). It needs a C compiler and network access to crates.io."
fi

# The kernel, registered inside the venv with the environment it needs: evcxr builds cells in its own
# folder, so .cargo/config.toml does not reach it, and it loads compiled cells into its own process,
# so libtorch must be on LD_LIBRARY_PATH.
source scripts/env.sh
mkdir -p .tools/evcxr-config .cache
kdir=.venv/share/jupyter/kernels/rust
if [ ! -f "$kdir/version.txt" ] || ! grep -q '"LIBTORCH"' "$kdir/kernel.json" 2>/dev/null \
    || ! grep -q "\"$ROOT/.tools/bin/evcxr_jupyter\"" "$kdir/kernel.json" 2>/dev/null; then
  say "registering the evcxr kernel inside the venv ($kdir)"
  JUPYTER_PATH="$ROOT/.venv/share/jupyter" .tools/bin/evcxr_jupyter --install > /dev/null \
    || die "evcxr_jupyter --install failed"
fi
# Add the environment the kernel needs to the spec evcxr wrote (rewritten atomically every run, so a
# moved checkout or a new cargo location is picked up).
"$PY" - "$ROOT" "$kdir/kernel.json" <<'PY'
import json, os, sys
root, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    spec = json.load(f)
env = {k: os.environ[k] for k in ["LIBTORCH", "LD_LIBRARY_PATH", "PATH", "EVCXR_CONFIG_DIR", "OMP_WAIT_POLICY"]}
env["XDG_CACHE_HOME"] = os.path.join(root, ".cache")
# glibc keeps freed memory for the next tensor instead of returning it to the kernel (what
# cnn_explain::runtime::keep_freed_memory() sets from inside a program): about half the time of a
# forward pass of the small CNN went to page faults without it.
env.update({"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "2147483647", "MALLOC_ARENA_MAX": "1"})
spec["env"] = env
spec["display_name"] = "Rust (cnn-explain)"
spec["argv"][0] = os.path.join(root, ".tools/bin/evcxr_jupyter")
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(spec, f, indent=2)
os.replace(tmp, path)
PY
# evcxr's startup commands: cache compiled dependencies (inside .cache via XDG_CACHE_HOME).
cat > .tools/evcxr-config/init.evcxr.tmp <<'EVCXR'
:cache 8000
EVCXR
mv .tools/evcxr-config/init.evcxr.tmp .tools/evcxr-config/init.evcxr
"$PY" -m jupyter kernelspec list 2>/dev/null | grep -q "$ROOT/.venv/share/jupyter/kernels/rust" \
  || die "the rust kernel is not visible to the venv's Jupyter (expected in $kdir)"
# --- Chromium, for the live monitor's end-to-end test (tests/monitor.rs skips it without a browser) ----
have_browser() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || command -v google-chrome >/dev/null 2>&1; }
if ! have_browser; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium with apt-get (the headless browser of the monitor's end-to-end test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || say "could not install chromium: the monitor's browser test will be skipped"
  else
    say "no chromium: the monitor's browser test will be skipped (Debian/Ubuntu: apt-get install chromium)"
  fi
fi
say "ready: torch $TORCH_VERSION ($want_flavour), evcxr_jupyter $EVCXR_VERSION, kernel 'rust' in .venv"
