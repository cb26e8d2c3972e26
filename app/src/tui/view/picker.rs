//! The `o` overlay: experiment files under the working directory, filtered by what is typed
//! (a file not in the store yet opens too; Enter on no match opens the path as typed).

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use super::{centered, ellipsize};
use crate::tui::state::App;

pub fn draw(frame: &mut Frame, body: Rect, app: &App) {
    let width = body.width.saturating_sub(4).clamp(20, 76);
    let height = body.height.saturating_sub(2).clamp(5, 16);
    let area = centered(body, width, height);
    frame.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::Cyan))
        .title(" open an experiment file ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = inner.width as usize;
    let mut lines = vec![Line::from(vec![
        Span::styled("> ", Style::new().fg(Color::Yellow)),
        Span::raw(app.picker_input.clone()),
        Span::styled("█", Style::new().fg(Color::Yellow)),
    ])];
    let matches = app.picker_matches();
    if matches.is_empty() {
        let note = if app.picker_input.trim().is_empty() {
            "no experiment file (*.toml) under this folder; type its path".to_string()
        } else {
            "no file matches: Enter opens the path as typed".to_string()
        };
        lines.push(Line::from(Span::styled(
            ellipsize(&note, w),
            Style::new().fg(Color::DarkGray),
        )));
    }
    // Keep the cursor's file on screen.
    let rows = (inner.height as usize).saturating_sub(1).max(1);
    let first = app.picker_cursor.saturating_sub(rows - 1);
    for (i, f) in matches.iter().enumerate().skip(first).take(rows) {
        let style = if i == app.picker_cursor {
            Style::new()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        lines.push(Line::from(Span::styled(ellipsize(f, w), style)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
