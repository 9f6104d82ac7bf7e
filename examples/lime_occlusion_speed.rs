//! Timing of SLIC, LIME and occlusion against the model's forward passes alone.
//!
//! `cargo run --release --example lime_occlusion_speed` (set `OMP_WAIT_POLICY=PASSIVE`).
//! Prints the segmentation time of a 224x224 image and, for LIME (1,000 samples) and occlusion
//! (window 16, stride 8) on ResNet-18 at 224x224, the total time divided by the time of the same
//! number of forward passes at the same batch size.

use cnn_explain::attribution::lime::Lime;
use cnn_explain::attribution::occlusion::{Occlusion, OcclusionBaseline, Score};
use cnn_explain::prelude::*;
use cnn_explain::rng::Rng;
use cnn_explain::segmentation::Slic;
use std::time::Instant;
use tch::nn;

fn main() -> Result<()> {
    // glibc keeps freed memory for the next pass instead of handing it back to the kernel.
    cnn_explain::runtime::keep_freed_memory()?;
    // The first GPU when libtorch sees one, else the CPU.
    let device = Device::cuda_if_available();
    let vs = nn::VarStore::new(device);
    // ResNet-18 from the zoo at 224x224 (random weights: the time does not depend on them).
    let model = cnn_explain::models::build(cnn_explain::models::Arch::ResNet18, &vs.root(), 1000)?;
    let image = Rng::new(1)
        .uniform_tensor(&[1, 3, 16, 16], device)
        .upsample_bilinear2d([224, 224], false, None, None);

    let t = Instant::now();
    let slic_only = std::env::args().any(|a| a == "slic");
    let reps = if slic_only { 50 } else { 10 };
    let mut count = 0;
    for _ in 0..reps {
        count = Slic::default().segment(&image)?.count();
    }
    println!(
        "SLIC 224x224 (50 asked, {count} found): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3 / reps as f64
    );

    if slic_only {
        return Ok(());
    }
    let batch = 64usize;
    let forward_alone = |n: usize| -> f64 {
        let t = Instant::now();
        tch::no_grad(|| {
            let mut left = n;
            while left > 0 {
                let b = left.min(batch);
                let xs = image.expand([b as i64, 3, 224, 224], false).contiguous() * 0.5;
                let _ = model.forward_t(&xs, false);
                left -= b;
            }
        });
        t.elapsed().as_secs_f64()
    };

    let lime = Lime {
        samples: 1000,
        batch,
        ..Default::default()
    };
    let t = Instant::now();
    let e = lime.explain(&model, &image, &Target::Predicted)?;
    let lime_s = t.elapsed().as_secs_f64();
    let fwd = forward_alone(1001);
    println!(
        "LIME 1000 samples: {:.2} s, forward passes alone {:.2} s, ratio {:.3} (r2 {:.3})",
        lime_s,
        fwd,
        lime_s / fwd,
        e.r2
    );

    let occ = Occlusion {
        window: (16, 16),
        stride: (8, 8),
        baseline: OcclusionBaseline::Value(0.0),
        score: Score::Probability,
        batch,
    };
    let n = occ.positions(224, 224)?;
    let t = Instant::now();
    let _ = occ.attribute(&model, &image, &Target::Predicted)?;
    let occ_s = t.elapsed().as_secs_f64();
    let fwd = forward_alone(n + 1);
    println!(
        "Occlusion {n} windows: {:.2} s, forward passes alone {:.2} s, ratio {:.3}",
        occ_s,
        fwd,
        occ_s / fwd
    );
    Ok(())
}
