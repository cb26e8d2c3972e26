//! Manager weights: per modality, cross-modal layers × unimodal experts as a coloured grid —
//! the terminal twin of the ManagerTower paper's Fig. 6.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::pane;
use crate::tui::model::ModalityWeights;
use crate::tui::state::App;

/// Characters per grid cell (`0.123` plus a space).
const CELL: u16 = 6;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let run = app.open_run.or(app.current_run().map(|r| r.id));
    let Some(run) = run else {
        frame.render_widget(
            Paragraph::new("No run selected: pick one in Runs and press w.")
                .block(pane(" weights ")),
            area,
        );
        return;
    };
    let Some(w) = app.weights.as_ref().filter(|w| w.run == run) else {
        frame.render_widget(
            Paragraph::new(format!(
                "Run {run} has no manager weights (yet): only ManagerTower runs log them."
            ))
            .block(pane(format!(" weights · run {run} "))),
            area,
        );
        return;
    };
    let pos = w
        .steps
        .iter()
        .position(|s| *s == w.step)
        .map_or(0, |p| p + 1);
    let title = format!(
        " manager weights · run {run} · step {} ({pos}/{}) ←→ ",
        w.step,
        w.steps.len()
    );
    let block = pane(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if w.modalities.is_empty() {
        return;
    }
    // Side by side when they fit, else stacked.
    let need: u16 = w.modalities.iter().map(|m| grid_width(m) + 2).sum();
    let areas: Vec<Rect> = if need <= inner.width {
        Layout::horizontal(
            w.modalities
                .iter()
                .map(|m| Constraint::Length(grid_width(m) + 2)),
        )
        .split(inner)
        .to_vec()
    } else {
        Layout::vertical(
            w.modalities
                .iter()
                .map(|_| Constraint::Ratio(1, w.modalities.len() as u32)),
        )
        .split(inner)
        .to_vec()
    };
    for (m, a) in w.modalities.iter().zip(areas) {
        frame.render_widget(Paragraph::new(grid_lines(m)), a);
    }
}

/// Columns of the raw cross-modal weights (the most any layer has).
fn cross_columns(m: &ModalityWeights) -> usize {
    m.cross.iter().map(Vec::len).max().unwrap_or(0)
}

fn title(m: &ModalityWeights) -> String {
    format!("{} (layer × expert)", m.modality)
}

/// Columns one modality's grid takes, its title included, so that two never overlap.
pub fn grid_width(m: &ModalityWeights) -> u16 {
    let experts = m.grid.iter().map(Vec::len).max().unwrap_or(0) as u16;
    let cross = cross_columns(m) as u16;
    let grid = 4 + experts * CELL + if cross > 0 { 2 + cross * CELL } else { 0 };
    let footer = "min 0.000  max 0.000".chars().count() as u16;
    grid.max(title(m).chars().count() as u16).max(footer)
}

/// The grid as lines: a header of expert indices, one line per layer (top layer first, as in
/// the paper's figure), each value on a background coloured by its size within the grid; the
/// raw weights on previous cross-modal outputs (`x-1`: the layer below) after a bar, uncoloured.
pub fn grid_lines(m: &ModalityWeights) -> Vec<Line<'static>> {
    let experts = m.grid.iter().map(Vec::len).max().unwrap_or(0);
    let cross = cross_columns(m);
    let (lo, hi) = m
        .grid
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let dim = Style::new().fg(Color::DarkGray);
    let mut lines = vec![Line::from(Span::styled(
        title(m),
        Style::new().fg(Color::Gray),
    ))];
    let mut header = String::from("    ");
    for e in 0..experts {
        header.push_str(&format!("{:>5} ", format!("e{e}")));
    }
    if cross > 0 {
        header.push_str("│ ");
        for k in 1..=cross {
            header.push_str(&format!("{:>5} ", format!("x-{k}")));
        }
    }
    lines.push(Line::from(Span::styled(header, dim)));
    let layers = m.grid.len().max(m.cross.len());
    for layer in (0..layers).rev() {
        let mut spans = vec![Span::styled(format!("{:<4}", format!("L{layer}")), dim)];
        let row = m.grid.get(layer).map(Vec::as_slice).unwrap_or(&[]);
        for e in 0..experts {
            let v = row.get(e).copied().unwrap_or(f64::NAN);
            let (text, style) = if v.is_finite() {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
                let bg = ramp(t);
                let fg = if t > 0.6 { Color::Black } else { Color::White };
                (
                    format!("{:>5.3}", v).chars().take(5).collect::<String>(),
                    Style::new().fg(fg).bg(bg),
                )
            } else {
                ("    -".to_owned(), dim)
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(" "));
        }
        if cross > 0 {
            spans.push(Span::styled("│ ", dim));
            let row = m.cross.get(layer).map(Vec::as_slice).unwrap_or(&[]);
            for k in 0..cross {
                let text = match row.get(k) {
                    Some(v) if v.is_finite() => {
                        format!("{:>5.3}", v).chars().take(5).collect::<String>()
                    }
                    _ => "    -".to_owned(),
                };
                spans.push(Span::styled(text, Style::new().fg(Color::Gray)));
                spans.push(Span::raw(" "));
            }
        }
        lines.push(Line::from(spans));
    }
    lines.push(Line::from(Span::styled(
        format!("min {lo:.3}  max {hi:.3}"),
        dim,
    )));
    lines
}

/// A viridis-like colour ramp for `t` in 0..=1.
pub fn ramp(t: f64) -> Color {
    const STOPS: [(u8, u8, u8); 5] = [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    Color::Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::model::Modality;

    #[test]
    fn ramp_ends_are_the_palette_ends() {
        assert_eq!(ramp(0.0), Color::Rgb(68, 1, 84));
        assert_eq!(ramp(1.0), Color::Rgb(253, 231, 37));
        assert_eq!(ramp(7.0), ramp(1.0));
    }

    #[test]
    fn two_experts_side_by_side_never_overlap_and_cross_weights_have_their_columns() {
        let m = |modality: Modality| ModalityWeights {
            modality,
            grid: vec![vec![0.4, 0.6], vec![0.3, 0.7]],
            cross: vec![vec![], vec![0.998]],
        };
        let (text, image) = (m(Modality::Text), m(Modality::Image));
        // The title is the widest line of a two-expert grid.
        assert!(grid_width(&image) as usize >= "image (layer × expert)".chars().count());
        for g in [&text, &image] {
            for l in grid_lines(g) {
                assert!(l.width() <= grid_width(g) as usize, "{l}");
            }
        }
        let lines: Vec<String> = grid_lines(&text).iter().map(|l| l.to_string()).collect();
        assert!(lines[1].contains("x-1"), "{lines:?}");
        assert!(
            lines[2].starts_with("L1") && lines[2].contains("0.998"),
            "{lines:?}"
        );
        assert!(
            lines[3].starts_with("L0") && lines[3].trim_end().ends_with('-'),
            "{lines:?}"
        );
    }

    #[test]
    fn top_layer_comes_first() {
        let m = ModalityWeights {
            modality: Modality::Text,
            grid: vec![vec![0.1, 0.9], vec![0.5, f64::NAN]],
            cross: Vec::new(),
        };
        let text: Vec<String> = grid_lines(&m).iter().map(|l| l.to_string()).collect();
        assert!(text[2].starts_with("L1"), "{text:?}");
        assert!(
            text[2].contains("0.500") && text[2].contains('-'),
            "{text:?}"
        );
        assert!(
            text[3].starts_with("L0") && text[3].contains("0.900"),
            "{text:?}"
        );
    }
}
