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
        "manager=none, lr=1e-5",
        "manager=SAUE, lr=2e-5",
        "manager=AAUE, lr=2e-5",
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
    assert_eq!(
        labels,
        ["manager=AAUE", "manager=none"],
        "only varying axes are named"
    );
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
    assert_eq!(data.groups, ["lr=1e-5", "lr=2e-5"]);
    assert_eq!(
        data.colors,
        ["manager=none", "manager=SAUE", "manager=AAUE"]
    );
    assert_eq!(data.bars.len(), 6);
    assert_eq!(run_ids.len(), 16);
    let svg = ablation_bars(&input, &opts).unwrap().to_svg().unwrap();
    let t = texts(&svg);
    for label in [
        "lr=1e-5",
        "lr=2e-5",
        "manager=none",
        "manager=AAUE",
        "VQA val",
        "‡",
        "† n=2",
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
    assert_eq!(data.groups[0], "manager=none, lr=1e-5");
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
    assert_eq!(t.iter().filter(|x| *x == "Uni-modal expert").count(), 2);
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
        "manager-weights.svg",
        "manager-heatmap.png",
    ] {
        assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
        assert!(dir.path().join(n).is_file());
    }
    assert_eq!(names.len(), 20);
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
