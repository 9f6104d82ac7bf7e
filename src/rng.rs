//! A small seeded random number generator owned by the caller.
//!
//! libtorch's generator is global state: two tests or two notebook cells that seed it and draw in
//! parallel interleave, and "same seed, same result" breaks. Every random step of this crate takes a
//! seed and draws from its own [`Rng`] (SplitMix64), so results depend on the seed alone, on any
//! thread count and device.

use tch::{Device, Kind, Tensor};

/// SplitMix64: fast, tiny state, good statistical quality for sampling and augmentation.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    ///
    /// ```
    /// use cnn_explain::rng::Rng;
    /// let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    /// assert_eq!(a.next_u64(), b.next_u64());
    /// ```
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            spare_normal: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `0..n` (`n` must be at least 1; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let (u1, u2) = self.box_muller_uniforms();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare_normal = Some(r * s);
        r * c
    }

    /// The two uniforms of one Box-Muller pair, in the order [`Rng::normal`] and
    /// [`Rng::normal_tensor`] both draw them (the first kept above zero for its logarithm).
    fn box_muller_uniforms(&mut self) -> (f64, f64) {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        (u1, self.uniform())
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A permutation of `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        self.shuffle(&mut p);
        p
    }

    /// A float tensor of standard normal samples with the given shape on `device`.
    ///
    /// The same values as `n` calls of [`Rng::normal`] (to float32 rounding), but the logarithms
    /// and cosines of Box-Muller run in libtorch's vectorised kernels instead of one at a time:
    /// noise for SmoothGrad's 25 samples of a 224x224 image (3.8 million values) takes a fraction of
    /// the time.
    ///
    /// ```
    /// use cnn_explain::rng::Rng;
    /// use tch::Device;
    /// let t = Rng::new(3).normal_tensor(&[5], Device::Cpu);
    /// let mut r = Rng::new(3);
    /// let one_by_one: Vec<f32> = (0..5).map(|_| r.normal() as f32).collect();
    /// let fast = Vec::<f32>::try_from(&t).unwrap();
    /// assert!(fast.iter().zip(&one_by_one).all(|(a, b)| (a - b).abs() < 1e-6));
    /// ```
    pub fn normal_tensor(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n = shape.iter().product::<i64>().max(0) as usize;
        let mut head = Vec::new();
        if n > 0 {
            if let Some(z) = self.spare_normal.take() {
                head.push(z);
            }
        }
        let pairs = (n - head.len()).div_ceil(2);
        // The uniforms as `normal()` draws them, one pair per two values.
        let (u1, u2): (Vec<f64>, Vec<f64>) = (0..pairs).map(|_| self.box_muller_uniforms()).unzip();
        let r = (Tensor::from_slice(&u1).log() * -2.0).sqrt();
        let theta = Tensor::from_slice(&u2) * (2.0 * std::f64::consts::PI);
        // normal() returns r cos first and keeps r sin for the next call.
        let zs = Tensor::stack(&[&r * theta.cos(), &r * theta.sin()], 1).reshape([-1]);
        let mut zs = if head.is_empty() {
            zs
        } else {
            Tensor::cat(&[Tensor::from_slice(&head), zs], 0)
        };
        if zs.size()[0] as usize > n {
            self.spare_normal = Some(zs.double_value(&[n as i64]));
            zs = zs.narrow(0, 0, n as i64);
        }
        zs.to_kind(Kind::Float).reshape(shape).to_device(device)
    }

    /// A float tensor of uniform `[0, 1)` samples with the given shape on `device`.
    pub fn uniform_tensor(&mut self, shape: &[i64], device: Device) -> Tensor {
        let n: i64 = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.uniform() as f32).collect();
        Tensor::from_slice(&v)
            .reshape(shape)
            .to_device(device)
            .to_kind(Kind::Float)
    }

    /// A new generator derived from this one, for a sub-task that must not shift this sequence.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tensor_continues_the_scalar_sequence() {
        // Odd lengths leave a spare value that the next draw (tensor or scalar) must use first.
        let mut fast = Rng::new(11);
        let mut slow = Rng::new(11);
        let mut got: Vec<f32> = Vec::new();
        for len in [3i64, 1, 4, 0, 5] {
            let t = fast.normal_tensor(&[len], Device::Cpu);
            assert_eq!(t.size(), vec![len]);
            got.extend(Vec::<f32>::try_from(&t).unwrap());
        }
        got.push(fast.normal() as f32);
        let want: Vec<f32> = (0..14).map(|_| slow.normal() as f32).collect();
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let t = Rng::new(1).normal_tensor(&[2, 3, 4], Device::Cpu);
        assert_eq!(t.size(), vec![2, 3, 4]);
        assert_eq!(t.kind(), Kind::Float);
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let a: Vec<u64> = {
            let mut r = Rng::new(1);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(1);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(2);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn moments_are_right() {
        let mut r = Rng::new(3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        let us: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        let umean = us.iter().sum::<f64>() / n as f64;
        assert!((umean - 0.5).abs() < 0.01);
        assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = Rng::new(5).permutation(100);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
