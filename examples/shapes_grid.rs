//! Writes a grid of generated shapes images and their masks to `shapes_grid.png` for a look.
use cnn_explain::data::convert::tensor_to_rgb_image;
use cnn_explain::data::shapes::{generate, ShapesConfig};

fn main() -> cnn_explain::Result<()> {
    let cfg = ShapesConfig {
        train: 24,
        val: 0,
        test: 0,
        ..Default::default()
    };
    let d = generate(&cfg)?.train;
    let s = cfg.image_size as u32;
    let mut grid = image::RgbImage::new(8 * s, 6 * s);
    for i in 0..24i64 {
        let img = tensor_to_rgb_image(&d.images.get(i))?;
        let m = tensor_to_rgb_image(&d.masks.as_ref().unwrap().get(i).repeat([3, 1, 1]))?;
        let (gx, gy) = ((i % 8) as u32 * s, (i / 8) as u32 * 2 * s);
        image::imageops::replace(&mut grid, &img, gx as i64, gy as i64);
        image::imageops::replace(&mut grid, &m, gx as i64, (gy + s) as i64);
    }
    let labels: Vec<i64> = Vec::try_from(&d.labels).unwrap();
    println!("labels: {labels:?}");
    cnn_explain::io::with_atomic_path("shapes_grid.png", |p| {
        grid.save(p)
            .map_err(|e| cnn_explain::Error::data(p, e.to_string()))
    })
}
