//! Ablation bars: one bar per cell (mean ± std over seeds), grouped and coloured by an axis.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{draw_legend, fit_legend, layout_legend, one_line, Keyed, LegendEntry, Swatch};
use super::style::{palette, tick_decimals, FigureSize, Theme, AXIS, GRID, LABEL_PT, TICK_PT};
use super::text::{fit, widest};
use super::{
    axis_name, cell_labels, metric_name, select_cells, value_name, varying_axes, DrawResult,
    Figure, FigureKind,
};
use crate::error::{ReportError, Result};
use crate::input::{Goal, ReportInput};
use crate::provenance::Provenance;
use crate::table::{build_table, Significance, Table};

/// What to plot.
#[derive(Debug, Clone, PartialEq)]
pub struct BarOptions {
    /// One of the report's metrics (its policy gives the per-run value).
    pub metric: String,
    /// Axis whose values get one colour each (bars of a group sit side by side); the groups on
    /// the x axis are the combinations of the other varying axes. `None`: one bar per cell.
    pub color_by: Option<String>,
    /// Cells to plot, in this order; all cells when `None`.
    pub cells: Option<Vec<String>>,
    /// Fit the y axis to the data instead of starting at zero (small differences show, but bar
    /// lengths are then no longer proportional).
    pub zoom: bool,
    pub size: FigureSize,
}

impl BarOptions {
    /// Colours by the first varying axis when at least two axes vary.
    pub fn auto(input: &ReportInput, metric: impl Into<String>) -> Self {
        let cells: Vec<_> = input.cells.iter().collect();
        let varying = varying_axes(input, &cells);
        Self {
            metric: metric.into(),
            color_by: (varying.len() >= 2).then(|| varying[0].to_string()),
            cells: None,
            zoom: false,
            size: FigureSize::COLUMN,
        }
    }
}

/// One bar.
#[derive(Debug, Clone, PartialEq)]
pub struct BarValue {
    pub cell: String,
    /// Index into `BarData::groups`.
    pub group: usize,
    /// Index into `BarData::colors` (0 when not coloured by an axis).
    pub color: usize,
    pub mean: f64,
    pub std: Option<f64>,
    /// Runs with a value, and seeds expected: bars with `n < expected` are annotated.
    pub n: usize,
    pub expected: usize,
    /// Against the baseline cell.
    pub significance: Significance,
}

/// The numbers behind a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BarData {
    pub metric_label: String,
    pub goal: Goal,
    /// Title of the x axis: the names of the axes that make the groups (empty when each
    /// group is a cell of its own, or the lines of the group labels name their axes).
    pub group_title: String,
    /// x-axis group labels, one line per grouping axis.
    pub groups: Vec<Vec<String>>,
    /// Legend entries (the colour axis' values, readable), empty when not coloured by an axis.
    pub colors: Vec<String>,
    pub bars: Vec<BarValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BarsPlot {
    pub(crate) data: BarData,
    zoom: bool,
}

/// The statistics of each cell's bar, from the same computation as the table, and the run ids
/// they used.
pub fn bar_data(input: &ReportInput, opts: &BarOptions) -> Result<(BarData, Vec<String>)> {
    bar_data_from_table(input, &build_table(input)?, opts)
}

/// [`bar_data`] from a table already built from `input` (saves recomputing the statistics).
pub fn bar_data_from_table(
    input: &ReportInput,
    table: &Table,
    opts: &BarOptions,
) -> Result<(BarData, Vec<String>)> {
    let col = input
        .metrics
        .iter()
        .position(|m| m.key == opts.metric)
        .ok_or_else(|| {
            ReportError::Option(format!(
                "bar chart metric `{}` is not one of the report's metrics",
                opts.metric
            ))
        })?;
    let metric = &input.metrics[col];
    let cells = select_cells(input, opts.cells.as_deref())?;
    if let Some(axis) = &opts.color_by {
        if !input.axes.contains(axis) {
            return Err(ReportError::Option(format!(
                "bars coloured by `{axis}`, which is not one of the axes {:?}",
                input.axes
            )));
        }
    }
    // Only cells with a value make bars: what varies is decided among them.
    let cells: Vec<&crate::input::Cell> = cells
        .into_iter()
        .filter(|cell| {
            table
                .rows
                .iter()
                .find(|r| r.cell == cell.key)
                .is_some_and(|r| r.entries[col].summary.is_some())
        })
        .collect();
    let varying = varying_axes(input, &cells);
    let group_axes: Vec<&str> = varying
        .iter()
        .copied()
        .filter(|a| Some(*a) != opts.color_by.as_deref())
        .collect();
    // One grouping axis: its name under the axis and bare values under the groups; several:
    // each line names its axis.
    let group_title = match group_axes.as_slice() {
        [one] => axis_name(input, one),
        _ => String::new(),
    };
    let short = |cell: &crate::input::Cell, axis: &str| {
        let v = &cell.axes[axis];
        let named = input.labels.values.get(axis).and_then(|m| m.get(v));
        match named {
            Some(n) => n.clone(),
            None if v.parse::<f64>().is_ok() => v.clone(),
            None => value_name(input, cell, axis),
        }
    };
    let mut groups: Vec<Vec<String>> = Vec::new();
    let mut colors: Vec<String> = Vec::new();
    let mut bars = Vec::new();
    let mut run_ids = Vec::new();
    for cell in cells {
        let row = table
            .rows
            .iter()
            .find(|r| r.cell == cell.key)
            .expect("the table has a row per cell");
        let entry = &row.entries[col];
        let Some(summary) = entry.summary else {
            continue;
        };
        run_ids.extend(entry.values.iter().map(|v| v.1.clone()));
        let group = match group_axes.as_slice() {
            [] if opts.color_by.is_none() => cell_labels(input, &[cell]),
            [] => vec![String::new()],
            [one] => vec![short(cell, one)],
            many => many.iter().map(|a| value_name(input, cell, a)).collect(),
        };
        let gi = index_of(&mut groups, group);
        let ci = match &opts.color_by {
            Some(a) => index_of(&mut colors, value_name(input, cell, a)),
            None => 0,
        };
        bars.push(BarValue {
            cell: cell.key.clone(),
            group: gi,
            color: ci,
            mean: summary.mean,
            std: summary.std,
            n: summary.n,
            expected: row.coverage.expected,
            significance: entry
                .comparison
                .map_or(Significance::None, |c| c.significance()),
        });
    }
    Ok((
        BarData {
            metric_label: metric_name(input, &metric.key),
            goal: metric.goal,
            group_title,
            groups,
            colors,
            bars,
        },
        run_ids,
    ))
}

fn index_of<T: PartialEq>(list: &mut Vec<T>, s: T) -> usize {
    match list.iter().position(|x| *x == s) {
        Some(i) => i,
        None => {
            list.push(s);
            list.len() - 1
        }
    }
}

/// The ablation bar chart of `opts.metric`.
pub fn ablation_bars(input: &ReportInput, opts: &BarOptions) -> Result<Figure> {
    ablation_bars_from_table(input, &build_table(input)?, opts)
}

/// [`ablation_bars`] from a table already built from `input`.
pub fn ablation_bars_from_table(
    input: &ReportInput,
    table: &Table,
    opts: &BarOptions,
) -> Result<Figure> {
    opts.size.validate()?;
    let (data, run_ids) = bar_data_from_table(input, table, opts)?;
    if data.bars.is_empty() {
        return Err(ReportError::NoData(format!(
            "no finished run has a value for `{}`",
            opts.metric
        )));
    }
    let size = fit_legend(opts.size, &data.colors);
    Ok(Figure {
        title: format!("Ablation: {}", data.metric_label),
        size,
        provenance: Provenance::new(input, run_ids),
        notes: Vec::new(),
        kind: FigureKind::Bars(BarsPlot {
            data,
            zoom: opts.zoom,
        }),
    })
}

/// Text above a bar: the significance mark and, for incomplete cells, the count.
fn annotation(b: &BarValue) -> String {
    let mut s = b.significance.mark().to_string();
    if b.n < b.expected {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&format!("n={}", b.n));
    }
    s
}

pub(crate) fn draw<DB: DrawingBackend>(
    p: &BarsPlot,
    size: FigureSize,
    root: &DrawingArea<DB, Shift>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let d = &p.data;
    let theme = Theme::new(size);
    let (w, h) = root.dim_in_pixel();
    let pad = theme.px(4.0) as i32;
    let entries: Vec<LegendEntry> = d
        .colors
        .iter()
        .enumerate()
        .map(|(i, c)| LegendEntry {
            label: one_line(c),
            color: palette(i),
            swatch: Swatch::Box,
        })
        .collect();
    let legend = layout_legend(&theme, &entries, w as i32 - 2 * pad);
    let (plot_area, legend_area) = root.split_vertically(h as i32 - legend.height());
    let (_, plot_h) = plot_area.dim_in_pixel();

    let lo = |b: &BarValue| b.mean - b.std.unwrap_or(0.0);
    let hi = |b: &BarValue| b.mean + b.std.unwrap_or(0.0);
    let mut y0 = d.bars.iter().map(lo).fold(f64::MAX, f64::min);
    let mut y1 = d.bars.iter().map(hi).fold(f64::MIN, f64::max);
    if !p.zoom {
        y0 = y0.min(0.0);
        y1 = y1.max(0.0);
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let span = y1 - y0;
    let annotated = d.bars.iter().any(|b| !annotation(b).is_empty());
    // Room above the tallest error bar for its annotation.
    let top_pad = if annotated { 0.14 } else { 0.05 };
    let y1 = y1 + span * top_pad;
    let y0 = if p.zoom || y0 < 0.0 {
        y0 - span * 0.05
    } else {
        y0
    };
    let ydec = tick_decimals(y1 - y0);

    let tick_font = theme.font(TICK_PT);
    let tick_em = theme.px(TICK_PT);
    let y_label_w = widest(
        [format!("{y0:.ydec$}"), format!("{y1:.ydec$}")]
            .iter()
            .map(String::as_str),
        tick_em,
    )
    .ceil() as i32;
    let y_area = y_label_w + theme.line(LABEL_PT) + 2 * pad;
    let n_groups = d.groups.len().max(1);
    let slot_px = f64::from((w as i32 - y_area - 3 * pad).max(1)) / n_groups as f64;
    let labels = GroupLabels::fit(&theme, &d.groups, slot_px, f64::from(plot_h) * 0.35);
    let title_h = if d.group_title.is_empty() {
        0
    } else {
        theme.line(LABEL_PT)
    };
    let x_area = labels.height + title_h + pad;

    let keys: Vec<f64> = (0..n_groups).map(|g| g as f64).collect();
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_top(theme.line(TICK_PT) / 2 + pad)
        .margin_right(2 * pad)
        .margin_left(pad)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(Keyed::new(-0.5..n_groups as f64 - 0.5, keys), y0..y1)?;
    chart
        .configure_mesh()
        .max_light_lines(0)
        .disable_x_mesh()
        .bold_line_style(GRID.stroke_width(theme.pxi(0.4)))
        .axis_style(AXIS.stroke_width(theme.pxi(0.6)))
        .set_all_tick_mark_size(theme.pxi(2.0))
        .x_label_style(tick_font.clone())
        .y_label_style(tick_font.clone())
        .axis_desc_style(theme.font(LABEL_PT))
        .y_labels(5)
        // Group labels are drawn below, fitted to their slots.
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| format!("{v:.ydec$}"))
        .y_desc(one_line(&d.metric_label))
        .draw()?;

    let k = d.colors.len().max(1) as f64;
    let slot = 0.8 / k;
    let base = if p.zoom { y0 } else { 0.0f64.max(y0) };
    let err_style = AXIS.stroke_width(theme.pxi(0.6));
    let note_font = theme
        .font(TICK_PT)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for b in &d.bars {
        let x = b.group as f64 + (b.color as f64 - (k - 1.0) / 2.0) * slot;
        let half = slot * 0.42;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - half, base), (x + half, b.mean)],
            palette(b.color).filled(),
        )))?;
        let top = if let Some(s) = b.std.filter(|s| *s > 0.0) {
            let cap = slot * 0.18;
            chart.draw_series([
                PathElement::new(vec![(x, b.mean - s), (x, b.mean + s)], err_style),
                PathElement::new(
                    vec![(x - cap, b.mean + s), (x + cap, b.mean + s)],
                    err_style,
                ),
                PathElement::new(
                    vec![(x - cap, b.mean - s), (x + cap, b.mean - s)],
                    err_style,
                ),
            ])?;
            b.mean + s
        } else {
            b.mean
        };
        let note = annotation(b);
        if !note.is_empty() {
            let gap = theme.px(1.5) as i32;
            chart.draw_series(std::iter::once(
                EmptyElement::at((x, top.max(base)))
                    + Text::new(note, (0, -gap), note_font.clone()),
            ))?;
        }
    }
    let (_, axis_y) = chart.backend_coord(&(0.0, y0));
    labels.draw(
        &plot_area,
        &theme,
        |g| chart.backend_coord(&(g as f64, y0)).0,
        axis_y + pad,
    )?;
    if !d.group_title.is_empty() {
        let (x_mid, _) = chart.backend_coord(&((n_groups as f64 - 1.0) / 2.0, y0));
        plot_area.draw(&Text::new(
            one_line(&d.group_title),
            (x_mid, axis_y + pad + labels.height + title_h / 2),
            theme
                .font(LABEL_PT)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    if legend.height() > 0 {
        draw_legend(&legend_area, &theme, &entries, &legend)?;
    }
    Ok(())
}

/// Group labels under the bars, fitted to the slot of each group: a line per grouping axis,
/// in a smaller size when needed; rotated to read upwards only when single lines still do not
/// fit side by side (then every k-th group when even those would touch), cut with "…" only
/// when nothing else fits.
struct GroupLabels {
    lines: Vec<Vec<String>>,
    pt: f64,
    rotate: bool,
    /// Label every `every`-th group.
    every: usize,
    /// Pixels below the axis they take.
    height: i32,
}

impl GroupLabels {
    fn fit(theme: &Theme, groups: &[Vec<String>], slot: f64, max_rotated: f64) -> GroupLabels {
        let lines: Vec<Vec<String>> = groups
            .iter()
            .map(|g| g.iter().map(|l| one_line(l)).collect())
            .collect();
        let n_lines = lines.iter().map(Vec::len).max().unwrap_or(0);
        if n_lines == 0 || lines.iter().flatten().all(String::is_empty) {
            return GroupLabels {
                lines,
                pt: TICK_PT,
                rotate: false,
                every: 1,
                height: 0,
            };
        }
        let widest_at = |pt: f64| widest(lines.iter().flatten().map(String::as_str), theme.px(pt));
        let room = slot * 0.92;
        let mut pt = TICK_PT;
        while widest_at(pt) > room && pt > 5.0 {
            pt -= 0.5;
        }
        let line_h = theme.line(pt);
        if widest_at(pt) <= room {
            return GroupLabels {
                lines,
                pt,
                rotate: false,
                every: 1,
                height: n_lines as i32 * line_h,
            };
        }
        if n_lines == 1 {
            let pt = TICK_PT;
            let em = theme.px(pt);
            let lines: Vec<Vec<String>> = lines
                .iter()
                .map(|g| g.iter().map(|l| fit(l, em, max_rotated)).collect())
                .collect();
            let every = (f64::from(theme.line(pt)) / slot.max(1.0)).ceil().max(1.0) as usize;
            let height = widest(lines.iter().flatten().map(String::as_str), em).ceil() as i32;
            return GroupLabels {
                lines,
                pt,
                rotate: true,
                every,
                height,
            };
        }
        let em = theme.px(pt);
        let lines = lines
            .iter()
            .map(|g| g.iter().map(|l| fit(l, em, room)).collect())
            .collect();
        GroupLabels {
            lines,
            pt,
            rotate: false,
            every: 1,
            height: n_lines as i32 * line_h,
        }
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        theme: &Theme,
        x_of: impl Fn(usize) -> i32,
        top: i32,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let font = theme.font(self.pt);
        for (g, lines) in self.lines.iter().enumerate().step_by(self.every) {
            let x = x_of(g);
            if self.rotate {
                let style = font
                    .clone()
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Right, VPos::Center));
                let text = lines.first().cloned().unwrap_or_default();
                area.draw(&Text::new(text, (x, top), style))?;
            } else {
                let style = font.clone().pos(Pos::new(HPos::Center, VPos::Top));
                for (i, line) in lines.iter().enumerate() {
                    let y = top + i as i32 * theme.line(self.pt);
                    area.draw(&Text::new(line.clone(), (x, y), style.clone()))?;
                }
            }
        }
        Ok(())
    }
}
