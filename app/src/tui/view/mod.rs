//! Rendering: pure functions of [`App`] into a ratatui frame.

mod compare;
mod help;
mod picker;
mod run;
mod runs;
mod sweeps;
mod weights;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::action::InputMode;
use super::layout::TAB_SEPARATOR;
use super::model::{CellState, RunStatus};
use super::state::{App, View};

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, tabs, app);
    match app.view {
        View::Runs => runs::draw(frame, body, app),
        View::Run => run::draw(frame, body, app),
        View::Compare => compare::draw(frame, body, app),
        View::Weights => weights::draw(frame, body, app),
        View::Sweeps => sweeps::draw(frame, body, app),
    }
    draw_status(frame, status, app);
    if app.mode == InputMode::Help {
        help::draw(frame, body);
    }
    if app.mode == InputMode::Open {
        picker::draw(frame, body, app);
    }
    if let (InputMode::Confirm, Some(p)) = (app.mode, &app.pending) {
        draw_confirm(frame, body, &p.question);
    }
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App) {
    let mut spans = Vec::new();
    for (i, view) in View::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(
                TAB_SEPARATOR,
                Style::new().fg(Color::DarkGray),
            ));
        }
        let style = if *view == app.view {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(format!(" {} ", view.title()), style));
    }
    let left = Line::from(spans);
    let c = app.counts();
    let counts_w = [c.running, c.finished, c.failed + c.crashed, c.queued]
        .iter()
        .map(|n| n.to_string().len() + 2)
        .sum::<usize>();
    // The store's path gives way to the tabs: cut from the left, one space kept between.
    let room = (area.width as usize).saturating_sub(left.width() + counts_w + 1);
    let label = ellipsize_left(&app.source_label, room);
    let right = Line::from(vec![
        Span::styled(
            format!("{}▶ ", c.running),
            Style::new().fg(status_color(RunStatus::Running)),
        ),
        Span::styled(
            format!("{}✓ ", c.finished),
            Style::new().fg(status_color(RunStatus::Finished)),
        ),
        Span::styled(
            format!("{}✗ ", c.failed + c.crashed),
            Style::new().fg(status_color(RunStatus::Failed)),
        ),
        Span::styled(
            format!("{}… ", c.queued),
            Style::new().fg(status_color(RunStatus::Queued)),
        ),
        Span::styled(label, Style::new().fg(Color::DarkGray)),
    ])
    .right_aligned();
    let right_width = right.width() as u16;
    let [l, r] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_width)]).areas(area);
    frame.render_widget(left, l);
    frame.render_widget(right, r);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let line = match app.mode {
        InputMode::Filter => {
            let mut spans = vec![
                Span::styled("/", Style::new().fg(Color::Yellow)),
                Span::raw(app.filter_input.clone()),
                Span::styled("█", Style::new().fg(Color::Yellow)),
            ];
            match &app.filter_error {
                Some(e) => spans.push(Span::styled(format!("  {e}"), Style::new().fg(Color::Red))),
                None => spans.push(Span::styled(
                    "  Enter apply · Esc cancel · status:failed  axis=value",
                    Style::new().fg(Color::DarkGray),
                )),
            }
            Line::from(spans)
        }
        InputMode::Confirm => Line::from(Span::styled(
            "y: yes · any other key: no",
            Style::new().fg(Color::Yellow),
        )),
        InputMode::Open => Line::from(Span::styled(
            "type part of a path · ↑↓ choose · Tab complete · Enter open · Esc cancel",
            Style::new().fg(Color::DarkGray),
        )),
        _ => match (&app.error, &app.status) {
            (Some(e), _) => Line::from(Span::styled(e.clone(), Style::new().fg(Color::Red))),
            (None, Some(s)) => Line::from(Span::styled(s.clone(), Style::new().fg(Color::Green))),
            (None, None) => hints(app.view),
        },
    };
    frame.render_widget(line, area);
}

fn hints(view: View) -> Line<'static> {
    let text = match view {
        View::Runs => {
            "? help  / filter  Enter open  space mark  c compare  a group  1-7 sort  q quit"
        }
        View::Run => "? help  ←→ metric  ↑↓ run  w weights  d cancel  r retry  Esc back  q quit",
        View::Compare => "? help  ←→ metric  Enter open  Esc back  q quit",
        View::Weights => "? help  ←→ step  ↑↓ run  Esc back  q quit",
        View::Sweeps => "? help  Enter plan  Esc list  o open file  Q queue  W/X worker  q quit",
    };
    Line::from(Span::styled(text, Style::new().fg(Color::DarkGray)))
}

fn draw_confirm(frame: &mut Frame, body: Rect, question: &str) {
    let width = (question.chars().count() as u16 + 6).clamp(20, body.width);
    let area = centered(body, width, 3);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(format!("{question} (y/n)"))
            .wrap(Wrap { trim: true })
            .block(
                Block::new()
                    .borders(Borders::ALL)
                    .border_style(Style::new().fg(Color::Yellow)),
            ),
        area,
    );
}

pub(crate) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(crate) fn status_color(status: RunStatus) -> Color {
    match status {
        RunStatus::Queued => Color::Blue,
        RunStatus::Running => Color::Yellow,
        RunStatus::Finished => Color::Green,
        RunStatus::Failed => Color::Red,
        RunStatus::Crashed => Color::Magenta,
        RunStatus::Cancelled => Color::DarkGray,
    }
}

pub(crate) fn cell_color(state: CellState) -> Color {
    match state {
        CellState::New => Color::Gray,
        CellState::Queued => Color::Blue,
        CellState::Running => Color::Yellow,
        CellState::Stale => Color::Magenta,
        CellState::Unresponsive => Color::LightRed,
        CellState::Done => Color::Green,
        CellState::Failed => Color::Red,
        CellState::Cancelled => Color::DarkGray,
    }
}

/// A fixed palette for curves, indexed by series (colours stay put as runs come and go).
pub(crate) const PALETTE: [Color; 8] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::Red,
    Color::Blue,
    Color::LightCyan,
    Color::LightYellow,
];

/// Config entries worth showing: the runner's internal params (`_settings`, `_identity`,
/// `_role`: whole JSON documents) are left out.
pub(crate) fn visible_config(
    config: &[(String, String)],
) -> impl Iterator<Item = &(String, String)> {
    config.iter().filter(|(k, _)| !k.starts_with('_'))
}

/// A block with a title, the one style every pane uses.
pub(crate) fn pane(title: impl Into<Line<'static>>) -> Block<'static> {
    Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(title)
}

/// Keeps the end of `text` in `width` characters, marking the cut with `…` (paths: the file
/// name matters most).
pub(crate) fn ellipsize_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let tail: String = text.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// Cuts `text` to `width` characters, marking the cut with `…`.
pub(crate) fn ellipsize(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}
