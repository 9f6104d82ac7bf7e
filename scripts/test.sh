#!/usr/bin/env bash
# The test command's body (after setup): formatting, lints, every Rust test and doctest, then every
# notebook in quick mode with a check of its HTML export (written under target/, never over
# html-exports/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
step() { echo; echo "== test: $* =="; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
step "cargo test (unit, integration and doctests)"
cargo test --lib --bins --tests --examples --quiet
cargo test --doc --quiet
step "notebooks in quick mode"
scripts/run-notebooks.sh --quick
