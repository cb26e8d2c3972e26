//! Manager aggregation weights (paper Fig. 6): per-layer bar panels of one cell, and layers ×
//! experts heatmaps with one titled row per cell, averaged over each cell's seeds.

use std::collections::{BTreeMap, BTreeSet};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{one_line, Keyed};
use super::style::{
    text_on, tick_decimals, viridis, FigureSize, Theme, AXIS, GRID, LABEL_PT, TEXT_BLUE, TICK_PT,
    VISUAL_PURPLE,
};
use super::text::{fit, text_width};
use super::{cell_labels, DrawResult, Figure, FigureKind};
use crate::analysis::{select_runs, validate};
use crate::error::{ReportError, Result};
use crate::input::{modality_title, Cell, Modality, ReportInput};
use crate::provenance::Provenance;

/// Which weights to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerOptions {
    /// Cell whose runs are averaged. `None`: the first cell with weights for the per-layer
    /// panels, every cell with weights (one titled row each) for the heatmap.
    pub cell: Option<String>,
    /// Snapshot step: each run's latest record at or before it; each run's last when `None`.
    pub step: Option<u64>,
    /// Figure size; two columns wide by default.
    pub size: FigureSize,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            cell: None,
            step: None,
            size: FigureSize::WIDE,
        }
    }
}

/// Mean ± std of one weight over the runs of the cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightStat {
    pub mean: f64,
    pub std: Option<f64>,
    pub n: usize,
}

/// Averaged weights of one cell at one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerWeights {
    pub cell: String,
    pub cell_label: String,
    /// `(run_id, step)` of the snapshot taken from each run.
    pub snapshots: Vec<(String, u64)>,
    /// Rows of the figure, `Text` before `Image`.
    pub modalities: Vec<Modality>,
    pub layers: Vec<u32>,
    pub experts: Vec<u32>,
    /// `[modality][layer][expert]`, `None` where no run recorded that weight.
    pub weights: Vec<Vec<Vec<Option<WeightStat>>>>,
}

impl ManagerWeights {
    fn max(&self) -> f64 {
        self.weights
            .iter()
            .flatten()
            .flatten()
            .flatten()
            .map(|w| w.mean + w.std.unwrap_or(0.0))
            .fold(0.0, f64::max)
    }
}

fn has_weights(c: &Cell) -> bool {
    select_runs(c)
        .0
        .iter()
        .any(|r| !r.manager_weights.is_empty())
}

/// Keys of the cells whose finished runs recorded manager weights, in cell order.
pub fn manager_cells(input: &ReportInput) -> Vec<String> {
    input
        .cells
        .iter()
        .filter(|c| has_weights(c))
        .map(|c| c.key.clone())
        .collect()
}

/// Averages the cell's manager weights at the chosen snapshot.
pub fn manager_weights(input: &ReportInput, opts: &ManagerOptions) -> Result<ManagerWeights> {
    validate(input)?;
    let cell = match &opts.cell {
        Some(k) => input.cells.iter().find(|c| &c.key == k).ok_or_else(|| {
            ReportError::Option(format!("manager-weight cell `{k}` is not one of the cells"))
        })?,
        None => input.cells.iter().find(|c| has_weights(c)).ok_or_else(|| {
            ReportError::NoData("no finished run recorded manager weights".into())
        })?,
    };
    let mut snapshots = Vec::new();
    // (modality, layer, expert) → one value per run.
    let mut values: BTreeMap<(Modality, u32, u32), Vec<f64>> = BTreeMap::new();
    for run in select_runs(cell).0 {
        let step = run
            .manager_weights
            .iter()
            .map(|w| w.step)
            .filter(|s| opts.step.is_none_or(|max| *s <= max))
            .max();
        let Some(step) = step else { continue };
        let mut latest: BTreeMap<(Modality, u32, u32), f64> = BTreeMap::new();
        for w in run.manager_weights.iter().filter(|w| w.step == step) {
            if w.weight.is_finite() {
                latest.insert((w.modality, w.layer, w.expert), w.weight);
            }
        }
        for (k, v) in latest {
            values.entry(k).or_default().push(v);
        }
        snapshots.push((run.run_id.clone(), step));
    }
    if values.is_empty() {
        let at = opts
            .step
            .map_or(String::new(), |s| format!(" at or before step {s}"));
        return Err(ReportError::NoData(format!(
            "no finished run of cell `{}` recorded manager weights{at}",
            cell.key
        )));
    }
    let modalities: Vec<Modality> = values
        .keys()
        .map(|k| k.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let layers: Vec<u32> = values
        .keys()
        .map(|k| k.1)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let experts: Vec<u32> = values
        .keys()
        .map(|k| k.2)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let weights = modalities
        .iter()
        .map(|&m| {
            layers
                .iter()
                .map(|&l| {
                    experts
                        .iter()
                        .map(|&e| {
                            values.get(&(m, l, e)).map(|v| {
                                let s = crate::stats::Summary::of(v).expect("non-empty");
                                WeightStat {
                                    mean: s.mean,
                                    std: s.std,
                                    n: s.n,
                                }
                            })
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    Ok(ManagerWeights {
        cell: cell.key.clone(),
        // Named by the axes that vary over the whole grid, as the other figures name it.
        cell_label: {
            let all: Vec<&Cell> = input.cells.iter().collect();
            let at = input
                .cells
                .iter()
                .position(|c| c.key == cell.key)
                .unwrap_or(0);
            cell_labels(input, &all).swap_remove(at)
        },
        snapshots,
        modalities,
        layers,
        experts,
        weights,
    })
}

fn snapshot_notes(ws: &[ManagerWeights]) -> Vec<String> {
    ws.iter()
        .flat_map(|w| {
            let steps = w
                .snapshots
                .iter()
                .map(|(r, s)| format!("{r}@{s}"))
                .collect::<Vec<_>>()
                .join(" ");
            [
                format!("cell: {}", w.cell),
                format!("snapshots (run@step): {steps}"),
            ]
        })
        .collect()
}

/// Fig. 6 layout: one row per modality (textual, visual), one panel per cross-modal layer,
/// bars over the uni-modal experts, titled with the cell.
pub fn manager_panels(input: &ReportInput, opts: &ManagerOptions) -> Result<Figure> {
    opts.size.validate()?;
    let w = manager_weights(input, opts)?;
    let run_ids = w.snapshots.iter().map(|s| s.0.clone()).collect();
    Ok(Figure {
        title: format!("Manager aggregation weights: {}", w.cell_label),
        size: opts.size,
        provenance: Provenance::new(input, run_ids),
        notes: snapshot_notes(std::slice::from_ref(&w)),
        kind: FigureKind::ManagerPanels(w),
    })
}

/// Layers × experts heatmaps (textual and visual side by side, the values printed in the
/// cells), one titled row per cell with weights — or only `opts.cell` — on one colour scale.
/// The figure is as tall as its rows need (at least `opts.size`).
pub fn manager_heatmap(input: &ReportInput, opts: &ManagerOptions) -> Result<Figure> {
    opts.size.validate()?;
    let keys = match &opts.cell {
        Some(k) => vec![k.clone()],
        None => manager_cells(input),
    };
    if keys.is_empty() {
        validate(input)?;
        return Err(ReportError::NoData(
            "no finished run recorded manager weights".into(),
        ));
    }
    let ws = keys
        .into_iter()
        .map(|k| {
            manager_weights(
                input,
                &ManagerOptions {
                    cell: Some(k),
                    ..opts.clone()
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let theme = Theme::new(opts.size);
    // Rows plus the x title under them.
    let needed: i32 = ws.iter().map(|w| heat_row_height(&theme, w)).sum::<i32>()
        + theme.line(LABEL_PT)
        + theme.px(3.0) as i32;
    let size = if f64::from(needed) > f64::from(opts.size.pixels().1) {
        opts.size
            .with_height(f64::from(needed) / f64::from(opts.size.dpi))
    } else {
        opts.size
    };
    let run_ids = ws
        .iter()
        .flat_map(|w| w.snapshots.iter().map(|s| s.0.clone()))
        .collect();
    let title = match ws.as_slice() {
        [one] => format!("Manager aggregation weights (heatmap): {}", one.cell_label),
        many => format!(
            "Manager aggregation weights (heatmap) of {} cells",
            many.len()
        ),
    };
    Ok(Figure {
        title,
        size,
        provenance: Provenance::new(input, run_ids),
        notes: snapshot_notes(&ws),
        kind: FigureKind::ManagerHeatmap(ws),
    })
}

/// Pixel height of a heatmap cell.
fn heat_cell(theme: &Theme) -> i32 {
    theme.px(13.0) as i32
}

/// Pixels one cell's heatmap row takes: title, panel captions, layers and expert labels.
fn heat_row_height(theme: &Theme, w: &ManagerWeights) -> i32 {
    let pad = theme.px(3.0) as i32;
    theme.line(LABEL_PT)
        + pad
        + theme.line(LABEL_PT)
        + w.layers.len() as i32 * heat_cell(theme)
        + theme.line(TICK_PT)
        + 3 * pad
}

pub(crate) fn modality_color(m: Modality) -> RGBColor {
    match m {
        Modality::Text => TEXT_BLUE,
        Modality::Image => VISUAL_PURPLE,
    }
}

/// Column boundaries: the first column is wider by `extra` pixels (its y labels).
fn column_breaks(width: i32, cols: usize, extra: i32) -> Vec<i32> {
    let per = (width - extra) / cols as i32;
    (1..cols).map(|c| extra + per * c as i32).collect()
}

pub(crate) fn draw_panels<DB: DrawingBackend>(
    w: &ManagerWeights,
    size: FigureSize,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let theme = Theme::new(size);
    let pad = theme.px(3.0) as i32;
    let label_h = theme.line(LABEL_PT);
    // The cell's title on top, the global y title on the left, the x title at the bottom.
    let (title, root) = root.split_vertically(label_h + pad);
    draw_title(&title, &theme, &w.cell_label)?;
    let root = &root;
    let (_, height) = root.dim_in_pixel();
    let (left, body) = root.split_horizontally(label_h + pad);
    let (body, bottom) = body.split_vertically(height as i32 - label_h - pad);
    left.draw(&Text::new(
        "Aggregation weight",
        (label_h / 2 + pad / 2, (height as i32 - label_h) / 2),
        theme
            .font(LABEL_PT)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let (bw, _) = bottom.dim_in_pixel();
    bottom.draw(&Text::new(
        "Uni-modal expert",
        (bw as i32 / 2, (label_h + pad) / 2),
        theme
            .font(LABEL_PT)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;

    let ymax = (w.max() * 1.1).max(1e-6);
    let ydec = tick_decimals(ymax).min(3);
    let tick_font = theme.font(TICK_PT);
    let tw = |s: &str| {
        body.estimate_text_size(s, &tick_font)
            .map_or(0, |(w, _)| w as i32)
    };
    let y_area = tw(&format!("{ymax:.ydec$}")) + label_h + 2 * pad;
    let (body_w, body_h) = body.dim_in_pixel();
    let cols = w.layers.len().max(1);
    let rows = w.modalities.len().max(1);
    let xs = column_breaks(body_w as i32, cols, y_area);
    let ys: Vec<i32> = (1..rows)
        .map(|r| body_h as i32 * r as i32 / rows as i32)
        .collect();
    let panels = body.split_by_breakpoints(xs, ys);

    let n_exp = w.experts.len();
    let keys: Vec<f64> = (0..n_exp).map(|e| e as f64).collect();
    let expert_labels: Vec<String> = w.experts.iter().map(|e| e.to_string()).collect();
    let expert_label = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            expert_labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    for (mi, &m) in w.modalities.iter().enumerate() {
        let color = modality_color(m);
        for (li, &layer) in w.layers.iter().enumerate() {
            let area = &panels[mi * cols + li];
            let mut chart = ChartBuilder::on(area)
                .caption(format!("Layer {layer}"), theme.font(TICK_PT))
                .margin(pad / 2)
                .margin_right(pad)
                .x_label_area_size(theme.line(TICK_PT) + pad / 2)
                .y_label_area_size(if li == 0 { y_area - pad / 2 } else { 0 })
                .build_cartesian_2d(
                    Keyed::new(-0.5..n_exp as f64 - 0.5, keys.clone()),
                    0.0..ymax,
                )?;
            let y_fmt = |v: &f64| format!("{v:.ydec$}");
            let mut mesh = chart.configure_mesh();
            mesh.max_light_lines(0)
                .disable_x_mesh()
                .bold_line_style(GRID.stroke_width(theme.pxi(0.4)))
                .axis_style(AXIS.stroke_width(theme.pxi(0.5)))
                .set_all_tick_mark_size(theme.pxi(1.5))
                .label_style(tick_font.clone())
                .axis_desc_style(theme.font(LABEL_PT))
                .y_labels(4)
                .x_label_formatter(&expert_label)
                .y_label_formatter(&y_fmt);
            if li == 0 {
                mesh.y_desc(modality_title(m));
            }
            mesh.draw()?;
            let err_style = AXIS.stroke_width(theme.pxi(0.5));
            for (ei, stat) in w.weights[mi][li].iter().enumerate() {
                let Some(s) = stat else { continue };
                let x = ei as f64;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.36, 0.0), (x + 0.36, s.mean)],
                    color.filled(),
                )))?;
                if let Some(sd) = s.std.filter(|sd| *sd > 0.0) {
                    chart.draw_series([
                        PathElement::new(
                            vec![(x, (s.mean - sd).max(0.0)), (x, s.mean + sd)],
                            err_style,
                        ),
                        PathElement::new(
                            vec![(x - 0.15, s.mean + sd), (x + 0.15, s.mean + sd)],
                            err_style,
                        ),
                    ])?;
                }
            }
        }
    }
    Ok(())
}

/// A centred title line across `area`, cut with "…" if wider.
fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    theme: &Theme,
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let em = theme.px(LABEL_PT);
    let text = fit(&one_line(title), em, f64::from(w) * 0.96);
    area.draw(&Text::new(
        text,
        (w as i32 / 2, h as i32 / 2),
        theme
            .font(LABEL_PT)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

pub(crate) fn draw_heatmap<DB: DrawingBackend>(
    ws: &[ManagerWeights],
    size: FigureSize,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let theme = Theme::new(size);
    let pad = theme.px(3.0) as i32;
    let label_h = theme.line(LABEL_PT);
    // One y title on the left and one x title at the bottom for every row.
    let (_, full_h) = root.dim_in_pixel();
    let (left, rest) = root.split_horizontally(label_h + pad);
    let (rest, bottom) = rest.split_vertically(full_h as i32 - label_h - pad);
    let root = &rest;
    let (width, height) = root.dim_in_pixel();
    left.draw(&Text::new(
        "Cross-modal layer",
        (label_h / 2 + pad / 2, height as i32 / 2),
        theme
            .font(LABEL_PT)
            .transform(FontTransform::Rotate270)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let tick_font = theme.font(TICK_PT);
    let tick_em = theme.px(TICK_PT);
    let tw = |s: &str| text_width(s, tick_em).ceil() as i32;
    // One colour scale for every row, so that cells compare.
    let vmax = ws
        .iter()
        .flat_map(|w| w.weights.iter().flatten().flatten().flatten())
        .map(|s| s.mean)
        .fold(0.0, f64::max)
        .max(1e-6);
    // Same precision as the values printed in the cells.
    let cdec = 2;
    // Colour bar on the right: swatch plus its labels.
    let bar_w = theme.px(6.0) as i32;
    let bar_area_w = bar_w + tw(&format!("{vmax:.cdec$}")) + 4 * pad;
    let (maps, colorbar) = root.split_horizontally(width as i32 - bar_area_w);
    let (maps_w, maps_h) = maps.dim_in_pixel();
    let needs: Vec<i32> = ws.iter().map(|w| heat_row_height(&theme, w)).collect();
    let total: i32 = needs.iter().sum::<i32>().max(1);
    let mut breaks = Vec::new();
    let mut acc = 0;
    for n in &needs[..needs.len().saturating_sub(1)] {
        acc += n;
        breaks.push((i64::from(acc) * i64::from(maps_h) / i64::from(total)) as i32);
    }
    let rows = maps.split_by_breakpoints(Vec::<i32>::new(), breaks);
    let title_h = theme.line(LABEL_PT) + pad;
    let x_area = theme.line(TICK_PT) + pad;
    let mut bar_span = (i32::MAX, 0);
    for (w, row) in ws.iter().zip(&rows) {
        let (title, body) = row.split_vertically(title_h);
        if ws.len() > 1 {
            draw_title(&title, &theme, &w.cell_label)?;
        } else {
            draw_title(
                &title,
                &theme,
                &format!("Manager aggregation weights: {}", w.cell_label),
            )?;
        }
        let y_area = tw(&format!("{}", w.layers.iter().max().copied().unwrap_or(0))) + 2 * pad;
        let n = w.modalities.len().max(1);
        let panels =
            body.split_by_breakpoints(column_breaks(maps_w as i32, n, y_area), Vec::<i32>::new());
        let (n_exp, n_lay) = (w.experts.len(), w.layers.len());
        let x_keys: Vec<f64> = (0..n_exp).map(|e| e as f64 + 0.5).collect();
        let y_keys: Vec<f64> = (0..n_lay).map(|l| l as f64 + 0.5).collect();
        let experts: Vec<String> = w.experts.iter().map(|e| e.to_string()).collect();
        // Layer 1 at the top, as in a table.
        let layers: Vec<String> = w.layers.iter().rev().map(|l| l.to_string()).collect();
        let label_at = |labels: &[String], v: f64| {
            let i = (v - 0.5).round();
            if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let value_pt = if n_exp > 8 { TICK_PT - 1.5 } else { TICK_PT };
        let value_font = theme
            .font(value_pt)
            .pos(Pos::new(HPos::Center, VPos::Center));
        for (mi, &m) in w.modalities.iter().enumerate() {
            let area = &panels[mi];
            let mut chart = ChartBuilder::on(area)
                .caption(modality_title(m), theme.font(LABEL_PT))
                .margin(pad / 2)
                .margin_right(2 * pad)
                .x_label_area_size(x_area)
                .y_label_area_size(if mi == 0 { y_area - pad / 2 } else { 0 })
                .build_cartesian_2d(
                    Keyed::new(0.0..n_exp as f64, x_keys.clone()),
                    Keyed::new(0.0..n_lay as f64, y_keys.clone()),
                )?;
            let x_fmt = |v: &f64| label_at(&experts, *v);
            let y_fmt = |v: &f64| label_at(&layers, *v);
            let mut mesh = chart.configure_mesh();
            mesh.disable_mesh()
                .axis_style(AXIS.stroke_width(theme.pxi(0.5)))
                .set_all_tick_mark_size(theme.pxi(1.5))
                .label_style(tick_font.clone())
                .axis_desc_style(theme.font(LABEL_PT))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt);
            mesh.draw()?;
            let (_, top) = chart.backend_coord(&(0.0, n_lay as f64));
            let (_, bottom) = chart.backend_coord(&(0.0, 0.0));
            bar_span = (bar_span.0.min(top), bar_span.1.max(bottom));
            for (li, row) in w.weights[mi].iter().enumerate() {
                let y = (n_lay - 1 - li) as f64;
                for (ei, stat) in row.iter().enumerate() {
                    let x = ei as f64;
                    let (fill, text) = match stat {
                        Some(s) => (viridis(s.mean / vmax), format!("{:.2}", s.mean)),
                        None => (RGBColor(235, 235, 235), "–".to_string()),
                    };
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        fill.filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Text::new(
                        text,
                        (x + 0.5, y + 0.5),
                        value_font.clone().color(&text_on(fill)),
                    )))?;
                }
            }
        }
    }

    let (maps_x0, _) = maps.get_base_pixel();
    let (bw, _) = bottom.dim_in_pixel();
    let (root_x0, _) = bottom.get_base_pixel();
    bottom.draw(&Text::new(
        "Uni-modal expert",
        (
            (maps_x0 - root_x0) / 2 + bw as i32 / 2 - bar_area_w / 2,
            (label_h + pad) / 2,
        ),
        theme
            .font(LABEL_PT)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let _ = height;

    // Colour bar, from the top of the first heatmap to the bottom of the last.
    let (top, bottom) = if bar_span.0 < bar_span.1 {
        bar_span
    } else {
        let (_, ch) = colorbar.dim_in_pixel();
        (title_h, ch as i32 - x_area)
    };
    let steps = 64;
    let x0 = pad;
    for i in 0..steps {
        let t0 = i as f64 / steps as f64;
        let y_hi = bottom - ((bottom - top) as f64 * (t0 + 1.0 / steps as f64)).round() as i32;
        let y_lo = bottom - ((bottom - top) as f64 * t0).round() as i32;
        colorbar.draw(&Rectangle::new(
            [(x0, y_hi), (x0 + bar_w, y_lo)],
            viridis(t0 + 0.5 / steps as f64).filled(),
        ))?;
    }
    colorbar.draw(&Rectangle::new(
        [(x0, top), (x0 + bar_w, bottom)],
        AXIS.stroke_width(theme.pxi(0.5)),
    ))?;
    let label_font = tick_font.pos(Pos::new(HPos::Left, VPos::Center));
    for t in [0.0, 0.5, 1.0] {
        let y = bottom - ((bottom - top) as f64 * t).round() as i32;
        colorbar.draw(&PathElement::new(
            vec![(x0 + bar_w, y), (x0 + bar_w + pad, y)],
            AXIS.stroke_width(theme.pxi(0.5)),
        ))?;
        colorbar.draw(&Text::new(
            format!("{:.cdec$}", vmax * t),
            (x0 + bar_w + 2 * pad, y),
            label_font.clone(),
        ))?;
    }
    Ok(())
}
