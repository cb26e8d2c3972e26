use super::{fixed, signed, Entry, Table};
use crate::input::Goal;

/// A GitHub-flavoured Markdown table, preceded by a provenance HTML comment and followed by a
/// legend paragraph.
pub fn render_markdown(table: &Table) -> String {
    let mut out = String::from("<!--\n");
    for line in table.provenance.lines("table") {
        // `--` may not appear inside an HTML comment.
        out.push_str(&line.replace("--", "- -"));
        out.push('\n');
    }
    out.push_str("-->\n");

    let mut header: Vec<String> = axis_headers(table).iter().map(|a| escape_md(a)).collect();
    header.push("Seeds".into());
    let p_cols = table.p_values && table.baseline.is_some();
    for m in &table.metrics {
        header.push(format!("{} {}", escape_md(m.label()), arrow(m.goal)));
        if p_cols {
            header.push(format!("p ({})", escape_md(m.label())));
        }
    }
    if table.compute {
        header.push("Compute".into());
    }
    let numeric = table.metrics.len() * if p_cols { 2 } else { 1 } + usize::from(table.compute);
    let mut align: Vec<&str> = vec!["---"; header.len() - numeric];
    align.extend(std::iter::repeat_n("--:", numeric));
    push_row(&mut out, &header);
    push_row(
        &mut out,
        &align.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    );

    for row in &table.rows {
        let mut cells: Vec<String> = if table.axes.is_empty() {
            vec![escape_md(&row.cell)]
        } else {
            row.axis_values.iter().map(|v| escape_md(v)).collect()
        };
        if row.is_baseline {
            if let Some(last) = cells.last_mut() {
                last.push_str(" (baseline)");
            }
        }
        cells.push(row.coverage.describe());
        for (e, &d) in row.entries.iter().zip(&table.decimals) {
            cells.push(entry(e, d));
            if p_cols {
                cells.push(
                    e.comparison
                        .map_or_else(|| "—".into(), |c| escape_md(&c.p_text())),
                );
            }
        }
        if table.compute {
            cells.push(compute_cell(row));
        }
        push_row(&mut out, &cells);
    }
    out.push('\n');
    out.push_str(&legend(table, "**Bold**"));
    out.push('\n');
    out
}

fn entry(e: &Entry, d: usize) -> String {
    let Some(s) = e.summary else {
        return "—".into();
    };
    let value = match s.std {
        Some(std) => format!("{} ± {}", fixed(s.mean, d), fixed(std, d)),
        None => fixed(s.mean, d),
    };
    let mut text = if e.best {
        format!("**{value}**")
    } else {
        value
    };
    text.push_str(&format!(" (n={})", s.n));
    if let Some(c) = e.comparison {
        text.push_str(&format!(
            ", Δ {}{}",
            signed(c.delta, d),
            c.significance().mark()
        ));
    }
    text
}

/// A row's compute: `1.25 GPU-h`, or `—` when the cell has no finished run.
pub(super) fn compute_cell(row: &super::Row) -> String {
    match row.compute {
        Some(c) if c.gpu_hours + c.cpu_hours > 0.0 => c.text(),
        _ => "—".into(),
    }
}

pub(super) fn axis_headers(table: &Table) -> Vec<String> {
    if table.axes.is_empty() {
        vec!["Cell".into()]
    } else {
        table.axes.clone()
    }
}

pub(super) fn arrow(goal: Goal) -> &'static str {
    match goal {
        Goal::Maximize => "↑",
        Goal::Minimize => "↓",
    }
}

/// The sentence under a table, shared by Markdown and the terminal.
pub(super) fn legend(table: &Table, best: &str) -> String {
    let mut s = format!("Mean ± sample std over seeds (n runs). {best}: best per column.");
    if let Some(base) = table.rows.iter().find(|r| r.is_baseline) {
        let name = if table.axes.is_empty() {
            base.cell.clone()
        } else {
            table
                .axes
                .iter()
                .zip(&base.axis_values)
                .map(|(a, v)| format!("{a}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            " Δ: difference to the baseline ({name}); † p < 0.05, ‡ p < 0.01, two-sided \
             (paired t-test when both cells have the same seeds, Welch's t-test otherwise)."
        ));
        s.push_str(&tests_used(table));
    }
    let policies: Vec<String> = table
        .metrics
        .iter()
        .map(|m| {
            format!(
                "{} = {}",
                m.label(),
                crate::input::describe_policy(&m.policy)
            )
        })
        .collect();
    if !policies.is_empty() {
        s.push_str(&format!(" Per-run value: {}.", policies.join("; ")));
    }
    if table.compute {
        s.push_str(
            " Compute: wall time × devices of the cell's finished runs (GPU-h on CUDA, CPU-h \
             otherwise), summed over seeds, its pre-training run counted once.",
        );
    }
    s
}

/// Which rows were not tested with the paired t-test, and why: ` Not paired: AAUE (Welch:
/// seeds do not pair with the baseline's); ...`, or empty when every comparison is paired.
pub(super) fn tests_used(table: &Table) -> String {
    let mut notes: Vec<String> = Vec::new();
    for row in table.rows.iter().filter(|r| !r.is_baseline) {
        let name = if table.axes.is_empty() {
            row.cell.clone()
        } else {
            row.axis_values.join(", ")
        };
        for (m, e) in table.metrics.iter().zip(&row.entries) {
            if let Some(f) = e.comparison.and_then(|c| c.fallback) {
                let metric = if table.metrics.len() > 1 {
                    format!(" {}", m.label())
                } else {
                    String::new()
                };
                notes.push(format!("{name}{metric} ({})", f.describe()));
            }
        }
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!(" Not paired: {}.", notes.join("; "))
    }
}

fn push_row(out: &mut String, cells: &[String]) {
    out.push('|');
    for c in cells {
        out.push(' ');
        out.push_str(c);
        out.push_str(" |");
    }
    out.push('\n');
}

/// Escapes characters that Markdown would read as markup or as a column break.
fn escape_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' | '$' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
