//! The `?` overlay: every key, from the same table the key map is tested against.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::tui::action::HELP;

pub fn draw(frame: &mut Frame, area: Rect) {
    frame.render_widget(Clear, area);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::Cyan))
        .title(" keys · any key closes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [left, right] =
        Layout::horizontal([Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)]).areas(inner);
    // Sections alternate between the columns so that both stay short enough for 80×24.
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for (i, (title, keys)) in HELP.iter().enumerate() {
        let col = if i % 2 == 0 { &mut l } else { &mut r };
        col.push(Line::from(Span::styled(
            *title,
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        )));
        for (k, what) in *keys {
            col.push(Line::from(vec![
                Span::styled(format!("{k:<17}"), Style::new().fg(Color::Yellow)),
                Span::raw(*what),
            ]));
        }
    }
    frame.render_widget(Paragraph::new(l), left);
    frame.render_widget(Paragraph::new(r), right);
}
