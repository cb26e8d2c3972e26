//! Text metrics of the embedded font, the same layout the PNG backend draws with: what layout
//! decisions (legend rows, label fitting) and the SVG canvas check measure text by.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

use super::style::DEJAVU_SANS;

pub(crate) fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).ok())
        .as_ref()
}

/// The glyph scale for an em of `em` pixels (the SVG `font-size`).
pub(crate) fn scale(font: &FontRef<'_>, em: f32) -> PxScale {
    let units = font.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * font.height_unscaled() / units)
}

/// Pen positions of each glyph along the baseline (with kerning), and the advance width.
pub(crate) fn layout(
    font: &FontRef<'_>,
    text: &str,
    em: f32,
) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let scaled = font.as_scaled(scale(font, em));
    let mut glyphs = Vec::with_capacity(text.len());
    let mut x = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        glyphs.push((id, x));
        x += scaled.h_advance(id);
        prev = Some(id);
    }
    (glyphs, x)
}

/// Height of an `x` at `em` (the SVG `ex`, which `dy="0.5ex"` centres by).
pub(crate) fn ex(font: &FontRef<'_>, em: f32) -> f32 {
    font.outline_glyph(font.glyph_id('x').with_scale(scale(font, em)))
        .map_or(0.55 * em, |g| g.px_bounds().height())
}

/// Advance width in pixels of `text` at an em of `em` pixels.
pub(crate) fn text_width(text: &str, em: f64) -> f64 {
    match font() {
        Some(f) => f64::from(layout(f, text, em as f32).1),
        None => text.chars().count() as f64 * em * 0.6,
    }
}

/// Ink of `text` relative to its pen origin on the baseline: `(left, top, right, bottom)` in
/// pixels, y down (top is negative). The advance box when the text has no ink.
pub(crate) fn ink_box(text: &str, em: f64) -> (f64, f64, f64, f64) {
    let Some(f) = font() else {
        let w = text_width(text, em);
        return (0.0, -0.76 * em, w, 0.24 * em);
    };
    let em32 = em as f32;
    let (glyphs, width) = layout(f, text, em32);
    let s = scale(f, em32);
    let mut b: Option<(f32, f32, f32, f32)> = None;
    for (id, x) in glyphs {
        if let Some(o) = f.outline_glyph(id.with_scale_and_position(s, point(x, 0.0))) {
            let r = o.px_bounds();
            b = Some(match b {
                None => (r.min.x, r.min.y, r.max.x, r.max.y),
                Some((l, t, rr, bb)) => (
                    l.min(r.min.x),
                    t.min(r.min.y),
                    rr.max(r.max.x),
                    bb.max(r.max.y),
                ),
            });
        }
    }
    match b {
        Some((l, t, r, bt)) => (f64::from(l), f64::from(t), f64::from(r), f64::from(bt)),
        None => (0.0, 0.0, f64::from(width), 0.0),
    }
}

/// The SVG baseline shift of a vertical anchor, in pixels (`0.76em`, `0.5ex`, `-0.5ex`).
pub(crate) fn baseline_shift(dy: &str, em: f64) -> f64 {
    let ex = || font().map_or(0.55 * em, |f| f64::from(ex(f, em as f32)));
    match dy.trim() {
        "0.76em" => 0.76 * em,
        "0.5ex" => 0.5 * ex(),
        "-0.5ex" => -0.5 * ex(),
        other => other
            .strip_suffix("em")
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |v| v * em),
    }
}

/// The widest of `texts` at `em`.
pub(crate) fn widest<'a>(texts: impl IntoIterator<Item = &'a str>, em: f64) -> f64 {
    texts
        .into_iter()
        .map(|t| text_width(t, em))
        .fold(0.0, f64::max)
}

/// `text` cut with "…" so that it is at most `max` pixels wide at `em`.
pub(crate) fn fit(text: &str, em: f64, max: f64) -> String {
    if text_width(text, em) <= max {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut n = chars.len();
    while n > 0 {
        n -= 1;
        let cut: String = chars[..n].iter().collect::<String>().trim_end().to_string() + "…";
        if text_width(&cut, em) <= max {
            return cut;
        }
    }
    "…".to_string()
}
