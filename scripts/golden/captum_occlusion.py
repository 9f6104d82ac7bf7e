"""Golden values for cnn_explain::attribution::occlusion::Occlusion.

Reference: captum 0.9.0 (captum.attr.Occlusion) on torch 2.13.0, safetensors (pip).
Run by hand:  /work/main/.venv-ref/bin/python scripts/golden/captum_occlusion.py
Writes tests/fixtures/captum_occlusion.safetensors with the tiny net's weights, the input, and one
attribution map per case (Captum's output has 3 identical channels because the window spans all
channels; channel 0 is stored, shape [N, 1, H, W]).
"""
import pathlib

import captum
import torch
from captum.attr import Occlusion
from safetensors.torch import save_file

assert captum.__version__ == "0.9.0", captum.__version__
torch.manual_seed(0)
g = torch.Generator().manual_seed(1234)

conv_w = torch.randn(4, 3, 3, 3, generator=g) * 0.5
conv_b = torch.randn(4, generator=g) * 0.1
fc_w = torch.randn(3, 4, generator=g)
fc_b = torch.randn(3, generator=g) * 0.1
x = torch.rand(2, 3, 8, 8, generator=g)


def net(xs):
    h = torch.nn.functional.conv2d(xs, conv_w, conv_b, padding=1).relu()
    h = h.mean(dim=(2, 3))
    return h @ fc_w.T + fc_b


def probs(xs):
    return net(xs).softmax(dim=1)


target = [0, 2]
out = {
    "conv_w": conv_w,
    "conv_b": conv_b,
    "fc_w": fc_w,
    "fc_b": fc_b,
    "input": x,
}
cases = {
    # name: (forward, window (h, w), stride (h, w), baseline)
    "logit_w3_s2_b0": (net, (3, 3), (2, 2), 0.0),
    "logit_w4_s4_b05": (net, (4, 4), (4, 4), 0.5),
    "prob_w3_s1_b0": (probs, (3, 3), (1, 1), 0.0),
    "prob_w2x5_s1x3_b02": (probs, (2, 5), (1, 3), 0.2),
}
for name, (fwd, (wh, ww), (sh, sw), base) in cases.items():
    attr = Occlusion(fwd).attribute(
        x,
        sliding_window_shapes=(3, wh, ww),
        strides=(3, sh, sw),
        baselines=base,
        target=target,
        perturbations_per_eval=7,
    )
    assert torch.allclose(attr[:, 0], attr[:, 1]) and torch.allclose(attr[:, 0], attr[:, 2])
    out[name] = attr[:, :1].contiguous()

path = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "captum_occlusion.safetensors"
save_file({k: v.contiguous().float() for k, v in out.items()}, str(path))
print("wrote", path, {k: tuple(v.shape) for k, v in out.items()})
