//! Figures drawn with plotters: learning curves, ablation bars and manager weights, each
//! rendered to SVG (text as `<text>`) or PNG (embedded font, 300 dpi metadata).

mod bars;
mod curves;
mod draw;
mod manager;
mod raster;
mod style;

pub use bars::{
    ablation_bars, ablation_bars_from_table, bar_data, bar_data_from_table, BarData, BarOptions,
    BarValue,
};
pub use curves::{curve_series, learning_curves, CurveOptions, CurvePoint, CurveSeries};
pub use manager::{
    manager_heatmap, manager_panels, manager_weights, ManagerOptions, ManagerWeights, WeightStat,
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

/// Axes whose value differs among `cells`, in axis order.
pub(crate) fn varying_axes<'a>(input: &'a ReportInput, cells: &[&Cell]) -> Vec<&'a str> {
    input
        .axes
        .iter()
        .filter(|a| {
            let first = cells.first().map(|c| &c.axes[*a]);
            cells.iter().any(|c| Some(&c.axes[*a]) != first)
        })
        .map(String::as_str)
        .collect()
}

/// Short names for cells: `axis=value` for the axes that vary among them, else the cell key.
pub(crate) fn cell_labels(input: &ReportInput, cells: &[&Cell]) -> Vec<String> {
    let axes = varying_axes(input, cells);
    cells
        .iter()
        .map(|c| {
            if axes.is_empty() {
                c.key.clone()
            } else {
                axes.iter()
                    .map(|a| format!("{a}={}", c.axes[*a]))
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
    ManagerHeatmap(manager::ManagerWeights),
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

    /// Provenance lines plus notes, as embedded in SVG `<desc>` and PNG `tEXt`.
    pub fn description(&self) -> String {
        let mut lines = self.provenance.lines("figure");
        lines.extend(self.notes.iter().map(|n| n.replace(['\r', '\n'], " ")));
        lines.join("\n")
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
