//! Drawing helpers shared by the figures: a legend strip that wraps and never overlaps data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{Theme, TICK_PT};
use super::{text, DrawResult};

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swatch {
    Line,
    /// A dashed line (curves past the palette's seven colours).
    Dashed,
    Box,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

/// Every entry placed: one centred row when they fit side by side, else a grid of equal
/// columns read row by row, in the largest size from 7 pt down to 6 pt that gives at least
/// two columns. A legend never drops an entry (figures grow to keep their plot, see
/// [`fit_legend`]); a label is cut with "…" only when it alone is wider than the figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendLayout {
    /// `(row, x offset)` of each entry.
    places: Vec<(usize, i32)>,
    /// Each entry's label as drawn.
    labels: Vec<String>,
    rows: usize,
    /// Width of the widest row.
    width: i32,
    pt: f64,
    row_height: i32,
}

impl LegendLayout {
    pub fn height(&self) -> i32 {
        if self.rows == 0 {
            0
        } else {
            self.rows as i32 * self.row_height + self.row_height * 4 / 5
        }
    }
}

struct Metrics {
    em: f64,
    swatch_w: i32,
    gap: i32,
    spacing: i32,
}

fn metrics(theme: &Theme, pt: f64) -> Metrics {
    let em = theme.px(pt);
    Metrics {
        em,
        swatch_w: (em * 1.6) as i32,
        gap: (em * 0.4) as i32,
        spacing: (em * 1.2) as i32,
    }
}

fn label_width(m: &Metrics, s: &str) -> i32 {
    text::text_width(s, m.em).ceil() as i32
}

pub(crate) fn layout_legend(theme: &Theme, entries: &[LegendEntry], width: i32) -> LegendLayout {
    let n = entries.len();
    let mut pick = None;
    for pt in [TICK_PT, TICK_PT - 0.5, TICK_PT - 1.0] {
        let m = metrics(theme, pt);
        let widths: Vec<i32> = entries
            .iter()
            .map(|e| m.swatch_w + m.gap + label_width(&m, &e.label))
            .collect();
        let one_row = widths.iter().sum::<i32>() + m.spacing * (n as i32 - 1).max(0);
        if one_row <= width {
            pick = Some((pt, n.max(1), widths));
            break;
        }
        let col = widths.iter().copied().max().unwrap_or(0);
        let cols = ((width + m.spacing) / (col + m.spacing)).max(1) as usize;
        if cols >= 2 || pt <= TICK_PT - 1.0 {
            pick = Some((pt, cols.min(n.max(1)), vec![col; n]));
            break;
        }
    }
    let (pt, cols, widths) = pick.expect("the last size always picks");
    let m = metrics(theme, pt);
    let max_label = f64::from((width - m.swatch_w - m.gap).max(1));
    let labels: Vec<String> = entries
        .iter()
        .map(|e| text::fit(&e.label, m.em, max_label))
        .collect();
    let mut places = Vec::with_capacity(n);
    let mut row_w = vec![0i32; n.div_ceil(cols)];
    for i in 0..n {
        let (row, col) = (i / cols, i % cols);
        let x = if cols == n {
            // A single row: natural widths.
            widths[..i].iter().map(|w| w + m.spacing).sum()
        } else {
            col as i32 * (widths[0] + m.spacing)
        };
        let w = (m.swatch_w + m.gap + label_width(&m, &labels[i])).min(width);
        row_w[row] = row_w[row].max(x + w);
        places.push((row, x));
    }
    LegendLayout {
        places,
        labels,
        rows: row_w.len(),
        width: row_w.iter().copied().max().unwrap_or(0),
        pt,
        row_height: theme.line(pt),
    }
}

/// Height in pixels of the legend of `labels` across a figure of `size`.
pub(crate) fn legend_height(size: super::FigureSize, labels: &[String]) -> i32 {
    let theme = Theme::new(size);
    let pad = theme.px(4.0) as i32;
    let entries: Vec<LegendEntry> = labels
        .iter()
        .map(|l| LegendEntry {
            label: l.clone(),
            color: RGBColor(0, 0, 0),
            swatch: Swatch::Box,
        })
        .collect();
    layout_legend(&theme, &entries, size.pixels().0 as i32 - 2 * pad).height()
}

/// `size`, taller where a legend of `labels` would leave the plot less than 70% of it.
pub(crate) fn fit_legend(size: super::FigureSize, labels: &[String]) -> super::FigureSize {
    let legend = f64::from(legend_height(size, labels));
    let (_, h) = size.pixels();
    let plot = f64::from(h) * 0.7;
    if legend + plot <= f64::from(h) {
        size
    } else {
        size.with_height((legend + plot) / f64::from(size.dpi))
    }
}

/// Draws a laid-out legend, centred horizontally in `area`.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    theme: &Theme,
    entries: &[LegendEntry],
    layout: &LegendLayout,
) -> DrawResult {
    let m = metrics(theme, layout.pt);
    let (w, _) = area.dim_in_pixel();
    let font = theme
        .font(layout.pt)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let x0 = ((w as i32 - layout.width) / 2).max(0);
    for (i, &(row, x)) in layout.places.iter().enumerate() {
        let x = x0 + x;
        let y = layout.row_height / 2 + layout.row_height / 5 + row as i32 * layout.row_height;
        let e = &entries[i];
        let stroke = e.color.stroke_width(theme.pxi(1.2));
        match e.swatch {
            Swatch::Line => {
                area.draw(&PathElement::new(vec![(x, y), (x + m.swatch_w, y)], stroke))?
            }
            Swatch::Dashed => {
                let dash = (m.swatch_w / 5).max(2);
                for k in (0..m.swatch_w).step_by((2 * dash) as usize) {
                    let end = (k + dash * 3 / 2).min(m.swatch_w);
                    area.draw(&PathElement::new(vec![(x + k, y), (x + end, y)], stroke))?;
                }
            }
            Swatch::Box => {
                let s = (m.em * 0.45) as i32;
                let cx = x + m.swatch_w / 2;
                area.draw(&Rectangle::new(
                    [(cx - s, y - s), (cx + s, y + s)],
                    e.color.filled(),
                ))?
            }
        }
        area.draw(&Text::new(
            layout.labels[i].clone(),
            (x + m.swatch_w + m.gap, y),
            font.clone(),
        ))?;
    }
    Ok(())
}

/// One line of text, safe to draw (no line breaks).
pub(crate) fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A linear f64 axis whose ticks sit exactly at the given points (group or category centres),
/// labelled by the caller's formatter.
#[derive(Debug, Clone)]
pub(crate) struct Keyed {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Keyed {
    pub fn new(range: std::ops::Range<f64>, keys: Vec<f64>) -> Self {
        Self {
            lo: range.start,
            hi: range.end,
            keys,
        }
    }
}

impl plotters::coord::ranged1d::Ranged for Keyed {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}
