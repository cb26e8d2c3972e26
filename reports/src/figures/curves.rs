//! Learning curves: per cell, the mean over seeds with a ±1 std band.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{draw_legend, fit_legend, layout_legend, one_line, LegendEntry, Swatch};
use super::style::{
    fmt_step, palette, tick_decimals, FigureSize, Theme, AXIS, GRID, LABEL_PT, PALETTE, TICK_PT,
};
use super::{cell_labels, metric_name, select_cells, DrawResult, Figure, FigureKind};
use crate::analysis::{select_runs, validate};
use crate::error::{ReportError, Result};
use crate::input::ReportInput;
use crate::parallel::par_map;
use crate::provenance::Provenance;
use crate::summarize::sorted_finite;

/// What to plot.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions {
    /// Any logged series key (not only the table metrics).
    pub metric: String,
    /// Cells to plot, in this order; all cells when `None`.
    pub cells: Option<Vec<String>>,
    /// Curves are averaged over equal runs of consecutive steps down to at most this many
    /// points (0 keeps every step); a 3.5 in figure cannot show more than ~1000 anyway.
    pub max_points: usize,
    pub size: FigureSize,
}

impl CurveOptions {
    pub fn new(metric: impl Into<String>) -> Self {
        Self {
            metric: metric.into(),
            cells: None,
            max_points: 400,
            size: FigureSize::COLUMN,
        }
    }
}

/// One aligned point of a cell's curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurvePoint {
    pub step: f64,
    pub mean: f64,
    /// Sample std over the seeds that cover this step (0 with one seed).
    pub std: f64,
    /// Seeds that cover this step.
    pub n: usize,
}

/// A cell's curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSeries {
    pub cell: String,
    /// Legend text: the axes that vary among the plotted cells.
    pub label: String,
    /// Finished runs that contributed.
    pub run_ids: Vec<String>,
    pub points: Vec<CurvePoint>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CurvesPlot {
    metric_label: String,
    pub(crate) series: Vec<CurveSeries>,
}

/// Aligned mean ± std curves of `opts.metric`, one per cell with data. Seeds are aligned on
/// the union of their steps, each seed linearly interpolated inside its own step range (never
/// extrapolated), so seeds logged at different steps still average correctly.
pub fn curve_series(input: &ReportInput, opts: &CurveOptions) -> Result<Vec<CurveSeries>> {
    validate(input)?;
    let cells = select_cells(input, opts.cells.as_deref())?;
    let series = par_map(&cells, |cell| {
        let (used, _) = select_runs(cell);
        let mut run_ids = Vec::new();
        let mut series = Vec::new();
        for run in used {
            if let Some(points) = run.series.get(&opts.metric) {
                let points = sorted_finite(points);
                if !points.is_empty() {
                    run_ids.push(run.run_id.clone());
                    series.push(points);
                }
            }
        }
        if series.is_empty() {
            return None;
        }
        let refs: Vec<&[(u64, f64)]> = series.iter().map(|s| s.as_ref()).collect();
        Some(CurveSeries {
            cell: cell.key.clone(),
            label: String::new(),
            run_ids,
            points: align_downsampled(&refs, opts.max_points),
        })
    });
    // Named by the axes that vary among the curves drawn (not among cells without data).
    let mut series: Vec<CurveSeries> = series.into_iter().flatten().collect();
    let drawn: Vec<&crate::input::Cell> = series
        .iter()
        .filter_map(|s| input.cells.iter().find(|c| c.key == s.cell))
        .collect();
    let labels = cell_labels(input, &drawn);
    for (s, label) in series.iter_mut().zip(labels) {
        s.label = label;
    }
    Ok(series)
}

/// The learning-curve figure of `opts.metric`.
pub fn learning_curves(input: &ReportInput, opts: &CurveOptions) -> Result<Figure> {
    opts.size.validate()?;
    let series = curve_series(input, opts)?;
    if series.is_empty() {
        return Err(ReportError::NoData(format!(
            "no finished run logged `{}`",
            opts.metric
        )));
    }
    let metric_label = metric_name(input, &opts.metric);
    // The legend takes the rows it needs; the figure grows so that the plot keeps its size.
    let size = if series.len() > 1 {
        let labels: Vec<String> = series.iter().map(|s| one_line(&s.label)).collect();
        fit_legend(opts.size, &labels)
    } else {
        opts.size
    };
    let run_ids = series
        .iter()
        .flat_map(|s| s.run_ids.iter().cloned())
        .collect();
    Ok(Figure {
        title: format!("Learning curves: {metric_label}"),
        size,
        provenance: Provenance::new(input, run_ids),
        notes: Vec::new(),
        kind: FigureKind::Curves(CurvesPlot {
            metric_label,
            series,
        }),
    })
}

fn stats(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

fn align(runs: &[&[(u64, f64)]]) -> Vec<CurvePoint> {
    let first = runs[0];
    let same_steps = runs
        .iter()
        .all(|r| r.len() == first.len() && r.iter().zip(first).all(|(a, b)| a.0 == b.0));
    let mut values = Vec::with_capacity(runs.len());
    if same_steps {
        return (0..first.len())
            .map(|i| {
                values.clear();
                values.extend(runs.iter().map(|r| r[i].1));
                let (mean, std) = stats(&values);
                CurvePoint {
                    step: first[i].0 as f64,
                    mean,
                    std,
                    n: values.len(),
                }
            })
            .collect();
    }
    let mut steps: Vec<u64> = runs.iter().flat_map(|r| r.iter().map(|p| p.0)).collect();
    steps.sort_unstable();
    steps.dedup();
    let mut cursors = vec![0usize; runs.len()];
    let mut out = Vec::with_capacity(steps.len());
    for s in steps {
        values.clear();
        for (r, c) in runs.iter().zip(cursors.iter_mut()) {
            let (lo, hi) = (r[0].0, r[r.len() - 1].0);
            if s < lo || s > hi {
                continue;
            }
            while *c + 1 < r.len() && r[*c + 1].0 <= s {
                *c += 1;
            }
            let (s0, v0) = r[*c];
            let v = if s0 == s || *c + 1 == r.len() {
                v0
            } else {
                let (s1, v1) = r[*c + 1];
                v0 + (v1 - v0) * (s - s0) as f64 / (s1 - s0) as f64
            };
            values.push(v);
        }
        let (mean, std) = stats(&values);
        out.push(CurvePoint {
            step: s as f64,
            mean,
            std,
            n: values.len(),
        });
    }
    out
}

/// `downsample(align(runs), max_points)`, without materialising every step when all runs share
/// their steps (the usual case).
fn align_downsampled(runs: &[&[(u64, f64)]], max_points: usize) -> Vec<CurvePoint> {
    let first = runs[0];
    let same_steps = runs
        .iter()
        .all(|r| r.len() == first.len() && r.iter().zip(first).all(|(a, b)| a.0 == b.0));
    if !same_steps || max_points == 0 || first.len() <= max_points {
        return downsample(align(runs), max_points);
    }
    let chunk = first.len().div_ceil(max_points);
    let mut values = Vec::with_capacity(runs.len());
    (0..first.len())
        .step_by(chunk)
        .map(|start| {
            let end = (start + chunk).min(first.len());
            let (mut step, mut mean, mut std) = (0.0, 0.0, 0.0);
            for i in start..end {
                values.clear();
                values.extend(runs.iter().map(|r| r[i].1));
                let (m, s) = stats(&values);
                step += first[i].0 as f64;
                mean += m;
                std += s;
            }
            let k = (end - start) as f64;
            CurvePoint {
                step: step / k,
                mean: mean / k,
                std: std / k,
                n: runs.len(),
            }
        })
        .collect()
}

fn downsample(points: Vec<CurvePoint>, max_points: usize) -> Vec<CurvePoint> {
    if max_points == 0 || points.len() <= max_points {
        return points;
    }
    let chunk = points.len().div_ceil(max_points);
    points
        .chunks(chunk)
        .map(|c| {
            let k = c.len() as f64;
            CurvePoint {
                step: c.iter().map(|p| p.step).sum::<f64>() / k,
                mean: c.iter().map(|p| p.mean).sum::<f64>() / k,
                std: c.iter().map(|p| p.std).sum::<f64>() / k,
                n: c.iter().map(|p| p.n).min().unwrap_or(0),
            }
        })
        .collect()
}

/// Curves past the palette's colours repeat them dashed.
pub(crate) fn dashed(i: usize) -> bool {
    (i / PALETTE.len()) % 2 == 1
}

pub(crate) fn draw<DB: DrawingBackend>(
    p: &CurvesPlot,
    size: FigureSize,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let theme = Theme::new(size);
    let (w, h) = root.dim_in_pixel();
    let pad = theme.px(4.0) as i32;
    let entries: Vec<LegendEntry> = p
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| LegendEntry {
            label: one_line(&s.label),
            color: palette(i),
            swatch: if dashed(i) {
                Swatch::Dashed
            } else {
                Swatch::Line
            },
        })
        .collect();
    let legend = layout_legend(&theme, &entries, w as i32 - 2 * pad);
    let legend_h = if p.series.len() > 1 {
        legend.height()
    } else {
        0
    };
    let (plot_area, legend_area) = root.split_vertically(h as i32 - legend_h);

    let pts = || p.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), q| {
        (a.min(q.step), b.max(q.step))
    });
    let (mut y0, mut y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), q| {
        (a.min(q.mean - q.std), b.max(q.mean + q.std))
    });
    if x1 <= x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 <= y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let ypad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - ypad, y1 + ypad);
    let ydec = tick_decimals(y1 - y0);
    let tick_font = theme.font(TICK_PT);
    let tw = |s: &str| {
        plot_area
            .estimate_text_size(s, &tick_font)
            .map_or(0, |(w, _)| w as i32)
    };
    let y_label_w = tw(&format!("{y0:.ydec$}")).max(tw(&format!("{y1:.ydec$}")));
    let x_last = fmt_step(x1, x1);

    let mut chart = ChartBuilder::on(&plot_area)
        .margin_top(theme.line(TICK_PT) / 2 + pad)
        .margin_right(tw(&x_last) / 2 + pad)
        .margin_left(pad)
        .x_label_area_size(theme.line(TICK_PT) + theme.line(LABEL_PT) + pad)
        .y_label_area_size(y_label_w + theme.line(LABEL_PT) + 2 * pad)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .bold_line_style(GRID.stroke_width(theme.pxi(0.4)))
        .axis_style(AXIS.stroke_width(theme.pxi(0.6)))
        .set_all_tick_mark_size(theme.pxi(2.0))
        .label_style(tick_font.clone())
        .axis_desc_style(theme.font(LABEL_PT))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|v| fmt_step(*v, x1))
        .y_label_formatter(&|v| format!("{v:.ydec$}"))
        .x_desc("Step")
        .y_desc(one_line(&p.metric_label))
        .draw()?;

    for (i, s) in p.series.iter().enumerate() {
        let color = palette(i);
        if s.points.iter().any(|q| q.std > 0.0) {
            let mut band: Vec<(f64, f64)> =
                s.points.iter().map(|q| (q.step, q.mean + q.std)).collect();
            band.extend(s.points.iter().rev().map(|q| (q.step, q.mean - q.std)));
            chart.draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.18).filled(),
            )))?;
        }
    }
    for (i, s) in p.series.iter().enumerate() {
        let style = palette(i).stroke_width(theme.pxi(1.0));
        let points = s.points.iter().map(|q| (q.step, q.mean));
        if dashed(i) {
            let dash = theme.px(2.5) as i32;
            chart.draw_series(DashedLineSeries::new(points, dash, dash * 2 / 3, style))?;
        } else {
            chart.draw_series(LineSeries::new(points, style))?;
        }
    }
    if legend_h > 0 {
        draw_legend(&legend_area, &theme, &entries, &legend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_on_different_steps_are_interpolated_not_extrapolated() {
        let a: &[(u64, f64)] = &[(0, 0.0), (10, 1.0), (20, 2.0)];
        let b: &[(u64, f64)] = &[(5, 1.0), (15, 3.0)];
        let pts = align(&[a, b]);
        let steps: Vec<f64> = pts.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0.0, 5.0, 10.0, 15.0, 20.0]);
        // Step 10: a = 1.0, b interpolated = 2.0.
        assert_eq!((pts[2].mean, pts[2].n), (1.5, 2));
        assert!((pts[2].std - (0.5f64).sqrt()).abs() < 1e-12);
        // Step 0 and 20 only have seed a.
        assert_eq!((pts[0].n, pts[4].n, pts[4].std), (1, 1, 0.0));
    }

    #[test]
    fn downsampling_averages_chunks() {
        let pts: Vec<CurvePoint> = (0..10)
            .map(|i| CurvePoint {
                step: i as f64,
                mean: i as f64,
                std: 1.0,
                n: 3,
            })
            .collect();
        let d = downsample(pts.clone(), 5);
        // The fused path gives the same numbers.
        let a: Vec<(u64, f64)> = (0..10).map(|i| (i, i as f64 + 1.0)).collect();
        let b: Vec<(u64, f64)> = (0..10).map(|i| (i, i as f64 - 1.0)).collect();
        let fused = align_downsampled(&[&a, &b], 5);
        let plain = downsample(align(&[&a, &b]), 5);
        assert_eq!(fused, plain);
        assert_eq!((fused[0].mean, fused[0].n), (0.5, 2));
        assert_eq!(d.len(), 5);
        assert_eq!((d[0].step, d[0].mean), (0.5, 0.5));
        assert_eq!(downsample(d.clone(), 0), d);
    }
}
