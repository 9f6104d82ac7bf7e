# The two commands (both run the idempotent, project-local setup first):
#   make notebooks   execute every notebook headless and export it to html-exports/
#   make test        formatting, clippy, all Rust tests and doctests, and every notebook in quick mode
.PHONY: setup notebooks test rust-test notebook-check bench bench-peers
SHELL := /bin/bash

setup:
	@scripts/setup.sh

notebooks: setup
	@scripts/run-notebooks.sh

test: setup
	@scripts/test.sh

bench: setup
	@source scripts/env.sh && cargo bench

# The crate against Captum, pytorch-grad-cam, torchcam, lime and PyTorch: target/bench-peers/peers.md
bench-peers: setup
	@scripts/bench-peers.sh
