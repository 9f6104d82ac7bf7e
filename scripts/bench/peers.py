#!/usr/bin/env python3
"""Python side of `benches/peers.rs`: the same work with the libraries people use today.

Run with the reference environment (scripts/reference-env.sh makes .venv-ref: torch 2.13.0,
captum 0.9.0, grad-cam (pytorch-grad-cam) 1.5.7, torchcam 0.5.0, lime 0.2.0.1):

    .venv-ref/bin/python scripts/bench/peers.py --serve --work target/bench-peers/work --threads 2
    .venv-ref/bin/python scripts/bench/peers.py --self-check

--serve: started once by the crate side (`cargo bench --bench peers`, run by scripts/bench-peers.sh),
which drives it with JSON lines on stdin (one answer per line on stdout; logging on stderr; see
`Server` for the commands). For each case the crate exported (weights under torchvision's names,
inputs, target classes in the work folder) it builds the same architecture (torchvision's ResNets;
the small CNN of scripts/bench/pytorch_train.py), loads the identical weights (every name must
match), and runs one call of one peer's method whenever the crate asks, so that the crate can
interleave both sides run by run: crate run i, each peer's run i, crate run i + 1, ... Each library
object (with its hooks) is made once per row, outside the timed calls, on its own copy of the model
(so no hook slows another library), and released after the row. The maps of each case's last runs
go to <model>_b<batch>_peers.safetensors (under "<method>/<peer>") for the report.

Settings follow the crate's (same steps, samples, windows, batch sizes of the inner passes,
targets): see SETTINGS in benches/peers.rs.

--self-check: no crate needed; a random small CNN on a random input, every method once, checks the
shapes and that pytorch-grad-cam and torchcam Grad-CAM agree after normalisation; prints versions.
"""
import argparse
import copy
import importlib.metadata as md
import json
import os
import sys
import time
import traceback

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
    raise ValueError(f"unknown model {name!r}: small_cnn, resnet18 or resnet50")


def load_model(work, info):
    model = build(info["name"], info["classes"])
    state = load_file(os.path.join(work, info["weights"]))
    mine = set(model.state_dict().keys())
    theirs = set(state.keys())
    if mine != theirs:
        raise ValueError(f"{info['name']}: weight names differ: missing {sorted(mine - theirs)[:5]}, "
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


def displayable(m, size):
    """What a user of Captum or torchcam must add to get the map the crate and pytorch-grad-cam
    return (input size, each map in [0, 1]): the upsampling and a per-sample min-max normalisation.
    Part of the timed call, so that every library is timed for the same work."""
    m = upsample(m.detach(), size)
    flat = m.flatten(1)
    lo = flat.amin(1, keepdim=True)
    rng = flat.amax(1, keepdim=True) - lo
    return ((flat - lo) / torch.where(rng > 0, rng, torch.ones_like(rng))).view_as(m)


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
    # Captum's nt_samples_batch_size counts noise samples per input: a pass holds batch x that many
    # images. 25 // batch keeps a pass near the crate's 25 images (at batch 16 the old 25 made passes
    # of 400 ResNet-50 images, which the OOM killer stopped at 19 GB on a 24 GB machine).
    per_pass = max(1, 25 // x.shape[0])
    return plain(lambda: nt.attribute(x, nt_type="smoothgrad", nt_samples=25, nt_samples_batch_size=per_pass,
                                      stdevs=std, target=t, abs=True))


def exact_trapezoid_points():
    """Give Captum's riemann_trapezoid the correctly rounded points k / (n - 1) (Python floats, cast
    to float32 by the multiplication, exactly as the crate's f64 -> f32), keeping its step sizes.

    Captum takes the points from torch.linspace(0, 1, n) in float32, which for n = 50 is one ulp off
    at 9 of the 50 points (k = 5, 7, 10, 14, 17, ...). The gradients of a random ResNet are so
    sensitive to their input that this alone moves the normalised map by 1.07e-4 (ResNet-18) and
    4.5e-4 (ResNet-50). Against a float64 computation (scripts/bench/float64_check.py) the crate's map
    is 5.7e-7 off on ResNet-18 and Captum's 1.06e-4 (ResNet-50: 6.5e-4 and 8.3e-4; float32 gradients
    of a random ResNet-50 are that noisy on either side). The agreement check is about the method,
    so the bench gives Captum the same points; the timed work is unchanged (a list of 50 floats)."""
    import captum.attr._core.integrated_gradients as ig_module
    import captum.attr._utils.batching as batching_module
    from captum.attr._utils.approximation_methods import approximation_parameters

    def params(method):
        step_sizes, alphas = approximation_parameters(method)
        if method != "riemann_trapezoid":
            return step_sizes, alphas
        return step_sizes, lambda n: [k / (n - 1) for k in range(n)]

    ig_module.approximation_parameters = params
    batching_module.approximation_parameters = params


def captum_ig(model, x, t, info):
    from captum.attr import IntegratedGradients
    exact_trapezoid_points()
    ig = IntegratedGradients(model)
    return plain(lambda: ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=50,
                                      method="riemann_trapezoid", internal_batch_size=50))


def captum_gradcam(model, x, t, info):
    from captum.attr import LayerGradCam
    gc = LayerGradCam(model, module(model, info["layer"]))
    size = x.shape[-1]
    return plain(lambda: displayable(gc.attribute(x, target=t, relu_attributions=True), size))


def captum_occlusion(model, x, t, info, per_pass=None):
    """Captum's Occlusion as the bench runs it; `per_pass` (windows per input in one pass) defaults
    to the bench's 64 // batch (float64_check.py gives it when it runs a few images of a batch)."""
    from captum.attr import Occlusion

    def probs(z):
        return F.softmax(model(z), dim=1)
    occ = Occlusion(probs)
    # perturbations_per_eval counts windows per input ("a maximum of perturbations_per_eval *
    # #examples samples" per pass): 64 // batch keeps a pass at the crate's 64 images (64 made
    # passes of 1,024 images at batch 16).
    if per_pass is None:
        per_pass = max(1, 64 // x.shape[0])
    return plain(lambda: occ.attribute(x, sliding_window_shapes=(3, 16, 16), strides=(3, 8, 8),
                                       baselines=0.0, target=t, perturbations_per_eval=per_pass),
                 lambda o: o[:, :1])


def mem_available():
    """`MemAvailable` of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def pgc_scorecam_peak(model, layer, x):
    """Bytes pytorch-grad-cam 1.5.7's `ScoreCAM.get_cam_weights` holds at once on `x`: every channel
    of the layer upsampled to the input size (N x C x H x W floats), and those times the input
    (N x C x 3 x H x W) before the first pass. One small forward finds C."""
    shape = {}

    def keep(_module, _inputs, out):
        shape["out"] = out.shape  # returns None: the output is left as it is
    hook = layer.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        hook.remove()
    n, cin, h, w = x.shape
    return n * shape["out"][1] * h * w * 4 * (1 + cin)


def pgc_maker(cls_name, batch_size=None):
    def make(model, x, t, info):
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        layer = module(model, info["layer"])
        cam = getattr(pgc, cls_name)(model=model, target_layers=[layer])
        if batch_size is not None:
            cam.batch_size = batch_size
        targets = [ClassifierOutputTarget(int(c)) for c in t]
        to_map = lambda o: torch.from_numpy(o).float().unsqueeze(1)  # noqa: E731
        avail = mem_available()
        if cls_name == "ScoreCAM" and x.shape[0] > 1 and avail is not None:
            need = pgc_scorecam_peak(model, layer, x)
            if need > 0.8 * avail:
                # The batch call would be killed for memory (ResNet-50 at batch 16: 26.3 GB); a user
                # would call it image by image, which does the same passes (32 masked images each).
                note = (f"one image per call: the batch call needs {need / 1e9:.1f} GB, "
                        f"{avail / 1e9:.1f} GB available")
                print(f"pytorch-grad-cam {cls_name}: {note}", file=sys.stderr, flush=True)
                return Prepared(lambda: np.concatenate([cam(input_tensor=x[i:i + 1], targets=targets[i:i + 1])
                                                        for i in range(x.shape[0])]),
                                cam.activations_and_grads.release, to_map, as_run=note)
        return (lambda: cam(input_tensor=x, targets=targets),
                cam.activations_and_grads.release,
                to_map)
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
                return displayable(ext(class_idx=classes, scores=scores)[0], size)
            with torch.no_grad():
                model(x)
            return displayable(ext(class_idx=classes)[0], size)
        return call, ext.remove_hooks, lambda o: o
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


class Prepared:
    """One peer's method, ready to run on the current case: `call()` is timed, `setup(rep)` (untimed)
    runs before each call, `to_map(output)` makes the map for the comparison, `release()` removes
    the library's hooks."""

    def __init__(self, call, release=lambda: None, to_map=lambda o: o, setup=None, as_run=""):
        self.call, self.release, self.to_map, self.setup = call, release, to_map, setup
        # How the peer was called, where it differs from the other rows (the table shows it).
        self.as_run = as_run
        self.out = None


def train_maker(work, info):
    """One epoch of the small CNN from the crate's initial weights (the crate's `fit` settings)."""
    data = load_file(os.path.join(work, info["data"]))
    images, labels = data["images"], data["labels"]
    init = load_file(os.path.join(work, info["init"]))
    n, bs = images.shape[0], info["batch_size"]
    state = {}

    def setup(rep):
        model = SmallCnn(6)
        model.load_state_dict(init, strict=True)
        model.train()
        state["model"] = model
        state["opt"] = torch.optim.SGD(model.parameters(), lr=info["lr"], momentum=info["momentum"],
                                       weight_decay=info["weight_decay"])
        torch.manual_seed(rep)

    def call():
        model, opt = state["model"], state["opt"]
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
        return None
    return Prepared(call, setup=setup, to_map=lambda o: None)


class Server:
    """The commands of `--serve`, one JSON object per line on stdin, one answer per line on stdout
    (`{"ok": true, ...}` or `{"ok": false, "error": ...}`; logging goes to stderr):

    - `{"cmd": "case", "model": <ModelInfo>, "batch": B, "input": FILE}`: builds the model (once per
      name) with the crate's weights, loads the case's `input` and `targets` (with `"resume": true`,
      also the case's maps saved by a stopped run, `PEERS_RESUME=1` on the crate side);
    - `{"cmd": "prepare", "method": M, "peer": P}` (and `"train": <TrainInfo>` for `train_epoch`):
      makes the peer's object for M on a copy of the model (so one library's hooks never run in
      another's calls);
    - `{"cmd": "run", "method": M, "peer": P, "rep": I}`: one call, answers `{"seconds": S}` (the
      call alone, timed with `time.perf_counter`);
    - `{"cmd": "warm_first_image", "method": M, "peer": P, "rep": I}`: one untimed call of the
      peer's M on the case's first image alone, on an object of its own (the warm-up of a row a
      stopped run had begun: the same passes as the whole case in 1/batch of the time); answers
      `{"seconds": S}`;
    - `{"cmd": "finish", "method": M, "peer": P}`: keeps the last call's map under `M/P` for the
      case and releases the object; answers `{"as_run": ...}`, how the peer was called where it
      differs from the other rows (empty otherwise);
    - `{"cmd": "save", "model": NAME, "batch": B}`: writes the case's maps so far to
      `<model>_b<batch>_peers.safetensors` in the work folder (the crate side saves after every
      row, so that a stopped run keeps its finished rows; a new `case` forgets the last one's maps);
    - `{"cmd": "quit"}`.
    """

    def __init__(self, work, threads):
        self.work = work
        torch.set_num_threads(threads)
        self.models = {}
        self.case = None
        self.prepared = {}
        self.maps = {}

    def hello(self):
        peers = {m: [p for p, _ in ps] for m, ps in PEERS.items()}
        peers["train_epoch"] = ["torch"]
        return {"versions": versions(), "threads": torch.get_num_threads(), "peers": peers, "pid": os.getpid()}

    def release_all(self):
        for p in self.prepared.values():
            p.release()
        self.prepared = {}

    def do_case(self, msg):
        self.release_all()
        # The crate side saved the last case's maps after its last row.
        self.maps = {}
        info = msg["model"]
        saved = os.path.join(self.work, f"{info['name']}_b{msg['batch']}_peers.safetensors")
        if msg.get("resume") and os.path.exists(saved):
            # Going on with a stopped run: its maps of this case are kept, the rows still to run add theirs.
            self.maps[(info["name"], msg["batch"])] = dict(load_file(saved))
        if info["name"] not in self.models:
            self.models[info["name"]] = load_model(self.work, info)
        case = load_file(os.path.join(self.work, msg["input"]))
        self.case = {"info": info, "batch": msg["batch"], "model": self.models[info["name"]],
                     "x": case["input"].float(), "t": case["targets"].long()}
        return {}

    def current(self):
        """The case loaded by the last `case` command."""
        if self.case is None:
            raise ValueError("no case loaded: send a `case` command first")
        return self.case

    def make(self, method, peer, x, t):
        """The peer's object for `method` on images `x` with targets `t` of the current case, made
        on a copy of the model (so one library's hooks never run in another's calls)."""
        makers = dict(PEERS.get(method, []))
        if peer not in makers:
            raise ValueError(f"no peer {peer!r} for {method!r}; peers: {sorted(makers)}")
        c = self.current()
        made = makers[peer](copy.deepcopy(c["model"]), x, t, c["info"])
        return made if isinstance(made, Prepared) else Prepared(*made)

    def do_warm_first_image(self, msg):
        c = self.current()
        p = self.make(msg["method"], msg["peer"], c["x"][:1], c["t"][:1])
        try:
            return {"seconds": timed_call(p, msg.get("rep", 0), keep=False)}
        finally:
            p.release()

    def do_prepare(self, msg):
        method, peer = msg["method"], msg["peer"]
        if method == "train_epoch":
            if peer != "torch":
                raise ValueError(f"no peer {peer!r} for train_epoch; peers: ['torch']")
            prepared = train_maker(self.work, msg["train"])
        else:
            c = self.current()
            prepared = self.make(method, peer, c["x"], c["t"])
        old = self.prepared.pop((method, peer), None)
        if old is not None:
            old.release()
        self.prepared[(method, peer)] = prepared
        return {}

    def get(self, msg):
        key = (msg["method"], msg["peer"])
        if key not in self.prepared:
            raise ValueError(f"{key[0]}/{key[1]} is not prepared: send `prepare` first")
        return self.prepared[key]

    def do_run(self, msg):
        return {"seconds": timed_call(self.get(msg), msg.get("rep", 0), keep=True)}

    def do_finish(self, msg):
        p = self.get(msg)
        del self.prepared[(msg["method"], msg["peer"])]
        try:
            m = p.to_map(p.out) if p.out is not None else None
        finally:
            p.release()
        if m is None:
            return {"as_run": p.as_run}
        m = torch.as_tensor(m).detach().float().contiguous()
        key = (self.case["info"]["name"], self.case["batch"])
        self.maps.setdefault(key, {})[f"{msg['method']}/{msg['peer']}"] = m
        return {"shape": list(m.shape), "as_run": p.as_run}

    def do_save(self, msg):
        named = self.maps.get((msg["model"], msg["batch"]), {})
        path = os.path.join(self.work, f"{msg['model']}_b{msg['batch']}_peers.safetensors")
        tmp = os.path.join(self.work, f".{msg['model']}_b{msg['batch']}_peers.safetensors.tmp")
        save_file(named, tmp)
        os.replace(tmp, path)
        return {"file": path, "maps": sorted(named)}


def serve(work, threads):
    # Answers go to a private copy of stdout; everything else written to stdout (by Python or C
    # code in the libraries) goes to stderr, so it cannot break the protocol.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def answer(obj):
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    server = Server(work, threads)
    hello = server.hello()
    print("peers, Python side (server, pid %d):" % hello["pid"],
          ", ".join(f"{k} {v}" for k, v in hello["versions"].items()), f"| {hello['threads']} threads",
          file=sys.stderr, flush=True)
    answer({"ok": True, **hello})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            cmd = msg.get("cmd")
            if cmd == "quit":
                server.release_all()
                answer({"ok": True})
                return
            handler = getattr(server, f"do_{cmd}", None)
            if handler is None:
                raise ValueError(f"unknown command {cmd!r}: case, prepare, run, finish, save, quit")
            answer({"ok": True, **handler(msg)})
        except Exception as e:  # noqa: BLE001 - every failure goes back to the crate side
            traceback.print_exc(file=sys.stderr)
            answer({"ok": False, "error": f"{type(e).__name__}: {e}"})
    # stdin closed: the crate side is gone.
    server.release_all()


def timed_call(p, rep, keep):
    """Seconds of one call of prepared peer `p`, after its untimed per-run setup for round `rep`.
    With `keep`, the output is kept as `p.out` (the map `finish` hands back); the previous one is
    freed inside the timed call, as a user's loop would."""
    if p.setup is not None:
        p.setup(int(rep))
    start = time.perf_counter()
    if keep:
        p.out = p.call()
    else:
        p.call()
    return time.perf_counter() - start


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
    ap.add_argument("--serve", action="store_true", help="the server the crate side drives (see Server)")
    ap.add_argument("--self-check", action="store_true")
    args = ap.parse_args()
    if args.self_check:
        self_check(args.threads)
    elif args.serve:
        serve(args.work, args.threads)
    else:
        ap.error("--serve (started by `cargo bench --bench peers`, see scripts/bench-peers.sh) or --self-check")

if __name__ == "__main__":
    main()
