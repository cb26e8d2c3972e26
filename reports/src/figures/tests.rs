use super::*;
use crate::input::{Format, ManagerWeightPoint, Modality, RunData, RunStatus};
use crate::sample::sample_input;

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

/// Text content of every `<text>` element.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            body.trim().to_string()
        })
        .collect()
}

#[test]
fn learning_curves_have_one_line_and_band_per_cell_and_labels() {
    let input = sample_input();
    let fig = learning_curves(&input, &CurveOptions::new("val/vqa/score")).unwrap();
    let svg = fig.to_svg().unwrap();
    let t = texts(&svg);
    for label in [
        "none, Lr 1e-5",
        "SAUE, Lr 2e-5",
        "AAUE, Lr 2e-5",
        "Step",
        "VQA val",
    ] {
        assert!(
            t.iter().any(|x| x == label),
            "missing text {label:?} in {t:?}"
        );
    }
    // 6 mean lines (+ 6 legend swatches) and 6 std bands.
    assert_eq!(count(&svg, "<polygon"), 6);
    assert!(count(&svg, "<polyline") >= 12);
    assert!(svg.contains("<desc>TowerLab figure: experiment manager_ablation\nexperiment hash: 3f9a1c07e2b4d5a6\nruns used (16):"));
    assert!(svg.contains("font-family=\"DejaVu Sans, sans-serif\""));
    assert!(svg.starts_with("<svg width=\"3.5in\" height=\"2.6in\" viewBox=\"0 0 1050 780\""));
    // The failed run is not plotted.
    assert!(!svg.contains("r112"));
}

#[test]
fn curve_subset_and_errors() {
    let input = sample_input();
    let opts = CurveOptions {
        cells: Some(vec![
            "manager=AAUE,lr=1e-5".into(),
            "manager=none,lr=1e-5".into(),
        ]),
        ..CurveOptions::new("val/itm/loss")
    };
    let series = curve_series(&input, &opts).unwrap();
    let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["AAUE", "none"], "only varying axes are named");
    assert_eq!(series[0].points.len(), 200);
    let e = learning_curves(&input, &CurveOptions::new("nope")).unwrap_err();
    assert!(matches!(e, ReportError::NoData(_)), "{e}");
    let bad = CurveOptions {
        cells: Some(vec!["x".into()]),
        ..CurveOptions::new("val/itm/loss")
    };
    let e = curve_series(&input, &bad).unwrap_err().to_string();
    assert!(
        e.contains("cell `x` is not one of the report's cells"),
        "{e}"
    );
}

#[test]
fn ablation_bars_group_colour_and_annotate() {
    let input = sample_input();
    let opts = BarOptions::auto(&input, "val/vqa/score");
    assert_eq!(opts.color_by.as_deref(), Some("manager"));
    let (data, run_ids) = bar_data(&input, &opts).unwrap();
    assert_eq!(data.groups, [vec!["1e-5"], vec!["2e-5"]]);
    assert_eq!(data.group_title, "Lr");
    assert_eq!(data.colors, ["none", "SAUE", "AAUE"]);
    assert_eq!(data.bars.len(), 6);
    assert_eq!(run_ids.len(), 16);
    let svg = ablation_bars(&input, &opts).unwrap().to_svg().unwrap();
    let t = texts(&svg);
    for label in [
        "1e-5", "2e-5", "Lr", "none", "AAUE", "VQA val", "‡", "† n=2",
    ] {
        assert!(
            t.iter().any(|x| x == label),
            "missing text {label:?} in {t:?}"
        );
    }
    let e = ablation_bars(&input, &BarOptions::auto(&input, "train/loss")).unwrap_err();
    assert!(
        e.to_string()
            .contains("`train/loss` is not one of the report's metrics"),
        "{e}"
    );
    let mut bad = BarOptions::auto(&input, "val/vqa/score");
    bad.color_by = Some("optimizer".into());
    assert!(ablation_bars(&input, &bad).is_err());
}

#[test]
fn bars_without_colour_axis_label_every_cell() {
    let input = sample_input();
    let opts = BarOptions {
        color_by: None,
        ..BarOptions::auto(&input, "val/itm/loss")
    };
    let (data, _) = bar_data(&input, &opts).unwrap();
    assert_eq!(data.groups.len(), 6);
    // A line per grouping axis, each naming its axis.
    assert_eq!(data.groups[0], ["none", "Lr 1e-5"]);
    assert!(data.colors.is_empty());
}

#[test]
fn manager_panels_match_fig6_layout() {
    let input = sample_input();
    let fig = manager_panels(&input, &ManagerOptions::default()).unwrap();
    let svg = fig.to_svg().unwrap();
    let t = texts(&svg);
    let panels = t.iter().filter(|x| x.starts_with("Layer ")).count();
    assert_eq!(panels, 12, "2 rows × 6 layers");
    for label in [
        "Textual",
        "Visual",
        "Aggregation weight",
        "Uni-modal expert",
        "7",
        "12",
    ] {
        assert!(t.iter().any(|x| x == label), "missing text {label:?}");
    }
    assert!(fig.description().contains("cell: manager=SAUE,lr=1e-5"));
    assert!(fig.description().contains("r100@10000"));
}

#[test]
fn manager_heatmap_prints_values() {
    let input = sample_input();
    let fig = manager_heatmap(&input, &ManagerOptions::default()).unwrap();
    let svg = fig.to_svg().unwrap();
    let t = texts(&svg);
    let values = t
        .iter()
        .filter(|x| x.len() == 4 && x.starts_with("0."))
        .count();
    // 2 × 6 × 6 cells, plus colour-bar labels with the same format.
    assert!(values >= 72, "{values}");
    assert!(t.iter().any(|x| x == "Cross-modal layer"));
    // Every ManagerTower cell gets a titled row: SAUE and AAUE at both learning rates.
    // One axis title for all rows.
    assert_eq!(t.iter().filter(|x| *x == "Uni-modal expert").count(), 1);
    assert_eq!(t.iter().filter(|x| *x == "Textual").count(), 4);
    for title in ["SAUE, Lr 1e-5", "AAUE, Lr 2e-5"] {
        assert!(t.iter().any(|x| x == title), "missing row title {title:?}");
    }
    assert!(verify_svg(&svg).is_empty(), "{:?}", verify_svg(&svg));
}

fn weights_run(id: &str, seed: u64, points: &[(u64, f64)]) -> RunData {
    let mut r = RunData::new(id, seed, RunStatus::Finished);
    r.manager_weights = points
        .iter()
        .map(|&(step, weight)| ManagerWeightPoint {
            step,
            modality: Modality::Image,
            layer: 2,
            expert: 9,
            weight,
        })
        .collect();
    r
}

#[test]
fn manager_weights_average_seeds_at_the_chosen_step() {
    let mut input = sample_input();
    input.cells[0].runs = vec![
        weights_run("a", 0, &[(100, 0.1), (200, 0.2)]),
        weights_run("b", 1, &[(100, 0.3), (200, 0.4), (300, 0.9)]),
    ];
    let opts = ManagerOptions {
        cell: Some(input.cells[0].key.clone()),
        step: Some(250),
        ..ManagerOptions::default()
    };
    let w = manager_weights(&input, &opts).unwrap();
    assert_eq!(w.modalities, [Modality::Image]);
    assert_eq!(
        (w.layers.as_slice(), w.experts.as_slice()),
        (&[2][..], &[9][..])
    );
    let s = w.weights[0][0][0].unwrap();
    assert!((s.mean - 0.3).abs() < 1e-12 && s.n == 2, "{s:?}");
    assert_eq!(
        w.snapshots,
        [("a".to_string(), 200), ("b".to_string(), 200)]
    );
    let last = manager_weights(
        &input,
        &ManagerOptions {
            step: None,
            ..opts.clone()
        },
    )
    .unwrap();
    assert!((last.weights[0][0][0].unwrap().mean - 0.55).abs() < 1e-12);
    let early = ManagerOptions {
        step: Some(50),
        ..opts
    };
    assert!(matches!(
        manager_weights(&input, &early),
        Err(ReportError::NoData(_))
    ));
}

#[test]
fn figures_are_deterministic_and_png_is_a_300_dpi_image() {
    let input = sample_input();
    let opts = BarOptions::auto(&input, "val/vqa/score");
    let a = ablation_bars(&input, &opts).unwrap();
    let b = ablation_bars(&input, &opts).unwrap();
    assert_eq!(a.to_svg().unwrap(), b.to_svg().unwrap());
    let png = a.to_png().unwrap();
    assert_eq!(png, b.to_png().unwrap());
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (1050, 780));
    let dims = info.pixel_dims.unwrap();
    assert_eq!((dims.xppu, dims.unit), (11811, png::Unit::Meter));
    assert!(info
        .uncompressed_latin1_text
        .iter()
        .any(|t| t.keyword == "Description" && t.text.contains("3f9a1c07e2b4d5a6")));
}

#[test]
fn png_text_is_rendered_with_the_embedded_font() {
    // A figure whose only ink besides axes is text: count non-white pixels in the legend strip.
    let input = sample_input();
    let png = learning_curves(&input, &CurveOptions::new("val/vqa/score"))
        .unwrap()
        .to_png()
        .unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut buf).unwrap();
    let (w, h) = (1050usize, 780usize);
    // The bottom 60 px hold legend text only.
    let dark = (h - 60..h)
        .flat_map(|y| (0..w).map(move |x| (y * w + x) * 3))
        .filter(|&i| buf[i] < 100 && buf[i + 1] < 100 && buf[i + 2] < 100)
        .count();
    assert!(dark > 500, "legend text drawn: {dark} dark pixels");
}

#[test]
fn write_all_writes_every_format_and_skips_empty_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = sample_input();
    let written = crate::write_all(&input, dir.path(), &Format::ALL).unwrap();
    let names: Vec<String> = written
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in [
        "table.md",
        "table.tex",
        "table.csv",
        "runs.csv",
        "curves-val-vqa-score.svg",
        "curves-val-vqa-score.png",
        "bars-val-itm-loss.png",
        // One Fig. 6 per ManagerTower cell, one heatmap with a row per cell.
        "manager-weights-manager-saue-lr-1e-5.svg",
        "manager-weights-manager-aaue-lr-2e-5.png",
        "manager-heatmap.png",
    ] {
        assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
        assert!(dir.path().join(n).is_file());
    }
    assert_eq!(names.len(), 26);
    for n in names.iter().filter(|n| n.ends_with(".svg")) {
        let svg = std::fs::read_to_string(dir.path().join(n)).unwrap();
        assert!(verify_svg(&svg).is_empty(), "{n}: {:?}", verify_svg(&svg));
    }
    assert!(written.skipped.is_empty());
    for cell in &mut input.cells {
        for run in &mut cell.runs {
            run.manager_weights.clear();
        }
    }
    let out2 = dir.path().join("svg-only");
    let written = crate::write_all(&input, &out2, &[Format::Svg]).unwrap();
    assert_eq!(written.files.len(), 6);
    assert_eq!(written.skipped.len(), 2);
    assert!(written.skipped[0].starts_with("manager-weights: no finished run recorded"));
    assert!(!std::fs::read_dir(&out2).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

/// Renders every figure kind of the study grid with `axes` axes and returns (name, SVG).
fn study_figures(axes: usize) -> Vec<(String, String)> {
    let input = crate::sample::study_input(axes);
    let mut out = Vec::new();
    for m in ["val/vqa/score_epoch", "train/loss"] {
        let curves = learning_curves(&input, &CurveOptions::new(m)).unwrap();
        out.push((format!("curves {m}"), curves.to_svg().unwrap()));
        let bars = ablation_bars(&input, &BarOptions::auto(&input, m)).unwrap();
        out.push((format!("bars {m}"), bars.to_svg().unwrap()));
    }
    for cell in manager_cells(&input) {
        let opts = ManagerOptions {
            cell: Some(cell.clone()),
            ..ManagerOptions::default()
        };
        let fig = manager_panels(&input, &opts).unwrap();
        out.push((format!("manager panels {cell}"), fig.to_svg().unwrap()));
    }
    let heat = manager_heatmap(&input, &ManagerOptions::default()).unwrap();
    out.push(("manager heatmap".into(), heat.to_svg().unwrap()));
    out
}

#[test]
fn every_figure_of_a_one_two_and_three_axis_study_fits_its_canvas() {
    for axes in 1..=3 {
        let cells = [2, 4, 8][axes - 1];
        for (name, svg) in study_figures(axes) {
            let problems = verify_svg(&svg);
            assert!(problems.is_empty(), "{axes} axes, {name}: {problems:#?}");
            let drawn = check_svg(&svg).unwrap();
            let desc = &svg[svg.find("<desc>").unwrap()..svg.find("</desc>").unwrap()];
            let listed = |prefix: &str| desc.lines().filter(|l| l.starts_with(prefix)).count();
            if name.starts_with("curves") {
                // One curve per cell, each named in the legend.
                assert_eq!(listed("series colour: "), cells, "{name}");
                assert_eq!(listed("legend entry: "), cells, "{name}");
            } else if name.starts_with("bars") {
                assert_eq!(listed("bar colour: "), cells, "{name}");
                // Coloured by the manager once two axes vary.
                assert_eq!(
                    listed("legend entry: "),
                    if axes == 1 { 0 } else { 2 },
                    "{name}"
                );
                for label in ["SAUE", "AAUE"] {
                    assert!(drawn.has_text(label), "{name}: no {label}");
                }
            } else if name == "manager heatmap" {
                assert_eq!(listed("panel title: "), cells, "{name}");
            } else {
                assert_eq!(listed("panel title: "), 1, "{name}");
            }
        }
    }
}

#[test]
fn a_zip_group_is_named_once_by_its_first_axis_and_only_varying_axes_are_shown() {
    let input = crate::sample::study_input(3);
    let series = curve_series(&input, &CurveOptions::new("val/vqa/score_epoch")).unwrap();
    let labels: Vec<&str> = series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels[0], "SAUE, Managed layers 2, no VLP");
    assert_eq!(labels[7], "AAUE, Managed layers 4, VLP");
    let (data, _) = bar_data(&input, &BarOptions::auto(&input, "val/vqa/score_epoch")).unwrap();
    assert_eq!(data.groups[0], ["Managed layers 2", "no VLP"]);
    assert_eq!(data.colors, ["SAUE", "AAUE"]);
    assert_eq!(data.metric_label, "VQA score (val)");
    // One axis: the manager alone names each curve.
    let one = crate::sample::study_input(1);
    let series = curve_series(&one, &CurveOptions::new("train/loss")).unwrap();
    assert_eq!(series[1].label, "AAUE");
    let (data, _) = bar_data(&one, &BarOptions::auto(&one, "train/loss")).unwrap();
    assert_eq!(data.groups[0], ["SAUE"]);
    assert_eq!(data.group_title, "Manager");
}

#[test]
fn the_label_map_of_the_file_names_metrics_axes_and_values() {
    let mut input = crate::sample::study_input(2);
    input.labels = crate::Labels {
        metrics: [(
            "val/vqa/score_epoch".to_string(),
            "VQAv2 accuracy".to_string(),
        )]
        .into(),
        axes: [("managed_layers_text".to_string(), "Managed".to_string())].into(),
        values: [(
            "manager_type".to_string(),
            [("SAUE".to_string(), "static".to_string())].into(),
        )]
        .into(),
    };
    let svg = learning_curves(&input, &CurveOptions::new("val/vqa/score_epoch"))
        .unwrap()
        .to_svg()
        .unwrap();
    let t = texts(&svg);
    for label in ["VQAv2 accuracy", "static, Managed 2", "AAUE, Managed 4"] {
        assert!(t.iter().any(|x| x == label), "missing {label:?} in {t:?}");
    }
    assert!(verify_svg(&svg).is_empty());
}

#[test]
fn a_legend_too_long_for_the_figure_takes_more_rows_and_the_figure_grows() {
    let mut input = crate::sample::study_input(3);
    for cell in &mut input.cells {
        let long = format!("{} with a long descriptive name", cell.axes["manager_type"]);
        cell.axes.insert("manager_type".into(), long);
    }
    let fig = learning_curves(&input, &CurveOptions::new("val/vqa/score_epoch")).unwrap();
    assert!(
        fig.size.height_in > FigureSize::COLUMN.height_in,
        "{:?}",
        fig.size
    );
    let svg = fig.to_svg().unwrap();
    let problems = verify_svg(&svg);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn verify_finds_a_curve_or_legend_entry_that_is_not_drawn() {
    let input = crate::sample::study_input(2);
    let svg = learning_curves(&input, &CurveOptions::new("train/loss"))
        .unwrap()
        .to_svg()
        .unwrap();
    assert!(verify_svg(&svg).is_empty());
    // Drop the legend text of one entry and the polylines of one colour.
    let cut = svg.replace(">\nAAUE, Managed layers 4\n<", ">\n\n<");
    let p = verify_svg(&cut);
    assert!(
        p.iter().any(|m| m.contains("AAUE, Managed layers 4")),
        "{p:?}"
    );
    let colour = format!("stroke=\"#{:02X}{:02X}{:02X}\"", 0, 158, 115);
    let cut = svg.replace(&colour, "stroke=\"#123456\"");
    let p = verify_svg(&cut);
    assert!(p.iter().any(|m| m.contains("curves in #009E73")), "{p:?}");
}
