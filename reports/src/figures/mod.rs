//! Figures drawn with plotters: learning curves, ablation bars and manager weights, each
//! rendered to SVG (text as `<text>`) or PNG (embedded font, 300 dpi metadata).

mod bars;
pub mod check;
mod curves;
mod draw;
mod manager;
mod raster;
mod style;
mod text;

pub use bars::{
    ablation_bars, ablation_bars_from_table, bar_data, bar_data_from_table, BarData, BarOptions,
    BarValue,
};
pub use check::{
    check_svg, verify_svg, BBox, DrawnShape, DrawnText, ShapeKind, SvgContent, SvgError,
};
pub use curves::{curve_series, learning_curves, CurveOptions, CurvePoint, CurveSeries};
pub use manager::{
    manager_cells, manager_heatmap, manager_panels, manager_weights, ManagerOptions,
    ManagerWeights, WeightStat,
};
pub use style::FigureSize;

use plotters::prelude::*;

use crate::error::{ReportError, Result};
use crate::input::{Cell, ReportInput};
use crate::provenance::Provenance;

/// The cells named in `keys` (in that order), or all cells.
pub(crate) fn select_cells<'a>(
    input: &'a ReportInput,
    keys: Option<&[String]>,
) -> Result<Vec<&'a Cell>> {
    match keys {
        None => Ok(input.cells.iter().collect()),
        Some(keys) => keys
            .iter()
            .map(|k| {
                input.cells.iter().find(|c| &c.key == k).ok_or_else(|| {
                    ReportError::Option(format!("cell `{k}` is not one of the report's cells"))
                })
            })
            .collect(),
    }
}

/// Is `axis` a zip group member other than the first (shown through the first)?
fn hidden_by_zip(input: &ReportInput, axis: &str) -> bool {
    input
        .zips
        .iter()
        .any(|z| z.iter().skip(1).any(|k| k == axis))
}

/// Axes a figure names: every axis but the later members of a zip group, in axis order.
pub(crate) fn shown_axes(input: &ReportInput) -> Vec<&str> {
    input
        .axes
        .iter()
        .map(String::as_str)
        .filter(|a| !hidden_by_zip(input, a))
        .collect()
}

/// Shown axes whose value differs among `cells`, in axis order.
pub(crate) fn varying_axes<'a>(input: &'a ReportInput, cells: &[&Cell]) -> Vec<&'a str> {
    shown_axes(input)
        .into_iter()
        .filter(|a| {
            let first = cells.first().map(|c| &c.axes[*a]);
            cells.iter().any(|c| Some(&c.axes[*a]) != first)
        })
        .collect()
}

/// The readable name of an axis (of its zip group, for a group's first axis).
pub(crate) fn axis_name(input: &ReportInput, axis: &str) -> String {
    match input
        .zips
        .iter()
        .find(|z| z.first().is_some_and(|f| f == axis))
    {
        Some(group) => input.labels.zip_name(group),
        None => input.labels.axis(axis),
    }
}

/// A cell's value of `axis` as a legend shows it ("SAUE", "Managed layers 2", "VLP").
pub(crate) fn value_name(input: &ReportInput, cell: &Cell, axis: &str) -> String {
    input
        .labels
        .value_as(axis, &axis_name(input, axis), &cell.axes[axis])
}

/// The readable name of a metric: its spec's label, else the label map's.
pub(crate) fn metric_name(input: &ReportInput, key: &str) -> String {
    input
        .metrics
        .iter()
        .find(|m| m.key == key)
        .and_then(|m| m.label.clone())
        .unwrap_or_else(|| input.labels.metric(key))
}

/// Readable names for cells: the values of the axes that vary among them ("SAUE, Managed
/// layers 2"); for a single cell, its shown values.
pub(crate) fn cell_labels(input: &ReportInput, cells: &[&Cell]) -> Vec<String> {
    let varying = varying_axes(input, cells);
    let axes = if varying.is_empty() {
        shown_axes(input)
    } else {
        varying
    };
    cells
        .iter()
        .map(|c| {
            if axes.is_empty() {
                "all runs".to_string()
            } else {
                axes.iter()
                    .map(|a| value_name(input, c, a))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        })
        .collect()
}

/// A figure ready to render: computed data plus size and provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Short name, also the `<title>` of the SVG.
    pub title: String,
    pub size: FigureSize,
    pub provenance: Provenance,
    /// Extra provenance lines (e.g. the steps a snapshot was taken at).
    pub notes: Vec<String>,
    pub(crate) kind: FigureKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FigureKind {
    Curves(curves::CurvesPlot),
    Bars(bars::BarsPlot),
    ManagerPanels(manager::ManagerWeights),
    ManagerHeatmap(Vec<manager::ManagerWeights>),
}

/// Drawing errors from any backend, flattened to text.
#[derive(Debug)]
pub(crate) struct DrawError(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

pub(crate) type DrawResult<T = ()> = std::result::Result<T, DrawError>;

impl Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, plotters::coord::Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        match &self.kind {
            FigureKind::Curves(p) => curves::draw(p, self.size, root),
            FigureKind::Bars(p) => bars::draw(p, self.size, root),
            FigureKind::ManagerPanels(p) => manager::draw_panels(p, self.size, root),
            FigureKind::ManagerHeatmap(p) => manager::draw_heatmap(p, self.size, root),
        }
    }

    fn draw_error(&self, e: DrawError) -> ReportError {
        ReportError::Draw {
            figure: self.title.clone(),
            message: e.0,
        }
    }

    /// SVG text with a `<title>` and a `<desc>` holding the provenance.
    pub fn to_svg(&self) -> Result<String> {
        style::ensure_fonts()?;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size.pixels()).into_drawing_area();
            self.draw(&root).map_err(|e| self.draw_error(e))?;
            root.present()
                .map_err(|e| self.draw_error(DrawError::from(e)))?;
        }
        // Physical size, so that 8 pt text prints at 8 pt; the viewBox keeps pixel coordinates.
        let (w, h) = self.size.pixels();
        let px_size = format!("width=\"{w}\" height=\"{h}\"");
        let in_size = format!(
            "width=\"{}in\" height=\"{}in\"",
            self.size.width_in, self.size.height_in
        );
        svg = svg.replacen(&px_size, &in_size, 1);
        let desc = self.description();
        let meta = format!(
            "\n<title>{}</title>\n<desc>{}</desc>",
            xml_escape(&self.title),
            xml_escape(&desc)
        );
        // Right after the opening <svg ...> tag.
        let at = svg
            .find("<svg")
            .and_then(|s| svg[s..].find('>').map(|e| s + e + 1));
        match at {
            Some(at) => svg.insert_str(at, &meta),
            None => {
                return Err(ReportError::Draw {
                    figure: self.title.clone(),
                    message: "plotters produced no <svg> element".into(),
                })
            }
        }
        Ok(svg)
    }

    /// PNG bytes (RGB, 8 bit) with the resolution (pHYs) and the provenance (tEXt) embedded.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        style::ensure_fonts()?;
        let (w, h) = self.size.pixels();
        let mut pixels = vec![0u8; w as usize * h as usize * 3];
        {
            let root = raster::PngBackend::new(&mut pixels, (w, h)).into_drawing_area();
            self.draw(&root).map_err(|e| self.draw_error(e))?;
            root.present()
                .map_err(|e| self.draw_error(DrawError::from(e)))?;
        }
        encode_png(
            &pixels,
            (w, h),
            self.size.dpi,
            &self.title,
            &self.description(),
        )
    }

    /// Provenance lines, notes and what the figure draws ([`check::verify_svg`] checks the
    /// drawing against the latter), as embedded in SVG `<desc>` and PNG `tEXt`.
    pub fn description(&self) -> String {
        let mut lines = self.provenance.lines("figure");
        lines.extend(self.notes.iter().map(|n| n.replace(['\r', '\n'], " ")));
        lines.extend(self.contents());
        lines.join("\n")
    }

    /// What the figure draws, one line each: `series colour: #RRGGBB` per curve, `bar
    /// colour: #RRGGBB` per bar, `legend entry: <label>` and `panel title: <title>`.
    pub fn contents(&self) -> Vec<String> {
        let hex = |c: RGBColor| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
        let mut out = Vec::new();
        match &self.kind {
            FigureKind::Curves(p) => {
                out.extend(
                    (0..p.series.len())
                        .map(|i| format!("series colour: {}", hex(style::palette(i)))),
                );
                if p.series.len() > 1 {
                    out.extend(
                        p.series
                            .iter()
                            .map(|s| format!("legend entry: {}", draw::one_line(&s.label))),
                    );
                }
            }
            FigureKind::Bars(p) => {
                out.extend(
                    p.data
                        .bars
                        .iter()
                        .map(|b| format!("bar colour: {}", hex(style::palette(b.color)))),
                );
                out.extend(
                    p.data
                        .colors
                        .iter()
                        .map(|c| format!("legend entry: {}", draw::one_line(c))),
                );
            }
            FigureKind::ManagerPanels(w) => {
                for (mi, m) in w.modalities.iter().enumerate() {
                    let n = w.weights[mi].iter().flatten().flatten().count();
                    let c = hex(manager::modality_color(*m));
                    out.extend((0..n).map(|_| format!("bar colour: {c}")));
                }
                out.push(format!("panel title: {}", draw::one_line(&w.cell_label)));
            }
            FigureKind::ManagerHeatmap(ws) => {
                for w in ws {
                    let t = if ws.len() > 1 {
                        w.cell_label.clone()
                    } else {
                        format!("Manager aggregation weights: {}", w.cell_label)
                    };
                    out.push(format!("panel title: {}", draw::one_line(&t)));
                }
            }
        }
        out
    }
}

fn encode_png(
    pixels: &[u8],
    (w, h): (u32, u32),
    dpi: u32,
    title: &str,
    description: &str,
) -> Result<Vec<u8>> {
    let png_err = |e: png::EncodingError| ReportError::Png(e.to_string());
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let ppm = (dpi as f64 / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
        // tEXt is Latin-1: keep provenance ASCII.
        let ascii = |s: String| {
            s.chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect::<String>()
        };
        enc.add_text_chunk("Title".into(), ascii(title.to_string()))
            .map_err(png_err)?;
        enc.add_text_chunk("Description".into(), ascii(description.to_string()))
            .map_err(png_err)?;
        let mut writer = enc.write_header().map_err(png_err)?;
        writer.write_image_data(pixels).map_err(png_err)?;
        writer.finish().map_err(png_err)?;
    }
    Ok(out)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
