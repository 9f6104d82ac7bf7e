#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench train_throughput`: training throughput of the small CNN.

The same network as `cnn_explain::models::Arch::SmallCnn` (src/models/zoo.rs, `small_cnn`), with the
same parameter names (conv1, bn1, block1.conv, block1.bn, ..., fc): conv1 3->32, BN, ReLU, 2x2 max pool;
blocks conv-BN-ReLU 32->64 and 64->128 with 2x2 max pools, 128->128 without; global max pool; fc, trained the way the crate's
`train::fit` does: each batch is gathered from a shuffled in-memory dataset, forward in training
mode, cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4, lr 0.05), gradients cleared,
the loss and the number of correct predictions read back to the host. `--channels-last` puts the
model and each batch in channels-last memory, the layout the crate's `fit` trains the small CNN in.

Run by the Rust bench with the reference environment (`scripts/reference-env.sh` makes .venv-ref;
torch 2.13.0). Prints one JSON line: images per second over `--batches` batches after `--warmup`.
"""
import argparse
import json
import time
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def block(c_in, c_out, pool):
    layers = [
        ("conv", nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)),
        ("bn", nn.BatchNorm2d(c_out)),
        ("relu", nn.ReLU()),
    ]
    if pool:
        layers.append(("pool", nn.MaxPool2d(2, 2)))
    return nn.Sequential(OrderedDict(layers))


class SmallCnn(nn.Module):
    def __init__(self, num_classes=6, w=(32, 64, 128, 128)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        self.block1 = block(w[0], w[1], True)
        self.block2 = block(w[1], w[2], True)
        self.block3 = block(w[2], w[3], False)
        self.fc = nn.Linear(w[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.block3(self.block2(self.block1(x)))
        # Global max pooling (the crate's stage `pool`), then the linear head.
        return self.fc(torch.flatten(torch.amax(x, dim=(2, 3), keepdim=True), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--classes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the crate's side passes its device)")
    ap.add_argument("--channels-last", action="store_true",
                    help="model and batches in channels-last memory (torch.channels_last), as the crate's "
                         "fit trains the small CNN")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    bs, total = args.batch_size, args.warmup + args.batches
    n = total * bs
    images = torch.rand(n, 3, args.size, args.size).to(dev)
    labels = torch.randint(0, args.classes, (n,)).to(dev)
    model = SmallCnn(args.classes).to(dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    perm = torch.randperm(n).to(dev)
    stamps = []
    for b in range(total):
        idx = perm[b * bs:(b + 1) * bs]
        xs = images.index_select(0, idx).contiguous(memory_format=fmt)
        ys = labels.index_select(0, idx)
        logits = model(xs)
        loss = F.cross_entropy(logits, ys)
        loss.backward()
        opt.step()
        opt.zero_grad()
        _ = loss.item()
        _ = (logits.argmax(-1) == ys).sum().item()
        stamps.append(time.perf_counter())
    seconds = stamps[-1] - stamps[args.warmup - 1]
    print(json.dumps({
        "images_per_second": args.batches * bs / seconds,
        "seconds": seconds,
        "batches": args.batches,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(dev),
        "parameters": sorted(name for name, _ in model.named_parameters()),
        "numel": sum(p.numel() for p in model.parameters()),
        "foreach": opt.defaults.get("foreach"),
        "channels_last": args.channels_last,
    }))


if __name__ == "__main__":
    main()
