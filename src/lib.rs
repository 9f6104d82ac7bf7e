//! # cnn-explain
//!
//! Train and explain image classifiers (CNNs) in Rust, on libtorch through `tch`, from Jupyter
//! notebooks (the evcxr kernel) or from tests and programs.
//!
//! ```
//! use cnn_explain::prelude::*;
//! use tch::nn;
//!
//! // A tiny model as a chain of named stages, so every layer can be reached by name.
//! let vs = nn::VarStore::new(default_device());
//! let root = vs.root();
//! let model = Staged::new(3, 2, vs.device())
//!     .leaf("conv", nn::conv2d(&root / "conv", 3, 4, 3, Default::default()))
//!     .leaf("relu", nn::func(|xs| xs.relu()))
//!     .leaf("pool", nn::func(|xs| xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)))
//!     .leaf("fc", nn::linear(&root / "fc", 4, 2, Default::default()));
//! let xs = Tensor::rand([1, 3, 16, 16], (Kind::Float, vs.device()));
//! assert_eq!(model.logits(&xs)?.size(), [1, 2]);
//! // Bad input is an error that says what would be right, never a panic.
//! let gray = Tensor::rand([1, 1, 16, 16], (Kind::Float, vs.device()));
//! assert!(model.logits(&gray).unwrap_err().to_string().contains("grayscale"));
//! # Ok::<(), cnn_explain::Error>(())
//! ```
//!
//! On the CPU, a program should call [`runtime::keep_freed_memory`] once before its work: glibc
//! otherwise returns every large tensor's memory to the kernel when it is freed, and about half of a
//! small CNN's forward pass at batch 64 went to the page faults of the next one.
#![warn(missing_docs)]

pub mod attribution;
pub mod data;
mod error;
pub mod eval;
pub mod features;
pub mod io;
pub mod models;
pub mod notebook;
pub mod quality;
pub mod rng;
pub mod runtime;
pub mod segmentation;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
/// The `image` crate the crate's image types come from (`RgbImage`, `GrayImage`), so notebooks can name them
/// with `use cnn_explain::image;` without adding the dependency.
pub use image;
pub use tch;

/// The device to use by default: the first CUDA GPU when libtorch finds one, else the CPU.
pub fn default_device() -> tch::Device {
    tch::Device::cuda_if_available()
}

/// The names most code needs: `use cnn_explain::prelude::*;`.
pub mod prelude {
    pub use crate::attribution::{Attribution, Target};
    pub use crate::data::{Dataset, Splits};
    pub use crate::default_device;
    pub use crate::eval::{evaluate, ConfusionMatrix, Evaluation};
    pub use crate::models::{Model, Staged};
    pub use crate::train::{fit, FitData, History, TrainConfig};
    pub use crate::{Error, Result};
    pub use tch::nn::ModuleT;
    pub use tch::{Device, Kind, Tensor};
}
