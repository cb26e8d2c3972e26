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
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| width(&r[i]))
                .chain([width(&header[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - width(c));
            if i > 0 {
                s.push_str("  ");
            }
            // Numbers right-aligned, labels left-aligned.
            if i >= first_metric {
                s.push_str(&pad);
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&pad);
            }
        }
        s.trim_end().to_string()
    };

    let p = &table.provenance;
    let mut out = format!(
        "{} ({}), {} runs\n",
        p.experiment,
        p.experiment_hash,
        p.run_ids.len()
    );
    out.push_str(&line(&header));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
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
