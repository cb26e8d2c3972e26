//! Sizes, fonts, colours and strokes shared by all figures, in paper units (inches, points).

use std::sync::OnceLock;

use plotters::style::{FontStyle, IntoFont, RGBColor, TextStyle};

use crate::error::{ReportError, Result};

/// Font family as written into SVG `font-family`: viewers use DejaVu Sans when installed and
/// their sans-serif otherwise; PNGs always use the embedded DejaVu Sans.
pub(crate) const FAMILY: &str = "DejaVu Sans, sans-serif";
pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters once per process.
pub(crate) fn ensure_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Draw {
            figure: "font".into(),
            message: "the embedded DejaVu Sans font could not be parsed".into(),
        })
    }
}

/// Physical size of a figure; pixels follow from the resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FigureSize {
    pub width_in: f64,
    pub height_in: f64,
    pub dpi: u32,
}

impl FigureSize {
    /// One column of a two-column paper (ACL/NeurIPS style), 300 dpi.
    pub const COLUMN: FigureSize = FigureSize {
        width_in: 3.5,
        height_in: 2.6,
        dpi: 300,
    };
    /// Both columns (`figure*`), 300 dpi.
    pub const WIDE: FigureSize = FigureSize {
        width_in: 7.0,
        height_in: 3.0,
        dpi: 300,
    };

    pub fn with_height(self, height_in: f64) -> Self {
        Self { height_in, ..self }
    }

    pub fn pixels(&self) -> (u32, u32) {
        (
            (self.width_in * self.dpi as f64).round().max(1.0) as u32,
            (self.height_in * self.dpi as f64).round().max(1.0) as u32,
        )
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let (w, h) = self.pixels();
        let ok = self.width_in.is_finite()
            && self.height_in.is_finite()
            && (150..=12_000).contains(&w)
            && (150..=12_000).contains(&h);
        if ok {
            Ok(())
        } else {
            Err(ReportError::Option(format!(
                "figure size {}×{} in at {} dpi gives {w}×{h} px; expected 150 to 12000 px per side",
                self.width_in, self.height_in, self.dpi
            )))
        }
    }
}

/// Font sizes (points) for a figure printed at its physical size: captions in papers are ~9 pt,
/// so axis labels at 8 pt and ticks at 7 pt stay readable.
pub(crate) const LABEL_PT: f64 = 8.0;
pub(crate) const TICK_PT: f64 = 7.0;

/// Converts points to pixels for one figure size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Theme {
    pub dpi: f64,
}

impl Theme {
    pub fn new(size: FigureSize) -> Self {
        Self {
            dpi: size.dpi as f64,
        }
    }

    /// Points → pixels.
    pub fn px(&self, pt: f64) -> f64 {
        pt * self.dpi / 72.0
    }

    /// Points → pixels, rounded, at least 1.
    pub fn pxi(&self, pt: f64) -> u32 {
        self.px(pt).round().max(1.0) as u32
    }

    /// A text style whose em is `pt` points (plotters' size is 1.24 em).
    pub fn font(&self, pt: f64) -> TextStyle<'static> {
        (FAMILY, self.px(pt) * 1.24).into_font().into()
    }

    /// Height in pixels of a text line at `pt`.
    pub fn line(&self, pt: f64) -> i32 {
        (self.px(pt) * 1.25).round() as i32
    }
}

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies and in greyscale print
/// order; yellow (hard to see on white) is left out.
pub(crate) const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
];

pub(crate) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Row colours of the paper's Fig. 6.
pub(crate) const TEXT_BLUE: RGBColor = RGBColor(68, 114, 196);
pub(crate) const VISUAL_PURPLE: RGBColor = RGBColor(128, 100, 162);
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);
pub(crate) const AXIS: RGBColor = RGBColor(40, 40, 40);

/// Viridis sampled at 9 stops, interpolated linearly.
pub(crate) fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let lerp = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

/// Black or white, whichever reads better on `c`.
pub(crate) fn text_on(c: RGBColor) -> RGBColor {
    let lum = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if lum > 140.0 {
        RGBColor(0, 0, 0)
    } else {
        RGBColor(255, 255, 255)
    }
}

/// Tick-label decimals so that ticks about `span / 5` apart print distinct values.
pub(crate) fn tick_decimals(span: f64) -> usize {
    if !(span.is_finite() && span > 0.0) {
        return 2;
    }
    let step = span / 5.0;
    (-(step.log10().floor())).clamp(0.0, 8.0) as usize
}

/// Steps as `500`, `2.5k`, `1.2M`.
pub(crate) fn fmt_step(v: f64, max: f64) -> String {
    let (div, suffix) = if max >= 1e6 {
        (1e6, "M")
    } else if max >= 1e4 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / div;
    let s = if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        let s = format!("{x:.1}");
        if s == "-0.0" {
            "0".to_string()
        } else {
            s
        }
    };
    format!("{s}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_figure_is_3_5_in_at_300_dpi() {
        assert_eq!(FigureSize::COLUMN.pixels(), (1050, 780));
        assert!(FigureSize::COLUMN.validate().is_ok());
        let e = FigureSize::COLUMN
            .with_height(100.0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("expected 150 to 12000 px"), "{e}");
    }

    #[test]
    fn step_and_tick_formatting() {
        assert_eq!(fmt_step(2500.0, 10_000.0), "2.5k");
        assert_eq!(fmt_step(500.0, 900.0), "500");
        assert_eq!(fmt_step(2e6, 3e6), "2M");
        assert_eq!(tick_decimals(0.1), 2);
        assert_eq!(tick_decimals(50.0), 0);
    }

    #[test]
    fn viridis_ends_and_contrast() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(text_on(viridis(0.0)), RGBColor(255, 255, 255));
        assert_eq!(text_on(viridis(1.0)), RGBColor(0, 0, 0));
    }
}
