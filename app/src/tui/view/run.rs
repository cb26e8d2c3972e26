//! One run: what it is, how it ended, its metrics, a chart and its last log lines.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph, Wrap};
use ratatui::Frame;

use super::{ellipsize, pane, status_color, PALETTE};
use crate::tui::model::{FailureClass, Series};
use crate::tui::state::App;
use crate::tui::table::{format_duration, format_value};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(id) = app.open_run else {
        frame.render_widget(
            Paragraph::new("No run selected: pick one in Runs and press Enter.")
                .block(pane(" run ")),
            area,
        );
        return;
    };
    let [top, logs] = Layout::vertical([Constraint::Min(8), Constraint::Length(7)]).areas(area);
    // Half the width up to 46 columns: at 80×24 the key metric's full name fits.
    let info_w = (area.width / 2).clamp(38, 46);
    let [info, chart] =
        Layout::horizontal([Constraint::Length(info_w), Constraint::Min(20)]).areas(top);
    draw_info(frame, info, app, id);
    draw_chart(frame, chart, app, id);
    draw_logs(frame, logs, app, id);
}

/// Throughput and MFU, then memory and the time left (`experiments::cost`), for a run that
/// reported any of them or is running.
fn cost_lines(run: &crate::tui::model::RunSummary, width: usize) -> Vec<String> {
    use experiments::cost::{eta_text, run_eta_s, Glance};
    let glance = Glance::of(
        run.summaries
            .iter()
            .filter_map(|s| s.last.map(|v| (s.key.as_str(), v))),
    );
    let running = run.status == crate::tui::model::RunStatus::Running;
    if glance.is_empty() && !running {
        return Vec::new();
    }
    let mut second = glance.memory_text();
    if running {
        let eta = run
            .progress
            .and_then(|(s, t)| run_eta_s(s.max(0) as u64, t.max(0) as u64, glance.step_time_s));
        second.push_str(&format!(" · ETA {}", eta_text(eta)));
    }
    vec![
        ellipsize(&glance.throughput_text(), width),
        ellipsize(&second, width),
    ]
}

fn draw_info(frame: &mut Frame, area: Rect, app: &App, id: i64) {
    let width = area.width.saturating_sub(2) as usize;
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = Vec::new();
    let run = app
        .details
        .get(&id)
        .map(|d| &d.run)
        .or_else(|| app.run_by_id(id));
    let Some(run) = run else {
        frame.render_widget(
            Paragraph::new(format!("Run {id} is not in the store (any more)."))
                .block(pane(" run ")),
            area,
        );
        return;
    };
    lines.push(Line::from(vec![
        Span::styled(
            run.status.as_str(),
            Style::new()
                .fg(status_color(run.status))
                .add_modifier(Modifier::BOLD),
        ),
        Span::raw(match run.progress {
            Some((s, t)) if t > 0 => format!("  step {s}/{t}"),
            _ => String::new(),
        }),
        Span::raw(
            run.duration_ms(app.now_ms)
                .map(|d| format!("  {}", format_duration(d)))
                .unwrap_or_default(),
        ),
    ]));
    for line in cost_lines(run, width) {
        lines.push(Line::from(Span::styled(line, Style::new().fg(Color::Gray))));
    }
    // The full cell: every axis with its whole name (the table abbreviates them).
    let cell = run
        .axes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    for chunk in wrap_words(&cell, width).into_iter().take(3) {
        lines.push(Line::from(Span::styled(
            chunk,
            Style::new().fg(Color::Gray),
        )));
    }
    if let Some(worker) = &run.worker {
        lines.push(Line::from(Span::styled(
            ellipsize(&format!("worker {worker}"), width),
            dim,
        )));
    }
    // The scheduler's view beside TowerLab's: pending with its reason, running on a node.
    if let Some(job) = app.details.get(&id).and_then(|d| d.scheduler.as_ref()) {
        lines.push(Line::from(Span::styled(
            ellipsize(&format!("slurm {job}"), width),
            Style::new().fg(Color::Gray),
        )));
    }
    if run.status.is_failure() || run.failure_class.is_some() {
        let red = Style::new().fg(Color::Red);
        lines.push(Line::from(Span::styled(
            format!(
                "failure: {}",
                run.failure_class.map_or("unknown", FailureClass::as_str)
            ),
            red.add_modifier(Modifier::BOLD),
        )));
        if let Some(msg) = &run.failure_message {
            // Long messages wrap over a few lines; the log pane has the rest.
            for chunk in wrap(msg, width).into_iter().take(3) {
                lines.push(Line::from(Span::styled(chunk, red)));
            }
        }
    }
    lines.push(Line::from(Span::styled("metrics (best · last)", dim)));
    // The experiment's key metric first, marked, so that it shows at 80×24.
    let keys: Vec<String> = run.summaries.iter().map(|s| s.key.clone()).collect();
    let key_metric = app.run_key_metric(run, &keys).map(str::to_owned);
    let mut summaries: Vec<_> = run.summaries.iter().collect();
    summaries.sort_by_key(|s| Some(&s.key) != key_metric.as_ref());
    let key_w = width.saturating_sub(19).max(8);
    for s in summaries {
        let best = s.best.map(format_value).unwrap_or_else(|| "-".into());
        let last = s.last.map(format_value).unwrap_or_else(|| "-".into());
        let mut style = Style::new();
        if app.chart_key() == Some(s.key.as_str()) {
            style = style.fg(Color::Cyan);
        }
        if key_metric.as_ref() == Some(&s.key) {
            style = style.add_modifier(Modifier::BOLD);
        }
        let mark = if key_metric.as_ref() == Some(&s.key) {
            "★"
        } else {
            " "
        };
        lines.push(Line::from(Span::styled(
            ellipsize(
                &format!(
                    "{mark}{:<key_w$} {best:>8} {last:>8}",
                    ellipsize(&s.key, key_w)
                ),
                width,
            ),
            style,
        )));
    }
    if let Some(detail) = app.details.get(&id) {
        lines.push(Line::from(Span::styled("config", dim)));
        for (k, v) in super::visible_config(&detail.config) {
            lines.push(Line::from(ellipsize(&format!("{k} = {v}"), width)));
        }
    } else {
        lines.push(Line::from(Span::styled("config: loading…", dim)));
    }
    let title = format!(" run {} · {} ", run.id, run.experiment);
    frame.render_widget(
        Paragraph::new(lines).block(pane(ellipsize(
            &title,
            (area.width as usize).saturating_sub(2),
        ))),
        area,
    );
}

/// Words into lines of at most `width` characters (a longer word is cut).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !line.is_empty() && !fits {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&ellipsize(word, width));
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

fn draw_chart(frame: &mut Frame, area: Rect, app: &App, id: i64) {
    let Some(key) = app.chart_key() else {
        let msg = if app.details.contains_key(&id) {
            "No metrics logged yet."
        } else {
            "Loading…"
        };
        frame.render_widget(Paragraph::new(msg).block(pane(" chart ")), area);
        return;
    };
    let keys = app
        .details
        .get(&id)
        .map(|d| d.metric_keys.as_slice())
        .unwrap_or(&[]);
    let at = keys.iter().position(|k| k == key).map_or(0, |p| p + 1);
    let title = format!(" {key} ({at}/{}) ←→ ", keys.len());
    match app.series.get(&(id, key.to_owned())) {
        Some(series) => {
            let data = chart_data(&[series]);
            frame.render_widget(line_chart(&data, &[], title), area);
        }
        None => frame.render_widget(Paragraph::new("Loading…").block(pane(title)), area),
    }
}

/// The finite points of each series (a NaN breaks nothing, it is just not drawn).
pub(crate) fn chart_data(series: &[&Series]) -> Vec<Vec<(f64, f64)>> {
    series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .filter(|(_, y)| y.is_finite())
                .collect()
        })
        .collect()
}

/// A line chart of several series, coloured by [`PALETTE`]; `names` label the legend.
pub(crate) fn line_chart<'a>(
    data: &'a [Vec<(f64, f64)>],
    names: &[String],
    title: String,
) -> Chart<'a> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in data.iter().flatten() {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let datasets = data
        .iter()
        .enumerate()
        .map(|(i, pts)| {
            let mut ds = Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(PALETTE[i % PALETTE.len()]))
                .data(pts);
            if let Some(name) = names.get(i) {
                ds = ds.name(name.clone());
            }
            ds
        })
        .collect();
    let label = |v: f64| Span::raw(format_value(v));
    // The legend goes where curves usually are not: top right for falling ones (loss), bottom
    // right for rising ones (accuracy).
    let rising = data
        .first()
        .and_then(|d| Some(d.last()?.1 > d.first()?.1))
        .unwrap_or(false);
    let position = if rising {
        LegendPosition::BottomRight
    } else {
        LegendPosition::TopRight
    };
    Chart::new(datasets)
        .legend_position(Some(position))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(3, 4)))
        .block(pane(title))
        .x_axis(
            Axis::default()
                .bounds([x0, x1])
                .labels(vec![
                    Span::raw(format!("{x0:.0}")),
                    Span::raw(format!("{x1:.0}")),
                ])
                .style(Style::new().fg(Color::DarkGray)),
        )
        .y_axis(
            Axis::default()
                .bounds([y0, y1])
                .labels(vec![label(y0), label((y0 + y1) / 2.0), label(y1)])
                .style(Style::new().fg(Color::DarkGray)),
        )
}

fn draw_logs(frame: &mut Frame, area: Rect, app: &App, id: i64) {
    let width = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = match app.details.get(&id) {
        Some(d) if d.log_tail.is_empty() => vec![Line::from(Span::styled(
            "no log lines",
            Style::new().fg(Color::DarkGray),
        ))],
        Some(d) => {
            let keep = area.height.saturating_sub(2) as usize;
            let skip = d.log_tail.len().saturating_sub(keep);
            d.log_tail[skip..]
                .iter()
                .map(|l| {
                    let style = match l.level.as_str() {
                        "error" | "ERROR" => Style::new().fg(Color::Red),
                        "warn" | "WARN" => Style::new().fg(Color::Yellow),
                        _ => Style::new(),
                    };
                    Line::from(Span::styled(ellipsize(&l.text, width), style))
                })
                .collect()
        }
        None => vec![Line::from("Loading…")],
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(pane(" log (last lines) ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::model::{MetricSummary, RunStatus, RunSummary};

    fn run(status: RunStatus, summaries: &[(&str, f64)]) -> RunSummary {
        RunSummary {
            id: 1,
            experiment: "e".into(),
            cell: None,
            axes: Vec::new(),
            status,
            progress: Some((400, 1000)),
            started_ms: Some(0),
            ended_ms: None,
            heartbeat_ms: None,
            worker: None,
            failure_class: None,
            failure_message: None,
            summaries: summaries
                .iter()
                .map(|(k, v)| MetricSummary {
                    key: (*k).into(),
                    goal: None,
                    last: Some(*v),
                    best: Some(*v),
                    min: Some(*v),
                    max: Some(*v),
                    count: 1,
                })
                .collect(),
            in_plan: None,
        }
    }

    #[test]
    fn a_running_run_shows_throughput_mfu_memory_and_its_eta() {
        let r = run(
            RunStatus::Running,
            &[
                ("perf/samples_per_s", 256.0),
                ("perf/step_time_s", 0.5),
                ("perf/mfu", 0.42),
                ("system/proc/rss_mb", 3072.0),
                ("system/gpu/0/peak_allocated_mb", 40960.0),
            ],
        );
        assert_eq!(
            cost_lines(&r, 60),
            [
                "256 samples/s · MFU 42.0%",
                "RSS 3.0 GiB · GPU 40.0 GiB · ETA 5 min 00 s"
            ]
        );
        // Nothing measured yet: every figure unknown, never a made-up one.
        assert_eq!(
            cost_lines(&run(RunStatus::Running, &[]), 60),
            ["– samples/s · MFU –", "RSS – · ETA –"]
        );
        // A finished run without telemetry has no such lines; one with it has no ETA.
        assert!(cost_lines(&run(RunStatus::Finished, &[]), 60).is_empty());
        let done = run(RunStatus::Finished, &[("perf/samples_per_s", 10.0)]);
        assert_eq!(cost_lines(&done, 60)[1], "RSS –");
    }

    /// The run view of a run submitted to Slurm shows what the scheduler says of its task.
    #[test]
    fn a_slurm_run_shows_its_task_state() {
        use crate::tui::model::RunDetail;
        use ratatui::backend::TestBackend;
        let mut app = App::new("test");
        let r = run(RunStatus::Queued, &[]);
        app.set_runs(vec![r.clone()]);
        app.open_run = Some(1);
        app.details.insert(
            1,
            RunDetail {
                run: r,
                config: Vec::new(),
                metric_keys: Vec::new(),
                log_tail: Vec::new(),
                scheduler: Some("job 12_3: PENDING (Dependency)".into()),
            },
        );
        let mut terminal = ratatui::Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| draw(f, f.area(), &app)).unwrap();
        let text: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(
            text.contains("slurm job 12_3: PENDING (Dependency)"),
            "{text}"
        );
    }
}
