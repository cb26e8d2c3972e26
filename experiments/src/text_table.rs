//! The one plain-text table renderer of the workspace: the plan, the listing commands, the
//! results after a sweep and `report --print` all align their columns here.

use std::fmt::Write as _;

/// Where a column's cells sit in its width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers, so their digits line up.
    Right,
}

/// Rows of cells as lines, each column padded to its widest cell (in characters), two spaces
/// apart, trailing spaces trimmed; `align` says how column `i` sits. Rows may be ragged: a
/// column is as wide as its widest cell in the rows that have it.
pub fn aligned_by(rows: &[Vec<String>], align: impl Fn(usize) -> Align) -> Vec<String> {
    let widths = widths(rows);
    rows.iter()
        .map(|row| {
            let parts: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| match align(i) {
                    Align::Left => format!("{c:<w$}"),
                    Align::Right => format!("{c:>w$}"),
                })
                .collect();
            parts.join("  ").trim_end().to_string()
        })
        .collect()
}

/// Each column's width: its widest cell, in characters.
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            let n = c.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    widths
}

/// [`aligned_by`] with every column left-aligned.
pub fn aligned(rows: &[Vec<String>]) -> Vec<String> {
    aligned_by(rows, |_| Align::Left)
}

/// A header line and a line per row, left-aligned, each line ending in a newline.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    table.extend(rows.iter().cloned());
    let mut out = String::new();
    for line in aligned(&table) {
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_in_characters() {
        let text = render(
            &["id", "cell"],
            &[row(&["1", "manager=BT ±"]), row(&["22", "x"])],
        );
        assert_eq!(text, "id  cell\n1   manager=BT ±\n22  x\n");
    }

    #[test]
    fn right_aligned_columns_pad_on_the_left_and_lines_end_without_spaces() {
        let rows = [row(&["a", "1.5", ""]), row(&["bb", "10.25", ""])];
        let lines = aligned_by(&rows, |i| if i == 1 { Align::Right } else { Align::Left });
        assert_eq!(lines, ["a     1.5", "bb  10.25"]);
    }

    #[test]
    fn ragged_rows_keep_their_own_columns() {
        let lines = aligned(&[
            row(&["state", "id"]),
            row(&["new"]),
            row(&["done", "abc", "x"]),
        ]);
        assert_eq!(lines, ["state  id", "new", "done   abc  x"]);
    }
}
