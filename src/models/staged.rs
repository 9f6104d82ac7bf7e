//! A chain of named stages, the representation every model of the zoo uses.

use super::Model;
use crate::{Error, Result};
use tch::nn::ModuleT;
use tch::{Device, Tensor};

/// One named step of a [`Staged`] model: a module, or a nested chain whose children are reachable as
/// `name.child`.
#[derive(Debug)]
pub enum Stage {
    /// A module run as a whole.
    Leaf(Box<dyn ModuleT>),
    /// A nested chain (a ResNet `layer4` with blocks `0`, `1`, ...).
    Nested(Staged),
}

/// A model as a chain of named stages.
///
/// ```
/// use cnn_explain::models::{Model, Staged};
/// use tch::{nn, nn::ModuleT, Device, Kind, Tensor};
///
/// let vs = nn::VarStore::new(Device::Cpu);
/// let root = vs.root();
/// let model = Staged::new(3, 2, Device::Cpu)
///     .leaf("conv", nn::conv2d(&root / "conv", 3, 4, 3, Default::default()))
///     .leaf("relu", nn::func(|xs| xs.relu()))
///     .leaf("pool", nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)))
///     .leaf("fc", nn::linear(&root / "fc", 4, 2, Default::default()));
/// assert_eq!(model.layers(), ["conv", "relu", "pool", "fc"]);
///
/// let xs = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
/// let act = model.forward_to(&xs, "relu")?;
/// assert_eq!(act.size(), [1, 4, 6, 6]);
/// let logits = model.forward_from(&act, "relu")?;
/// assert!(logits.allclose(&model.forward_t(&xs, false), 1e-6, 1e-6, false));
/// # Ok::<(), cnn_explain::Error>(())
/// ```
#[derive(Debug)]
pub struct Staged {
    stages: Vec<(String, Stage)>,
    input_channels: i64,
    num_classes: i64,
    min_input_size: i64,
    device: Device,
    head: Option<Head>,
    channels_last_batches: bool,
    channels_last_training: bool,
    kind_of: Option<Tensor>,
}

/// Where a model's classification head lives, so it can be replaced or kept trainable while the
/// backbone is frozen (see [`crate::models::weights`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The head's stage path, for example `fc` or `classifier.6`.
    pub stage: String,
    /// The prefix of the head's variables in the `VarStore` (`fc` gives `fc.weight`, `fc.bias`;
    /// a model built under `vs.root() / "net"` has `net.fc`).
    pub var_prefix: String,
}

impl Staged {
    /// An empty chain for inputs with `input_channels` channels and `num_classes` outputs.
    pub fn new(input_channels: i64, num_classes: i64, device: Device) -> Self {
        Staged {
            stages: Vec::new(),
            input_channels,
            num_classes,
            min_input_size: 1,
            device,
            head: None,
            channels_last_batches: false,
            channels_last_training: false,
            kind_of: None,
        }
    }

    /// Appends a module as stage `name`.
    pub fn leaf(mut self, name: &str, module: impl ModuleT + 'static) -> Self {
        self.stages
            .push((name.to_string(), Stage::Leaf(Box::new(module))));
        self
    }

    /// Appends a nested chain as stage `name`; its stages are reachable as `name.child`.
    pub fn nested(mut self, name: &str, inner: Staged) -> Self {
        self.stages.push((name.to_string(), Stage::Nested(inner)));
        self
    }

    /// Sets the smallest input height and width the model accepts.
    pub fn with_min_input_size(mut self, size: i64) -> Self {
        self.min_input_size = size;
        self
    }

    /// Declares that every stage gives the same values whatever the memory layout of its input
    /// (true of convolutions, batch norm, pooling and the zoo's flattening linear layers, not of a
    /// stage that calls `view` on its input), so perturbation and gradient methods may hand the
    /// model large batches in channels-last layout, which libtorch's CPU convolutions run faster
    /// (see [`crate::models::fast_layout`]). Every zoo model sets it; a new chain starts without it.
    pub fn with_channels_last_batches(mut self, allowed: bool) -> Self {
        self.channels_last_batches = allowed;
        self
    }

    /// Declares that the model trains faster on channels-last batches, so
    /// [`crate::train::fit`] hands it its batches that way (see
    /// [`crate::models::training_layout`]). It has an effect only together with
    /// [`Staged::with_channels_last_batches`]. The zoo sets it for the small CNN only (ResNet-18
    /// trains slower that way on the CPU).
    pub fn with_channels_last_training(mut self, faster: bool) -> Self {
        self.channels_last_training = faster;
        self
    }

    /// Runs the model in the precision of `parameter`, one of its own weights (a shallow clone is
    /// kept, so it follows a later `vs.double()`, `vs.half()` or `vs.float()`): a floating-point
    /// input is converted to the parameter's kind on the way in and the output back to the input's
    /// kind on the way out, inside the autograd graph. The crate's methods work in float32, so this
    /// is what lets them explain a float64 (or half-precision) model instead of failing in its first
    /// convolution with a kind mismatch. Every zoo model sets it to its first convolution's weight.
    ///
    /// ```
    /// use cnn_explain::models::{Model, Staged};
    /// use tch::{nn, nn::ModuleT, Device, Kind, Tensor};
    ///
    /// let mut vs = nn::VarStore::new(Device::Cpu);
    /// let conv = nn::conv2d(&vs.root() / "conv", 3, 2, 3, Default::default());
    /// let model = Staged::new(3, 2, Device::Cpu)
    ///     .with_kind_of(&conv.ws)
    ///     .leaf("conv", conv)
    ///     .leaf("pool", nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)));
    /// vs.double();
    /// let xs = Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    /// let logits = model.logits(&xs)?; // float64 inside, float32 out
    /// assert_eq!(logits.kind(), Kind::Float);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn with_kind_of(mut self, parameter: &Tensor) -> Self {
        self.kind_of = Some(parameter.shallow_clone());
        self
    }

    /// The top-level stage names.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Records where the classification head is (see [`Head`]).
    pub fn with_head(mut self, head: Head) -> Self {
        self.head = Some(head);
        self
    }

    /// The classification head, when the builder recorded it (every zoo model does).
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Inserts an input normalisation stage `normalize` computing `(x - mean[c]) / std[c]` in front
    /// of the chain, so the model takes pixels in `[0, 1]` and attributions stay in pixel space.
    ///
    /// `mean` and `std` have one value per input channel; every `std` must be positive. Weights
    /// trained by torchvision expect ImageNet's statistics
    /// ([`crate::models::zoo::IMAGENET_MEAN`], [`crate::models::zoo::IMAGENET_STD`]).
    ///
    /// ```
    /// use cnn_explain::models::{Model, Staged};
    /// use tch::{nn, Device, Kind, Tensor};
    ///
    /// let model = Staged::new(2, 2, Device::Cpu)
    ///     .leaf("id", nn::func_t(|xs, _| xs.flatten(1, -1)))
    ///     .with_input_normalization(&[0.5, 1.0], &[0.5, 2.0])?;
    /// assert_eq!(model.layers(), ["normalize", "id"]);
    /// let xs = Tensor::from_slice(&[1.0f32, 3.0]).view([1, 2, 1, 1]);
    /// let out = model.logits(&xs)?;
    /// assert_eq!(Vec::<f32>::try_from(out.flatten(0, -1)).unwrap(), [1.0, 1.0]);
    /// # Ok::<(), cnn_explain::Error>(())
    /// ```
    pub fn with_input_normalization(mut self, mean: &[f64], std: &[f64]) -> Result<Self> {
        let c = self.input_channels;
        if mean.len() as i64 != c || std.len() as i64 != c {
            return Err(Error::invalid(
                "mean/std",
                format!(
                    "expected one value per input channel ({c}), got {} means and {} standard deviations",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::invalid(
                "std",
                format!("every standard deviation must be positive and finite, got {s}"),
            ));
        }
        if mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::invalid(
                "mean",
                format!("every mean must be finite, got {mean:?}"),
            ));
        }
        if self.stages.iter().any(|(n, _)| n == "normalize") {
            return Err(Error::invalid(
                "normalize",
                "the model already has a `normalize` stage",
            ));
        }
        let as_tensor = |v: &[f64]| {
            let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
            Tensor::from_slice(&v).view([1, c, 1, 1]).to_device(self.device)
        };
        let module = super::layers::Normalize {
            mean: as_tensor(mean),
            std: as_tensor(std),
        };
        self.stages
            .insert(0, ("normalize".to_string(), Stage::Leaf(Box::new(module))));
        Ok(self)
    }

    /// Replaces the module of stage `name` (for example a new classification head `fc`, or a
    /// nested stage such as `classifier.6`) and sets the number of classes to `num_classes`.
    pub fn replace(&mut self, name: &str, module: impl ModuleT + 'static, num_classes: i64) -> Result<()> {
        let valid = self.layers();
        let path = Self::split(name);
        match self.slot(&path) {
            Some(stage) => {
                *stage = Stage::Leaf(Box::new(module));
                self.num_classes = num_classes;
                Ok(())
            }
            None => Err(Error::UnknownLayer {
                name: name.to_string(),
                valid,
            }),
        }
    }

    fn slot(&mut self, path: &[&str]) -> Option<&mut Stage> {
        let (first, rest) = path.split_first()?;
        let (_, stage) = self.stages.iter_mut().find(|(n, _)| n == first)?;
        if rest.is_empty() {
            return Some(stage);
        }
        match stage {
            Stage::Nested(inner) => inner.slot(rest),
            Stage::Leaf(_) => None,
        }
    }

    fn collect_layers(&self, prefix: &str, out: &mut Vec<String>) {
        for (name, stage) in &self.stages {
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Stage::Nested(inner) = stage {
                inner.collect_layers(&full, out);
            }
            out.push(full);
        }
    }

    /// Runs the chain from `xs`. `start`: skip stages up to and including this path; `stop`: return
    /// as soon as this path has run. Paths are split on '.'. Returns `(output, reached_stop,
    /// passed_start)`.
    fn run(
        &self,
        xs: &Tensor,
        train: bool,
        start: Option<&[&str]>,
        stop: Option<&[&str]>,
    ) -> (Tensor, bool, bool) {
        let caller = xs.kind();
        let own = match &self.kind_of {
            Some(p) if p.is_floating_point() && xs.is_floating_point() && p.kind() != caller => p.kind(),
            _ => return self.run_stages(xs, train, start, stop),
        };
        let (out, reached, passed) = self.run_stages(&xs.to_kind(own), train, start, stop);
        let out = if out.is_floating_point() && out.kind() != caller {
            out.to_kind(caller)
        } else {
            out
        };
        (out, reached, passed)
    }

    /// [`Staged::run`] in whatever kind `xs` has.
    fn run_stages(
        &self,
        xs: &Tensor,
        train: bool,
        start: Option<&[&str]>,
        stop: Option<&[&str]>,
    ) -> (Tensor, bool, bool) {
        let mut x = xs.shallow_clone();
        let mut started = start.is_none();
        for (name, stage) in &self.stages {
            let start_here = match start {
                Some(p) if !started && p[0] == name => Some(&p[1..]),
                _ => None,
            };
            let stop_here = match stop {
                Some(p) if p[0] == name => Some(&p[1..]),
                _ => None,
            };
            if !started && start_here.is_none() {
                continue;
            }
            match stage {
                Stage::Leaf(m) => {
                    if started {
                        x = m.forward_t(&x, train);
                    } else {
                        // `start` names this leaf: its output is the activation we were given.
                        started = true;
                    }
                }
                Stage::Nested(inner) => {
                    let inner_start = start_here.filter(|p| !p.is_empty());
                    let inner_stop = stop_here.filter(|p| !p.is_empty());
                    if start_here.is_some() && inner_start.is_none() {
                        // Started exactly at the nested stage's output.
                        started = true;
                    } else {
                        let (y, reached, passed) = inner.run(&x, train, inner_start, inner_stop);
                        x = y;
                        started = started || passed;
                        if reached && inner_stop.is_some() {
                            return (x, true, started);
                        }
                    }
                }
            }
            if started && stop_here.is_some_and(|p| p.is_empty()) {
                return (x, true, started);
            }
        }
        (x, false, started)
    }

    fn split(layer: &str) -> Vec<&str> {
        layer.split('.').collect()
    }
}

impl ModuleT for Staged {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.run(xs, train, None, None).0
    }
}

impl Model for Staged {
    fn layers(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_layers("", &mut out);
        out
    }

    fn forward_to(&self, xs: &Tensor, layer: &str) -> Result<Tensor> {
        self.check_layer(layer)?;
        self.check_input(xs)?;
        let path = Self::split(layer);
        let (act, reached, _) = self.run(xs, false, None, Some(&path));
        debug_assert!(reached);
        Ok(act)
    }

    fn forward_from(&self, act: &Tensor, layer: &str) -> Result<Tensor> {
        self.check_layer(layer)?;
        if act.dim() == 0 || act.size()[0] == 0 {
            return Err(Error::shape(
                "activation",
                format!("a batch taken at layer `{layer}`"),
                &act.size(),
            ));
        }
        let path = Self::split(layer);
        let (out, _, _) = self.run(act, false, Some(&path), None);
        Ok(out)
    }

    fn input_channels(&self) -> i64 {
        self.input_channels
    }

    fn num_classes(&self) -> i64 {
        self.num_classes
    }

    fn min_input_size(&self) -> i64 {
        self.min_input_size
    }

    fn device(&self) -> Device {
        self.device
    }

    fn channels_last_batches(&self) -> bool {
        self.channels_last_batches
    }

    fn channels_last_training(&self) -> bool {
        self.channels_last_training
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Kind};

    fn scale(k: f64) -> impl ModuleT {
        nn::func_t(move |xs, _| xs * k)
    }

    fn nested_model() -> Staged {
        let block = Staged::new(1, 1, Device::Cpu)
            .leaf("0", scale(2.0))
            .leaf("1", scale(3.0));
        Staged::new(1, 1, Device::Cpu)
            .leaf("a", scale(5.0))
            .nested("layer", block)
            .leaf("fc", scale(7.0))
    }

    #[test]
    fn nested_layers_are_listed_children_first() {
        assert_eq!(
            nested_model().layers(),
            ["a", "layer.0", "layer.1", "layer", "fc"]
        );
    }

    #[test]
    fn cutting_anywhere_composes_to_the_full_forward() {
        let m = nested_model();
        let xs = Tensor::ones([1, 1, 1, 1], (Kind::Float, Device::Cpu));
        let expect = [
            ("a", 5.0),
            ("layer.0", 10.0),
            ("layer.1", 30.0),
            ("layer", 30.0),
            ("fc", 210.0),
        ];
        for (layer, v) in expect {
            let act = m.forward_to(&xs, layer).unwrap();
            assert_eq!(act.double_value(&[0, 0, 0, 0]), v, "forward_to {layer}");
            let out = m.forward_from(&act, layer).unwrap();
            assert_eq!(out.double_value(&[0, 0, 0, 0]), 210.0, "forward_from {layer}");
        }
    }

    #[test]
    fn unknown_layer_lists_valid_names() {
        let m = nested_model();
        let xs = Tensor::ones([1, 1, 1, 1], (Kind::Float, Device::Cpu));
        let err = m.forward_to(&xs, "layer.7").unwrap_err().to_string();
        assert!(
            err.contains("layer.7") && err.contains("layer.0, layer.1"),
            "{err}"
        );
    }

    #[test]
    fn wrong_input_is_an_error_not_a_panic() {
        let m = nested_model();
        let bad = Tensor::ones([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert!(matches!(m.forward_to(&bad, "a"), Err(Error::Shape { .. })));
        let bad = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        assert!(matches!(m.logits(&bad), Err(Error::Shape { .. })));
    }
}
