//! The runs table's axes column: per run only the axes that vary among the runs of its
//! experiment, a zip group once (by the axis its cell key shows), names abbreviated so that
//! rows that differ look different at 80 columns. The run view shows the full key.

use std::collections::{BTreeMap, BTreeSet};

use super::model::RunSummary;

/// Short names of the axes TowerLab users grid over; others are abbreviated by rule.
const SHORT: [(&str, &str); 10] = [
    ("manager_type", "mgr"),
    ("manager", "mgr"),
    ("managed_layers_text", "mlt"),
    ("managed_layers_image", "mli"),
    ("num_layers", "xl"),
    ("learning_rate", "lr"),
    ("seed", "s"),
    ("task", "task"),
    ("vlp", "vlp"),
    ("manager_weight_type", "mwt"),
];

/// `manager_type` → `mgr`; unknown keys: the initials of their words (`max_steps` → `ms`),
/// a single word whole up to 6 letters, else its first 4.
pub fn abbreviate(axis: &str) -> String {
    if let Some((_, s)) = SHORT.iter().find(|(k, _)| *k == axis) {
        return (*s).to_string();
    }
    let last = axis.rsplit('.').next().unwrap_or(axis);
    let words: Vec<&str> = last.split('_').filter(|w| !w.is_empty()).collect();
    if words.len() > 1 {
        words.iter().filter_map(|w| w.chars().next()).collect()
    } else if last.chars().count() <= 6 {
        last.to_string()
    } else {
        last.chars().take(4).collect()
    }
}

/// A value as short as it stays clear: booleans as `y`/`n`.
fn short_value(v: &str) -> &str {
    match v {
        "true" => "y",
        "false" => "n",
        v => v,
    }
}

/// The axes a cell key names (`a=1,b=2`, or `pretrain[a=1,b=2]`): the axes a zip group
/// hides are not among them.
fn keyed_axes(cell_key: &str) -> BTreeSet<&str> {
    let inner = cell_key
        .strip_prefix("pretrain[")
        .and_then(|k| k.strip_suffix(']'))
        .unwrap_or(cell_key);
    inner
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect()
}

/// The axes column of every run (same index): `mgr=SAUE mlt=2 vlp=n s=0`, the axes that vary
/// among the runs of its experiment; a pre-training run of a VLP arm starts with `pre`.
pub fn axes_column(runs: &[RunSummary]) -> Vec<String> {
    let is_pre = |r: &RunSummary| {
        r.cell
            .as_deref()
            .is_some_and(|c| c.starts_with("pretrain["))
    };
    // Experiments with grid runs: what varies is decided among those (pre-training runs carry
    // only the model axes, and are marked `pre`).
    let with_grid: BTreeSet<&str> = runs
        .iter()
        .filter(|r| !is_pre(r))
        .map(|r| r.experiment.as_str())
        .collect();
    let counted = |r: &&RunSummary| !is_pre(r) || !with_grid.contains(r.experiment.as_str());
    // Per experiment: each axis' distinct values (a missing axis counts as a value).
    let mut values: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    let mut names: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in runs.iter().filter(counted) {
        names
            .entry(&r.experiment)
            .or_default()
            .extend(r.axes.iter().map(|(k, _)| k.as_str()));
    }
    for r in runs.iter().filter(counted) {
        let exp = values.entry(&r.experiment).or_default();
        for name in &names[r.experiment.as_str()] {
            exp.entry(name)
                .or_default()
                .insert(r.axis(name).unwrap_or(""));
        }
    }
    // Per experiment: axes a zip group hides (carried by a grid run, absent from its key).
    let mut hidden: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in runs {
        let Some(cell) = r.cell.as_deref().filter(|c| !c.starts_with("pretrain[")) else {
            continue;
        };
        let keyed = keyed_axes(cell);
        hidden.entry(&r.experiment).or_default().extend(
            r.axes
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| *k != "seed" && !keyed.contains(k)),
        );
    }
    runs.iter()
        .map(|r| {
            let Some(varying) = values.get(r.experiment.as_str()) else {
                return String::new();
            };
            let hidden = hidden.get(r.experiment.as_str());
            let mut parts = Vec::new();
            if is_pre(r) {
                parts.push("pre".to_string());
            }
            let shown = |k: &str| {
                hidden.is_none_or(|h| !h.contains(k))
                    && varying.get(k).is_some_and(|vals| vals.len() > 1)
            };
            for (k, v) in r.axes.iter().filter(|(k, _)| k != "seed") {
                if shown(k) {
                    parts.push(format!("{}={}", abbreviate(k), short_value(v)));
                }
            }
            if let Some(seed) = r.axis("seed").filter(|_| shown("seed")) {
                parts.push(format!("s={seed}"));
            }
            parts.join(" ")
        })
        .collect()
}

/// The cell column of a plan: each cell's key (`a=1,b=2 seed 0`, `pretrain[...]`) as the
/// runs table shows axes: the ones that vary among the plan's cells, abbreviated.
pub fn plan_column(keys: &[&str]) -> Vec<String> {
    let parsed: Vec<(bool, Vec<(&str, &str)>)> = keys
        .iter()
        .map(|k| {
            let (cell, seed) = match k.rsplit_once(" seed ") {
                Some((c, s)) => (c, Some(s)),
                None => (*k, None),
            };
            let pre = cell.starts_with("pretrain[");
            let inner = cell
                .strip_prefix("pretrain[")
                .and_then(|c| c.strip_suffix(']'))
                .unwrap_or(cell);
            let mut pairs: Vec<(&str, &str)> = inner
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            if let Some(s) = seed {
                pairs.push(("seed", s));
            }
            (pre, pairs)
        })
        .collect();
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let names: BTreeSet<&str> = parsed
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(k, _)| *k))
        .collect();
    for (_, pairs) in &parsed {
        for n in &names {
            let v = pairs.iter().find(|(k, _)| k == n).map_or("", |(_, v)| *v);
            values.entry(n).or_default().insert(v);
        }
    }
    // Axes only pre-training keys name are zip members the grid's keys hide.
    let grid_names: BTreeSet<&str> = parsed
        .iter()
        .filter(|(pre, _)| !pre)
        .flat_map(|(_, p)| p.iter().map(|(k, _)| *k))
        .collect();
    parsed
        .iter()
        .zip(keys)
        .map(|((pre, pairs), key)| {
            let mut parts: Vec<String> = Vec::new();
            if *pre {
                parts.push("pre".into());
            }
            parts.extend(
                pairs
                    .iter()
                    .filter(|(k, _)| !*pre || grid_names.is_empty() || grid_names.contains(k))
                    .filter(|(k, _)| values.get(k).is_some_and(|v| v.len() > 1))
                    .map(|(k, v)| format!("{}={}", abbreviate(k), short_value(v))),
            );
            if pairs.is_empty() {
                (*key).to_string()
            } else {
                parts.join(" ")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::model::RunStatus;

    fn run(exp: &str, cell: &str, axes: &[(&str, &str)]) -> RunSummary {
        RunSummary {
            id: 1,
            experiment: exp.into(),
            cell: Some(cell.into()),
            axes: axes
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            status: RunStatus::Finished,
            progress: None,
            started_ms: None,
            ended_ms: None,
            heartbeat_ms: None,
            worker: None,
            failure_class: None,
            failure_message: None,
            summaries: Vec::new(),
            in_plan: None,
        }
    }

    #[test]
    fn only_varying_axes_abbreviated_and_a_zip_once() {
        fn axes<'a>(m: &'a str, l: &'a str, seed: &'a str) -> Vec<(&'a str, &'a str)> {
            vec![
                ("managed_layers_image", l),
                ("managed_layers_text", l),
                ("manager_type", m),
                ("seed", seed),
                ("task", "vqa"),
            ]
        }
        let key = |m: &str, l: &str| format!("managed_layers_text={l},manager_type={m},task=vqa");
        let runs = vec![
            run("study", &key("SAUE", "2"), &axes("SAUE", "2", "0")),
            run("study", &key("AAUE", "4"), &axes("AAUE", "4", "1")),
            run(
                "study",
                "pretrain[managed_layers_image=4,managed_layers_text=4,manager_type=AAUE]",
                &[
                    ("managed_layers_image", "4"),
                    ("managed_layers_text", "4"),
                    ("manager_type", "AAUE"),
                    ("vlp", "true"),
                ],
            ),
            run("other", "x=1", &[("x", "1"), ("seed", "0")]),
        ];
        let col = axes_column(&runs);
        assert_eq!(col[0], "mlt=2 mgr=SAUE s=0");
        assert_eq!(col[1], "mlt=4 mgr=AAUE s=1");
        assert_eq!(col[2], "pre mlt=4 mgr=AAUE");
        assert_eq!(col[3], "", "nothing varies in a one-run experiment");
        assert_eq!(abbreviate("max_steps"), "ms");
        let plan = plan_column(&[
            "managed_layers_text=2,manager_type=SAUE,vlp=false seed 0",
            "managed_layers_text=4,manager_type=SAUE,vlp=true seed 1",
            "pretrain[managed_layers_image=4,managed_layers_text=4,manager_type=SAUE]",
        ]);
        assert_eq!(plan[0], "mlt=2 vlp=n s=0");
        assert_eq!(plan[1], "mlt=4 vlp=y s=1");
        assert_eq!(plan[2], "pre mlt=4");
        assert_eq!(abbreviate("precision"), "prec");
    }
}
