//! Drawing helpers shared by the figures: a legend strip that wraps and never overlaps data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{Theme, TICK_PT};
use super::DrawResult;

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swatch {
    Line,
    Box,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

/// Most legend rows; further entries are summarised as "+N more".
const MAX_ROWS: usize = 4;

/// Entries placed in rows: (entry index or `None` for the "+N more" note, x offset).
pub(crate) struct LegendLayout {
    rows: Vec<Vec<(Option<usize>, i32)>>,
    hidden: usize,
    row_height: i32,
}

impl LegendLayout {
    pub fn height(&self) -> i32 {
        if self.rows.is_empty() {
            0
        } else {
            self.rows.len() as i32 * self.row_height + self.row_height / 2
        }
    }
}

fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, theme: &Theme, s: &str) -> i32 {
    area.estimate_text_size(s, &theme.font(TICK_PT))
        .map(|(w, _)| w as i32)
        .unwrap_or((s.chars().count() as f64 * theme.px(TICK_PT) * 0.6) as i32)
}

/// Greedy row wrapping within `width` pixels.
pub(crate) fn layout_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    theme: &Theme,
    entries: &[LegendEntry],
    width: i32,
) -> LegendLayout {
    let em = theme.px(TICK_PT);
    let swatch_w = (em * 1.6) as i32;
    let gap = (em * 0.4) as i32;
    let spacing = (em * 1.2) as i32;
    let mut rows: Vec<Vec<(Option<usize>, i32)>> = Vec::new();
    let mut x = 0;
    let mut placed = 0;
    for (i, e) in entries.iter().enumerate() {
        let w = swatch_w + gap + text_width(area, theme, &e.label);
        if rows.is_empty() || (x > 0 && x + w > width) {
            if rows.len() == MAX_ROWS {
                break;
            }
            rows.push(Vec::new());
            x = 0;
        }
        rows.last_mut()
            .expect("a row was pushed")
            .push((Some(i), x));
        x += w + spacing;
        placed += 1;
    }
    let hidden = entries.len() - placed;
    if hidden > 0 {
        // Make room for the note at the end of the last row.
        let entry_w = |i: usize| swatch_w + gap + text_width(area, theme, &entries[i].label);
        let note_w = text_width(area, theme, &format!("+{} more", hidden + MAX_ROWS * 8));
        if let Some(last) = rows.last_mut() {
            while let Some(&(Some(i), x)) = last.last() {
                if x + entry_w(i) + spacing + note_w <= width || last.len() == 1 {
                    break;
                }
                last.pop();
            }
            let x = last
                .last()
                .map_or(0, |&(i, x)| x + i.map_or(0, entry_w) + spacing);
            last.push((None, x));
        }
    }
    let hidden = entries.len() - rows.iter().flatten().filter(|e| e.0.is_some()).count();
    LegendLayout {
        rows,
        hidden,
        row_height: theme.line(TICK_PT),
    }
}

/// Draws a laid-out legend, centred horizontally in `area`.
pub(crate) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    theme: &Theme,
    entries: &[LegendEntry],
    layout: &LegendLayout,
) -> DrawResult {
    let em = theme.px(TICK_PT);
    let swatch_w = (em * 1.6) as i32;
    let gap = (em * 0.4) as i32;
    let (w, _) = area.dim_in_pixel();
    let font = theme.font(TICK_PT).pos(Pos::new(HPos::Left, VPos::Center));
    for (r, row) in layout.rows.iter().enumerate() {
        let row_w = row.last().map_or(0, |&(i, x)| {
            let label = match i {
                Some(i) => entries[i].label.clone(),
                None => format!("+{} more", layout.hidden),
            };
            x + text_width(area, theme, &label) + if i.is_some() { swatch_w + gap } else { 0 }
        });
        let x0 = ((w as i32 - row_w) / 2).max(0);
        let y = layout.row_height / 3 + r as i32 * layout.row_height + layout.row_height / 2;
        for &(i, x) in row {
            let x = x0 + x;
            match i {
                Some(i) => {
                    let e = &entries[i];
                    match e.swatch {
                        Swatch::Line => area.draw(&PathElement::new(
                            vec![(x, y), (x + swatch_w, y)],
                            e.color.stroke_width(theme.pxi(1.2)),
                        ))?,
                        Swatch::Box => {
                            let s = (em * 0.45) as i32;
                            let cx = x + swatch_w / 2;
                            area.draw(&Rectangle::new(
                                [(cx - s, y - s), (cx + s, y + s)],
                                e.color.filled(),
                            ))?
                        }
                    }
                    area.draw(&Text::new(
                        e.label.clone(),
                        (x + swatch_w + gap, y),
                        font.clone(),
                    ))?;
                }
                None => {
                    area.draw(&Text::new(
                        format!("+{} more", layout.hidden),
                        (x, y),
                        font.clone(),
                    ))?;
                }
            }
        }
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
