//! Writes a whole report (tables and figures) into a folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{ReportError, Result};
use crate::figures::{
    ablation_bars_from_table, learning_curves, manager_cells, manager_heatmap, manager_panels,
    BarOptions, CurveOptions, Figure, FigureSize, ManagerOptions,
};
use crate::input::{Format, ReportInput};
use crate::parallel::par_map;
use crate::table::{build_table, render_csv, render_latex, render_markdown, render_runs_csv};

/// Choices for [`write_all_with`]; the defaults suit a two-column paper.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Size of the learning-curve and bar figures.
    pub size: FigureSize,
    /// Axis that colours the bars; the first varying axis (when two or more vary) if `None`.
    pub bars_color_by: Option<String>,
    /// Fit the bar chart's y axis to the data instead of starting at zero.
    pub bars_zoom: bool,
    /// See [`CurveOptions::max_points`].
    pub curve_max_points: usize,
    /// Cell, step and size of the manager-weight figures.
    pub manager: ManagerOptions,
    /// A p-value column (with the test used) per metric in `table.md` and `table.tex`; the
    /// CSV always has them.
    pub p_values: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            size: FigureSize::COLUMN,
            bars_color_by: None,
            bars_zoom: false,
            curve_max_points: CurveOptions::new("").max_points,
            manager: ManagerOptions::default(),
            p_values: false,
        }
    }
}

/// What [`write_all`] produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Written {
    /// Files written, in a fixed order.
    pub files: Vec<PathBuf>,
    /// Figures left out because they had nothing to show, with the reason.
    pub skipped: Vec<String>,
}

/// Writes every table and figure of `input` in `formats` into `out_dir` (created if needed):
/// `table.md`, `table.tex`, `table.csv` + `runs.csv`, and per table metric
/// `curves-<metric>.svg|png` and `bars-<metric>.svg|png`, plus `manager-heatmap.*` (a titled
/// row per cell) and `manager-weights.*` (Fig. 6; `manager-weights-<cell>.*` per cell when
/// several cells) when runs recorded manager weights.
pub fn write_all(input: &ReportInput, out_dir: &Path, formats: &[Format]) -> Result<Written> {
    write_all_with(input, out_dir, formats, &WriteOptions::default())
}

/// [`write_all`] with explicit options.
pub fn write_all_with(
    input: &ReportInput,
    out_dir: &Path,
    formats: &[Format],
    opts: &WriteOptions,
) -> Result<Written> {
    let formats: BTreeSet<Format> = formats.iter().copied().collect();
    std::fs::create_dir_all(out_dir).map_err(|source| ReportError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut written = Written::default();
    let mut table = build_table(input)?;
    table.p_values = opts.p_values;
    let put = |name: &str, bytes: &[u8], w: &mut Written| -> Result<()> {
        let path = out_dir.join(name);
        write_atomic(&path, bytes)?;
        w.files.push(path);
        Ok(())
    };
    if formats.contains(&Format::Markdown) {
        put("table.md", render_markdown(&table).as_bytes(), &mut written)?;
    }
    if formats.contains(&Format::Latex) {
        put("table.tex", render_latex(&table).as_bytes(), &mut written)?;
    }
    if formats.contains(&Format::Csv) {
        put("table.csv", render_csv(&table).as_bytes(), &mut written)?;
        put(
            "runs.csv",
            render_runs_csv(input, &table).as_bytes(),
            &mut written,
        )?;
    }
    let images: Vec<Format> = [Format::Svg, Format::Png]
        .into_iter()
        .filter(|f| formats.contains(f))
        .collect();
    if images.is_empty() {
        return Ok(written);
    }

    let mut figures: Vec<(String, Result<Figure>)> = Vec::new();
    let mut slugs = BTreeSet::new();
    for m in &input.metrics {
        let slug = unique_slug(&m.key, &mut slugs);
        let curves = CurveOptions {
            max_points: opts.curve_max_points,
            size: opts.size,
            ..CurveOptions::new(&m.key)
        };
        figures.push((format!("curves-{slug}"), learning_curves(input, &curves)));
        let mut bars = BarOptions::auto(input, &m.key);
        if opts.bars_color_by.is_some() {
            bars.color_by = opts.bars_color_by.clone();
        }
        bars.zoom = opts.bars_zoom;
        bars.size = opts.size;
        figures.push((
            format!("bars-{slug}"),
            ablation_bars_from_table(input, &table, &bars),
        ));
    }
    // Fig. 6 per cell: one titled file each when several cells recorded weights; the heatmap
    // has one titled row per cell.
    let cells = manager_cells(input);
    match (&opts.manager.cell, cells.as_slice()) {
        (Some(_), _) | (None, [] | [_]) => figures.push((
            "manager-weights".into(),
            manager_panels(input, &opts.manager),
        )),
        (None, many) => {
            let mut taken = BTreeSet::new();
            for cell in many {
                let one = ManagerOptions {
                    cell: Some(cell.clone()),
                    ..opts.manager.clone()
                };
                figures.push((
                    format!("manager-weights-{}", unique_slug(cell, &mut taken)),
                    manager_panels(input, &one),
                ));
            }
        }
    }
    figures.push((
        "manager-heatmap".into(),
        manager_heatmap(input, &opts.manager),
    ));

    let mut ready = Vec::new();
    for (name, fig) in figures {
        match fig {
            Ok(f) => ready.push((name, f)),
            Err(ReportError::NoData(why)) => written.skipped.push(format!("{name}: {why}")),
            Err(e) => return Err(e),
        }
    }
    // Rendering dominates; every (figure, format) pair is independent.
    let jobs: Vec<(usize, Format)> = (0..ready.len())
        .flat_map(|i| images.iter().map(move |f| (i, *f)))
        .collect();
    let rendered = par_map(&jobs, |&(i, f)| match f {
        Format::Svg => ready[i].1.to_svg().map(String::into_bytes),
        _ => ready[i].1.to_png(),
    });
    for (&(i, f), bytes) in jobs.iter().zip(rendered) {
        put(
            &format!("{}.{}", ready[i].0, f.extension()),
            &bytes?,
            &mut written,
        )?;
    }
    Ok(written)
}

/// Writes through a temporary file and a rename, so readers never see half a figure.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// A file-name-safe version of a metric key (`val/vqa/score` → `val-vqa-score`), made unique.
fn unique_slug(key: &str, taken: &mut BTreeSet<String>) -> String {
    let mut slug = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches(|c| c == '-' || c == '.').to_string();
    let base = if slug.is_empty() {
        "metric".to_string()
    } else {
        slug
    };
    let mut candidate = base.clone();
    let mut i = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{base}-{i}");
        i += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_experiment_writes_tables_and_explains_missing_figures() {
        let mut input = crate::sample::sample_input();
        for cell in &mut input.cells {
            cell.runs.clear();
        }
        let dir = tempfile::tempdir().unwrap();
        let w = write_all(&input, dir.path(), &Format::ALL).unwrap();
        assert_eq!(w.files.len(), 4, "{:?}", w.files);
        assert_eq!(w.skipped.len(), 8, "{:?}", w.skipped);
        let md = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
        assert!(
            md.contains("| none | 1e-5 (baseline) | 0/3 seeds, 3 missing | — | — | — |"),
            "{md}"
        );
        assert!(md.contains("runs used (0):"));
    }

    #[test]
    fn slugs_are_safe_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_slug("val/vqa/score", &mut taken), "val-vqa-score");
        assert_eq!(unique_slug("val-vqa-score", &mut taken), "val-vqa-score-2");
        assert_eq!(unique_slug("../..", &mut taken), "metric");
        assert_eq!(unique_slug("Loss (train)", &mut taken), "loss-train");
    }
}
