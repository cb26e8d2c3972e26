//! ALBEF's `RandomAugment(N, M)` (`src/transforms/randaugment.py`): N ops drawn with replacement,
//! each applied with probability 0.5 at magnitude M of 10. The ops follow the reference's numpy/cv2
//! versions (which imitate PIL): same lookup tables, same affine matrices, fill 128.
//!
//! One deliberate difference: the reference's `Sharpness` casts out-of-range floats to uint8
//! without clipping (wrapping around); here values are clamped.

use image::RgbImage;
use rand::Rng;

const MAX_LEVEL: f32 = 10.0;
const FILL: [u8; 3] = [128, 128, 128];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugOp {
    Identity,
    AutoContrast,
    Equalize,
    Rotate,
    Solarize,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Posterize,
}

impl AugOp {
    /// The reference's geometric + tone ops (`albef_randaug`, `_wohf`, `_pretrain`).
    pub const BASE: [AugOp; 10] = [
        AugOp::Identity,
        AugOp::AutoContrast,
        AugOp::Brightness,
        AugOp::Sharpness,
        AugOp::Equalize,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
        AugOp::Rotate,
    ];
    /// `albef_randaug_wc`: BASE plus the colour ops.
    pub const WITH_COLOUR: [AugOp; 14] = [
        AugOp::Identity,
        AugOp::AutoContrast,
        AugOp::Brightness,
        AugOp::Sharpness,
        AugOp::Equalize,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
        AugOp::Rotate,
        AugOp::Solarize,
        AugOp::Color,
        AugOp::Contrast,
        AugOp::Posterize,
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomAugment {
    pub n: usize,
    pub magnitude: f32,
    pub ops: Vec<AugOp>,
}

impl RandomAugment {
    pub fn new(n: usize, magnitude: f32, ops: &[AugOp]) -> Self {
        Self {
            n,
            magnitude,
            ops: ops.to_vec(),
        }
    }

    pub fn apply<R: Rng>(&self, mut img: RgbImage, rng: &mut R) -> RgbImage {
        if self.ops.is_empty() {
            return img;
        }
        let chosen: Vec<AugOp> = (0..self.n)
            .map(|_| self.ops[rng.gen_range(0..self.ops.len())])
            .collect();
        for op in chosen {
            if rng.gen::<f64>() > 0.5 {
                continue;
            }
            img = apply_op(op, img, self.magnitude, rng);
        }
        img
    }
}

/// Applies one op at `level` (0..=10), drawing its sign where the reference does.
pub fn apply_op<R: Rng>(op: AugOp, img: RgbImage, level: f32, rng: &mut R) -> RgbImage {
    let enhance = (level / MAX_LEVEL) * 1.8 + 0.1;
    match op {
        AugOp::Identity => img,
        AugOp::AutoContrast => autocontrast(img),
        AugOp::Equalize => equalize(img),
        AugOp::Rotate => {
            let mut deg = (level / MAX_LEVEL) * 30.0;
            if rng.gen::<f64>() < 0.5 {
                deg = -deg;
            }
            rotate(&img, deg)
        }
        AugOp::Solarize => solarize(img, ((level / MAX_LEVEL) * 256.0) as u32),
        AugOp::Color => color(img, enhance),
        AugOp::Contrast => contrast(img, enhance),
        AugOp::Brightness => brightness(img, enhance),
        AugOp::Sharpness => sharpness(img, enhance),
        AugOp::ShearX | AugOp::ShearY => {
            let mut f = (level / MAX_LEVEL) * 0.3;
            if rng.gen::<f64>() > 0.5 {
                f = -f;
            }
            let m = if op == AugOp::ShearX {
                [[1.0, f, 0.0], [0.0, 1.0, 0.0]]
            } else {
                [[1.0, 0.0, 0.0], [f, 1.0, 0.0]]
            };
            warp_affine(&img, m)
        }
        AugOp::TranslateX | AugOp::TranslateY => {
            let mut off = (level / MAX_LEVEL) * 10.0;
            if rng.gen::<f64>() > 0.5 {
                off = -off;
            }
            let m = if op == AugOp::TranslateX {
                [[1.0, 0.0, -off], [0.0, 1.0, 0.0]]
            } else {
                [[1.0, 0.0, 0.0], [0.0, 1.0, -off]]
            };
            warp_affine(&img, m)
        }
        AugOp::Posterize => posterize(img, ((level / MAX_LEVEL) * 4.0) as u32),
    }
}

fn map_channels(mut img: RgbImage, tables: &[[u8; 256]; 3]) -> RgbImage {
    for px in img.pixels_mut() {
        for c in 0..3 {
            px.0[c] = tables[c][px.0[c] as usize];
        }
    }
    img
}

fn map_all(img: RgbImage, table: [u8; 256]) -> RgbImage {
    map_channels(img, &[table, table, table])
}

fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for px in img.pixels() {
        for c in 0..3 {
            h[c][px.0[c] as usize] += 1;
        }
    }
    h
}

/// Clip to [0, 255] then truncate, as numpy's `.clip(0, 255).astype(np.uint8)`.
fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

pub fn autocontrast(img: RgbImage) -> RgbImage {
    let hist = histograms(&img);
    let mut tables = [[0u8; 256]; 3];
    for c in 0..3 {
        let low = hist[c].iter().position(|&n| n > 0).unwrap_or(0);
        let high = hist[c].iter().rposition(|&n| n > 0).unwrap_or(255);
        for (v, t) in tables[c].iter_mut().enumerate() {
            *t = if high <= low {
                v as u8
            } else {
                let scale = 255.0 / (high - low) as f64;
                let offset = -(low as f64) * scale;
                (v as f64 * scale + offset).clamp(0.0, 255.0) as u8
            };
        }
    }
    map_channels(img, &tables)
}

/// PIL's `ImageOps.equalize`, per channel.
pub fn equalize(img: RgbImage) -> RgbImage {
    let hist = histograms(&img);
    let mut tables = [[0u8; 256]; 3];
    for c in 0..3 {
        let nonzero: Vec<u64> = hist[c].iter().copied().filter(|&n| n > 0).collect();
        let step = nonzero[..nonzero.len().saturating_sub(1)]
            .iter()
            .sum::<u64>()
            / 255;
        for (v, t) in tables[c].iter_mut().enumerate() {
            *t = if step == 0 {
                v as u8
            } else {
                let cum = step / 2 + hist[c][..v].iter().sum::<u64>();
                (cum / step).min(255) as u8
            };
        }
    }
    map_channels(img, &tables)
}

pub fn solarize(img: RgbImage, thresh: u32) -> RgbImage {
    let mut t = [0u8; 256];
    for (v, x) in t.iter_mut().enumerate() {
        *x = if (v as u32) < thresh {
            v as u8
        } else {
            255 - v as u8
        };
    }
    map_all(img, t)
}

pub fn posterize(img: RgbImage, bits: u32) -> RgbImage {
    let mask = ((255u32 << (8 - bits.min(8))) & 0xFF) as u8;
    let mut t = [0u8; 256];
    for (v, x) in t.iter_mut().enumerate() {
        *x = v as u8 & mask;
    }
    map_all(img, t)
}

pub fn brightness(img: RgbImage, factor: f32) -> RgbImage {
    let mut t = [0u8; 256];
    for (v, x) in t.iter_mut().enumerate() {
        *x = to_u8(v as f32 * factor);
    }
    map_all(img, t)
}

pub fn contrast(img: RgbImage, factor: f32) -> RgbImage {
    let n = (img.width() as f64 * img.height() as f64).max(1.0);
    let hist = histograms(&img);
    let weights = [0.114, 0.587, 0.299];
    let mut mean = 0.0f64;
    for c in 0..3 {
        let sum: f64 = hist[c]
            .iter()
            .enumerate()
            .map(|(v, &k)| v as f64 * k as f64)
            .sum();
        mean += sum / n * weights[c];
    }
    let mut t = [0u8; 256];
    for (v, x) in t.iter_mut().enumerate() {
        *x = ((v as f64 - mean) * factor as f64 + mean).clamp(0.0, 255.0) as u8;
    }
    map_all(img, t)
}

pub fn color(mut img: RgbImage, factor: f32) -> RgbImage {
    let base = [
        [0.886f32, -0.114, -0.114],
        [-0.587, 0.413, -0.587],
        [-0.299, -0.299, 0.701],
    ];
    let w = [0.114f32, 0.587, 0.299];
    let mut m = [[0f32; 3]; 3];
    for k in 0..3 {
        for c in 0..3 {
            m[k][c] = base[k][c] * factor + w[k];
        }
    }
    for px in img.pixels_mut() {
        let v = px.0.map(|x| x as f32);
        px.0 = std::array::from_fn(|c| to_u8(v[0] * m[0][c] + v[1] * m[1][c] + v[2] * m[2][c]));
    }
    img
}

/// Blends with a 3x3 smoothing (centre 5, others 1, /13) inside a one-pixel border.
pub fn sharpness(img: RgbImage, factor: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 || factor == 1.0 {
        return img;
    }
    let mut out = img.clone();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let k = if dx == 1 && dy == 1 { 5 } else { 1 };
                        sum += k * img.get_pixel(x + dx - 1, y + dy - 1).0[c] as u32;
                    }
                }
                let degenerate = (sum as f32 / 13.0).round();
                let orig = img.get_pixel(x, y).0[c] as f32;
                out.get_pixel_mut(x, y).0[c] = to_u8(degenerate + factor * (orig - degenerate));
            }
        }
    }
    out
}

/// `cv2.getRotationMatrix2D((W/2, H/2), degree, 1)` then `warpAffine`.
pub fn rotate(img: &RgbImage, degree: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (a, b) = (degree.to_radians().cos(), degree.to_radians().sin());
    let m = [
        [a, b, (1.0 - a) * cx - b * cy],
        [-b, a, b * cx + (1.0 - a) * cy],
    ];
    warp_affine(img, m)
}

/// `cv2.warpAffine(img, M, (W, H), INTER_LINEAR, BORDER_CONSTANT=128)`: `M` maps source to
/// destination, so each destination pixel samples the source at `M⁻¹·(x, y)`.
pub fn warp_affine(img: &RgbImage, m: [[f32; 3]; 2]) -> RgbImage {
    let (w, h) = img.dimensions();
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det.abs() < 1e-12 {
        return img.clone();
    }
    let (ia, ib, id, ie) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
    let ic = -(ia * m[0][2] + ib * m[1][2]);
    let iff = -(id * m[0][2] + ie * m[1][2]);
    let src = img.as_raw();
    let mut out = RgbImage::new(w, h);
    let fetch = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            FILL[c] as f32
        } else {
            src[(y as usize * w as usize + x as usize) * 3 + c] as f32
        }
    };
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let sx = ia * xf + ib * yf + ic;
            let sy = id * xf + ie * yf + iff;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let px = out.get_pixel_mut(x, y);
            for c in 0..3 {
                let v = fetch(x0, y0, c) * (1.0 - fx) * (1.0 - fy)
                    + fetch(x0 + 1, y0, c) * fx * (1.0 - fy)
                    + fetch(x0, y0 + 1, c) * (1.0 - fx) * fy
                    + fetch(x0 + 1, y0 + 1, c) * fx * fy;
                px.0[c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn img(values: &[u8]) -> RgbImage {
        RgbImage::from_fn(values.len() as u32, 1, |x, _| {
            let v = values[x as usize];
            image::Rgb([v, v, v])
        })
    }

    fn row(i: &RgbImage) -> Vec<u8> {
        i.pixels().map(|p| p.0[0]).collect()
    }

    #[test]
    fn tone_ops_match_the_reference_tables() {
        assert_eq!(
            row(&solarize(img(&[0, 100, 178, 179, 255]), 179)),
            [0, 100, 178, 76, 0]
        );
        assert_eq!(
            row(&posterize(img(&[0, 63, 64, 200, 255]), 2)),
            [0, 0, 64, 192, 192]
        );
        // 7/10 * 1.8 + 0.1 = 1.36.
        assert_eq!(row(&brightness(img(&[0, 100, 200]), 1.36)), [0, 136, 255]);
        // low 50, high 150 -> scale 2.55.
        assert_eq!(row(&autocontrast(img(&[50, 100, 150]))), [0, 127, 255]);
        assert_eq!(row(&autocontrast(img(&[9, 9]))), [9, 9]);
        // PIL equalize: hist {10:2, 20:1, 30:1}, step = (2+1)//255 = 0 -> unchanged.
        assert_eq!(row(&equalize(img(&[10, 10, 20, 30]))), [10, 10, 20, 30]);
        let many: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        assert_eq!(
            row(&equalize(img(&many))),
            many,
            "a flat histogram is a fixed point"
        );
        // Contrast around the grey mean (0.114+0.587+0.299 = 1): mean 100.
        assert_eq!(row(&contrast(img(&[50, 150]), 2.0)), [0, 200]);
    }

    #[test]
    fn colour_op_is_identity_at_factor_one() {
        let i = RgbImage::from_pixel(2, 2, image::Rgb([200, 10, 90]));
        let out = color(i.clone(), 1.0);
        for (a, b) in out.pixels().zip(i.pixels()) {
            for c in 0..3 {
                assert!((a.0[c] as i32 - b.0[c] as i32).abs() <= 1);
            }
        }
        // Factor 0 gives grey.
        let g = color(i, 0.0);
        let p = g.get_pixel(0, 0).0;
        assert!(p[0] == p[1] && p[1] == p[2]);
    }

    #[test]
    fn integer_translation_shifts_and_fills_with_128() {
        let i = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 10, y as u8, 1]));
        // TranslateX with offset +2 uses M = [[1,0,-2],[0,1,0]]: dst(x) = src(x + 2).
        let out = warp_affine(&i, [[1.0, 0.0, -2.0], [0.0, 1.0, 0.0]]);
        assert_eq!(out.get_pixel(0, 1).0, [20, 1, 1]);
        assert_eq!(out.get_pixel(2, 2).0, [40, 2, 1]);
        assert_eq!(out.get_pixel(3, 0).0, [128, 128, 128]);
        assert_eq!(rotate(&i, 0.0), i);
    }

    #[test]
    fn rotation_by_180_about_the_centre_reverses_pixels() {
        let i = RgbImage::from_fn(4, 4, |x, y| image::Rgb([(x + 4 * y) as u8, 0, 0]));
        let out = rotate(&i, 180.0);
        // cv2 rotates about (W/2, H/2) = (2, 2) in pixel-index coordinates: x -> 4 - x.
        assert_eq!(out.get_pixel(1, 1).0[0], i.get_pixel(3, 3).0[0]);
        assert_eq!(out.get_pixel(0, 0).0, [128, 128, 128]);
    }

    #[test]
    fn random_augment_applies_at_most_n_ops() {
        let i = RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 60]));
        let ra = RandomAugment::new(2, 7.0, &[AugOp::Identity]);
        assert_eq!(ra.apply(i.clone(), &mut ChaCha8Rng::seed_from_u64(1)), i);
        let ra = RandomAugment::new(2, 7.0, &AugOp::WITH_COLOUR);
        let mut changed = 0;
        for s in 0..50 {
            if ra.apply(i.clone(), &mut ChaCha8Rng::seed_from_u64(s)) != i {
                changed += 1;
            }
        }
        // P(no op applied or only Identity) is about (0.5 + 0.5/14)^2 ~ 0.29.
        assert!((20..=48).contains(&changed), "{changed}");
    }
}
