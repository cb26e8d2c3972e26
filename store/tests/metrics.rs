//! Batch ingest: idempotence, summaries, NaN, series.

mod common;

use common::{experiment, new_run, temp_store, Kind};
use store::{Goal, MetricPoint, RunFilter, RunId, SeriesOptions, Store};

fn p(key: &str, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        key: key.into(),
        step,
        value,
        wall_ms: 1_000 + step,
    }
}

async fn one_run(store: &Store) -> RunId {
    let exp = experiment(store, "m").await;
    store.create_runs(exp, &[new_run(0)]).await.unwrap()[0].id
}

async fn the_same_batch_twice_stores_each_point_once(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    // More points than one INSERT statement holds, over several keys.
    let batch: Vec<MetricPoint> = (0..1500)
        .flat_map(|s| [p("train/loss", s, 1.0 / (s + 1) as f64), p("lr", s, 1e-4)])
        .collect();
    assert_eq!(store.ingest_metrics(run, &batch).await.unwrap(), 3000);
    let before = store.summaries(run).await.unwrap();
    assert_eq!(store.ingest_metrics(run, &batch).await.unwrap(), 0);
    assert_eq!(store.summaries(run).await.unwrap(), before);
    let series = store
        .metric_series(run, "train/loss", SeriesOptions::default())
        .await
        .unwrap();
    assert_eq!(series.len(), 1500);
    assert!(series.windows(2).all(|w| w[0].step + 1 == w[1].step));
    let loss = before.iter().find(|s| s.key == "train/loss").unwrap();
    assert_eq!(loss.count, 1500);

    // A batch overlapping the stored one only adds the new steps, and duplicates inside one
    // batch count once.
    let overlap: Vec<MetricPoint> = (1400..1600).map(|s| p("train/loss", s, 0.0)).collect();
    let mut with_dup = overlap.clone();
    with_dup.push(p("train/loss", 1599, 7.0));
    assert_eq!(store.ingest_metrics(run, &with_dup).await.unwrap(), 100);
    let loss = store.summaries(run).await.unwrap();
    let loss = loss.iter().find(|s| s.key == "train/loss").unwrap();
    assert_eq!(loss.count, 1600);
    assert_eq!(loss.last_step, Some(1599));
    assert_eq!(loss.last, Some(0.0), "the first point of a step wins");
}

async fn summaries_follow_the_goal_of_each_metric(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    store
        .declare_metrics(
            run,
            &[("val/acc", Goal::Maximize), ("val/loss", Goal::Minimize)],
        )
        .await
        .unwrap();
    let acc = [(0, 0.30), (1, 0.55), (2, 0.71), (3, 0.69), (4, 0.71)];
    let loss = [(0, 2.0), (1, 1.2), (2, f64::NAN), (3, 0.8), (4, 0.9)];
    // In two batches, out of order, to exercise the merge with the stored summary.
    let first: Vec<MetricPoint> = [acc[3], acc[0], acc[1]]
        .iter()
        .map(|&(s, v)| p("val/acc", s, v))
        .chain(loss[..3].iter().map(|&(s, v)| p("val/loss", s, v)))
        .chain([p("epoch", 0, 0.0)])
        .collect();
    let second: Vec<MetricPoint> = [acc[4], acc[2]]
        .iter()
        .map(|&(s, v)| p("val/acc", s, v))
        .chain(loss[3..].iter().map(|&(s, v)| p("val/loss", s, v)))
        .collect();
    store.ingest_metrics(run, &first).await.unwrap();
    store.ingest_metrics(run, &second).await.unwrap();

    let summaries = store.summaries(run).await.unwrap();
    let get = |k: &str| summaries.iter().find(|s| s.key == k).unwrap().clone();
    let a = get("val/acc");
    assert_eq!(a.goal, Some(Goal::Maximize));
    assert_eq!(
        (a.best, a.best_step),
        (Some(0.71), Some(2)),
        "earliest of the tied best"
    );
    assert_eq!((a.last, a.last_step), (Some(0.71), Some(4)));
    assert_eq!(
        (a.min, a.max, a.count, a.nan_count),
        (Some(0.30), Some(0.71), 5, 0)
    );

    let l = get("val/loss");
    assert_eq!((l.best, l.best_step), (Some(0.8), Some(3)));
    assert_eq!((l.min, l.max), (Some(0.8), Some(2.0)));
    assert_eq!((l.count, l.nan_count), (5, 1));
    assert_eq!(l.last, Some(0.9));

    let e = get("epoch");
    assert_eq!(e.goal, None);
    assert_eq!(e.best, None, "no goal, no best");
    assert_eq!(e.last, Some(0.0));

    // Changing the goal recomputes best from the stored points.
    store
        .declare_metrics(run, &[("val/loss", Goal::Maximize)])
        .await
        .unwrap();
    let l = store.summaries(run).await.unwrap();
    let l = l.iter().find(|s| s.key == "val/loss").unwrap();
    assert_eq!((l.best, l.best_step), (Some(2.0), Some(0)));
    assert_eq!(l.count, 5);

    // The NaN point reads back as NaN.
    let series = store
        .metric_series(run, "val/loss", SeriesOptions::default())
        .await
        .unwrap();
    assert!(series[2].value.is_nan());
    // Incremental reads.
    let tail = store
        .metric_series(
            run,
            "val/acc",
            SeriesOptions {
                after_step: Some(2),
                max_points: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.iter().map(|p| p.step).collect::<Vec<_>>(), vec![3, 4]);
}

async fn a_nan_last_point_is_reported_as_nan(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    store
        .ingest_metrics(run, &[p("loss", 0, 1.0), p("loss", 1, f64::NAN)])
        .await
        .unwrap();
    let s = &store.summaries(run).await.unwrap()[0];
    assert!(s.last.unwrap().is_nan());
    assert_eq!(s.last_step, Some(1));
    assert_eq!((s.min, s.max, s.nan_count), (Some(1.0), Some(1.0), 1));
}

async fn run_lists_carry_summaries_and_can_select_keys(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "m").await;
    let ids: Vec<RunId> = store
        .create_runs(exp, &(0..4).map(new_run).collect::<Vec<_>>())
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    for (i, &run) in ids.iter().enumerate().take(3) {
        store
            .ingest_metrics(run, &[p("val/acc", 0, i as f64), p("loss", 0, 1.0)])
            .await
            .unwrap();
    }
    let all = store
        .list_runs_with_summaries(&RunFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].summary("val/acc").unwrap().last, Some(1.0));
    assert_eq!(all[0].summaries.len(), 2);
    assert!(all[3].summaries.is_empty());

    let only_acc = RunFilter {
        summary_keys: vec!["val/acc".into()],
        ..RunFilter::default()
    };
    let got = store.list_runs_with_summaries(&only_acc).await.unwrap();
    assert!(got[..3]
        .iter()
        .all(|r| r.summaries.len() == 1 && r.summaries[0].key == "val/acc"));

    let limited = RunFilter {
        limit: Some(2),
        ..RunFilter::default()
    };
    let got = store.list_runs_with_summaries(&limited).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].summary("val/acc").unwrap().last, Some(1.0));
}

async fn series_can_be_downsampled(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    let mut points: Vec<MetricPoint> = (0..5000).map(|s| p("loss", s, 1.0)).collect();
    points[4321].value = 9.0;
    store.ingest_metrics(run, &points).await.unwrap();
    let small = store
        .metric_series(
            run,
            "loss",
            SeriesOptions {
                after_step: None,
                max_points: Some(200),
            },
        )
        .await
        .unwrap();
    assert!(small.len() <= 200 && small.len() >= 100, "{}", small.len());
    assert!(
        small.iter().any(|p| p.step == 4321 && p.value == 9.0),
        "spike kept"
    );
}

async fn run_lists_agree_with_single_run_reads_including_infinities_and_nan(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let exp = experiment(&store, "m").await;
    let created = store
        .create_runs(exp, &(0..3).map(new_run).collect::<Vec<_>>())
        .await
        .unwrap();
    let run = created[0].id;
    let claim = store
        .claim(&common::worker("w"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.run.id, run);
    store
        .declare_metrics(run, &[("grad", Goal::Minimize)])
        .await
        .unwrap();
    store
        .ingest_metrics(
            run,
            &[
                p("grad", 0, f64::INFINITY),
                p("grad", 1, f64::NEG_INFINITY),
                p("grad", 2, f64::NAN),
                p("acc", 0, 0.25),
            ],
        )
        .await
        .unwrap();
    store
        .fail(
            &claim.lease,
            store::FailureClass::Nan,
            "loss is NaN",
            &Default::default(),
        )
        .await
        .unwrap();

    let listed = store
        .list_runs_with_summaries(&RunFilter::default())
        .await
        .unwrap();
    let plain = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 3);
    for (item, row) in listed.iter().zip(&plain) {
        let single = store.run(item.run.id).await.unwrap().unwrap();
        assert_eq!(item.run, single);
        assert_eq!(*row, single);
        let single_summaries = store.summaries(item.run.id).await.unwrap();
        // NaN != NaN, so compare the debug forms.
        assert_eq!(
            format!("{:?}", item.summaries),
            format!("{single_summaries:?}")
        );
    }
    let grad = listed[0].summary("grad").unwrap();
    assert_eq!(grad.max, Some(f64::INFINITY));
    assert_eq!(grad.min, Some(f64::NEG_INFINITY));
    assert_eq!(grad.best, Some(f64::NEG_INFINITY));
    assert_eq!(grad.best_step, Some(1));
    assert!(grad.last.unwrap().is_nan());
    assert_eq!(listed[0].run.failure_class, Some(store::FailureClass::Nan));
}

async fn listed_summaries_keep_every_bit_of_the_values(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    let values = [
        0.1 + 0.2,
        1e-300,
        -123_456.789_012_345_67,
        9_007_199_254_740_993.0,
        std::f64::consts::PI,
        5e-324,
    ];
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        store
            .ingest_metrics(run, &[p(&key, 0, *v), p(&key, 1, v / 3.0)])
            .await
            .unwrap();
    }
    let listed = store
        .list_runs_with_summaries(&RunFilter::default())
        .await
        .unwrap();
    let stored = store.summaries(run).await.unwrap();
    assert_eq!(listed[0].summaries.len(), values.len());
    for (got, want) in listed[0].summaries.iter().zip(&stored) {
        assert_eq!(got.key, want.key);
        for (a, b) in [
            (got.last, want.last),
            (got.min, want.min),
            (got.max, want.max),
        ] {
            assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "{}", got.key);
        }
    }
    let first = listed[0].summary("k0").unwrap();
    assert_eq!(first.max.map(f64::to_bits), Some((0.1f64 + 0.2).to_bits()));
}

async fn series_can_be_read_at_chosen_steps(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    // Sparse steps (every 10th), as evaluations are logged.
    let pts: Vec<MetricPoint> = (1..=100).map(|i| p("val/acc", i * 10, i as f64)).collect();
    store.ingest_metrics(run, &pts).await.unwrap();
    let got = store
        .metric_series_at(run, "val/acc", &[1000, 370, 5, 250, 370])
        .await
        .unwrap();
    let steps: Vec<i64> = got.iter().map(|q| q.step).collect();
    // In step order, once each; step 5 does not exist.
    assert_eq!(steps, vec![250, 370, 1000]);
    assert_eq!(got[1].value, 37.0);
    assert!(store
        .metric_series_at(run, "val/acc", &[])
        .await
        .unwrap()
        .is_empty());
}

/// Batches that follow what is stored (appended with no duplicate check: PostgreSQL's `COPY`)
/// mixed with overlapping, shuffled and repeated ones, for a declared key and an undeclared one:
/// the stored series and summaries are those of a recount (the first point of a step wins).
async fn appended_and_overlapping_batches_agree_with_a_recount(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    store
        .declare_metrics(run, &[("acc", Goal::Maximize)])
        .await
        .unwrap();
    let v = |key: &str, s: i64| match key {
        "acc" if s == 305 => f64::NAN,
        "acc" => ((s * 37) % 101) as f64 / 100.0,
        _ => -(s as f64) - 0.5,
    };
    let steps: [(&str, Vec<i64>); 9] = [
        ("acc", (0..100).collect()),
        ("acc", (50..150).collect()),
        ("acc", (150..200).collect()),
        ("acc", vec![260, 230, 250]),
        ("acc", (201..230).collect()),
        ("acc", (300..310).collect()),
        ("acc", (300..310).collect()),
        ("fresh", (5..10).collect()),
        ("fresh", (0..6).collect()),
    ];
    let mut expected: std::collections::BTreeMap<&str, std::collections::BTreeMap<i64, f64>> =
        Default::default();
    for (key, steps) in &steps {
        let batch: Vec<MetricPoint> = steps.iter().map(|&s| p(key, s, v(key, s))).collect();
        let series = expected.entry(key).or_default();
        let new = steps.iter().filter(|s| !series.contains_key(s)).count() as u64;
        for &s in steps {
            series.entry(s).or_insert(v(key, s));
        }
        assert_eq!(
            store.ingest_metrics(run, &batch).await.unwrap(),
            new,
            "{key} {steps:?}"
        );
    }
    let summaries = store.summaries(run).await.unwrap();
    for (key, series) in &expected {
        let got = store
            .metric_series(run, key, SeriesOptions::default())
            .await
            .unwrap();
        let got: Vec<(i64, f64)> = got.iter().map(|q| (q.step, q.value)).collect();
        let want: Vec<(i64, f64)> = series.iter().map(|(&s, &v)| (s, v)).collect();
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{key}");
        let summary = summaries.iter().find(|x| x.key == *key).unwrap();
        let values: Vec<f64> = series.values().copied().filter(|v| !v.is_nan()).collect();
        assert_eq!(summary.count, series.len() as i64, "{key}");
        assert_eq!(
            summary.nan_count,
            (series.len() - values.len()) as i64,
            "{key}"
        );
        assert_eq!(summary.last_step, series.keys().last().copied(), "{key}");
        assert_eq!(
            summary.min,
            values.iter().copied().reduce(f64::min),
            "{key}"
        );
        assert_eq!(
            summary.max,
            values.iter().copied().reduce(f64::max),
            "{key}"
        );
    }
    let acc = summaries.iter().find(|x| x.key == "acc").unwrap();
    assert_eq!(acc.best, acc.max);
    let first_best = expected["acc"].iter().find(|(_, &v)| Some(v) == acc.max);
    assert_eq!(acc.best_step, first_best.map(|(&s, _)| s));
    let listed = store
        .list_runs_with_summaries(&RunFilter::default())
        .await
        .unwrap();
    assert_eq!(
        format!("{:?}", listed[0].summaries),
        format!("{summaries:?}")
    );
}

/// Writers of one run's metrics at once (a trainer and a system sampler, or a re-sent batch):
/// no point is lost from the summary, which each merges from what it read.
async fn concurrent_batches_of_one_run_are_all_counted(kind: Kind) {
    let (store, _dir) = temp_store(kind).await;
    let run = one_run(&store).await;
    let tasks: Vec<_> = (0..6i64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..10i64 {
                    let first = (w * 10 + b) * 50;
                    let batch: Vec<MetricPoint> = (first..first + 50)
                        .map(|s| p("loss", s, s as f64))
                        .collect();
                    store.ingest_metrics(run, &batch).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let summaries = store.summaries(run).await.unwrap();
    assert_eq!(summaries[0].count, 3000);
    assert_eq!(summaries[0].last_step, Some(2999));
    assert_eq!(summaries[0].min, Some(0.0));
    let series = store
        .metric_series(run, "loss", SeriesOptions::default())
        .await
        .unwrap();
    assert_eq!(series.len(), 3000);
}

on_both_backends!(
    appended_and_overlapping_batches_agree_with_a_recount,
    concurrent_batches_of_one_run_are_all_counted,
    the_same_batch_twice_stores_each_point_once,
    summaries_follow_the_goal_of_each_metric,
    a_nan_last_point_is_reported_as_nan,
    run_lists_carry_summaries_and_can_select_keys,
    series_can_be_downsampled,
    run_lists_agree_with_single_run_reads_including_infinities_and_nan,
    listed_summaries_keep_every_bit_of_the_values,
    series_can_be_read_at_chosen_steps,
);
