//! Models whose layers can be reached by name.
//!
//! tch has no forward hooks, so every model here is a chain of named stages ([`Staged`]). Cutting
//! the chain at a stage gives the activation there ([`Model::forward_to`]) and lets the rest of the
//! network run from a tensor that is a leaf of the autograd graph ([`Model::forward_from`]): that is
//! all CAM methods need, and the backward pass stops at the cut for free.
//!
//! Stage and parameter names follow torchvision's (`conv1`, `bn1`, `layer1.0.conv1`, `fc`, ...), so
//! torchvision weights converted to safetensors load by name.

mod layers;
mod staged;
pub mod weights;
pub mod zoo;

pub use staged::{Head, Stage, Staged};
pub use zoo::{build, Arch, Init, ZooConfig};

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A classifier whose intermediate layers can be reached by name.
///
/// `forward_to` and `forward_from` run the model in evaluation mode (batch norm uses its running
/// statistics, dropout is off); training uses [`tch::nn::ModuleT::forward_t`] with `train = true`.
pub trait Model: tch::nn::ModuleT {
    /// Layer names in input-to-output order. Nested stages appear as `parent.child`.
    fn layers(&self) -> Vec<String>;
    /// The activation at the output of `layer` for input `xs` `[N, C, H, W]`.
    fn forward_to(&self, xs: &Tensor, layer: &str) -> Result<Tensor>;
    /// Runs the layers after `layer` on `act` (an activation taken at `layer`) and returns the logits
    /// `[N, num_classes]`.
    fn forward_from(&self, act: &Tensor, layer: &str) -> Result<Tensor>;
    /// Number of input channels the model expects (3 for RGB).
    fn input_channels(&self) -> i64;
    /// Number of classes, the width of the logits.
    fn num_classes(&self) -> i64;
    /// Smallest height and width the model accepts (its downsampling must not reach zero).
    fn min_input_size(&self) -> i64 {
        1
    }
    /// The device the model's parameters live on.
    fn device(&self) -> Device;

    /// Whether the model gives the same values for an input in channels-last memory layout, so
    /// [`fast_layout`] may hand it one. False unless the model says so (see
    /// [`Staged::with_channels_last_batches`]).
    fn channels_last_batches(&self) -> bool {
        false
    }

    /// Whether training runs faster on channels-last batches, so [`crate::train::fit`] hands the
    /// model its batches that way (see [`training_layout`]; only where
    /// [`Model::channels_last_batches`] allows it). False unless the model says so (see
    /// [`Staged::with_channels_last_training`]).
    fn channels_last_training(&self) -> bool {
        false
    }

    /// Checks that `xs` is a float batch `[N, C, H, W]` this model accepts.
    fn check_input(&self, xs: &Tensor) -> Result<()> {
        let size = xs.size();
        let c = self.input_channels();
        let expected = format!(
            "a float tensor [N, {c}, H, W] with H, W >= {}",
            self.min_input_size()
        );
        if size.len() != 4 {
            return Err(Error::shape("input", expected, &size));
        }
        if size[0] == 0 {
            return Err(Error::shape("input", format!("{expected} and N >= 1"), &size));
        }
        if size[1] != c {
            let hint = if size[1] == 1 && c == 3 {
                " (a grayscale batch: repeat the channel with `xs.repeat([1, 3, 1, 1])` or load it as RGB)"
            } else if size[1] == 4 && c == 3 {
                " (an RGBA batch: drop the alpha channel with `xs.narrow(1, 0, 3)`)"
            } else {
                ""
            };
            return Err(Error::shape("input", format!("{expected}{hint}"), &size));
        }
        if size[2] < self.min_input_size() || size[3] < self.min_input_size() {
            return Err(Error::shape("input", expected, &size));
        }
        if !matches!(
            xs.kind(),
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            return Err(Error::invalid(
                "input",
                format!("expected a float tensor, got {:?}", xs.kind()),
            ));
        }
        Ok(())
    }

    /// Logits `[N, num_classes]` of `xs` in evaluation mode, after checking the input.
    fn logits(&self, xs: &Tensor) -> Result<Tensor> {
        self.check_input(xs)?;
        Ok(self.forward_t(xs, false))
    }

    /// Checks that `layer` is one of [`Model::layers`].
    fn check_layer(&self, layer: &str) -> Result<()> {
        let layers = self.layers();
        if layers.iter().any(|l| l == layer) {
            Ok(())
        } else {
            Err(Error::UnknownLayer {
                name: layer.to_string(),
                valid: layers,
            })
        }
    }
}

/// The smallest batch [`fast_layout`] turns channels-last.
///
/// Measured on this project's 2-core CPU machine with libtorch 2.13 (forward passes, evaluation
/// mode): channels-last input is 1.3 to 1.6x faster for the small CNN at batches of 8 to 64 and
/// 1.04 to 1.3x for ResNet-18 at 8 to 16, but 0.74x for ResNet-18 at batch 1 and even at 4.
pub const CHANNELS_LAST_MIN_BATCH: i64 = 8;

/// `xs` in the memory layout `model` runs fastest on; the values are the same.
///
/// libtorch's CPU convolutions (oneDNN) work in channels-last (NHWC) memory and reorder a
/// contiguous NCHW batch to it and back at every layer. Handing them a channels-last batch saves
/// that work. On the CPU, for a model that declares it gives the same values either way
/// ([`Model::channels_last_batches`]), a 4-D batch of at least [`CHANNELS_LAST_MIN_BATCH`] images
/// comes back channels-last (a copy); anything else comes back as it is (a shallow clone).
///
/// The perturbation methods (occlusion, LIME, Score-CAM's masked inputs) and the CAMs' forward pass
/// to their layer use it: forward values change only in float32 rounding (maps agree with
/// contiguous runs and with the Python libraries to 5e-5, occlusion on a random ResNet-50 to
/// 1.1e-4, as far from a float64 run as the contiguous layout is). Gradients with respect to the input do
/// not: on a randomly initialised ResNet-18 the float32 input gradient is 2 to 3% of its maximum
/// away from the float64 one in either layout, so changing the layout changes saliency maps by as
/// much, and they would no longer match PyTorch's bit for bit.
///
/// ```
/// use cnn_explain::models::{build, fast_layout, Arch, Model};
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let model = build(Arch::SmallCnn, &vs.root(), 6)?;
/// let xs = Tensor::rand([8, 3, 32, 32], (Kind::Float, Device::Cpu));
/// let fast = fast_layout(&model, &xs);
/// assert_eq!(fast.stride(), [3 * 32 * 32, 1, 32 * 3, 3]); // channels-last
/// assert!(fast.equal(&xs));
/// assert!(model.logits(&fast)?.allclose(&model.logits(&xs)?, 1e-4, 1e-5, false));
/// // One image stays as it is.
/// assert_eq!(fast_layout(&model, &xs.narrow(0, 0, 1)).stride(), [3 * 32 * 32, 32 * 32, 32, 1]);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn fast_layout(model: &dyn Model, xs: &Tensor) -> Tensor {
    channels_last_if(model.channels_last_batches(), xs)
}

/// `xs` in the memory layout [`crate::train::fit`] trains `model` in; the values are the same.
///
/// Channels-last (as [`fast_layout`] makes it) when the model trains faster that way
/// ([`Model::channels_last_training`]), else `xs` as it is. Whether it does depends on the
/// architecture: measured on this project's 2-core CPU machine with libtorch 2.13 (forward,
/// backward and SGD step, contiguous and channels-last interleaved), the small CNN trains 1.23 to
/// 1.35x faster channels-last at batch 16 and 64 and 32x32 or 64x64 images, while ResNet-18 trains
/// 0.83 to 0.99x as fast (64x64 at batch 64, 112x112 at batch 16 and 32). So only the zoo's small
/// CNN asks for it. The weights it learns differ from a contiguous run's only in float32 rounding.
///
/// ```
/// use cnn_explain::models::{build, training_layout, Arch};
/// use tch::{nn, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let xs = Tensor::rand([16, 3, 32, 32], (Kind::Float, Device::Cpu));
/// let small = build(Arch::SmallCnn, &(vs.root() / "small"), 6)?;
/// assert_eq!(training_layout(&small, &xs).stride(), [3 * 32 * 32, 1, 32 * 3, 3]); // channels-last
/// let resnet = build(Arch::ResNet18, &(vs.root() / "resnet"), 6)?;
/// assert_eq!(training_layout(&resnet, &xs).stride(), xs.stride()); // as it was
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn training_layout(model: &dyn Model, xs: &Tensor) -> Tensor {
    channels_last_if(
        model.channels_last_batches() && model.channels_last_training(),
        xs,
    )
}

/// `xs` channels-last if `allowed` and it is a 4-D CPU batch of at least
/// [`CHANNELS_LAST_MIN_BATCH`] images with more than one channel; else a shallow clone.
fn channels_last_if(allowed: bool, xs: &Tensor) -> Tensor {
    let size = xs.size();
    if allowed
        && xs.device() == Device::Cpu
        && size.len() == 4
        && size[0] >= CHANNELS_LAST_MIN_BATCH
        && size[1] > 1
    {
        xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        xs.shallow_clone()
    }
}
