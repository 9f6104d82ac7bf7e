# Sourced by the project's scripts: the environment the build, the tests and the notebook kernel need.
# Paths are absolute and derived from the checkout, so a clone anywhere works.
CNN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CNN_ROOT
# The same string as .cargo/config.toml's relative LIBTORCH, so that plain `cargo` and the scripts do
# not make torch-sys (whose build script reruns when LIBTORCH changes) rebuild each other's builds.
export LIBTORCH="$CNN_ROOT/.venv/torch"
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
CARGO_BIN_DIR="$(dirname "$(command -v cargo 2>/dev/null || echo "$HOME/.cargo/bin/cargo")")"
export PATH="$CNN_ROOT/.tools/bin:$CNN_ROOT/.venv/bin:$CARGO_BIN_DIR:$PATH"
export EVCXR_CONFIG_DIR="$CNN_ROOT/.tools/evcxr-config"
# Jupyter's own files (runtime, data) stay inside the checkout, not in the user's home.
export JUPYTER_DATA_DIR="$CNN_ROOT/.venv/share/jupyter"
export JUPYTER_RUNTIME_DIR="$CNN_ROOT/.cache/jupyter-runtime"
export JUPYTER_PLATFORM_DIRS=1
# libtorch's OpenMP threads sleep instead of spinning when idle: on shared 2-core machines spinning
# makes timings swing by 10x.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
