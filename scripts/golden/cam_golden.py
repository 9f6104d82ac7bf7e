#!/usr/bin/env python
"""Golden values for the CAM family (src/attribution/cam.rs, tests/cam_golden.rs).

Made with: torch 2.13.0, grad-cam (pytorch-grad-cam) 1.5.7, torchcam 0.5.0, numpy, opencv (cv2)
as installed by scripts/reference-env.sh. Run by hand:

    /work/main/.venv-ref/bin/python scripts/golden/cam_golden.py

Writes tests/fixtures/cam_golden.safetensors with
- the weights of a fixed small CNN (torch.manual_seed(0)) under the parameter names the Rust test
  uses (conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc.weight, fc.bias),
- `input` [2, 3, 16, 16] and `targets` [2] (int64, one class per sample),
- `pgc.<method>` [2, 16, 16]: pytorch-grad-cam outputs (ReLU, min-max, cv2 bilinear resize to the
  input size, min-max again),
- `tc.<method>` [2, 8, 8]: torchcam outputs at the layer's resolution (normalized=True).

Random methods: torchcam's noise distribution is replaced by the crate's own generator (SplitMix64 +
Box-Muller, exactly `cnn_explain::rng::Rng`), so SS-CAM is compared with the very same noise. Smooth
Grad-CAM++ is compared with zero noise (see the Rust test for why).

Eigen-CAM: numpy's SVD sign is arbitrary; `pgc.eigencam_signed` uses pytorch-grad-cam's own
`get_2d_projection_with_sign_correction` (flip so |max| >= |min|), the crate's convention; the plain
`pgc.eigencam` is stored too, with `pgc.eigencam_sign_agrees` [2] saying per sample whether numpy's sign
happened to agree.
"""
import math
import os
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from safetensors.torch import save_file

import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction
import torchcam
from torchcam import methods as tcm

MASK64 = (1 << 64) - 1


class SplitMix:
    """cnn_explain::rng::Rng, bit for bit (normals up to the last ulp of libm)."""

    def __init__(self, seed):
        self.state = (seed ^ 0x9E3779B97F4A7C15) & MASK64
        self.spare = None

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def normal(self):
        if self.spare is not None:
            z, self.spare = self.spare, None
            return z
        u1 = max(self.uniform(), 2.2250738585072014e-308)
        u2 = self.uniform()
        r = math.sqrt(-2.0 * math.log(u1))
        a = 2.0 * math.pi * u2
        self.spare = r * math.sin(a)
        return r * math.cos(a)

    def normal_tensor(self, shape):
        n = int(np.prod(shape))
        v = np.array([self.normal() for _ in range(n)], dtype=np.float32)
        return torch.from_numpy(v).reshape(tuple(shape))


class SplitMixNormal:
    """Stands in for torchcam's torch.distributions.Normal(0, std)."""

    def __init__(self, seed, std):
        self.rng, self.std = SplitMix(seed), std

    def sample(self, size):
        return self.rng.normal_tensor(list(size)) * self.std


class ZeroNoise:
    def sample(self, size):
        return torch.zeros(tuple(size))


def build():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 4, 3, padding=1)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(4, 6, 3, padding=1)),
        ("relu2", nn.ReLU()),
        ("gap", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("fc", nn.Linear(6, 3)),
    ])).eval()


def main():
    model = build()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 16, 16)
    targets = [1, 2]
    out = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    out["input"] = x.clone()
    out["targets"] = torch.tensor(targets, dtype=torch.int64)
    out["logits"] = model(x).detach()

    # pytorch-grad-cam
    layer = [model.relu2]
    tg = [ClassifierOutputTarget(c) for c in targets]
    for name, cls in [("gradcam", pgc.GradCAM), ("gradcampp", pgc.GradCAMPlusPlus),
                      ("xgradcam", pgc.XGradCAM), ("layercam", pgc.LayerCAM),
                      ("hirescam", pgc.HiResCAM), ("scorecam", pgc.ScoreCAM),
                      ("eigencam", pgc.EigenCAM)]:
        with cls(model=model, target_layers=layer) as cam:
            if name == "scorecam":
                cam.batch_size = 8
            out[f"pgc.{name}"] = torch.from_numpy(cam(input_tensor=x, targets=tg)).float()

    class SignedEigenCAM(pgc.EigenCAM):
        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            return get_2d_projection_with_sign_correction(activations)

    with SignedEigenCAM(model=model, target_layers=layer) as cam:
        out["pgc.eigencam_signed"] = torch.from_numpy(cam(input_tensor=x, targets=tg)).float()
    agree = [bool(np.allclose(a, b, atol=1e-6)) for a, b in
             zip(out["pgc.eigencam"].numpy(), out["pgc.eigencam_signed"].numpy())]
    out["pgc.eigencam_sign_agrees"] = torch.tensor(agree, dtype=torch.int64)

    # torchcam (maps at the layer's resolution, normalized)
    def tc(cls, needs_scores=True, setup=None, **kw):
        with cls(model, "relu2", **kw) as ext:
            if setup is not None:
                setup(ext)
            if needs_scores:
                scores = model(x)
                cams = ext(class_idx=targets, scores=scores)
            else:
                with torch.no_grad():
                    model(x)
                cams = ext(class_idx=targets)
            return cams[0].detach().float().clone()

    out["tc.cam"] = tc(tcm.CAM, needs_scores=False, fc_layer="fc")
    out["tc.gradcam"] = tc(tcm.GradCAM)
    out["tc.gradcampp"] = tc(tcm.GradCAMpp)
    out["tc.xgradcam"] = tc(tcm.XGradCAM)
    out["tc.layercam"] = tc(tcm.LayerCAM)
    out["tc.scorecam"] = tc(tcm.ScoreCAM, needs_scores=False, batch_size=8)
    out["tc.iscam"] = tc(tcm.ISCAM, needs_scores=False, batch_size=8, num_samples=4)

    # SmoothGradCAMpp needs a forward pass to store the input, then recomputes with (zero) noise.
    with tcm.SmoothGradCAMpp(model, "relu2", num_samples=2, std=0.3) as ext:
        ext._distrib = ZeroNoise()
        model(x)
        out["tc.smoothgradcampp_sigma0"] = ext(class_idx=targets)[0].detach().float().clone()

    def ss_noise(ext):
        ext._distrib = SplitMixNormal(seed=7, std=0.5)
    out["tc.sscam_seed7_std0.5_n3"] = tc(tcm.SSCAM, needs_scores=False, setup=ss_noise,
                                         batch_size=8, num_samples=3, std=0.5)

    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "tests", "fixtures", "cam_golden.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path,
              metadata={"torch": torch.__version__, "torchcam": torchcam.__version__,
                        "grad-cam": "1.5.7"})
    print("wrote", os.path.normpath(path))
    for k, v in out.items():
        print(f"{k:32s} {tuple(v.shape)}")
    print("eigencam sign agrees with numpy's:", agree)


if __name__ == "__main__":
    main()
