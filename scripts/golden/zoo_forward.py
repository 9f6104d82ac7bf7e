"""Golden forward passes of narrow torchvision models, to check the zoo's eval-mode semantics.

Generated with torch 2.13.0 and torchvision 0.28.0 (checked at run time below).
Run by hand with the reference environment:

    /work/main/.venv-ref/bin/python scripts/golden/zoo_forward.py

The full ResNet-18 is 45 MB, too large for a fixture, so each architecture is built at a fraction of
its width with torchvision's own building blocks (`BasicBlock`, `Bottleneck`, `ResNet._make_layer`,
`vgg.make_layers`, the `VGG` and `AlexNet` forward methods): same layer types, kernel sizes, strides,
paddings, pooling, flatten and classifier order, same state-dict names. Batch-norm running statistics
are randomised so evaluation mode is really tested.

For each model NAME it writes, under tests/fixtures/:
  tv_NAME.safetensors     the state dict (what the crate loads by name)
  tv_NAME_io.safetensors  `input` [2, 3, H, W] and the eval-mode `logits` [2, 6]
"""

import pathlib

import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vgg import VGG, make_layers

assert torch.__version__.startswith("2.13.0"), torch.__version__
assert torchvision.__version__.startswith("0.28.0"), torchvision.__version__

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures"
NUM_CLASSES = 6


class NarrowResNet(ResNet):
    """torchvision's ResNet with widths `widths` instead of (64, 128, 256, 512)."""

    def __init__(self, block, layers, widths, num_classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)


def narrow_vgg(cfg, hidden, num_classes):
    """torchvision's VGG forward with narrow `features` and a narrow classifier of the same layout."""
    model = VGG(make_layers(cfg, batch_norm=False), num_classes=num_classes, init_weights=False)
    c = [v for v in cfg if v != "M"][-1]
    model.classifier = nn.Sequential(
        nn.Linear(c * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
    return model


def narrow_alexnet(w, hidden, num_classes):
    """torchvision's AlexNet forward with widths `w` instead of (64, 192, 384, 256, 256)."""
    model = torchvision.models.alexnet(weights=None, num_classes=num_classes)
    model.features = nn.Sequential(
        nn.Conv2d(3, w[0], kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(w[0], w[1], kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(w[1], w[2], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[2], w[3], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[3], w[4], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Linear(w[4] * 6 * 6, hidden), nn.ReLU(inplace=True),
        nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )
    return model


VGG16_NARROW = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]

MODELS = {
    # name: (builder, input height/width)
    "resnet_basic": (lambda: NarrowResNet(BasicBlock, [2, 1, 1, 1], [8, 16, 24, 32], NUM_CLASSES), 37),
    "resnet_bottleneck": (lambda: NarrowResNet(Bottleneck, [1, 2, 1, 1], [4, 8, 12, 16], NUM_CLASSES), 37),
    "vgg16": (lambda: narrow_vgg(VGG16_NARROW, 32, NUM_CLASSES), 40),
    "alexnet": (lambda: narrow_alexnet([8, 24, 32, 16, 16], 32, NUM_CLASSES), 67),
}


def main():
    torch.manual_seed(0)
    for name, (build, size) in MODELS.items():
        model = build()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
                    m.num_batches_tracked.fill_(7)
        model.eval()
        x = torch.rand(2, 3, size, size)
        with torch.no_grad():
            logits = model(x)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, OUT / f"tv_{name}.safetensors")
        save_file({"input": x, "logits": logits}, OUT / f"tv_{name}_io.safetensors")
        n = sum(v.numel() for v in state.values())
        print(f"{name}: {n} numbers, input {tuple(x.shape)}, logits {logits[0].tolist()}")


if __name__ == "__main__":
    main()
