//! Image decoding and the reference transforms (`src/transforms/transform.py`), producing
//! CLIP-normalised CHW `f32`.

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::Rng;

use super::error::{DataError, DataResult};
use super::randaugment::{AugOp, RandomAugment};

// The reference's digits, kept verbatim.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Decodes JPEG/PNG bytes to RGB (an alpha channel is dropped, as PIL's `convert("RGB")`).
pub fn decode_rgb(bytes: &[u8]) -> DataResult<RgbImage> {
    let img = image::load_from_memory(bytes).map_err(|e| DataError::Image(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DataError::Image("image has no pixels".into()));
    }
    Ok(img.to_rgb8())
}

/// PIL/torchvision bicubic (a = -0.5, support widened when downscaling) to `w` x `h`.
pub fn resize_bicubic(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w, h, FilterType::CatmullRom)
}

/// torchvision `Resize(size)`: the shorter side becomes `size`, the longer is floored.
pub fn resize_shorter(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (size, ((size as u64 * h as u64) / w as u64) as u32)
    } else {
        (((size as u64 * w as u64) / h as u64) as u32, size)
    };
    resize_bicubic(img, nw, nh)
}

/// torchvision `CenterCrop(size)` for an image at least `size` on both sides.
pub fn center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cw, ch) = (size.min(w), size.min(h));
    // Python's round() (ties to even), as torchvision's `int(round((h - th) / 2.0))`.
    let left = ((w - cw) as f64 / 2.0).round_ties_even() as u32;
    let top = ((h - ch) as f64 / 2.0).round_ties_even() as u32;
    imageops::crop_imm(img, left, top, cw, ch).to_image()
}

/// torchvision `RandomResizedCrop.get_params`: (left, top, width, height).
pub fn random_resized_crop_params<R: Rng>(
    w: u32,
    h: u32,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut R,
) -> (u32, u32, u32, u32) {
    let area = w as f64 * h as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(scale.0..=scale.1);
        let aspect = rng.gen_range(lr0..=lr1).exp();
        let cw = (target * aspect).sqrt().round() as i64;
        let ch = (target / aspect).sqrt().round() as i64;
        if cw > 0 && cw <= w as i64 && ch > 0 && ch <= h as i64 {
            let top = rng.gen_range(0..=(h as i64 - ch)) as u32;
            let left = rng.gen_range(0..=(w as i64 - cw)) as u32;
            return (left, top, cw as u32, ch as u32);
        }
    }
    // Fallback: a centre crop clamped to the ratio range.
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round() as u32).max(1))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round() as u32).max(1), h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

pub fn hflip(img: &RgbImage) -> RgbImage {
    imageops::flip_horizontal(img)
}

/// RGB8 HWC -> CLIP-normalised CHW.
pub fn to_normalized_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * CLIP_STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| CLIP_MEAN[c] / CLIP_STD[c]);
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px[c] as f32 * scale[c] - shift[c];
        }
    }
    out
}

/// A transform key of the reference config.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformKind {
    /// `clip`: shorter-side bicubic resize, centre crop.
    Clip,
    /// `albef`: square bicubic resize, no crop.
    Albef,
    /// `albef_randaug*` / `blip_randaug*`: RandomResizedCrop, optional flip, RandomAugment.
    RandAug {
        min_scale: f64,
        flip: bool,
        augment: RandomAugment,
    },
}

/// A transform at a fixed output size.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTransform {
    pub key: String,
    pub kind: TransformKind,
    pub size: u32,
}

impl ImageTransform {
    /// Builds the transform named by a reference key (`clip`, `albef`, `albef_randaug_wc`, ...).
    pub fn from_key(key: &str, size: u32) -> DataResult<Self> {
        let randaug = |min_scale: f64, flip: bool, m: f32, ops: &[AugOp]| TransformKind::RandAug {
            min_scale,
            flip,
            augment: RandomAugment::new(2, m, ops),
        };
        let kind = match key {
            // `clip_pure` is the spec's name for the pre-training transform, which is `clip`.
            "clip" | "clip_pure" => TransformKind::Clip,
            "albef" => TransformKind::Albef,
            "albef_randaug" => randaug(0.5, true, 7.0, &AugOp::BASE),
            "albef_randaug_wc" => randaug(0.5, true, 7.0, &AugOp::WITH_COLOUR),
            "albef_randaug_wohf" => randaug(0.5, false, 7.0, &AugOp::BASE),
            "albef_randaug_pretrain" => randaug(0.2, true, 7.0, &AugOp::BASE),
            "blip_randaug" => randaug(0.5, true, 5.0, &AugOp::BASE),
            "blip_randaug_wc" => randaug(0.5, true, 5.0, &AugOp::WITH_COLOUR),
            "blip_randaug_wohf" => randaug(0.5, false, 5.0, &AugOp::BASE),
            "blip_randaug_pretrain" => randaug(0.2, true, 5.0, &AugOp::BASE),
            other => {
                return Err(DataError::Setting {
                    key: "transform_keys",
                    detail: format!(
                        "unknown transform key `{other}` (expected clip, albef, albef_randaug, \
                         albef_randaug_wc, albef_randaug_wohf, albef_randaug_pretrain or \
                         blip_randaug*)"
                    ),
                })
            }
        };
        if size == 0 {
            return Err(DataError::Setting {
                key: "image_size",
                detail: "must be positive".into(),
            });
        }
        Ok(Self {
            key: key.to_string(),
            kind,
            size,
        })
    }

    /// Whether the transform is random (training augmentation).
    pub fn is_random(&self) -> bool {
        matches!(self.kind, TransformKind::RandAug { .. })
    }

    /// Transforms to RGB8 at `size` x `size` (before normalisation).
    pub fn apply_rgb<R: Rng>(&self, img: &RgbImage, rng: &mut R) -> RgbImage {
        let s = self.size;
        match &self.kind {
            TransformKind::Clip => center_crop(&resize_shorter(img, s), s),
            TransformKind::Albef => resize_bicubic(img, s, s),
            TransformKind::RandAug {
                min_scale,
                flip,
                augment,
            } => {
                let (w, h) = img.dimensions();
                let (l, t, cw, ch) = random_resized_crop_params(
                    w,
                    h,
                    (*min_scale, 1.0),
                    (3.0 / 4.0, 4.0 / 3.0),
                    rng,
                );
                let crop = imageops::crop_imm(img, l, t, cw, ch);
                let mut out = imageops::resize(&*crop, s, s, FilterType::CatmullRom);
                if *flip && rng.gen::<f64>() < 0.5 {
                    imageops::flip_horizontal_in_place(&mut out);
                }
                augment.apply(out, rng)
            }
        }
    }

    /// Transforms and normalises to CHW `f32` of length `3 * size * size`.
    pub fn apply<R: Rng>(&self, img: &RgbImage, rng: &mut R) -> Vec<f32> {
        to_normalized_chw(&self.apply_rgb(img, rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn normalisation_uses_clip_statistics() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([255, 0, 128]));
        let v = to_normalized_chw(&img);
        assert_eq!(v.len(), 6);
        let expect = |c: usize, p: f32| (p / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
        assert!((v[0] - expect(0, 255.0)).abs() < 1e-5);
        assert!((v[1] - expect(0, 255.0)).abs() < 1e-5);
        assert!((v[2] - expect(1, 0.0)).abs() < 1e-5);
        assert!((v[4] - expect(2, 128.0)).abs() < 1e-5);
        // Known values: 255 red -> 1.9303, 0 green -> -1.7521.
        assert!((v[0] - 1.930_337).abs() < 1e-4, "{}", v[0]);
        assert!((v[2] + 1.752_102_5).abs() < 1e-4, "{}", v[2]);
    }

    #[test]
    fn clip_resizes_the_shorter_side_then_crops_the_centre() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t = ImageTransform::from_key("clip", 10).unwrap();
        // 40x20 -> 20x10 -> centre crop columns 5..15.
        let out = t.apply_rgb(&gradient(40, 20), &mut rng);
        assert_eq!(out.dimensions(), (10, 10));
        let left = out.get_pixel(0, 5).0[0] as i32;
        // Column 5 of the 20-wide resize samples source columns around 10..12.
        assert!((left - 11).abs() <= 1, "{left}");
        assert_eq!(
            out.get_pixel(3, 3).0[2],
            7,
            "constant channel stays constant"
        );
        let t = ImageTransform::from_key("albef", 12).unwrap();
        assert_eq!(
            t.apply_rgb(&gradient(40, 20), &mut rng).dimensions(),
            (12, 12)
        );
    }

    #[test]
    fn bicubic_downscale_is_antialiased_like_pil() {
        // A one-pixel checkerboard halved: PIL's widened bicubic gives mid-grey everywhere,
        // a point-sampling resize would give black or white.
        let img = RgbImage::from_fn(32, 32, |x, y| {
            let v = if (x + y) % 2 == 0 { 255 } else { 0 };
            image::Rgb([v, v, v])
        });
        let out = resize_bicubic(&img, 16, 16);
        for px in out.pixels() {
            assert!((px.0[0] as i32 - 128).abs() <= 16, "{:?}", px.0);
        }
    }

    #[test]
    fn center_crop_matches_torchvision_rounding() {
        let out = center_crop(&gradient(7, 5), 4);
        // left = round(1.5) = 2, top = round(0.5) = 0 (Python rounds ties to even).
        assert_eq!(out.get_pixel(0, 0).0[0], 2);
        assert_eq!(out.get_pixel(0, 0).0[1], 0);
        assert_eq!(out.dimensions(), (4, 4));
    }

    #[test]
    fn random_resized_crop_respects_scale_and_ratio() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let (l, t, w, h) =
                random_resized_crop_params(100, 80, (0.5, 1.0), (0.75, 4.0 / 3.0), &mut rng);
            assert!(l + w <= 100 && t + h <= 80);
            let area = (w * h) as f64 / 8000.0;
            assert!(area > 0.45 && area <= 1.0, "{area}");
        }
    }

    #[test]
    fn randaug_transforms_are_seed_deterministic() {
        let img = gradient(50, 40);
        for key in ["albef_randaug_wc", "albef_randaug_wohf"] {
            let t = ImageTransform::from_key(key, 24).unwrap();
            let a = t.apply(&img, &mut ChaCha8Rng::seed_from_u64(9));
            let b = t.apply(&img, &mut ChaCha8Rng::seed_from_u64(9));
            assert_eq!(a, b);
            assert_eq!(a.len(), 3 * 24 * 24);
        }
        assert!(ImageTransform::from_key("nope", 24).is_err());
    }

    #[test]
    fn corrupt_bytes_are_an_image_error() {
        assert!(matches!(decode_rgb(b"garbage"), Err(DataError::Image(_))));
    }
}
