//! Sweeps: experiments, the plan of the chosen one (state per cell), workers and the local worker.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{cell_color, ellipsize, pane};
use crate::tui::message::LocalWorker;
use crate::tui::model::CellState;
use crate::tui::state::{App, SweepPane};

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let [list, right] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(30)]).areas(area);
    let [plan, workers] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(7)]).areas(right);
    draw_experiments(frame, list, app);
    draw_plan(frame, plan, app);
    draw_workers(frame, workers, app);
}

/// A pane's block, its border lit when it has the keyboard.
fn focus_pane(title: impl Into<Line<'static>>, focused: bool) -> ratatui::widgets::Block<'static> {
    let block = pane(title);
    if focused {
        block.border_style(Style::new().fg(Color::Cyan))
    } else {
        block
    }
}

fn focus_style(active: bool) -> Style {
    if active {
        Style::new()
            .bg(Color::DarkGray)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

fn draw_experiments(frame: &mut Frame, area: Rect, app: &App) {
    // Borders, the focus marker and the shown-plan mark.
    let width = area.width.saturating_sub(4) as usize;
    let items: Vec<ListItem> = app
        .experiments
        .iter()
        .map(|e| {
            let shown = app.plan_for.as_ref() == Some(e);
            let mark = if shown { "▸" } else { " " };
            let mut lines = vec![Line::from(format!("{mark}{}", ellipsize(&e.name, width)))];
            if let Some(p) = &e.path {
                lines.push(Line::from(Span::styled(
                    format!(" {}", ellipsize(p, width)),
                    Style::new().fg(Color::DarkGray),
                )));
            }
            ListItem::new(lines)
        })
        .collect();
    if items.is_empty() {
        frame.render_widget(
            Paragraph::new("No experiments yet.\nPut experiment files in experiments/*.toml.")
                .block(pane(" experiments ")),
            area,
        );
        return;
    }
    let focused = app.sweep_pane == SweepPane::Experiments;
    let list = List::new(items)
        .block(focus_pane(" experiments ", focused))
        .highlight_symbol(if focused { "›" } else { " " })
        .highlight_style(focus_style(app.sweep_pane == SweepPane::Experiments));
    let mut state = ListState::default().with_selected(Some(app.experiment_cursor));
    frame.render_stateful_widget(list, area, &mut state);
}

fn draw_plan(frame: &mut Frame, area: Rect, app: &App) {
    let Some(exp) = &app.plan_for else {
        frame.render_widget(
            Paragraph::new("Pick an experiment and press Enter to see its plan.")
                .block(pane(" plan ")),
            area,
        );
        return;
    };
    let Some(plan) = app.plan.as_ref().filter(|p| p.experiment == exp.name) else {
        frame.render_widget(
            Paragraph::new("Reading the plan…").block(pane(format!(" plan · {} ", exp.name))),
            area,
        );
        return;
    };
    let mut counts: Vec<(CellState, usize)> = Vec::new();
    for c in &plan.cells {
        match counts.iter_mut().find(|(s, _)| *s == c.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((c.state, 1)),
        }
    }
    let mut title = vec![Span::raw(format!(" plan · {} · ", exp.name))];
    for (state, n) in &counts {
        title.push(Span::styled(
            format!("{n} {} ", state.as_str()),
            Style::new().fg(cell_color(*state)),
        ));
    }

    // A cell with a run reads as that run does in the runs table; the others from their key.
    let keys: Vec<&str> = plan.cells.iter().map(|c| c.cell_key.as_str()).collect();
    let parsed = crate::tui::axes::plan_column(&keys);
    let shown = plan.cells.iter().zip(parsed).map(|(c, parsed)| {
        c.run
            .and_then(|r| app.axes_of(r))
            .map_or(parsed, str::to_owned)
    });
    let rows = plan.cells.iter().zip(shown).map(|(c, shown)| {
        let progress = match c.progress {
            Some((s, t)) if t > 0 => format!("{:>3}%", s * 100 / t),
            _ => String::new(),
        };
        Row::new(vec![
            Cell::from(shown),
            Cell::from(Span::styled(
                c.state.as_str(),
                Style::new().fg(cell_color(c.state)),
            )),
            Cell::from(c.run.map(|r| format!("#{r}")).unwrap_or_default()),
            Cell::from(progress),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(16),
            Constraint::Length(12),
            Constraint::Length(5),
            Constraint::Length(5),
        ],
    )
    .header(
        Row::new(vec!["cell", "state", "run", "prog"])
            .style(Style::new().fg(Color::Gray).add_modifier(Modifier::BOLD)),
    )
    .block(
        focus_pane(Line::from(title), app.sweep_pane == SweepPane::Cells).title_bottom(
            Line::from(format!(
                " ETA {} ",
                experiments::cost::eta_text(grid_eta_s(app, plan))
            ))
            .right_aligned(),
        ),
    )
    // The marker shows where the keys go without colours, too.
    .highlight_symbol("› ")
    .row_highlight_style(focus_style(app.sweep_pane == SweepPane::Cells));
    let mut state = TableState::default().with_selected(
        (app.sweep_pane == SweepPane::Cells && !plan.cells.is_empty()).then_some(app.cell_cursor),
    );
    frame.render_stateful_widget(table, area, &mut state);
}

/// The grid's time left: its cells not done, each at the mean wall time of the finished runs
/// of its cell's other seeds (else of the grid's, or the pre-training runs'), running ones from
/// their own progress; unknown when a cell has nothing comparable.
fn grid_eta_s(app: &App, plan: &crate::tui::model::Plan) -> Option<f64> {
    use experiments::cost::{grid_eta_s, run_eta_s, RunDone, RunLeft, Running};
    // `seed=N` apart, a cell's seeds are one cell; pre-training runs are their own kind.
    let cell_of = |key: &str| {
        key.split(',')
            .filter(|part| !part.starts_with("seed="))
            .collect::<Vec<_>>()
            .join(",")
    };
    let kind_of = |key: &str| {
        if key.starts_with("pretrain") {
            "pretrain"
        } else {
            "grid"
        }
    };
    let mut done = Vec::new();
    let mut left = Vec::new();
    let mut running = 0;
    for c in &plan.cells {
        let run = c.run.and_then(|r| app.run_by_id(r));
        if c.state == CellState::Done {
            if let Some(ms) = run
                .and_then(|r| r.ended_ms.zip(r.started_ms))
                .map(|(e, s)| e - s)
            {
                done.push(RunDone {
                    cell: cell_of(&c.cell_key),
                    kind: kind_of(&c.cell_key).into(),
                    wall_s: ms as f64 / 1000.0,
                });
            }
            continue;
        }
        let now = matches!(c.state, CellState::Running | CellState::Unresponsive);
        running += usize::from(now);
        let own = run.filter(|_| now).map(|r| {
            let step_time = r
                .summary(experiments::cost::names::STEP_TIME_S)
                .and_then(|s| s.last);
            let eta = r
                .progress
                .and_then(|(s, t)| run_eta_s(s.max(0) as u64, t.max(0) as u64, step_time));
            match eta {
                Some(eta) => Running::Eta(eta),
                None => Running::Elapsed(r.duration_ms(app.now_ms).unwrap_or(0) as f64 / 1000.0),
            }
        });
        left.push(RunLeft {
            cell: cell_of(&c.cell_key),
            kind: kind_of(&c.cell_key).into(),
            running: own,
        });
    }
    grid_eta_s(&left, &done, running)
}

fn draw_workers(frame: &mut Frame, area: Rect, app: &App) {
    let dim = Style::new().fg(Color::DarkGray);
    let local = match &app.local_worker {
        LocalWorker::Stopped => Line::from(vec![
            Span::raw("local worker: stopped "),
            Span::styled("(W starts one)", dim),
        ]),
        LocalWorker::Running { pid } => Line::from(vec![
            Span::styled(
                format!("local worker: running, pid {pid} "),
                Style::new().fg(Color::Green),
            ),
            Span::styled("(X stops it)", dim),
        ]),
        LocalWorker::Exited { message } => Line::from(Span::styled(
            format!("local worker: {message}"),
            Style::new().fg(Color::Red),
        )),
    };
    let mut lines = vec![local];
    if app.workers.is_empty() {
        lines.push(Line::from(Span::styled("no worker seen in the store", dim)));
    }
    for w in &app.workers {
        let age = ((app.now_ms - w.seen_ms).max(0) / 1000).to_string();
        let doing = w
            .run
            .map(|r| format!("run #{r}"))
            .unwrap_or_else(|| "idle".to_owned());
        lines.push(Line::from(format!(
            "{} {}:{} {} · {doing} · seen {age}s ago",
            ellipsize(&w.id, 12),
            w.host,
            w.pid,
            w.device
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(pane(format!(" workers ({}) ", app.workers.len()))),
        area,
    );
}
