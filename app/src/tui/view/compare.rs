//! Several runs at once: their curves overlaid and the config keys where they differ.

use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::run::{chart_data, line_chart};
use super::{ellipsize, pane, PALETTE};
use crate::tui::state::App;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let runs = app.compare_runs();
    if runs.is_empty() {
        frame.render_widget(
            Paragraph::new("Mark runs with space in Runs, then press c to compare them.")
                .block(pane(" compare ")),
            area,
        );
        return;
    }
    let [chart, diff] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Min(5)]).areas(area);
    let metric = app.metric();
    let series: Vec<_> = runs
        .iter()
        .filter_map(|&r| app.series.get(&(r, metric.to_owned())))
        .collect();
    let names: Vec<String> = series.iter().map(|s| format!("#{}", s.run)).collect();
    let title = format!(" {metric} · {} runs · ←→ metric ", runs.len());
    if series.is_empty() {
        frame.render_widget(Paragraph::new("Loading curves…").block(pane(title)), chart);
    } else {
        let data = chart_data(&series);
        frame.render_widget(line_chart(&data, &names, title), chart);
    }
    draw_diff(frame, diff, app, &runs);
}

/// Config keys whose values are not the same in every compared run.
pub fn config_diff(app: &App, runs: &[i64]) -> Vec<(String, Vec<String>)> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, id) in runs.iter().enumerate() {
        let Some(detail) = app.details.get(id) else {
            continue;
        };
        for (k, v) in super::visible_config(&detail.config) {
            keys.entry(k.clone())
                .or_insert_with(|| vec!["∅".to_owned(); runs.len()])[i] = v.clone();
        }
    }
    keys.into_iter()
        .filter(|(_, values)| values.iter().any(|v| *v != values[0]))
        .collect()
}

fn draw_diff(frame: &mut Frame, area: Rect, app: &App, runs: &[i64]) {
    let loaded = runs.iter().all(|r| app.details.contains_key(r));
    let diff = config_diff(app, runs);
    let col = ((area.width.saturating_sub(24)) / runs.len().max(1) as u16).max(6);
    let header = Row::new(std::iter::once(Cell::from("config key")).chain(
        runs.iter().enumerate().map(|(i, r)| {
            Cell::from(Span::styled(
                format!("#{r}"),
                Style::new().fg(PALETTE[i % PALETTE.len()]),
            ))
        }),
    ))
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = diff.iter().map(|(k, values)| {
        Row::new(
            std::iter::once(Cell::from(ellipsize(k, 22))).chain(
                values
                    .iter()
                    .map(|v| Cell::from(ellipsize(v, col as usize))),
            ),
        )
    });
    let widths: Vec<Constraint> = std::iter::once(Constraint::Length(22))
        .chain(runs.iter().map(|_| Constraint::Length(col)))
        .collect();
    let title = if !loaded {
        " config differences (loading…) ".to_owned()
    } else if diff.is_empty() {
        " config differences: none ".to_owned()
    } else {
        format!(" config differences: {} keys ", diff.len())
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(pane(title).style(Style::new().fg(Color::Reset))),
        area,
    );
}
