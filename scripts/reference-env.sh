#!/usr/bin/env bash
# Makes .venv-ref: the full PyTorch wheel and the Python reference libraries (Captum, pytorch-grad-cam,
# torchcam, lime, torchvision). Used by hand to regenerate golden values and fixtures
# (scripts/golden/*.py) and by the Python side of the benchmarks; never by `make test`.
# About 5 GB and 2-3 minutes on a fresh machine; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
REF=.venv-ref
PINS=(torch==2.13.0 torchvision captum==0.9.0 grad-cam==1.5.7 torchcam==0.5.0 lime==0.2.0.1
      scikit-image numpy safetensors)
if [ ! -x "$REF/bin/python" ]; then
  echo "reference-env: creating $REF"
  python3 -m venv "$REF"
fi
if ! "$REF/bin/python" -c 'import torch, torchvision, captum, pytorch_grad_cam, torchcam, lime, safetensors' 2>/dev/null; then
  echo "reference-env: installing ${PINS[*]}"
  "$REF/bin/pip" install -q --upgrade pip
  "$REF/bin/pip" install -q "${PINS[@]}"
fi
"$REF/bin/python" - <<'PY'
import importlib.metadata as m
for p in ["torch", "torchvision", "captum", "grad-cam", "torchcam", "lime", "scikit-image", "numpy"]:
    print(f"reference-env: {p}=={m.version(p)}")
PY
