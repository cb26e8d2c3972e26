use std::collections::BTreeMap;

use super::*;
use crate::input::{Cell, Goal, Policy, RunData, RunStatus};
use crate::sample::sample_input;

/// A cell whose finished runs log `acc` and `loss` once, at step 10, with the given values.
fn cell(key: &str, axis: &str, values: &[(u64, f64, f64)]) -> Cell {
    Cell {
        key: key.into(),
        axes: BTreeMap::from([("variant".to_string(), axis.to_string())]),
        expected_seeds: values.iter().map(|v| v.0).collect(),
        runs: values
            .iter()
            .map(|&(seed, acc, loss)| {
                let mut r = RunData::new(format!("{key}-{seed}"), seed, RunStatus::Finished);
                r.series.insert("acc".into(), vec![(10, acc)]);
                r.series.insert("loss".into(), vec![(10, loss)]);
                r
            })
            .collect(),
    }
}

fn input(cells: Vec<Cell>) -> ReportInput {
    ReportInput {
        experiment: "exp_1".into(),
        experiment_hash: "abc123".into(),
        axes: vec!["variant".into()],
        metrics: vec![
            MetricSpec::new("acc", Goal::Maximize, Policy::Last),
            MetricSpec::new("loss", Goal::Minimize, Policy::Last),
        ],
        baseline: Some("a".into()),
        cells,
        ..ReportInput::default()
    }
}

#[test]
fn best_is_bold_in_both_directions() {
    let t = build_table(&input(vec![
        cell("a", "base", &[(0, 0.50, 1.0), (1, 0.52, 1.2)]),
        cell("b", "better_acc", &[(0, 0.60, 1.5), (1, 0.62, 1.7)]),
        cell("c", "better_loss", &[(0, 0.40, 0.3), (1, 0.42, 0.5)]),
    ]))
    .unwrap();
    let best: Vec<(bool, bool)> = t
        .rows
        .iter()
        .map(|r| (r.entries[0].best, r.entries[1].best))
        .collect();
    assert_eq!(best, [(false, false), (true, false), (false, true)]);
    let md = render_markdown(&t);
    assert!(md.contains("**0.6100 ± 0.0141** (n=2)"), "{md}");
    assert!(md.contains("**0.400 ± 0.141** (n=2)"), "{md}");
    assert!(md.contains("| acc ↑ | loss ↓ |"), "{md}");
    let tex = render_latex(&t);
    assert!(tex.contains("$\\mathbf{0.6100 \\pm 0.0141}$"), "{tex}");
    assert!(tex.contains("$\\mathbf{0.400 \\pm 0.141}$"), "{tex}");
    let term = render_terminal(&t);
    assert!(term.contains("0.6100 ± 0.0141 (n=2) Δ+0.1000†*"), "{term}");
}

#[test]
fn paired_test_when_seeds_match_welch_otherwise() {
    let base = cell(
        "a",
        "base",
        &[(0, 0.50, 1.0), (1, 0.52, 1.0), (2, 0.49, 1.0)],
    );
    let same = cell(
        "b",
        "same",
        &[(0, 0.55, 1.0), (1, 0.58, 1.0), (2, 0.53, 1.0)],
    );
    let other = cell(
        "c",
        "other",
        &[(3, 0.55, 1.0), (4, 0.58, 1.0), (5, 0.53, 1.0)],
    );
    let t = build_table(&input(vec![base, same, other])).unwrap();
    let b = t.rows[1].entries[0].comparison.unwrap();
    let c = t.rows[2].entries[0].comparison.unwrap();
    assert_eq!(b.test.unwrap().kind, crate::stats::TestKind::Paired);
    assert_eq!(c.test.unwrap().kind, crate::stats::TestKind::Welch);
    // Same numbers, paired differences 0.05, 0.06, 0.04: t = 0.05 / (0.01/√3) = 8.660.
    assert!((b.test.unwrap().t - 8.660_254).abs() < 1e-5);
    assert!((b.delta - 0.05).abs() < 1e-12);
    assert_eq!(b.significance(), Significance::P05);
    // Loss is constant everywhere: no test, no mark.
    assert!(t.rows[1].entries[1].comparison.unwrap().test.is_none());
    assert!(t.rows[0].entries[0].comparison.is_none(), "baseline row");
    let csv = render_csv(&t);
    let line = csv
        .lines()
        .find(|l| l.starts_with("b,same,false,acc,"))
        .unwrap();
    assert!(line.contains(",paired,"), "{line}");
    assert!(line.ends_with(",†"), "{line}");
    let p = b.test.unwrap().p;
    assert!(line.contains(&format!(",{p:?},")), "p-value in CSV: {line}");
}

#[test]
fn incomplete_cells_say_so() {
    let t = build_table(&sample_input()).unwrap();
    let md = render_markdown(&t);
    assert!(md.contains("| SAUE | 2e-5 | 2/3 seeds, 1 failed |"), "{md}");
    assert!(
        md.contains("| none | 2e-5 | 2/3 seeds, 1 missing |"),
        "{md}"
    );
    assert!(
        md.contains("| none | 1e-5 (baseline) | 3/3 seeds |"),
        "{md}"
    );
    let tex = render_latex(&t);
    assert!(tex.contains("2/3 seeds, 1 failed"), "{tex}");
    let csv = render_csv(&t);
    assert!(csv.contains(",2/3 seeds\\, 1 failed,") || csv.contains(",\"2/3 seeds, 1 failed\","));
    // The failed run is not averaged in and not listed as used.
    assert!(!t.provenance.run_ids.contains(&"r112".to_string()));
    assert_eq!(t.rows[3].entries[0].summary.unwrap().n, 2);
}

#[test]
fn latex_escapes_everything_special() {
    assert_eq!(
        escape_latex(r"a_b 50% R&D #1 $x {y} ~z ^w \o <|>"),
        r"a\_b 50\% R\&D \#1 \$x \{y\} \textasciitilde{}z \textasciicircum{}w \textbackslash{}o \textless{}\textbar{}\textgreater{}"
    );
    let mut i = input(vec![cell("a", "drop_50%", &[(0, 0.5, 1.0)])]);
    i.axes = vec!["lr_sched".into()];
    i.cells[0].axes = BTreeMap::from([("lr_sched".to_string(), "drop_50%".to_string())]);
    i.metrics[0].label = Some("val/vqa_score".into());
    let tex = render_latex(&build_table(&i).unwrap());
    assert!(
        tex.contains("lr\\_sched & Seeds & val/vqa\\_score $\\uparrow$"),
        "{tex}"
    );
    assert!(tex.contains("drop\\_50\\% \\emph{(baseline)}"), "{tex}");
    // Only comment lines may hold raw text.
    for line in tex.lines().filter(|l| !l.starts_with('%')) {
        let unescaped = line
            .char_indices()
            .any(|(i, c)| matches!(c, '_' | '%') && !line[..i].ends_with('\\'));
        assert!(!unescaped, "{line}");
    }
}

#[test]
fn outputs_are_byte_identical_and_carry_provenance() {
    let a = build_table(&sample_input()).unwrap();
    let b = build_table(&sample_input()).unwrap();
    assert_eq!(render_markdown(&a), render_markdown(&b));
    assert_eq!(render_latex(&a), render_latex(&b));
    assert_eq!(render_csv(&a), render_csv(&b));
    assert_eq!(
        render_runs_csv(&sample_input(), &a),
        render_runs_csv(&sample_input(), &b)
    );
    let md = render_markdown(&a);
    assert!(md.starts_with("<!--\nTowerLab table: experiment manager_ablation\nexperiment hash: 3f9a1c07e2b4d5a6\nruns used (16):\n"));
    assert!(md.contains("r000 r001 r002"));
    let tex = render_latex(&a);
    assert!(tex.starts_with(
        "% TowerLab table: experiment manager_ablation\n% experiment hash: 3f9a1c07e2b4d5a6\n"
    ));
    let csv = render_csv(&a);
    assert!(csv.starts_with("# TowerLab table: experiment manager_ablation\n"));
    assert!(csv.contains("\ncell,manager,lr,baseline,metric,"));
}

#[test]
fn runs_csv_lists_every_run_with_its_status() {
    let input = sample_input();
    let csv = render_runs_csv(&input, &build_table(&input).unwrap());
    let header = csv.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(
        header,
        "cell,manager,lr,run_id,seed,status,used,val/vqa/score,val/itm/loss,test/vqa/score"
    );
    let failed = csv.lines().find(|l| l.contains(",r112,")).unwrap();
    assert!(failed.contains(",failed,false,"), "{failed}");
    assert_eq!(csv.lines().filter(|l| !l.starts_with('#')).count(), 1 + 17);
}

#[test]
fn fixed_and_signed_formatting() {
    assert_eq!(fixed(-0.00001, 3), "0.000");
    assert_eq!(fixed(1.23456, 2), "1.23");
    assert_eq!(signed(0.1, 2), "+0.10");
    assert_eq!(signed(-0.1, 2), "-0.10");
    assert_eq!(signed(-0.0001, 2), "0.00");
}

#[test]
fn missing_metric_shows_a_dash() {
    let mut i = input(vec![cell("a", "x", &[(0, 0.5, 1.0)])]);
    i.cells[0].runs[0].series.remove("loss");
    let t = build_table(&i).unwrap();
    assert!(render_markdown(&t).contains("(n=1) | — |"));
    assert!(render_latex(&t).ends_with("& -- \\\\\n\\bottomrule\n\\end{tabular}\n"));
}

#[test]
fn markdown_escapes_markup_and_column_breaks() {
    let i = input(vec![cell("a", "a|b *c* $x$ <br>", &[(0, 0.5, 1.0)])]);
    let md = render_markdown(&build_table(&i).unwrap());
    assert!(
        md.contains("| a\\|b \\*c\\* \\$x\\$ &lt;br&gt; (baseline) | 1/1 seeds |"),
        "{md}"
    );
}

#[test]
fn latex_comments_cannot_be_escaped_from() {
    let mut i = input(vec![cell("a", "x", &[(0, 0.5, 1.0)])]);
    i.experiment = "evil\n\\end{tabular}^^5c".into();
    let tex = render_latex(&build_table(&i).unwrap());
    assert!(
        tex.starts_with("% TowerLab table: experiment evil \\end{tabular}^ ^5c\n"),
        "{tex}"
    );
    assert_eq!(
        tex.matches("\\end{tabular}").count(),
        2,
        "one real, one commented"
    );
}

#[test]
fn each_row_says_which_test_it_used_and_why_it_fell_back() {
    let base = cell(
        "a",
        "base",
        &[(0, 0.5, 1.0), (1, 0.25, 1.125), (2, 0.75, 0.875)],
    );
    // Same seeds, acc differences exactly 0.125 each: constant, so no paired test exists.
    let constant = cell(
        "b",
        "constant",
        &[(0, 0.625, 1.0), (1, 0.375, 1.25), (2, 0.875, 0.75)],
    );
    // Other seeds: Welch.
    let unpaired = cell(
        "c",
        "unpaired",
        &[(3, 0.55, 1.0), (4, 0.58, 1.1), (5, 0.53, 1.3)],
    );
    // One run only: no test.
    let single = cell("d", "single", &[(0, 0.6, 1.0)]);
    let mut t = build_table(&input(vec![base, constant, unpaired, single])).unwrap();
    let fallback = |row: usize| t.rows[row].entries[0].comparison.unwrap().fallback;
    assert_eq!(fallback(1), Some(Fallback::ConstantDifferences));
    assert_eq!(fallback(2), Some(Fallback::SeedsDiffer));
    assert_eq!(fallback(3), Some(Fallback::TooFewRuns));
    // Loss differences of `b` vary: paired, nothing to say.
    assert_eq!(t.rows[1].entries[1].comparison.unwrap().fallback, None);

    let md = render_markdown(&t);
    assert!(!md.contains("| p (acc) |"), "p-values are optional: {md}");
    assert!(
        md.contains(
            "Not paired: constant acc (Welch: the paired differences are constant); \
                     unpaired acc (Welch: seeds do not pair with the baseline's);"
        ),
        "{md}"
    );
    assert!(md.contains("single acc (none: fewer than 2 runs)"), "{md}");

    t.p_values = true;
    let md = render_markdown(&t);
    assert!(
        md.contains("| acc ↑ | p (acc) | loss ↓ | p (loss) |"),
        "{md}"
    );
    let p = t.rows[1].entries[1].comparison.unwrap().test.unwrap().p;
    assert!(md.contains(&format!("{} (paired)", p_fixed(p))), "{md}");
    assert!(md.contains("— (none: fewer than 2 runs)"), "{md}");
    let tex = render_latex(&t);
    assert!(tex.contains("$p$ (acc)"), "{tex}");
    assert!(
        tex.contains("{\\scriptsize(Welch: seeds do not pair with the baseline's)}"),
        "{tex}"
    );
    assert!(
        tex.contains("-- {\\scriptsize(none: fewer than 2 runs)}"),
        "{tex}"
    );

    // The CSV always has the test, its note and the p-value.
    let csv = render_csv(
        &build_table(&input(vec![
            cell("a", "base", &[(0, 0.50, 1.0), (1, 0.52, 1.1)]),
            cell("c", "unpaired", &[(3, 0.55, 1.0), (4, 0.58, 1.1)]),
        ]))
        .unwrap(),
    );
    assert!(csv.contains(",test,test_note,t,df,p,significance"), "{csv}");
    let line = csv
        .lines()
        .find(|l| l.starts_with("c,unpaired,false,acc,"))
        .unwrap();
    assert!(
        line.contains(",welch,Welch: seeds do not pair with the baseline's,"),
        "{line}"
    );
}

#[test]
fn p_values_read_at_their_size() {
    assert_eq!(p_fixed(0.0312), "0.031");
    assert_eq!(p_fixed(0.00456), "0.0046");
    assert_eq!(p_fixed(0.0004), "< 0.001");
}

#[test]
fn a_compute_column_per_cell_when_the_input_carries_compute() {
    use crate::cost::RunCompute;
    let run = |id: &str, device: &str, wall_s: f64, pretrain: bool| RunCompute {
        run_id: id.into(),
        device: device.into(),
        devices: 1,
        wall_s,
        pretrain,
    };
    let cells = vec![
        cell("a", "base", &[(0, 0.50, 1.0), (1, 0.52, 1.2)]),
        cell("b", "vlp", &[(0, 0.60, 1.5), (1, 0.62, 1.7)]),
    ];
    let plain = build_table(&input(cells.clone())).unwrap();
    assert!(!render_markdown(&plain).contains("Compute"));
    assert!(!render_csv(&plain).contains("gpu_hours"));
    let mut with = input(cells);
    let pre = run("p", "cuda:0", 3600.0, true);
    with.compute = BTreeMap::from([
        (
            "a".to_string(),
            vec![
                run("a-0", "cuda:0", 900.0, false),
                run("a-1", "cuda:0", 900.0, false),
            ],
        ),
        (
            "b".to_string(),
            vec![
                pre.clone(),
                run("b-0", "cuda:0", 1800.0, false),
                pre,
                run("b-1", "cuda:0", 1800.0, false),
            ],
        ),
    ]);
    let t = build_table(&with).unwrap();
    let md = render_markdown(&t);
    assert!(md.contains("| loss ↓ | Compute |"), "{md}");
    assert!(md.contains("| 0.50 GPU-h |"), "{md}");
    // Two seeds of half an hour and the pre-training hour once.
    assert!(md.contains("| 2.00 GPU-h |"), "{md}");
    assert!(md.contains("pre-training run counted once"), "{md}");
    let term = render_terminal(&t);
    assert!(term.lines().nth(1).unwrap().ends_with("Compute"), "{term}");
    let csv = render_csv(&t);
    assert!(
        csv.lines().any(|l| l.ends_with(",gpu_hours,cpu_hours")),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|l| l.starts_with("b,") && l.ends_with(",2.0,0.0")),
        "{csv}"
    );
    let tex = render_latex(&t);
    assert!(tex.contains("& Compute \\\\"), "{tex}");
}
