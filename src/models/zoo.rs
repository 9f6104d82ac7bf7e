//! The model zoo: a small CNN for the built-in shapes data, ResNet-18/34/50 (He et al. 2016, "Deep
//! Residual Learning for Image Recognition"), VGG-16 (Simonyan & Zisserman 2015, "Very Deep
//! Convolutional Networks for Large-Scale Image Recognition") and AlexNet (Krizhevsky et al. 2012,
//! "ImageNet Classification with Deep Convolutional Neural Networks", in torchvision's variant).
//!
//! Every model is a [`Staged`] chain whose stage names are torchvision's module names
//! (`conv1, bn1, relu, maxpool, layer1 .. layer4` with blocks `layer4.0`, `layer4.1`, `avgpool, fc`;
//! `features.N, avgpool, classifier.N`), and whose parameter and buffer names and shapes are the keys
//! of torchvision's `state_dict()` (batch norm's `running_mean`, `running_var`,
//! `num_batches_tracked` included). Torchvision weights converted to safetensors therefore load by
//! name with [`crate::models::weights::load`]; such weights expect inputs normalised with ImageNet's
//! mean and standard deviation ([`IMAGENET_MEAN`], [`IMAGENET_STD`]): add them as the model's first
//! stage with [`ZooConfig::normalization`] or [`Staged::with_input_normalization`] so the model
//! takes pixels in `[0, 1]` and attributions stay in pixel space.
//!
//! Where torchvision calls `torch.flatten(x, 1)` (before `fc` or `classifier`), the zoo's first
//! linear or dropout stage flattens its input, so `avgpool` returns the same 4-D tensor as in
//! torchvision and stage names stay torchvision's.
//!
//! New weights follow torchvision's initialisation (Kaiming-normal fan-out convolutions for ResNet and
//! VGG, PyTorch's default uniform for AlexNet and linear heads, N(0, 0.01²) for VGG's linear layers)
//! with draws from the crate's seeded [`crate::rng::Rng`].

use super::layers::{
    adaptive_avg_pool, max_pool, relu, BatchNorm2d, Conv2d, ConvSpec, Dropout, Initializer, Linear,
    WeightInit,
};
use super::staged::{Head, Staged};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// ImageNet's per-channel mean (RGB), which torchvision's pretrained weights expect.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (RGB), which torchvision's pretrained weights expect.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// The architectures of the zoo.
///
/// ```
/// use cnn_explain::models::Arch;
/// let arch: Arch = "resnet18".parse()?;
/// assert_eq!(arch, Arch::ResNet18);
/// assert_eq!(arch.to_string(), "resnet18");
/// assert!("resnet19".parse::<Arch>().unwrap_err().to_string().contains("small_cnn, resnet18"));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// A small CNN for the built-in 64x64 shapes data (stages `conv1, bn1, relu, block1 .. block3`,
    /// each block `conv, bn, relu[, pool]`, then `avgpool, fc`): about 100k parameters, CAM-ready
    /// (global average pooling before `fc`, 8x8 maps at `block3` for 64x64 inputs).
    SmallCnn,
    /// ResNet-18 (`BasicBlock`, [2, 2, 2, 2]).
    ResNet18,
    /// ResNet-34 (`BasicBlock`, [3, 4, 6, 3]).
    ResNet34,
    /// ResNet-50 (`Bottleneck` v1.5, [3, 4, 6, 3]).
    ResNet50,
    /// VGG-16 without batch norm (configuration "D").
    Vgg16,
    /// AlexNet as in torchvision (the one-GPU variant of Krizhevsky et al.).
    AlexNet,
}

impl Arch {
    /// Every architecture, in the order of [`Arch::name`]'s list.
    pub const ALL: [Arch; 6] = [
        Arch::SmallCnn,
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::Vgg16,
        Arch::AlexNet,
    ];

    /// The name used in configs and on the command line (`small_cnn`, `resnet18`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Arch::SmallCnn => "small_cnn",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet34 => "resnet34",
            Arch::ResNet50 => "resnet50",
            Arch::Vgg16 => "vgg16",
            Arch::AlexNet => "alexnet",
        }
    }

    /// The stage of the classification head (`fc`, or `classifier.6` for VGG and AlexNet).
    pub fn head(self) -> &'static str {
        match self {
            Arch::Vgg16 | Arch::AlexNet => "classifier.6",
            _ => "fc",
        }
    }

    /// Smallest input height and width the architecture accepts (its downsampling must leave at
    /// least one pixel): 8 for the small CNN, 1 for ResNets, 32 for VGG-16, 63 for AlexNet.
    pub fn min_input_size(self) -> i64 {
        match self {
            Arch::SmallCnn => 8,
            Arch::ResNet18 | Arch::ResNet34 | Arch::ResNet50 => 1,
            Arch::Vgg16 => 32,
            Arch::AlexNet => 63,
        }
    }

    /// The input size the architecture was designed for (64 for the small CNN, 224 otherwise).
    pub fn default_input_size(self) -> i64 {
        match self {
            Arch::SmallCnn => 64,
            _ => 224,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;

    /// Parses a name case-insensitively, ignoring `-` and `_` (`ResNet-18`, `small-cnn`).
    fn from_str(s: &str) -> Result<Self> {
        let key = |n: &str| n.to_ascii_lowercase().replace(['-', '_'], "");
        let wanted = key(s.trim());
        Arch::ALL
            .into_iter()
            .find(|a| key(a.name()) == wanted)
            .ok_or_else(|| {
                let valid: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                Error::invalid(
                    "arch",
                    format!("unknown architecture `{s}`; valid names: {}", valid.join(", ")),
                )
            })
    }
}

/// How new weights are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Init {
    /// torchvision's initialisation, drawn from a [`crate::rng::Rng`] with this seed.
    Seeded(u64),
    /// All weights zero (batch-norm scales one): fastest, for weights loaded right after.
    Zeros,
}

impl Default for Init {
    fn default() -> Self {
        Init::Seeded(0)
    }
}

/// Per-channel input normalisation `(x - mean) / std`, added as the model's first stage
/// `normalize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// One mean per input channel.
    pub mean: Vec<f64>,
    /// One standard deviation per input channel (positive).
    pub std: Vec<f64>,
}

impl Normalization {
    /// ImageNet's statistics, which torchvision's pretrained weights expect.
    pub fn imagenet() -> Self {
        Normalization {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }
    }
}

/// Everything needed to build a zoo model.
///
/// ```
/// use cnn_explain::models::{Arch, Model, ZooConfig};
/// use cnn_explain::models::zoo::Normalization;
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let config = ZooConfig { arch: Arch::SmallCnn, num_classes: 6, normalization: Some(Normalization::imagenet()), ..Default::default() };
/// let model = config.build(&vs.root())?;
/// assert_eq!(model.layers()[..3], ["normalize", "conv1", "bn1"]);
/// let xs = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
/// assert_eq!(model.logits(&xs)?.size(), [2, 6]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZooConfig {
    /// The architecture.
    pub arch: Arch,
    /// Width of the logits (at least 1).
    pub num_classes: i64,
    /// How new weights are filled.
    pub init: Init,
    /// An optional input normalisation stage in front of the network.
    pub normalization: Option<Normalization>,
}

impl Default for ZooConfig {
    /// The small CNN for the built-in six-class data, seed 0, no normalisation stage.
    fn default() -> Self {
        ZooConfig {
            arch: Arch::SmallCnn,
            num_classes: 6,
            init: Init::default(),
            normalization: None,
        }
    }
}

impl ZooConfig {
    /// Builds the model, creating its variables under `path` (usually `vs.root()`) on the path's
    /// device.
    pub fn build(&self, path: &nn::Path) -> Result<Staged> {
        if self.num_classes < 1 {
            return Err(Error::invalid(
                "num_classes",
                format!("a classifier needs at least 1 class, got {}", self.num_classes),
            ));
        }
        let mut init = Initializer::new(match self.init {
            Init::Seeded(s) => Some(s),
            Init::Zeros => None,
        });
        let n = self.num_classes;
        let p = path;
        let model = match self.arch {
            Arch::SmallCnn => small_cnn(&mut init, p, [32, 64, 128, 128], n)?,
            Arch::ResNet18 => resnet(&mut init, p, Block::Basic, [2, 2, 2, 2], [64, 128, 256, 512], n)?,
            Arch::ResNet34 => resnet(&mut init, p, Block::Basic, [3, 4, 6, 3], [64, 128, 256, 512], n)?,
            Arch::ResNet50 => resnet(
                &mut init,
                p,
                Block::Bottleneck,
                [3, 4, 6, 3],
                [64, 128, 256, 512],
                n,
            )?,
            Arch::Vgg16 => vgg(&mut init, p, &VGG16_CFG, 4096, n)?,
            Arch::AlexNet => alexnet(&mut init, p, [64, 192, 384, 256, 256], 4096, n)?,
        };
        let mut model = model
            .with_min_input_size(self.arch.min_input_size())
            .with_channels_last_batches(true)
            // Measured (models::training_layout): the small CNN trains 1.23 to 1.35x faster
            // channels-last on the CPU, ResNet-18 0.83 to 0.99x as fast; the rest are unmeasured.
            .with_channels_last_training(self.arch == Arch::SmallCnn);
        // The first convolution's weight tells the precision the model runs in (after `vs.double()`).
        if let Some(w) = [p / "conv1", p / "features" / "0"]
            .iter()
            .find_map(|q| q.get("weight"))
        {
            model = model.with_kind_of(&w);
        }
        match &self.normalization {
            Some(norm) => model.with_input_normalization(&norm.mean, &norm.std),
            None => Ok(model),
        }
    }
}

/// Builds `arch` with `num_classes` outputs under `path`, with torchvision's initialisation drawn
/// from seed 0 and no normalisation stage (see [`ZooConfig`] for the options).
///
/// ```
/// use cnn_explain::models::{build, Arch, Model};
/// use tch::{nn, Device};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = build(Arch::ResNet18, &vs.root(), 10)?;
/// assert_eq!(model.num_classes(), 10);
/// assert!(model.layers().contains(&"layer4.1".to_string()));
/// assert_eq!(vs.variables()["fc.weight"].size(), [10, 512]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn build(arch: Arch, path: &nn::Path, num_classes: i64) -> Result<Staged> {
    ZooConfig {
        arch,
        num_classes,
        ..Default::default()
    }
    .build(path)
}

fn head(p: &nn::Path, stage: &str) -> Head {
    let parts: Vec<&str> = stage.split('.').collect();
    let (last, parents) = parts.split_last().map_or(("", &[][..]), |(l, r)| (*l, r));
    let mut q = p.clone();
    for c in parents {
        q = q.sub(*c);
    }
    Head {
        stage: stage.to_string(),
        var_prefix: q.path(last),
    }
}

/// The small CNN: `conv1`, `bn1`, `relu`, `maxpool` (2x2), three blocks `conv, bn, relu` (the first
/// two end with a 2x2 max pool `pool`), a global max pool `pool`, `fc`.
///
/// Global *max* pooling lets the head ask "is this shape anywhere in the image"; with global average
/// pooling the same net learned the built-in shapes far more slowly (loss still at ln 6 after one
/// epoch, against 35% accuracy with max pooling), because the object covers a small part of a
/// cluttered image. Gradient CAM methods work on it; plain CAM (which needs average pooling) says so.
pub(crate) fn small_cnn(
    init: &mut Initializer,
    p: &nn::Path,
    w: [i64; 4],
    num_classes: i64,
) -> Result<Staged> {
    let dev = p.device();
    let conv = WeightInit::KaimingFanOut;
    let mut model = Staged::new(3, num_classes, dev)
        .leaf(
            "conv1",
            Conv2d::new(init, &(p / "conv1"), ConvSpec::new(3, w[0], 3, 1, 1, false), conv)?,
        )
        .leaf("bn1", BatchNorm2d::new(&(p / "bn1"), w[0])?)
        .leaf("relu", relu())
        .leaf("maxpool", max_pool(2, 2, 0));
    for i in 1..4 {
        let name = format!("block{i}");
        let q = p / name.as_str();
        let (c_in, c_out) = (w[i - 1], w[i]);
        let mut block = Staged::new(c_in, num_classes, dev)
            .leaf(
                "conv",
                Conv2d::new(
                    init,
                    &(&q / "conv"),
                    ConvSpec::new(c_in, c_out, 3, 1, 1, false),
                    conv,
                )?,
            )
            .leaf("bn", BatchNorm2d::new(&(&q / "bn"), c_out)?)
            .leaf("relu", relu());
        if i < 3 {
            block = block.leaf("pool", max_pool(2, 2, 0));
        }
        model = model.nested(&name, block);
    }
    Ok(model
        .leaf("pool", nn::func_t(|xs, _| xs.amax([2, 3], true)))
        .leaf(
            "fc",
            Linear::new(init, &(p / "fc"), w[3], num_classes, WeightInit::PytorchDefault)?,
        )
        .with_head(head(p, "fc")))
}

/// ResNet residual block types.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Block {
    /// Two 3x3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1x1, 3x3 (with the stride: torchvision's v1.5), 1x1 convolutions, expansion 4 (ResNet-50).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> i64 {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// One residual block: `relu(body(x) + downsample(x))`.
#[derive(Debug)]
struct Residual {
    body: Vec<(Conv2d, BatchNorm2d)>,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl Residual {
    fn new(
        init: &mut Initializer,
        p: &nn::Path,
        block: Block,
        c_in: i64,
        planes: i64,
        stride: i64,
    ) -> Result<Self> {
        let k = WeightInit::KaimingFanOut;
        let c_out = planes * block.expansion();
        let specs = match block {
            Block::Basic => vec![
                ConvSpec::new(c_in, planes, 3, stride, 1, false),
                ConvSpec::new(planes, planes, 3, 1, 1, false),
            ],
            Block::Bottleneck => vec![
                ConvSpec::new(c_in, planes, 1, 1, 0, false),
                ConvSpec::new(planes, planes, 3, stride, 1, false),
                ConvSpec::new(planes, c_out, 1, 1, 0, false),
            ],
        };
        let mut body = Vec::new();
        for (i, s) in specs.into_iter().enumerate() {
            let conv = Conv2d::new(init, &(p / format!("conv{}", i + 1)), s, k)?;
            let bn = BatchNorm2d::new(&(p / format!("bn{}", i + 1)), s.c_out)?;
            body.push((conv, bn));
        }
        let downsample = if stride != 1 || c_in != c_out {
            let q = p / "downsample";
            let conv = Conv2d::new(
                init,
                &(&q / "0"),
                ConvSpec::new(c_in, c_out, 1, stride, 0, false),
                k,
            )?;
            Some((conv, BatchNorm2d::new(&(&q / "1"), c_out)?))
        } else {
            None
        };
        Ok(Residual { body, downsample })
    }
}

impl ModuleT for Residual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        // In place where torchvision is (`ReLU(inplace=True)`, `out += identity`): the tensors are
        // this block's own temporaries, and neither op's backward needs what it overwrites. At batch
        // 16 on ResNet-50 the copies cost 5 to 9% of a forward pass.
        let last = self.body.len().saturating_sub(1);
        let mut out = xs.shallow_clone();
        for (i, (conv, bn)) in self.body.iter().enumerate() {
            out = bn.forward_t(&conv.forward_t(&out, train), train);
            if i < last {
                let _ = out.relu_();
            }
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward_t(&conv.forward_t(xs, train), train),
            None => xs.shallow_clone(),
        };
        out += identity;
        let _ = out.relu_();
        out
    }
}

/// A torchvision ResNet with `layers[i]` blocks of `widths[i]` planes in stage `layer{i+1}`.
pub(crate) fn resnet(
    init: &mut Initializer,
    p: &nn::Path,
    block: Block,
    layers: [usize; 4],
    widths: [i64; 4],
    num_classes: i64,
) -> Result<Staged> {
    let dev = p.device();
    let k = WeightInit::KaimingFanOut;
    let mut model = Staged::new(3, num_classes, dev)
        .leaf(
            "conv1",
            Conv2d::new(
                init,
                &(p / "conv1"),
                ConvSpec::new(3, widths[0], 7, 2, 3, false),
                k,
            )?,
        )
        .leaf("bn1", BatchNorm2d::new(&(p / "bn1"), widths[0])?)
        .leaf("relu", relu())
        .leaf("maxpool", max_pool(3, 2, 1));
    let mut c_in = widths[0];
    for (i, (&n, &planes)) in layers.iter().zip(widths.iter()).enumerate() {
        let name = format!("layer{}", i + 1);
        let q = p / name.as_str();
        let mut stage = Staged::new(c_in, num_classes, dev);
        for j in 0..n {
            let stride = if i > 0 && j == 0 { 2 } else { 1 };
            let r = Residual::new(init, &(&q / j), block, c_in, planes, stride)?;
            c_in = planes * block.expansion();
            stage = stage.leaf(&j.to_string(), r);
        }
        model = model.nested(&name, stage);
    }
    Ok(model
        .leaf("avgpool", adaptive_avg_pool(1, 1))
        .leaf(
            "fc",
            Linear::new(init, &(p / "fc"), c_in, num_classes, WeightInit::PytorchDefault)?,
        )
        .with_head(head(p, "fc")))
}

/// VGG configuration "D" (VGG-16): channel counts, `None` for a 2x2 max pool.
const VGG16_CFG: [Option<i64>; 18] = [
    Some(64),
    Some(64),
    None,
    Some(128),
    Some(128),
    None,
    Some(256),
    Some(256),
    Some(256),
    None,
    Some(512),
    Some(512),
    Some(512),
    None,
    Some(512),
    Some(512),
    Some(512),
    None,
];

/// The classifier shared by VGG and AlexNet: `[dropout,] linear, relu, dropout, linear, relu,
/// [dropout,] linear`, numbered like torchvision's `nn.Sequential`.
fn classifier(
    init: &mut Initializer,
    p: &nn::Path,
    alexnet: bool,
    f_in: i64,
    hidden: i64,
    num_classes: i64,
    how: WeightInit,
) -> Result<Staged> {
    let dev = p.device();
    let mut c = Staged::new(3, num_classes, dev);
    let q = p / "classifier";
    let mut i = 0;
    let mut next = || {
        i += 1;
        (i - 1).to_string()
    };
    if alexnet {
        c = c.leaf(&next(), Dropout::new(0.5, init.fork_seed()));
    }
    let n = next();
    c = c.leaf(&n, Linear::new(init, &(&q / n.as_str()), f_in, hidden, how)?);
    c = c.leaf(&next(), relu());
    c = c.leaf(&next(), Dropout::new(0.5, init.fork_seed()));
    let n = next();
    c = c.leaf(&n, Linear::new(init, &(&q / n.as_str()), hidden, hidden, how)?);
    c = c.leaf(&next(), relu());
    if !alexnet {
        c = c.leaf(&next(), Dropout::new(0.5, init.fork_seed()));
    }
    let n = next();
    c = c.leaf(
        &n,
        Linear::new(init, &(&q / n.as_str()), hidden, num_classes, how)?,
    );
    Ok(c)
}

/// A torchvision VGG (no batch norm) with feature configuration `cfg` and `hidden` units in the
/// classifier.
pub(crate) fn vgg(
    init: &mut Initializer,
    p: &nn::Path,
    cfg: &[Option<i64>],
    hidden: i64,
    num_classes: i64,
) -> Result<Staged> {
    let dev = p.device();
    let q = p / "features";
    let mut features = Staged::new(3, num_classes, dev);
    let mut c_in = 3;
    let mut i = 0;
    for v in cfg {
        match v {
            Some(c) => {
                let s = ConvSpec::new(c_in, *c, 3, 1, 1, true);
                features = features.leaf(
                    &i.to_string(),
                    Conv2d::new(init, &(&q / i), s, WeightInit::KaimingFanOut)?,
                );
                features = features.leaf(&(i + 1).to_string(), relu());
                c_in = *c;
                i += 2;
            }
            None => {
                features = features.leaf(&i.to_string(), max_pool(2, 2, 0));
                i += 1;
            }
        }
    }
    let cls = classifier(
        init,
        p,
        false,
        c_in * 49,
        hidden,
        num_classes,
        WeightInit::Normal001,
    )?;
    Ok(Staged::new(3, num_classes, dev)
        .nested("features", features)
        .leaf("avgpool", adaptive_avg_pool(7, 7))
        .nested("classifier", cls)
        .with_head(head(p, "classifier.6")))
}

/// torchvision's AlexNet with convolution widths `w` and `hidden` units in the classifier.
pub(crate) fn alexnet(
    init: &mut Initializer,
    p: &nn::Path,
    w: [i64; 5],
    hidden: i64,
    num_classes: i64,
) -> Result<Staged> {
    let dev = p.device();
    let q = p / "features";
    let d = WeightInit::PytorchDefault;
    let conv = |init: &mut Initializer, i: usize, s: ConvSpec| Conv2d::new(init, &(&q / i), s, d);
    let features = Staged::new(3, num_classes, dev)
        .leaf("0", conv(init, 0, ConvSpec::new(3, w[0], 11, 4, 2, true))?)
        .leaf("1", relu())
        .leaf("2", max_pool(3, 2, 0))
        .leaf("3", conv(init, 3, ConvSpec::new(w[0], w[1], 5, 1, 2, true))?)
        .leaf("4", relu())
        .leaf("5", max_pool(3, 2, 0))
        .leaf("6", conv(init, 6, ConvSpec::new(w[1], w[2], 3, 1, 1, true))?)
        .leaf("7", relu())
        .leaf("8", conv(init, 8, ConvSpec::new(w[2], w[3], 3, 1, 1, true))?)
        .leaf("9", relu())
        .leaf("10", conv(init, 10, ConvSpec::new(w[3], w[4], 3, 1, 1, true))?)
        .leaf("11", relu())
        .leaf("12", max_pool(3, 2, 0));
    let cls = classifier(init, p, true, w[4] * 36, hidden, num_classes, d)?;
    Ok(Staged::new(3, num_classes, dev)
        .nested("features", features)
        .leaf("avgpool", adaptive_avg_pool(6, 6))
        .nested("classifier", cls)
        .with_head(head(p, "classifier.6")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{weights, Model};
    use tch::{Device, Kind};

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    const VGG16_NARROW: [Option<i64>; 18] = [
        Some(4),
        Some(4),
        None,
        Some(8),
        Some(8),
        None,
        Some(16),
        Some(16),
        Some(16),
        None,
        Some(32),
        Some(32),
        Some(32),
        None,
        Some(32),
        Some(32),
        Some(32),
        None,
    ];

    /// The narrow models of `scripts/golden/zoo_forward.py`, built with the zoo's own builders.
    fn narrow(name: &str, p: &nn::Path, init: Option<u64>) -> Staged {
        let mut i = Initializer::new(init);
        match name {
            "resnet_basic" => resnet(&mut i, p, Block::Basic, [2, 1, 1, 1], [8, 16, 24, 32], 6),
            "resnet_bottleneck" => resnet(&mut i, p, Block::Bottleneck, [1, 2, 1, 1], [4, 8, 12, 16], 6),
            "vgg16" => vgg(&mut i, p, &VGG16_NARROW, 32, 6),
            "alexnet" => alexnet(&mut i, p, [8, 24, 32, 16, 16], 32, 6),
            _ => unreachable!(),
        }
        .unwrap()
    }

    #[test]
    fn eval_forward_matches_torchvision() {
        for name in ["resnet_basic", "resnet_bottleneck", "vgg16", "alexnet"] {
            let vs = nn::VarStore::new(Device::Cpu);
            let model = narrow(name, &vs.root(), None);
            weights::load(&vs, fixture(&format!("tv_{name}.safetensors"))).unwrap();
            let io: std::collections::HashMap<_, _> =
                weights::read(fixture(&format!("tv_{name}_io.safetensors")))
                    .unwrap()
                    .into_iter()
                    .collect();
            let logits = model.forward_t(&io["input"], false);
            let diff = (&logits - &io["logits"]).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{name}: max |logit difference| {diff}");
            // Loaded batch-norm counters survive as int64 buffers.
            if name.starts_with("resnet") {
                assert_eq!(vs.variables()["bn1.num_batches_tracked"].int64_value(&[]), 7);
            }
        }
    }

    #[test]
    fn cutting_a_resnet_anywhere_gives_the_same_logits() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = narrow("resnet_basic", &vs.root(), Some(3));
        let xs = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let full = model.logits(&xs).unwrap();
        for layer in model.layers() {
            let act = model.forward_to(&xs, &layer).unwrap();
            let out = model.forward_from(&act, &layer).unwrap();
            assert!(out.allclose(&full, 1e-5, 1e-5, false), "cut at {layer}");
        }
        assert_eq!(
            model.layers(),
            [
                "conv1", "bn1", "relu", "maxpool", "layer1.0", "layer1.1", "layer1", "layer2.0", "layer2",
                "layer3.0", "layer3", "layer4.0", "layer4", "avgpool", "fc"
            ]
        );
        assert_eq!(model.forward_to(&xs, "avgpool").unwrap().size(), [2, 32, 1, 1]);
    }

    #[test]
    fn min_input_size_is_tight() {
        // The narrow models downsample exactly like the full ones.
        for (name, arch) in [
            ("vgg16", Arch::Vgg16),
            ("alexnet", Arch::AlexNet),
            ("resnet_bottleneck", Arch::ResNet50),
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            let model = narrow(name, &vs.root(), Some(0)).with_min_input_size(arch.min_input_size());
            let m = arch.min_input_size();
            let ok = Tensor::rand([1, 3, m, m], (Kind::Float, Device::Cpu));
            assert_eq!(model.logits(&ok).unwrap().size(), [1, 6], "{name} at {m}");
            if m > 1 {
                let small = Tensor::rand([1, 3, m - 1, m - 1], (Kind::Float, Device::Cpu));
                assert!(matches!(model.logits(&small), Err(Error::Shape { .. })));
                let raw =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.forward_t(&small, false)));
                assert!(
                    raw.is_err(),
                    "{name} runs at {}: min_input_size is not tight",
                    m - 1
                );
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let model = build(Arch::SmallCnn, &vs.root(), 6).unwrap();
        let m = Arch::SmallCnn.min_input_size();
        let ok = Tensor::rand([1, 3, m, m], (Kind::Float, Device::Cpu));
        assert_eq!(model.logits(&ok).unwrap().size(), [1, 6]);
        let small = Tensor::rand([1, 3, m - 1, m - 1], (Kind::Float, Device::Cpu));
        let raw = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.forward_t(&small, false)));
        assert!(raw.is_err(), "small_cnn runs at {}", m - 1);
    }

    #[test]
    fn small_cnn_layers_and_shapes() {
        let vs = nn::VarStore::new(Device::Cpu);
        let model = build(Arch::SmallCnn, &vs.root(), 6).unwrap();
        assert_eq!(
            model.layers(),
            [
                "conv1",
                "bn1",
                "relu",
                "maxpool",
                "block1.conv",
                "block1.bn",
                "block1.relu",
                "block1.pool",
                "block1",
                "block2.conv",
                "block2.bn",
                "block2.relu",
                "block2.pool",
                "block2",
                "block3.conv",
                "block3.bn",
                "block3.relu",
                "block3",
                "pool",
                "fc"
            ]
        );
        let xs = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        assert_eq!(model.forward_to(&xs, "block3").unwrap().size(), [2, 128, 8, 8]);
        assert_eq!(model.forward_to(&xs, "block1").unwrap().size(), [2, 64, 16, 16]);
        let n: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        assert!(n < 300_000, "{n} parameters");
        assert_eq!(model.head().unwrap().stage, "fc");
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let make = |seed| {
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = ZooConfig {
                arch: Arch::SmallCnn,
                init: Init::Seeded(seed),
                ..Default::default()
            };
            cfg.build(&vs.root()).unwrap();
            vs.variables()["block2.conv.weight"].copy()
        };
        assert!(make(1).equal(&make(1)));
        assert!(!make(1).equal(&make(2)));
        // Kaiming fan-out of block2.conv (64 -> 128, 3x3): std = sqrt(2 / (128 * 3 * 3)).
        let std = make(5).std(true).double_value(&[]);
        assert!((std - (2.0f64 / 1152.0).sqrt()).abs() < 0.005, "{std}");
    }

    #[test]
    fn bad_config_is_an_error() {
        let vs = nn::VarStore::new(Device::Cpu);
        assert!(build(Arch::SmallCnn, &vs.root(), 0).is_err());
        let cfg = ZooConfig {
            normalization: Some(Normalization {
                mean: vec![0.5],
                std: vec![1.0],
            }),
            ..Default::default()
        };
        let err = cfg.build(&vs.root()).unwrap_err().to_string();
        assert!(err.contains("one value per input channel (3)"), "{err}");
        assert_eq!("ResNet-50".parse::<Arch>().unwrap(), Arch::ResNet50);
        assert_eq!("small-cnn".parse::<Arch>().unwrap(), Arch::SmallCnn);
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>().unwrap(), a);
        }
        let err = "vgg19".parse::<Arch>().unwrap_err().to_string();
        assert!(
            err.contains("vgg19") && err.contains("small_cnn, resnet18, resnet34, resnet50, vgg16, alexnet"),
            "{err}"
        );
    }

    #[test]
    fn normalization_stage_matches_manual_normalization() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = ZooConfig {
            normalization: Some(Normalization::imagenet()),
            ..Default::default()
        };
        let with = cfg.build(&vs.root()).unwrap();
        let vs2 = nn::VarStore::new(Device::Cpu);
        let without = build(Arch::SmallCnn, &vs2.root(), 6).unwrap();
        let xs = Tensor::rand([2, 3, 16, 16], (Kind::Float, Device::Cpu));
        let mean = Tensor::from_slice(&IMAGENET_MEAN)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&IMAGENET_STD)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        let a = with.logits(&xs).unwrap();
        let b = without.logits(&((&xs - mean) / std)).unwrap();
        assert!(a.allclose(&b, 1e-5, 1e-5, false));
        assert_eq!(with.layers()[0], "normalize");
    }
}
