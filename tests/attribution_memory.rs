//! Calling an attribution method 1,000 times in a loop does not grow memory.
//!
//! Reads the resident set size from /proc/self/statm (Linux), so it runs in its own test binary.

mod gradient_common;

use cnn_explain::attribution::gradient::{IntegratedGradients, Saliency};
use cnn_explain::attribution::noise::NoiseTunnel;
use cnn_explain::attribution::{Attribution, Target};
use gradient_common::{batch, randomize, small_cnn};
use tch::{nn, Device};

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn repeated_attribution_does_not_grow_memory() {
    tch::set_num_threads(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = small_cnn(&vs);
    randomize(&vs, 15, 0.5);
    // 3 x 32 x 32 floats = 12 KiB per map: leaking one tensor per call would add 12 MiB over 1,000
    // calls, three times the slack allowed.
    let xs = batch(&[1, 3, 32, 32], 16);
    let sal = Saliency::default();
    let call = |m: &dyn Attribution| m.attribute(&model, &xs, &Target::Predicted).unwrap();
    for _ in 0..100 {
        let _ = call(&sal);
    }
    let before = rss();
    let t0 = std::time::Instant::now();
    let mut checksum = 0.0;
    for _ in 0..1000 {
        checksum += call(&sal).sum(tch::Kind::Double).double_value(&[]);
    }
    let after = rss();
    println!("saliency x1000 in {:?}", t0.elapsed());
    println!(
        "saliency x1000: RSS {} KiB -> {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(checksum > 0.0);
    assert!(
        after < before + 4 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes"
    );

    // The looping methods too (fewer calls, each does many passes).
    let ig = IntegratedGradients {
        steps: 10,
        batch: 16,
        ..Default::default()
    };
    let sg = NoiseTunnel {
        samples: 5,
        batch: 8,
        ..NoiseTunnel::smooth(Saliency::default())
    };
    for _ in 0..5 {
        let _ = (call(&ig), call(&sg));
    }
    let before = rss();
    for _ in 0..30 {
        let _ = (call(&ig), call(&sg));
    }
    let after = rss();
    println!(
        "IG + SmoothGrad x30: RSS {} KiB -> {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 4 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes"
    );
}
