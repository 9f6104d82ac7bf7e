"""Dump torchvision's parameter and buffer names and shapes for the model zoo.

Generated with torch 2.13.0 and torchvision 0.28.0 (checked at run time below).
Run by hand with the reference environment:

    /work/main/.venv-ref/bin/python scripts/golden/torchvision_params.py

Writes tests/fixtures/torchvision_params.json: {arch: {state_dict_key: shape}} for the keys of
`model.state_dict()` (parameters and batch-norm buffers, including `num_batches_tracked`), with the
default 1000 classes. `tests/zoo_torchvision_names.rs` compares the zoo against it exactly.
"""

import json
import pathlib

import torch
import torchvision

assert torch.__version__.startswith("2.13.0"), torch.__version__
assert torchvision.__version__.startswith("0.28.0"), torchvision.__version__

ARCHS = ["resnet18", "resnet34", "resnet50", "vgg16", "alexnet"]


def main():
    out = {
        "_versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
    }
    for arch in ARCHS:
        # The meta device gives names and shapes without allocating or initialising weights.
        with torch.device("meta"):
            model = getattr(torchvision.models, arch)(weights=None)
        out[arch] = {k: list(v.shape) for k, v in model.state_dict().items()}
    path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "torchvision_params.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}: " + ", ".join(f"{a} {len(out[a])} keys" for a in ARCHS))


if __name__ == "__main__":
    main()
