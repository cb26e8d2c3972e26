//! The runs table, its grouped form, and the empty-store screen.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{ellipsize, pane, status_color};
use crate::tui::model::{RunStatus, RunSummary};
use crate::tui::state::App;
use crate::tui::table::{format_duration, format_value, headline, Column};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    if !app.loaded {
        let p = Paragraph::new(format!("Reading runs from {} …", app.source_label))
            .block(pane(" runs "));
        frame.render_widget(p, area);
        return;
    }
    if app.runs.is_empty() {
        draw_empty(frame, area, app);
        return;
    }
    if app.group_by.is_some() {
        draw_groups(frame, area, app);
    } else {
        draw_table(frame, area, app);
    }
}

fn title(app: &App) -> Line<'static> {
    let arrow = if app.sort.descending { "↓" } else { "↑" };
    let mut spans = vec![Span::raw(format!(
        " runs {}/{} · sort {}{arrow} · key {} ",
        app.visible.len(),
        app.runs.len(),
        app.sort.column.title(),
        if app.metric().is_empty() {
            "-"
        } else {
            app.metric()
        },
    ))];
    if app.partial {
        spans.push(Span::styled(
            "· reading all runs… ",
            Style::new().fg(Color::Yellow),
        ));
    }
    if !app.filter_text.is_empty() {
        spans.push(Span::styled(
            format!("· /{} ", app.filter_text),
            Style::new().fg(Color::Yellow),
        ));
    }
    if !app.marked.is_empty() {
        spans.push(Span::styled(
            format!("· {} marked ", app.marked.len()),
            Style::new().fg(Color::Cyan),
        ));
    }
    Line::from(spans)
}

fn header(app: &App) -> Row<'static> {
    let cells = Column::ALL.iter().enumerate().map(|(i, c)| {
        let mut name = format!("{}{}", i + 1, c.title());
        if *c == Column::Metric && !app.metric().is_empty() {
            name = format!("7{}", app.metric());
        }
        if *c == app.sort.column {
            name.push(if app.sort.descending { '↓' } else { '↑' });
        }
        Cell::from(name)
    });
    Row::new(cells).style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Gray))
}

fn widths() -> [Constraint; 7] {
    [
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Min(14),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(9),
    ]
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App) {
    let page = app.page_rows();
    let end = (app.offset + page).min(app.visible.len());
    // Only the rows on screen are built, so the frame time does not grow with the store.
    let rows = app.visible[app.offset..end]
        .iter()
        .map(|&i| run_row(&app.runs[i], &app.axes_column[i], app));
    let table = Table::new(rows, widths())
        .header(header(app))
        .block(pane(title(app)))
        .column_spacing(1)
        .row_highlight_style(
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
        );
    let mut state = TableState::default()
        .with_selected((!app.visible.is_empty()).then(|| app.cursor - app.offset));
    frame.render_stateful_widget(table, area, &mut state);
    if app.visible.is_empty() {
        let inner = Rect {
            y: area.y + 2,
            height: area.height.saturating_sub(3),
            x: area.x + 2,
            width: area.width.saturating_sub(4),
        };
        frame.render_widget(
            Paragraph::new("No run matches the filter. Esc clears it.")
                .style(Style::new().fg(Color::DarkGray)),
            inner,
        );
    }
}

fn run_row(run: &RunSummary, axes: &str, app: &App) -> Row<'static> {
    let mark = if app.marked.contains(&run.id) {
        "●"
    } else {
        " "
    };
    let progress = match (run.progress, run.status) {
        (Some((step, total)), RunStatus::Running | RunStatus::Queued) if total > 0 => {
            format!("{:>3}%", step * 100 / total)
        }
        (_, RunStatus::Finished) => "100%".to_owned(),
        (Some((step, total)), _) if total > 0 => format!("{:>3}%", step * 100 / total),
        _ => "-".to_owned(),
    };
    let duration = run
        .duration_ms(app.now_ms)
        .map(format_duration)
        .unwrap_or_else(|| "-".to_owned());
    let metric = headline(run, app.metric())
        .map(format_value)
        .unwrap_or_else(|| "-".to_owned());
    Row::new(vec![
        Cell::from(format!("{mark}{}", run.id)),
        Cell::from(ellipsize(&run.experiment, 11)),
        Cell::from(axes.to_owned()),
        Cell::from(Span::styled(
            run.status.as_str(),
            Style::new().fg(status_color(run.status)),
        )),
        Cell::from(progress),
        Cell::from(duration),
        Cell::from(metric),
    ])
}

fn draw_groups(frame: &mut Frame, area: Rect, app: &App) {
    let axis = app.group_by.clone().unwrap_or_default();
    let page = app.page_rows();
    let end = (app.offset + page).min(app.groups.len());
    let several = crate::tui::table::several_experiments(&app.groups);
    let left_out: usize = app.groups.iter().map(|g| g.left_out).sum();
    let rows = app.groups[app.offset..end].iter().map(|g| {
        let stat = match (g.mean, g.std) {
            (Some(m), Some(s)) => format!("{} ± {}", format_value(m), format_value(s)),
            (Some(m), None) => format_value(m),
            _ => "-".to_owned(),
        };
        Row::new(vec![
            Cell::from(g.label(several)),
            Cell::from(g.runs.to_string()),
            Cell::from(stat),
            Cell::from(g.with_metric.to_string()),
            Cell::from(Span::styled(
                g.running.to_string(),
                Style::new().fg(status_color(RunStatus::Running)),
            )),
            Cell::from(Span::styled(
                g.failed.to_string(),
                Style::new().fg(status_color(RunStatus::Failed)),
            )),
        ])
    });
    let header = Row::new(vec![
        axis.clone(),
        "runs".into(),
        format!("{} mean ± std", app.metric()),
        "n".into(),
        "running".into(),
        "failed".into(),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD).fg(Color::Gray));
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(5),
            Constraint::Length(24),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Length(7),
        ],
    )
    .header(header)
    .block(pane(format!(
        " {} runs grouped by {axis}{} (a: next axis, Enter: drill in) ",
        app.visible.len() - left_out,
        if left_out > 0 {
            format!(", {left_out} not in their file's plan left out")
        } else {
            String::new()
        }
    )))
    .row_highlight_style(
        Style::new()
            .bg(Color::DarkGray)
            .add_modifier(Modifier::BOLD),
    );
    let mut state = TableState::default()
        .with_selected((!app.groups.is_empty()).then(|| app.cursor - app.offset));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_empty(frame: &mut Frame, area: Rect, app: &App) {
    let cmd = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let dim = Style::new().fg(Color::DarkGray);
    let text = vec![
        Line::from(""),
        Line::from(format!("No runs in {} yet.", app.source_label)),
        Line::from(""),
        Line::from("Start the demo sweep:"),
        Line::from(Span::styled("    make demo", cmd)),
        Line::from("or run an experiment file:"),
        Line::from(Span::styled("    towerlab run experiments/demo.toml", cmd)),
        Line::from(""),
        Line::from(Span::styled(
            "Runs appear here live while they train (the store is polled every 0.25 s).",
            dim,
        )),
        Line::from(Span::styled(
            "e: sweeps (queue a file, start a worker) · ?: help · q: quit",
            dim,
        )),
    ];
    frame.render_widget(Paragraph::new(text).block(pane(" runs ")), area);
}
