use experiments::text_table::{aligned_by, widths, Align};

use super::markdown::{arrow, axis_headers, legend};
use super::{fixed, signed, Entry, Table};

/// A plain-text table for `towerlab report --print`: aligned columns, `*` marks the best.
pub fn render_terminal(table: &Table) -> String {
    let mut header = axis_headers(table);
    header.push("Seeds".into());
    for m in &table.metrics {
        header.push(format!("{} {}", m.label(), arrow(m.goal)));
    }
    let first_metric = header.len() - table.metrics.len();
    if table.compute {
        header.push("Compute".into());
    }
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let mut cells: Vec<String> = if table.axes.is_empty() {
            vec![row.cell.clone()]
        } else {
            row.axis_values.clone()
        };
        if row.is_baseline {
            if let Some(last) = cells.last_mut() {
                last.push_str(" (baseline)");
            }
        }
        cells.push(row.coverage.describe());
        for (e, &d) in row.entries.iter().zip(&table.decimals) {
            cells.push(entry(e, d));
        }
        if table.compute {
            cells.push(super::markdown::compute_cell(row).replace('—', "-"));
        }
        rows.push(
            cells
                .into_iter()
                .map(|c| c.replace(['\n', '\r'], " "))
                .collect(),
        );
    }
    // The rule under the header is as wide as each column; numbers right-aligned, labels left.
    let mut lines: Vec<Vec<String>> = vec![header];
    lines.extend(rows);
    let rule: Vec<String> = widths(&lines).iter().map(|w| "-".repeat(*w)).collect();
    lines.insert(1, rule);
    let lines = aligned_by(&lines, |i| {
        if i >= first_metric {
            Align::Right
        } else {
            Align::Left
        }
    });

    let p = &table.provenance;
    let mut out = format!(
        "{} ({}), {} runs\n",
        p.experiment,
        p.experiment_hash,
        p.run_ids.len()
    );
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&legend(table, "*"));
    out.push('\n');
    out
}

fn entry(e: &Entry, d: usize) -> String {
    let Some(s) = e.summary else {
        return "-".into();
    };
    let mut text = match s.std {
        Some(std) => format!("{} ± {} (n={})", fixed(s.mean, d), fixed(std, d), s.n),
        None => format!("{} (n={})", fixed(s.mean, d), s.n),
    };
    if let Some(c) = e.comparison {
        text.push_str(&format!(
            " Δ{}{}",
            signed(c.delta, d),
            c.significance().mark()
        ));
    }
    text.push(if e.best { '*' } else { ' ' });
    text
}
