use super::markdown::axis_headers;
use super::{fixed, p_fixed, signed, Comparison, Entry, Significance, Table};
use crate::input::Goal;

/// A booktabs `tabular` to `\input` into a paper (needs `\usepackage{booktabs}`); the caption
/// and `table` float stay with the author. Provenance and the legend are LaTeX comments.
pub fn render_latex(table: &Table) -> String {
    let mut out = String::new();
    for line in table.provenance.lines("table") {
        out.push_str(&format!("% {}\n", comment_safe(&line)));
    }
    out.push_str("% Requires \\usepackage{booktabs}.\n");
    out.push_str(&format!(
        "% {}\n",
        comment_safe(&super::markdown::legend(table, "Bold"))
    ));

    let n_axes = axis_headers(table).len();
    let p_cols = table.p_values && table.baseline.is_some();
    let numeric = table.metrics.len() * if p_cols { 2 } else { 1 } + usize::from(table.compute);
    let spec = format!("{}l{}", "l".repeat(n_axes), "r".repeat(numeric));
    out.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));

    let mut header: Vec<String> = axis_headers(table)
        .iter()
        .map(|a| escape_latex(a))
        .collect();
    header.push("Seeds".into());
    for m in &table.metrics {
        let arrow = match m.goal {
            Goal::Maximize => "$\\uparrow$",
            Goal::Minimize => "$\\downarrow$",
        };
        header.push(format!("{} {arrow}", escape_latex(m.label())));
        if p_cols {
            header.push(format!("$p$ ({})", escape_latex(m.label())));
        }
    }
    if table.compute {
        header.push("Compute".into());
    }
    push_row(&mut out, &header);
    out.push_str("\\midrule\n");

    for row in &table.rows {
        let mut cells: Vec<String> = if table.axes.is_empty() {
            vec![escape_latex(&row.cell)]
        } else {
            row.axis_values.iter().map(|v| escape_latex(v)).collect()
        };
        if row.is_baseline {
            if let Some(last) = cells.last_mut() {
                last.push_str(" \\emph{(baseline)}");
            }
        }
        cells.push(escape_latex(&row.coverage.describe()));
        for (e, &d) in row.entries.iter().zip(&table.decimals) {
            cells.push(entry(e, d));
            if p_cols {
                cells.push(e.comparison.map_or_else(|| "--".into(), |c| p_cell(&c)));
            }
        }
        if table.compute {
            cells.push(super::markdown::compute_cell(row).replace('—', "--"));
        }
        push_row(&mut out, &cells);
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n");
    out
}

fn entry(e: &Entry, d: usize) -> String {
    let Some(s) = e.summary else {
        return "--".into();
    };
    let value = match s.std {
        Some(std) => format!("{} \\pm {}", fixed(s.mean, d), fixed(std, d)),
        None => fixed(s.mean, d),
    };
    let mut text = if e.best {
        format!("$\\mathbf{{{value}}}$")
    } else {
        format!("${value}$")
    };
    text.push_str(&format!(" {{\\scriptsize($n{{=}}{}$)}}", s.n));
    if let Some(c) = e.comparison {
        let mark = match c.significance() {
            Significance::None => "",
            Significance::P05 => "^{\\dagger}",
            Significance::P01 => "^{\\ddagger}",
        };
        text.push_str(&format!(
            " {{\\scriptsize $\\Delta\\,{}{mark}$}}",
            signed(c.delta, d)
        ));
    }
    text
}

/// `$0.031$ {\scriptsize(paired)}`, `$<0.001$ ...`, `-- {\scriptsize(none: ...)}`.
fn p_cell(c: &Comparison) -> String {
    let p = match c.test {
        Some(t) => format!("${}$", p_fixed(t.p).replace("< ", "<")),
        None => "--".into(),
    };
    format!("{p} {{\\scriptsize({})}}", escape_latex(c.test_used()))
}

fn push_row(out: &mut String, cells: &[String]) {
    out.push_str(&cells.join(" & "));
    out.push_str(" \\\\\n");
}

/// TeX reads `^^` notation before it sees the `%`, so even a comment must not contain it.
fn comment_safe(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace("^^", "^ ^")
}

/// Escapes text for LaTeX text mode: the ten special characters, plus `<`, `>` and `|`, which
/// the default OT1 encoding prints as other glyphs. Line breaks become spaces.
pub fn escape_latex(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '_' | '%' | '&' | '#' | '$' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '|' => out.push_str("\\textbar{}"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
