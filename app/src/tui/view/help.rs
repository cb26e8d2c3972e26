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
    // Sections split between the columns (each keeping the table's order) so that the
    // longer column is as short as it can be: everything fits at 80×24.
    let sizes: Vec<usize> = HELP.iter().map(|(_, keys)| keys.len() + 1).collect();
    let total: usize = sizes.iter().sum();
    let left_of = |mask: u32| -> usize {
        (0..HELP.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| sizes[i])
            .sum()
    };
    let best = (0..1u32 << HELP.len())
        .min_by_key(|&m| {
            let left = left_of(m);
            (left.max(total - left), m & 1 == 0)
        })
        .unwrap_or(0);
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for (i, (title, keys)) in HELP.iter().enumerate() {
        let col = if best & (1 << i) != 0 { &mut l } else { &mut r };
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
