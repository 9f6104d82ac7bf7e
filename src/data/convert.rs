//! Conversions between tensors, `image::RgbImage` and `ndarray` arrays.
//!
//! Images as tensors are float `[3, H, W]` with values in `[0, 1]`; as `RgbImage` they are 8-bit
//! `H x W` pixels. Tensor to image clamps to `[0, 1]` and rounds `v * 255` (NaN becomes 0).
//! Tensors of any float or integer kind, on any device, convert to `f32` arrays on the CPU; arrays
//! convert to float tensors on the CPU (move them with `to_device`).

use crate::{Error, Result};
use image::RgbImage;
use ndarray::{Array3, Array4};
use tch::{Device, Kind, Tensor};

/// `[3, H, W]` float in `[0, 1]` -> `RgbImage` (`W x H`).
///
/// ```
/// use cnn_explain::data::convert::tensor_to_rgb_image;
/// let t = tch::Tensor::ones([3, 2, 4], (tch::Kind::Float, tch::Device::Cpu));
/// let img = tensor_to_rgb_image(&t)?;
/// assert_eq!(img.dimensions(), (4, 2));
/// assert_eq!(img.get_pixel(3, 1).0, [255, 255, 255]);
/// assert!(tensor_to_rgb_image(&t.unsqueeze(0)).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn tensor_to_rgb_image(t: &Tensor) -> Result<RgbImage> {
    let (h, w) = match t.size()[..] {
        [3, h, w] if h > 0 && w > 0 => (h, w),
        _ => {
            return Err(Error::shape(
                "image",
                "[3, H, W] (one RGB image; take `.get(i)` of a batch)",
                &t.size(),
            ))
        }
    };
    let hwc = t
        .f_to_kind(Kind::Float)?
        .f_to_device(Device::Cpu)?
        .f_nan_to_num(0.0, 1.0, 0.0)?
        .f_clamp(0.0, 1.0)?
        .f_mul_scalar(255.0)?
        .f_round()?
        .f_permute([1, 2, 0])?
        .f_contiguous()?
        .f_to_kind(Kind::Uint8)?
        .f_reshape([-1])?;
    let bytes = Vec::<u8>::try_from(&hwc)?;
    RgbImage::from_raw(w as u32, h as u32, bytes).ok_or_else(|| Error::shape("image", "[3, H, W]", &t.size()))
}

/// `RgbImage` (`W x H`) -> `[3, H, W]` float tensor in `[0, 1]` on the CPU.
///
/// ```
/// use cnn_explain::data::convert::rgb_image_to_tensor;
/// let img = image::RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 51]));
/// let t = rgb_image_to_tensor(&img);
/// assert_eq!(t.size(), [3, 2, 4]);
/// assert!((t.double_value(&[2, 1, 3]) - 0.2).abs() < 1e-6);
/// ```
pub fn rgb_image_to_tensor(img: &RgbImage) -> Tensor {
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw())
        .reshape([h as i64, w as i64, 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        / 255.0
}

fn to_f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t
        .f_detach()?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_reshape([-1])?;
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// `[N, C, H, W]` tensor -> `Array4<f32>` of the same shape (detached, on the CPU).
///
/// ```
/// use cnn_explain::data::convert::tensor_to_array4;
/// let t = tch::Tensor::arange(24, (tch::Kind::Float, tch::Device::Cpu)).reshape([1, 2, 3, 4]);
/// let a = tensor_to_array4(&t)?;
/// assert_eq!(a[[0, 1, 2, 3]], 23.0);
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn tensor_to_array4(t: &Tensor) -> Result<Array4<f32>> {
    let s = t.size();
    let dims = match s[..] {
        [a, b, c, d] => [a as usize, b as usize, c as usize, d as usize],
        _ => return Err(Error::shape("tensor", "[N, C, H, W] (rank 4)", &s)),
    };
    Array4::from_shape_vec(dims, to_f32_vec(t)?)
        .map_err(|e| Error::invalid("tensor", format!("cannot make an array: {e}")))
}

/// `[C, H, W]` tensor -> `Array3<f32>` of the same shape (detached, on the CPU).
///
/// ```
/// use cnn_explain::data::convert::tensor_to_array3;
/// let t = tch::Tensor::arange(6, (tch::Kind::Int64, tch::Device::Cpu)).reshape([1, 2, 3]);
/// assert_eq!(tensor_to_array3(&t)?[[0, 1, 0]], 3.0);
/// assert!(tensor_to_array3(&t.reshape([6])).is_err());
/// # Ok::<(), cnn_explain::Error>(())
/// ```
pub fn tensor_to_array3(t: &Tensor) -> Result<Array3<f32>> {
    let s = t.size();
    let dims = match s[..] {
        [a, b, c] => [a as usize, b as usize, c as usize],
        _ => return Err(Error::shape("tensor", "[C, H, W] (rank 3)", &s)),
    };
    Array3::from_shape_vec(dims, to_f32_vec(t)?)
        .map_err(|e| Error::invalid("tensor", format!("cannot make an array: {e}")))
}

/// `Array4<f32>` -> float tensor of the same shape on the CPU (any memory layout).
///
/// ```
/// use cnn_explain::data::convert::array4_to_tensor;
/// let a = ndarray::Array4::<f32>::from_shape_fn((1, 2, 2, 3), |(_, c, y, x)| (c * 6 + y * 3 + x) as f32);
/// let t = array4_to_tensor(&a.view().permuted_axes([0, 1, 3, 2]).to_owned());
/// assert_eq!(t.size(), [1, 2, 3, 2]);
/// assert_eq!(t.double_value(&[0, 1, 2, 1]), 11.0);
/// ```
pub fn array4_to_tensor(a: &Array4<f32>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = a.iter().copied().collect(); // logical (row-major) order
    Tensor::from_slice(&data).reshape(shape)
}

/// `Array3<f32>` -> float tensor of the same shape on the CPU (any memory layout).
///
/// ```
/// use cnn_explain::data::convert::array3_to_tensor;
/// let a = ndarray::Array3::<f32>::from_elem((3, 2, 2), 0.5);
/// assert_eq!(array3_to_tensor(&a).size(), [3, 2, 2]);
/// ```
pub fn array3_to_tensor(a: &Array3<f32>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = a.iter().copied().collect();
    Tensor::from_slice(&data).reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trip_is_exact_on_byte_values() {
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([(x * 50) as u8, (y * 100) as u8, 7]));
        let t = rgb_image_to_tensor(&img);
        assert_eq!(t.size(), [3, 3, 5]);
        assert!((t.double_value(&[0, 1, 4]) - 200.0 / 255.0).abs() < 1e-7);
        assert!((t.double_value(&[1, 2, 0]) - 200.0 / 255.0).abs() < 1e-7);
        assert_eq!(tensor_to_rgb_image(&t).unwrap(), img);
        // Clamping, rounding and NaN.
        let t = Tensor::from_slice(&[-1.0f32, 2.0, f32::NAN, 0.5 / 255.0 + 0.1 / 255.0, 0.2, 0.31])
            .reshape([3, 1, 2]);
        let img = tensor_to_rgb_image(&t).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 51]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 1, 79]);
        for bad in [[1i64, 3, 2, 2].as_slice(), &[4, 2, 2], &[3, 0, 2], &[3, 2]] {
            let t = Tensor::zeros(bad, (Kind::Float, Device::Cpu));
            assert!(tensor_to_rgb_image(&t).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ndarray_round_trips_keep_element_positions() {
        let t = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).reshape([2, 3, 4, 5]);
        let a = tensor_to_array4(&t).unwrap();
        assert_eq!(a[[1, 2, 3, 4]], 119.0);
        assert_eq!(a[[1, 0, 2, 1]], (60 + 10 + 1) as f32);
        assert!(array4_to_tensor(&a).equal(&t));
        // A non-contiguous tensor (transposed) converts by logical position.
        let tt = t.transpose(2, 3);
        let at = tensor_to_array4(&tt).unwrap();
        assert_eq!(at[[0, 0, 4, 0]], 4.0);
        // A non-standard-layout array converts by logical position.
        let rev = a.clone().permuted_axes([3, 2, 1, 0]);
        let back = array4_to_tensor(&rev.to_owned());
        assert_eq!(back.size(), [5, 4, 3, 2]);
        assert_eq!(back.double_value(&[4, 3, 2, 1]), 119.0);
        let t3 = t.get(1);
        let a3 = tensor_to_array3(&t3).unwrap();
        assert_eq!(a3[[2, 3, 4]], 119.0);
        assert!(array3_to_tensor(&a3).equal(&t3));
        assert!(tensor_to_array4(&t3).is_err());
        assert!(tensor_to_array3(&t).is_err());
        // Gradients are detached.
        let g = t.set_requires_grad(true);
        assert_eq!(tensor_to_array4(&g).unwrap()[[0, 0, 0, 1]], 1.0);
    }
}
