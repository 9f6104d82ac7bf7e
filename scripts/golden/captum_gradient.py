"""Golden values for the gradient family and the noise tunnel, from Captum.

Library versions used to make tests/fixtures/captum_gradient.safetensors:
    torch 2.13.0, captum 0.9.0, safetensors 0.8.0, numpy 2.4.6 (Python 3.11)

Run by hand (the tests only read the fixture):
    /work/main/.venv-ref/bin/python scripts/golden/captum_gradient.py

The network is conv3x3(3->4, pad 1)-ReLU-conv3x3(4->4, pad 1)-ReLU-global avg pool-linear(4->3) with
parameter names conv1.*, conv2.*, fc.* (the Rust test builds the same chain as a `Staged` and loads the
weights by name). Inputs are [2, 3, 8, 8], targets [0, 2].

Captum's NoiseTunnel draws its noise with `torch.normal`; to compare with a fixed noise, `torch.normal` is
replaced during the call by a function returning the noise saved in the fixture (`noise`, shape
[samples, N, C, H, W]; Captum orders its expanded batch sample-major per input, row i * S + s). The script
also checks the result against the definition (Saliency on x + noise[s], then mean / mean of squares /
variance over s).
"""

import json
import os

import captum
import numpy as np
import safetensors
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import IntegratedGradients, InputXGradient, NoiseTunnel, Saliency
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def main():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.rand(2, 3, 8, 8)
    target = [0, 2]
    samples, sigma_abs = 6, 0.15
    noise = torch.randn(samples, 2, 3, 8, 8) * sigma_abs

    out = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out["input"] = x.clone()
    out["target"] = torch.tensor(target, dtype=torch.int64)
    out["noise"] = noise.clone()
    out["logits"] = net(x).detach()

    out["saliency_abs"] = Saliency(net).attribute(x, target=target, abs=True)
    out["saliency_signed"] = Saliency(net).attribute(x, target=target, abs=False)
    out["input_x_gradient"] = InputXGradient(net).attribute(x.clone().requires_grad_(), target=target).detach()
    ig = IntegratedGradients(net)
    for method in ["riemann_trapezoid", "gausslegendre", "riemann_left", "riemann_middle", "riemann_right"]:
        a, d = ig.attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=20, method=method,
                            return_convergence_delta=True)
        out[f"ig_{method}"] = a.detach()
        out[f"ig_{method}_delta"] = d.detach()

    # Captum's NoiseTunnel over Saliency (abs=True, its default) with the fixed noise injected.
    expanded = noise.permute(1, 0, 2, 3, 4).reshape(2 * samples, 3, 8, 8)
    real_normal = torch.normal

    def fixed_normal(mean, std, *args, **kwargs):
        assert tuple(std.shape) == tuple(expanded.shape), std.shape
        return expanded.clone()

    for kind in ["smoothgrad", "smoothgrad_sq", "vargrad"]:
        torch.normal = fixed_normal
        try:
            a = NoiseTunnel(Saliency(net)).attribute(x, nt_type=kind, nt_samples=samples, stdevs=sigma_abs,
                                                     target=target)
        finally:
            torch.normal = real_normal
        out[f"nt_{kind}"] = a.detach()

    # The definition, as a check that the injection did what it says.
    maps = torch.stack([Saliency(net).attribute(x + noise[s], target=target, abs=True) for s in range(samples)])
    ref = {"smoothgrad": maps.mean(0), "smoothgrad_sq": (maps ** 2).mean(0),
           "vargrad": (maps ** 2).mean(0) - maps.mean(0) ** 2}
    for kind, r in ref.items():
        err = (out[f"nt_{kind}"] - r).abs().max().item()
        assert err < 1e-6, (kind, err)

    out = {k: v.contiguous() for k, v in out.items()}
    path = os.path.join(OUT, "captum_gradient.safetensors")
    save_file(out, path)
    meta = {
        "script": "scripts/golden/captum_gradient.py",
        "versions": {"torch": torch.__version__, "captum": captum.__version__,
                     "safetensors": safetensors.__version__, "numpy": np.__version__},
        "model": "conv1 Conv2d(3,4,3,pad=1) ReLU conv2 Conv2d(4,4,3,pad=1) ReLU adaptive_avg_pool2d(1) fc Linear(4,3)",
        "seed": 0, "input_shape": [2, 3, 8, 8], "target": target,
        "ig": {"n_steps": 20, "baseline": "zeros"},
        "noise_tunnel": {"inner": "Saliency(abs=True)", "nt_samples": samples, "noise_std": sigma_abs,
                         "noise_layout": "[samples, N, C, H, W]"},
        "tensors": sorted(out.keys()),
    }
    with open(os.path.join(OUT, "captum_gradient.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
