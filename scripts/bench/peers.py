#!/usr/bin/env python3
"""Python side of `benches/peers.rs`: the same work with the libraries people use today.

Run with the reference environment (scripts/reference-env.sh makes .venv-ref: torch 2.13.0,
captum 0.9.0, grad-cam (pytorch-grad-cam) 1.5.7, torchcam 0.5.0, lime 0.2.0.1):

    .venv-ref/bin/python scripts/bench/peers.py --work target/bench-peers/work --threads 2
    .venv-ref/bin/python scripts/bench/peers.py --self-check

It reads the work folder the crate side wrote (crate.json, the weights under torchvision's names,
the inputs and target classes), builds the same architectures (torchvision's ResNets; the small CNN
of scripts/bench/pytorch_train.py), loads the identical weights (every name must match), and for
every (model, batch, method) row the crate ran, times each peer library that has the method: one
warm-up run, then as many timed runs as the crate did. It writes peers.json (times, versions, load)
and <model>_b<batch>_peers.safetensors (maps under "<method>/<peer>") for the report.

Settings follow crate.json's (same steps, samples, windows, batch sizes of the inner passes,
targets). Each library object (with its hooks) is made once per row, outside the timed calls, and
released after the row, so no hook slows another library.

--self-check: no crate needed; a random small CNN on a random input, every method once, checks the
shapes and that pytorch-grad-cam and torchcam Grad-CAM agree after normalisation; prints versions.
"""
import argparse
import importlib.metadata as md
import json
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's Score-CAM progress bars

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train import SmallCnn  # noqa: E402

LIBS = ["torch", "torchvision", "captum", "grad-cam", "torchcam", "lime", "scikit-image", "numpy"]


def versions():
    return {p: md.version(p) for p in LIBS}


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def build(name, classes):
    import torchvision
    if name == "small_cnn":
        return SmallCnn(classes)
    if name == "resnet18":
        return torchvision.models.resnet18(num_classes=classes)
    if name == "resnet50":
        return torchvision.models.resnet50(num_classes=classes)
    raise SystemExit(f"unknown model {name!r}")


def load_model(work, info):
    model = build(info["name"], info["classes"])
    state = load_file(os.path.join(work, info["weights"]))
    mine = set(model.state_dict().keys())
    theirs = set(state.keys())
    if mine != theirs:
        raise SystemExit(f"{info['name']}: weight names differ: missing {sorted(mine - theirs)[:5]}, "
                         f"unexpected {sorted(theirs - mine)[:5]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def module(model, path):
    m = model
    for part in path.split("."):
        m = getattr(m, part)
    return m


def minmax(t):
    """Per-sample min-max normalisation of [N, ...] (a constant map becomes zeros)."""
    flat = t.flatten(1).double()
    lo = flat.min(1, keepdim=True).values
    rng = flat.max(1, keepdim=True).values - lo
    rng = torch.where(rng > 0, rng, torch.ones_like(rng))
    return ((flat - lo) / rng).view_as(t)


def upsample(m, size):
    """[N, h, w] or [N, 1, h, w] -> [N, 1, H, W], bilinear with half-pixel centres (the crate's)."""
    if m.dim() == 3:
        m = m.unsqueeze(1)
    return F.interpolate(m.float(), size=(size, size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------------------------------------
# The peers. Each maker takes (model, x, targets, info) and returns (call, release, to_map):
# `call()` is timed; `to_map(output)` turns its output into [N, C or 1, H, W] for the comparison.
# ---------------------------------------------------------------------------------------------

def plain(f, to_map=lambda o: o):
    return f, (lambda: None), to_map


def torch_forward(model, x, t, info):
    def call():
        with torch.no_grad():
            return model(x)
    return plain(call)


def torch_floor(model, x, t, info):
    def call():
        xg = x.detach().clone().requires_grad_(True)
        score = model(xg).gather(1, t[:, None]).sum()
        (g,) = torch.autograd.grad(score, xg)
        return g
    return plain(call)


def captum_saliency(model, x, t, info):
    from captum.attr import Saliency
    sal = Saliency(model)
    return plain(lambda: sal.attribute(x, target=t, abs=True))


def captum_smoothgrad(model, x, t, info):
    from captum.attr import NoiseTunnel, Saliency
    nt = NoiseTunnel(Saliency(model))
    std = 0.15 * float(x.max() - x.min())
    return plain(lambda: nt.attribute(x, nt_type="smoothgrad", nt_samples=25, nt_samples_batch_size=25,
                                      stdevs=std, target=t, abs=True))


def captum_ig(model, x, t, info):
    from captum.attr import IntegratedGradients
    ig = IntegratedGradients(model)
    return plain(lambda: ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=50,
                                      method="riemann_trapezoid", internal_batch_size=50))


def captum_gradcam(model, x, t, info):
    from captum.attr import LayerGradCam
    gc = LayerGradCam(model, module(model, info["layer"]))
    size = x.shape[-1]
    return plain(lambda: gc.attribute(x, target=t, relu_attributions=True),
                 lambda o: upsample(o.detach(), size))


def captum_occlusion(model, x, t, info):
    from captum.attr import Occlusion

    def probs(z):
        return F.softmax(model(z), dim=1)
    occ = Occlusion(probs)
    return plain(lambda: occ.attribute(x, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8),
                                       baselines=0.0, target=t, perturbations_per_eval=64),
                 lambda o: o[:, :1])


def pgc_maker(cls_name, batch_size=None):
    def make(model, x, t, info):
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        cam = getattr(pgc, cls_name)(model=model, target_layers=[module(model, info["layer"])])
        if batch_size is not None:
            cam.batch_size = batch_size
        targets = [ClassifierOutputTarget(int(c)) for c in t]
        return (lambda: cam(input_tensor=x, targets=targets),
                cam.activations_and_grads.release,
                lambda o: torch.from_numpy(o).float().unsqueeze(1))
    return make


def torchcam_maker(cls_name, gradient=True, **kw):
    def make(model, x, t, info):
        from torchcam import methods as tcm
        ext = getattr(tcm, cls_name)(model, info["layer"], input_shape=tuple(x.shape[1:]), **kw)
        classes = [int(c) for c in t]
        size = x.shape[-1]

        def call():
            if gradient:
                scores = model(x)
                return ext(class_idx=classes, scores=scores)[0]
            with torch.no_grad():
                model(x)
            return ext(class_idx=classes)[0]
        return call, ext.remove_hooks, lambda o: upsample(o.detach(), size)
    return make


def lime_maker(model, x, t, info):
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm
    seg = SegmentationAlgorithm("slic", n_segments=50, compactness=10, sigma=0, start_label=0)
    images = x.permute(0, 2, 3, 1).double().numpy()

    def classifier(batch):
        with torch.no_grad():
            z = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
            return F.softmax(model(z), dim=1).numpy()

    def call():
        maps = []
        for i, img in enumerate(images):
            c = int(t[i])
            explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=i)
            e = explainer.explain_instance(img, classifier, labels=(c,), top_labels=None, hide_color=None,
                                           num_features=100000, num_samples=1000, batch_size=64,
                                           segmentation_fn=seg, random_seed=i)
            w = dict(e.local_exp[c])
            m = np.vectorize(lambda s: w.get(s, 0.0))(e.segments)
            maps.append(torch.from_numpy(m).float()[None])
        return torch.stack(maps)
    return plain(call)


PEERS = {
    "forward": [("torch", torch_forward)],
    "floor": [("torch", torch_floor)],
    "saliency": [("captum", captum_saliency)],
    "smoothgrad": [("captum", captum_smoothgrad)],
    "ig": [("captum", captum_ig)],
    "gradcam": [("pytorch-grad-cam", pgc_maker("GradCAM")), ("torchcam", torchcam_maker("GradCAM")),
                ("captum", captum_gradcam)],
    "gradcampp": [("pytorch-grad-cam", pgc_maker("GradCAMPlusPlus")), ("torchcam", torchcam_maker("GradCAMpp"))],
    "layercam": [("pytorch-grad-cam", pgc_maker("LayerCAM")), ("torchcam", torchcam_maker("LayerCAM"))],
    "scorecam": [("pytorch-grad-cam", pgc_maker("ScoreCAM", batch_size=32)),
                 ("torchcam", torchcam_maker("ScoreCAM", gradient=False, batch_size=32))],
    "occlusion": [("captum", captum_occlusion)],
    "lime": [("lime", lime_maker)],
}


def timed(call, warm, reps):
    out = None
    for _ in range(warm):
        out = call()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return times, out


def train_epoch(work, info, warm, reps):
    data = load_file(os.path.join(work, info["data"]))
    images, labels = data["images"], data["labels"]
    init = load_file(os.path.join(work, info["init"]))
    n, bs = images.shape[0], info["batch_size"]
    times = []
    for i in range(warm + reps):
        model = SmallCnn(6)
        model.load_state_dict(init, strict=True)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=info["lr"], momentum=info["momentum"],
                              weight_decay=info["weight_decay"])
        torch.manual_seed(i)
        start = time.perf_counter()
        perm = torch.randperm(n)
        for b in range(0, n, bs):
            idx = perm[b:b + bs]
            xs, ys = images.index_select(0, idx), labels.index_select(0, idx)
            logits = model(xs)
            loss = F.cross_entropy(logits, ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
            _ = loss.item()
            _ = (logits.argmax(-1) == ys).sum().item()
        if i >= warm:
            times.append(time.perf_counter() - start)
    return times, n


def run(work, threads):
    torch.set_num_threads(threads)
    with open(os.path.join(work, "crate.json")) as f:
        crate = json.load(f)
    warm, reps = crate["warmup"], crate["reps"]
    vers = versions()
    print("peers, Python side:", ", ".join(f"{k} {v}" for k, v in vers.items()),
          f"| {torch.get_num_threads()} threads", flush=True)
    load_before = load_average()
    models = {m["name"]: m for m in crate["models"]}
    built = {}
    rows = []
    maps = {}
    for row in crate["rows"]:
        name, batch, method = row["model"], row["batch"], row["method"]
        if method == "train_epoch":
            continue
        info = models[name]
        if name not in built:
            built[name] = load_model(work, info)
        model = built[name]
        case = load_file(os.path.join(work, f"{name}_b{batch}_input.safetensors"))
        x, t = case["input"].float(), case["targets"].long()
        for peer, make in PEERS.get(method, []):
            call, release, to_map = make(model, x, t, info)
            try:
                times, out = timed(call, warm, reps)
            finally:
                release()
            m = to_map(out)
            if isinstance(m, np.ndarray):
                m = torch.from_numpy(m)
            maps.setdefault((name, batch), {})[f"{method}/{peer}"] = m.detach().float().contiguous()
            rows.append({"model": name, "batch": batch, "method": method, "who": peer, "times": times,
                         "images": batch, "note": ""})
            med = sorted(times)[len(times) // 2] / batch
            print(f"{name:10} b{batch:<2} {method:11} {peer:17} {med:10.5f} s/img  load {load_average()}",
                  flush=True)
    if crate.get("train"):
        times, n = train_epoch(work, crate["train"], warm, reps)
        rows.append({"model": "small_cnn", "batch": crate["train"]["batch_size"], "method": "train_epoch",
                     "who": "torch", "times": times, "images": n, "note": ""})
        print(f"small_cnn  train epoch torch {sorted(times)[len(times) // 2] / n:.5f} s/img", flush=True)
    for (name, batch), named in maps.items():
        save_file(named, os.path.join(work, f"{name}_b{batch}_peers.safetensors"))
    out = {"threads": torch.get_num_threads(), "versions": vers, "load": [load_before, load_average()],
           "rows": rows}
    tmp = os.path.join(work, ".peers.json.tmp")
    with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    os.replace(tmp, os.path.join(work, "peers.json"))
    print("wrote", os.path.join(work, "peers.json"))


def self_check(threads):
    torch.set_num_threads(threads)
    print("versions:", versions())
    torch.manual_seed(0)
    model = SmallCnn(6).eval()
    info = {"name": "small_cnn", "classes": 6, "size": 64, "layer": "block3"}
    x = F.interpolate(torch.rand(2, 3, 16, 16), size=(64, 64), mode="bilinear", align_corners=False)
    with torch.no_grad():
        t = model(x).argmax(1)
    got = {}
    for method, peers in PEERS.items():
        for peer, make in peers:
            call, release, to_map = make(model, x, t, info)
            try:
                m = to_map(call())
            finally:
                release()
            m = torch.as_tensor(m)
            want = (2, 6) if method == "forward" else (2, 3, 64, 64) if method in (
                "floor", "saliency", "smoothgrad", "ig") else (2, 1, 64, 64)
            assert tuple(m.shape) == want, f"{method}/{peer}: shape {tuple(m.shape)}, expected {want}"
            assert torch.isfinite(m).all(), f"{method}/{peer}: not finite"
            got[f"{method}/{peer}"] = m
            print(f"ok {method}/{peer} {tuple(m.shape)}")
    for a, b in [("gradcam/pytorch-grad-cam", "gradcam/torchcam"), ("gradcam/pytorch-grad-cam", "gradcam/captum"),
                 ("layercam/pytorch-grad-cam", "layercam/torchcam"), ("saliency/captum", "floor/torch")]:
        ma, mb = got[a], got[b]
        if a.startswith("saliency"):
            mb = mb.abs()
        d = float((minmax(ma) - minmax(mb)).abs().max())
        print(f"{a} vs {b}: max normalised difference {d:.2e}")
        assert d < 1e-4, f"{a} and {b} disagree: {d}"
    print("self-check passed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="target/bench-peers/work")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--self-check", action="store_true")
    args = ap.parse_args()
    if args.self_check:
        self_check(args.threads)
    else:
        run(args.work, args.threads)


if __name__ == "__main__":
    main()
