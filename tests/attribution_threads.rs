//! CPU results of the gradient family do not depend on the thread count (within 1e-5).
//!
//! `tch::set_num_threads` is process-global, so this check lives in its own test binary.

mod gradient_common;

use cnn_explain::attribution::gradient::{
    InputXGradient, IntegratedGradients, Quadrature, Saliency, SaliencyMode,
};
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::{Attribution, Target};
use gradient_common::{batch, max_err, randomize, small_cnn};
use tch::{nn, Device, Tensor};

#[test]
fn one_thread_and_two_threads_agree() {
    let vs = nn::VarStore::new(Device::Cpu);
    let model = small_cnn(&vs);
    randomize(&vs, 13, 0.5);
    // Large enough that libtorch splits the convolutions between threads.
    let xs = batch(&[4, 3, 32, 32], 14);
    let methods: Vec<Box<dyn Attribution>> = vec![
        Box::new(Saliency {
            mode: SaliencyMode::Signed,
        }),
        Box::new(InputXGradient),
        Box::new(IntegratedGradients {
            steps: 8,
            method: Quadrature::GaussLegendre,
            ..Default::default()
        }),
        Box::new(NoiseTunnel {
            samples: 4,
            ..NoiseTunnel::smooth(Saliency::default())
        }),
    ];
    let run = |threads| -> Vec<Tensor> {
        tch::set_num_threads(threads);
        assert_eq!(tch::get_num_threads(), threads);
        methods
            .iter()
            .map(|m| m.attribute(&model, &xs, &Target::Predicted).unwrap())
            .collect()
    };
    let one = run(1);
    let two = run(2);
    for ((a, b), m) in one.iter().zip(&two).zip(&methods) {
        let err = max_err(a, b);
        let scale = b.abs().max().double_value(&[]);
        println!(
            "{:<50} max |1 thread - 2 threads| {err:.3e} (max |map| {scale:.3e})",
            m.name()
        );
        assert!(err < 1e-5, "{}: {err}", m.name());
    }
}
