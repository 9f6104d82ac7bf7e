#!/usr/bin/env python3
"""How far the deterministic maps of the peers bench that depend on float32 rounding the most
(Integrated Gradients, occlusion) are from a float64 computation.

    .venv-ref/bin/python scripts/bench/float64_check.py [target/bench-peers/work [resnet50_b1 ...]]

(the optional names after the folder: only these cases.) `F64_IMAGES=10,8` computes only these
images of each batch (indices from 0), and runs Captum's Occlusion on them with the windows per
pass of the whole batch, so its float32 passes have the bench's size: one ResNet-50 image takes
about 4 minutes here for the three occlusion runs, the whole batch of 16 about an hour.

Reads the work folder of the last `scripts/bench-peers.sh` run (weights, inputs, the crate's and
Captum's maps) and computes each map once more in float64 on the same weights, inputs and targets:
- IG (50 steps, zero baseline, trapezoid rule) with the exact points k / 49, and again in float32
  with the points of Captum's own riemann_trapezoid (torch.linspace(0, 1, 50) in float32, one ulp
  off at 9 of the 50 points);
- occlusion (window 16, stride 8, baseline 0, softmax probability) with Captum's Occlusion on the
  model and input converted to float64; and, to show how far float32 itself moves that map, Captum's
  Occlusion in float32 once more with one thread instead of the bench's (oneDNN's convolutions then
  sum in another order) and with the input in channels-last memory (the crate's layout).
Prints, for each case, the largest difference of the min-max normalised maps (as the bench's
agreement column) between the crate and float64, Captum (as the bench ran it) and float64, and the
crate and Captum; for occlusion also Captum at one thread and Captum channels-last against Captum as
the bench ran it and against float64. torch 2.13.0 and captum 0.9.0 from the reference environment
(scripts/reference-env.sh).
"""
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402

STEPS = 50


def integrated_gradients(model, x, targets, alphas, dtype):
    """(x - 0) * sum_k grad F(alpha_k x) over the points; the weights are the same for all points but
    the two ends, which halve (the scale does not matter after normalisation, the ends do)."""
    model = model.to(dtype)
    x = x.to(dtype)
    weights = torch.full((len(alphas),), 1.0 / (len(alphas) - 1), dtype=dtype)
    weights[0] /= 2
    weights[-1] /= 2
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        points = torch.cat([a * x[i : i + 1] for a in alphas]).requires_grad_(True)
        score = model(points)[:, int(targets[i])].sum()
        (grad,) = torch.autograd.grad(score, points)
        out[i] = (grad * weights.view(-1, 1, 1, 1)).sum(0) * x[i]
    return out


def occlusion(model, x, targets, dtype, channels_last=False, per_pass=None):
    """Captum's Occlusion exactly as the bench runs it (`peers.captum_occlusion`), on the model and
    input in `dtype` (channels-last memory if asked)."""
    model = model.to(dtype)
    x = x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    call, _release, to_map = peers.captum_occlusion(model, x, targets, None, per_pass)
    return to_map(call())


def diff(a, b):
    return (peers.minmax(a) - peers.minmax(b)).abs().max().item()


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "target/bench-peers/work"
    only = sys.argv[2:]
    images = [int(i) for i in os.environ.get("F64_IMAGES", "").split(",") if i.strip()]
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}; work folder {work}")
    for name in ["small_cnn", "resnet18", "resnet50"]:
        for batch in [1, 16]:
            stem = os.path.join(work, f"{name}_b{batch}")
            if only and f"{name}_b{batch}" not in only:
                continue
            if not os.path.exists(stem + "_crate.safetensors"):
                continue
            crate = load_file(stem + "_crate.safetensors")
            theirs = load_file(stem + "_peers.safetensors")
            if not any(f"{m}/captum" in theirs for m in ["ig", "occlusion"]):
                continue
            inputs = load_file(stem + "_input.safetensors")
            x, targets = inputs["input"], inputs["targets"]
            # The bench's windows per pass for the whole batch (see peers.captum_occlusion).
            per_pass = max(1, 64 // x.shape[0])
            if images:
                if max(images) >= x.shape[0]:
                    sys.exit(f"F64_IMAGES: {max(images)} is out of range for {name} b{batch} "
                             f"({x.shape[0]} images, indices 0 to {x.shape[0] - 1})")
                pick = torch.tensor(images)
                x, targets = x[pick], targets[pick]
                crate = {k: v[pick] for k, v in crate.items() if k in ("ig", "occlusion")}
                theirs = {k: v[pick] for k, v in theirs.items()
                          if k in ("ig/captum", "occlusion/captum")}
            state = load_file(os.path.join(work, f"{name}.safetensors"))
            classes = state["fc.weight"].shape[0]
            model = peers.build(name, classes)
            model.load_state_dict(state, strict=True)
            model.eval()
            model_name = f"{name} b{batch}" + (f" images {images}" if images else "")
            if "ig" in crate and "ig/captum" in theirs:
                exact = [k / (STEPS - 1) for k in range(STEPS)]
                linspace = torch.linspace(0, 1, STEPS).tolist()
                ref = integrated_gradients(model, x, targets, exact, torch.float64)
                f32 = integrated_gradients(model, x, targets, linspace, torch.float32).float()
                c, p = crate["ig"], theirs["ig/captum"]
                print(
                    f"{model_name} ig: crate/f64 {diff(c, ref):.2e}  captum/f64 {diff(p, ref):.2e}  "
                    f"captum/crate {diff(p, c):.2e}  linspace-f32/f64 {diff(f32, ref):.2e}  "
                    f"linspace-f32/crate {diff(f32, c):.2e}"
                )
            if "occlusion" in crate and "occlusion/captum" in theirs:
                ref = occlusion(model, x, targets, torch.float64, per_pass=per_pass)
                model.float()
                cl = occlusion(model, x, targets, torch.float32, channels_last=True, per_pass=per_pass)
                torch.set_num_threads(1)
                one = occlusion(model, x, targets, torch.float32, per_pass=per_pass)
                torch.set_num_threads(threads)
                c, p = crate["occlusion"], theirs["occlusion/captum"]
                print(
                    f"{model_name} occlusion: crate/f64 {diff(c, ref):.2e}  "
                    f"captum/f64 {diff(p, ref):.2e}  captum/crate {diff(p, c):.2e}  "
                    f"captum-1-thread/captum {diff(one, p):.2e}  captum-1-thread/f64 {diff(one, ref):.2e}  "
                    f"captum-channels-last/captum {diff(cl, p):.2e}  captum-channels-last/f64 {diff(cl, ref):.2e}"
                )
            model.float()

if __name__ == "__main__":
    main()
