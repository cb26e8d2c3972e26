//! The loop on in-memory batches: NaN detection, events, refusing a foreign checkpoint.
//! Exact resume is tested in `engine/tests/train_resume.rs`, alone in its process, because
//! torch's random generator is process-wide and other tests running in parallel would draw from it.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use experiments::{ManagerType, Settings, Task};
use tch::{Device, Kind, Tensor};

use super::source::TaskData;
use super::*;
use crate::model::objectives::{Batch, Split};
use crate::Result;

#[path = "../../tests/support/random_vqa.rs"]
mod random_vqa;
use random_vqa::{job, settings, RandomVqa};

#[allow(dead_code)]
#[test]
fn nan_loss_fails_the_run_with_class_nan() {
    let data = RandomVqa {
        settings: settings(4),
        batches: 5,
        poison_at: Some((0, 2)),
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), settings(4), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    match out {
        Outcome::Failed { class, message, .. } => {
            assert_eq!(class, FailureClass::Nan);
            assert!(message.contains("loss is NaN"), "{message}");
        }
        other => panic!("expected a NaN failure, got {other:?}"),
    }
    let last = rx.try_iter().last().unwrap();
    assert!(matches!(
        last,
        Event::Failed {
            class: FailureClass::Nan,
            ..
        }
    ));
}

#[test]
fn events_come_in_order_with_eval_and_manager_weights() {
    let data = RandomVqa {
        settings: settings(2),
        batches: 4,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), settings(2), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(out, Outcome::Finished { step: 2 });
    let events: Vec<Event> = rx.try_iter().collect();
    assert!(matches!(
        events[0],
        Event::Started {
            total_steps: 2,
            resumed_at: None,
            ..
        }
    ));
    let step_losses: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { metrics, .. } => metrics
                .iter()
                .find(|(k, _)| k == "train/vqa/loss")
                .map(|(_, v)| *v),
            _ => None,
        })
        .collect();
    assert_eq!(step_losses.len(), 2);
    // The epoch's training metrics once, where training stops: the mean over its micro-batches
    // (two optimiser steps of two each), and `train/the_metric` = the VQA score.
    let epoch: Vec<&Vec<(String, f64)>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { step: 2, metrics }
                if metrics.iter().any(|(k, _)| k.ends_with("_epoch")) =>
            {
                Some(metrics)
            }
            _ => None,
        })
        .collect();
    assert_eq!(epoch.len(), 1, "{events:?}");
    let get = |k: &str| {
        epoch[0]
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap()
    };
    let mean = (step_losses[0] + step_losses[1]) / 2.0;
    assert!((get("train/vqa/loss_epoch") - mean).abs() < 1e-9);
    assert_eq!(get("train/the_metric"), get("train/vqa/score_epoch"));
    let eval = events
        .iter()
        .find_map(|e| match e {
            Event::Eval { metrics, .. } => Some(metrics.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        eval.iter().any(|(k, _)| k == "val/vqa/score_epoch"),
        "{eval:?}"
    );
    assert!(eval.iter().any(|(k, _)| k == "val/the_metric"));
    // Every name logged is one the plan knows beforehand (its `[metric]` check uses them).
    let known = super::names::metric_names(&settings(2));
    for e in &events {
        if let Event::Step { metrics, .. } | Event::Eval { metrics, .. } = e {
            for (k, _) in metrics {
                assert!(known.contains(k), "{k} is logged but not in {known:?}");
            }
        }
    }
    let weights = events
        .iter()
        .find_map(|e| match e {
            Event::ManagerWeights { weights, .. } => Some(weights.clone()),
            _ => None,
        })
        .unwrap();
    // tiny: 2 cross-modal layers × 2 modalities; 3 experts each, plus the cross weight on layer 1.
    assert_eq!(weights.len(), 2 * (3 + 3 + 1));
    assert!(matches!(events.last(), Some(Event::Finished { step: 2 })));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Checkpoint { step: 2, .. })));
}

#[test]
fn resuming_another_runs_checkpoint_is_refused() {
    let data = RandomVqa {
        settings: settings(2),
        batches: 4,
        poison_at: None,
    };
    let (tx, _rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    run_with_data(
        &job(dir.path(), settings(2), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    let mut other = job(dir.path(), settings(4), true);
    other.run_hash = "someone-else".into();
    match run_with_data(&other, &data, &tx, &AtomicBool::new(false)) {
        Outcome::Failed { message, .. } => assert!(message.contains("someone-else"), "{message}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn retrieval_evaluation_reports_recall_when_asked() {
    use super::eval::{evaluate, EvalOptions, RecallOptions};
    use crate::model::{ModelConfig, TowerModel};

    let dir = tempfile::tempdir().unwrap();
    crate::data::synth::synth(dir.path(), crate::data::synth::SynthSize::Small, 0).unwrap();
    let s = Settings {
        task: Task::Irtr,
        manager_type: ManagerType::Aaue,
        device: "cpu".into(),
        data_root: dir.path().display().to_string(),
        train_tables: vec!["f30k_caption_karpathy_train".into()],
        val_tables: vec!["f30k_caption_karpathy_val".into()],
        test_tables: vec!["f30k_caption_karpathy_test".into()],
        get_recall_metric: true,
        k_test: 4,
        num_workers: 0,
        per_gpu_eval_batchsize: 48,
        ..Settings::tiny()
    };
    let data = super::data_source::LoaderData::open(&s).unwrap();
    let cfg = ModelConfig::from_settings(&s).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = TowerModel::new(&vs.root(), &cfg).unwrap();
    let opts = RecallOptions {
        k_test: 4,
        chunk: 128,
    };
    let on_val = |recall| EvalOptions {
        recall,
        split: crate::model::objectives::Split::Val,
        seed: 0,
    };
    let e = evaluate(&model, &s.objectives(), &data, on_val(Some(opts))).unwrap();
    let get = |k: &str| {
        e.metrics
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{k} missing from {:?}", e.metrics))
    };
    for k in ["ir", "tr"] {
        let (r1, r5, r10) = (
            get(&format!("val/{k}_r1")),
            get(&format!("val/{k}_r5")),
            get(&format!("val/{k}_r10")),
        );
        assert!(
            (0.0..=100.0).contains(&r1) && r1 <= r5 && r5 <= r10,
            "{k}: {r1} {r5} {r10}"
        );
    }
    // 48 images, 240 captions: R@10 of any ranking is far above zero.
    assert!(get("val/tr_r10") > 0.0 && get("val/ir_r10") > 0.0);
    // Logged in percent, summed as a fraction (the reference's `the_metric += r_mean`).
    assert_eq!(e.the_metric, get("val/r_mean") / 100.0);
    assert!(e
        .metrics
        .iter()
        .any(|(k, _)| k == "val/irtr_itm/accuracy_epoch"));

    let without = evaluate(&model, &s.objectives(), &data, on_val(None)).unwrap();
    assert!(without.metrics.iter().all(|(k, _)| !k.contains("r_mean")));
    assert_eq!(without.the_metric, 0.0);
}

/// A finished VQA run answers every test question with the best checkpoint and writes the
/// eval.ai file; `id2answer` comes from the training and validation tables.
#[test]
fn vqa_run_writes_test_predictions_of_the_best_checkpoint() {
    use std::collections::BTreeSet;

    use crate::data::{synth, Target, ViltDataset};

    let data_dir = tempfile::tempdir().unwrap();
    synth::synth(data_dir.path(), synth::SynthSize::Small, 0).unwrap();
    let s = Settings {
        task: Task::Vqa,
        device: "cpu".into(),
        data_root: data_dir.path().display().to_string(),
        train_tables: vec!["vqav2_train".into()],
        val_tables: vec!["vqav2_val".into()],
        test_tables: vec!["vqav2_test".into()],
        vqav2_label_size: synth::answer_vocabulary().len() as i64,
        max_steps: 3,
        val_check_steps: 1,
        batch_size: 8,
        per_gpu_batchsize: 8,
        per_gpu_eval_batchsize: 64,
        num_workers: 0,
        // Below, the predictions are made from checkpoints the policy would remove.
        save_top_k: -1,
        ..Settings::tiny()
    };
    let loader = super::data_source::LoaderData::open(&s).unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel();
    let out = run_with_data(
        &job(run_dir.path(), s.clone(), false),
        &loader,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(out, Outcome::Finished { step: 3 });
    let events: Vec<Event> = rx.try_iter().collect();
    // The best of the three evaluations, first on ties.
    let scores: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Eval { metrics, .. } => metrics
                .iter()
                .find(|(k, _)| k == "val/the_metric")
                .map(|(_, v)| *v),
            _ => None,
        })
        .collect();
    assert_eq!(scores.len(), 3);
    let best = scores
        .iter()
        .enumerate()
        .fold(0, |b, (i, v)| if *v > scores[b] { i } else { b })
        + 1;
    let (step, path, count) = events
        .iter()
        .find_map(|e| match e {
            Event::Predictions { step, path, count } => Some((*step, path.clone(), *count)),
            _ => None,
        })
        .expect("a predictions event");
    assert_eq!(step, best as u64);
    assert_eq!(path, run_dir.path().join(predictions::SUBMISSION_FILE));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let test = ViltDataset::open(
        data_dir.path(),
        &["vqav2_test".to_string()],
        crate::data::DatasetKind::Vqa,
    )
    .unwrap();
    let expected: BTreeSet<i64> = (0..test.len())
        .map(|i| match test.target(i).unwrap() {
            Target::Vqa { question_id, .. } => question_id,
            other => panic!("{other:?}"),
        })
        .collect();
    let got: BTreeSet<i64> = rows
        .iter()
        .map(|r| r["question_id"].as_i64().unwrap())
        .collect();
    assert_eq!(rows.len(), test.len());
    assert_eq!(count, test.len());
    assert_eq!(got, expected);
    // Labels no training or validation answer names answer "unknown", as the reference.
    let vocab = synth::answer_vocabulary();
    assert!(rows.iter().all(|r| {
        let a = r["answer"].as_str().unwrap();
        a == "unknown" || vocab.iter().any(|v| v == a)
    }));

    // The answers are those of the best checkpoint's weights.
    {
        use crate::model::{ModelConfig, TowerModel};
        let cfg = ModelConfig::from_settings(&s).unwrap();
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let model = TowerModel::new(&vs.root(), &cfg).unwrap();
        let ck =
            checkpoint::load(&run_dir.path().join(format!("checkpoints/step-{best}"))).unwrap();
        let mut vars = vs.variables();
        tch::no_grad(|| {
            for (name, t) in &ck.model {
                vars.get_mut(name).unwrap().copy_(t);
            }
        });
        let super::source::TestQuestions::Ready(test) = loader.vqa_test().unwrap() else {
            panic!("no test questions")
        };
        let direct = predictions::predict(&model, test, &AtomicBool::new(false))
            .unwrap()
            .unwrap();
        let file: Vec<(i64, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["question_id"].as_i64().unwrap(),
                    r["answer"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(direct, file);
    }

    // The synthetic labels index the vocabulary; both splits together use all of it.
    let known = [
        ViltDataset::open(
            data_dir.path(),
            &["vqav2_train".to_string()],
            crate::data::DatasetKind::Vqa,
        )
        .unwrap(),
        ViltDataset::open(
            data_dir.path(),
            &["vqav2_val".to_string()],
            crate::data::DatasetKind::Vqa,
        )
        .unwrap(),
    ];
    let id2answer = predictions::id2answer(&known.iter().collect::<Vec<_>>()).unwrap();
    for (id, answer) in &id2answer {
        assert_eq!(&vocab[*id as usize], answer);
    }

    // A resumed, already finished run keeps the file.
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    let (tx, _rx) = mpsc::channel();
    let again = run_with_data(
        &job(run_dir.path(), s.clone(), true),
        &loader,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(again, Outcome::Finished { step: 3 });
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        before
    );

    // A best checkpoint before the last: its weights answer (they are in the model after).
    {
        use crate::model::{ModelConfig, TowerModel};
        let cfg = ModelConfig::from_settings(&s).unwrap();
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let model = TowerModel::new(&vs.root(), &cfg).unwrap();
        let state = checkpoint::LoopState {
            best_step: Some(1),
            ..checkpoint::load(&run_dir.path().join("checkpoints/step-3"))
                .unwrap()
                .state
        };
        let (tx, rx) = mpsc::channel();
        let done = run::write_vqa_predictions(
            &job(run_dir.path(), s.clone(), true),
            &model,
            &vs,
            &loader,
            &state,
            &tx,
            true,
        )
        .unwrap();
        assert!(done);
        assert!(rx
            .try_iter()
            .any(|e| matches!(e, Event::Predictions { step: 1, .. })));
        let vars = vs.variables();
        for (name, t) in checkpoint::load_model(&run_dir.path().join("checkpoints/step-1")).unwrap()
        {
            assert!(vars[&name].equal(&t), "{name} is not step 1's");
        }
    }

    // A fresh start drops an earlier attempt's answers before it trains.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join(predictions::SUBMISSION_FILE), "[]").unwrap();
    let (tx, _rx) = mpsc::channel();
    let cancelled = run_with_data(
        &job(fresh.path(), s, false),
        &loader,
        &tx,
        &AtomicBool::new(true),
    );
    assert!(
        matches!(cancelled, Outcome::Cancelled { .. }),
        "{cancelled:?}"
    );
    assert!(!fresh.path().join(predictions::SUBMISSION_FILE).exists());
}

/// A real allocation failure inside the training step: text padded to 65,536 tokens makes
/// the first attention score tensor [B, heads, L, L] need hundreds of GB, which the CPU
/// allocator refuses at once. tch's infallible calls panic on it; the run must still end as
/// `Failed` with class `oom` (the retry policy's class), not `error`, and not unwind further.
#[test]
fn an_allocation_failure_in_the_step_is_classified_oom() {
    let len = 1 << 16;
    let s = Settings {
        max_text_len: len,
        text_max_position_embeddings: len + 2,
        ..settings(2)
    };
    let data = RandomVqa {
        settings: s.clone(),
        batches: 2,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), s, false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    match out {
        Outcome::Failed {
            class,
            message,
            step,
        } => {
            assert_eq!(class, FailureClass::Oom, "{message}");
            assert!(message.starts_with("out of memory: "), "{message}");
            assert!(message.contains("allocate"), "{message}");
            assert_eq!(step, 0);
        }
        other => panic!("expected an out-of-memory failure, got {other:?}"),
    }
    assert!(matches!(
        rx.try_iter().last(),
        Some(Event::Failed {
            class: FailureClass::Oom,
            ..
        })
    ));
}

/// Corrupt images skipped in a run that ends before its first epoch does are still reported.
#[test]
fn skipped_images_are_logged_when_the_run_ends_mid_epoch() {
    struct Skipping(RandomVqa);
    impl TaskData for Skipping {
        fn train_batches_per_epoch(&self) -> usize {
            self.0.train_batches_per_epoch()
        }
        fn train_epoch(
            &self,
            epoch: u64,
            start: usize,
        ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
            self.0.train_epoch(epoch, start)
        }
        fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_> {
            self.0.eval_batches()
        }
        fn skipped_images(&self) -> usize {
            3
        }
    }
    let data = Skipping(RandomVqa {
        settings: settings(2),
        batches: 10,
        poison_at: None,
    });
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), settings(2), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(out, Outcome::Finished { step: 2 });
    let logs: Vec<String> = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Log { message } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        logs.iter().any(|m| m.contains("3 corrupt images skipped")),
        "{logs:?}"
    );
}

/// The retention policy: the last and the best checkpoint stay, the rest go, and the VQA
/// predictions still come from the best.
#[test]
fn a_finished_run_keeps_the_last_and_the_best_checkpoint() {
    let s = Settings {
        val_check_steps: 1,
        ..settings(4)
    };
    let data = RandomVqa {
        settings: s.clone(),
        batches: 8,
        poison_at: None,
    };
    let (tx, _rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let j = job(dir.path(), s, false);
    let out = run_with_data(&j, &data, &tx, &AtomicBool::new(false));
    assert_eq!(out, Outcome::Finished { step: 4 });
    let ckpt = j.checkpoint_dir();
    let mut kept: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    kept.sort();
    assert!(kept.contains(&"step-4".to_string()), "{kept:?}");
    assert!(!kept.is_empty() && kept.len() <= 2, "{kept:?}");
    let last = super::checkpoint::load(&ckpt.join("step-4")).unwrap();
    let best = last.state.best_step.unwrap();
    assert!(
        kept.contains(&format!("step-{best}")),
        "{kept:?} best {best}"
    );
}

/// Ctrl-C (or SIGTERM, or `cancel`) arriving after the last step, while the VQA test
/// predictions are written, used to record the finished run as cancelled. Training is over:
/// the run finishes, with its predictions.
#[test]
fn a_stop_after_the_last_step_still_finishes_the_run() {
    use std::sync::atomic::Ordering;

    use crate::data::synth;

    struct StopAtPredictions<'a> {
        inner: super::data_source::LoaderData,
        cancel: &'a AtomicBool,
    }
    impl TaskData for StopAtPredictions<'_> {
        fn train_batches_per_epoch(&self) -> usize {
            self.inner.train_batches_per_epoch()
        }
        fn train_epoch(
            &self,
            epoch: u64,
            start: usize,
        ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
            self.inner.train_epoch(epoch, start)
        }
        fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_> {
            self.inner.eval_batches()
        }
        fn skipped_images(&self) -> usize {
            self.inner.skipped_images()
        }
        fn vqa_test(&self) -> Result<super::TestQuestions<'_>> {
            self.cancel.store(true, Ordering::SeqCst);
            self.inner.vqa_test()
        }
    }

    let data_dir = tempfile::tempdir().unwrap();
    synth::synth(data_dir.path(), synth::SynthSize::Small, 0).unwrap();
    let s = Settings {
        task: Task::Vqa,
        device: "cpu".into(),
        data_root: data_dir.path().display().to_string(),
        train_tables: vec!["vqav2_train".into()],
        val_tables: vec!["vqav2_val".into()],
        test_tables: vec!["vqav2_test".into()],
        vqav2_label_size: synth::answer_vocabulary().len() as i64,
        max_steps: 2,
        val_check_steps: 1,
        batch_size: 8,
        per_gpu_batchsize: 8,
        per_gpu_eval_batchsize: 64,
        num_workers: 0,
        ..Settings::tiny()
    };
    let cancel = AtomicBool::new(false);
    let data = StopAtPredictions {
        inner: super::data_source::LoaderData::open(&s).unwrap(),
        cancel: &cancel,
    };
    let run_dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel();
    let out = run_with_data(&job(run_dir.path(), s, false), &data, &tx, &cancel);
    assert!(cancel.load(Ordering::SeqCst), "the stop came");
    assert_eq!(out, Outcome::Finished { step: 2 });
    assert!(run_dir.path().join(predictions::SUBMISSION_FILE).is_file());
}

/// `perf/` metrics on the CPU: each step's samples/s is its samples over its step time, and
/// over the run they agree within 10% with samples ÷ the wall time of the steps as the
/// receiver of the events sees it (from `Started` to the last step's event).
#[test]
fn perf_metrics_measure_the_steps_wall_time() {
    use std::time::Instant;
    let steps = 10;
    let mut s = settings(steps);
    s.val_check_steps = 0;
    let data = RandomVqa {
        settings: s.clone(),
        batches: 2 * steps as usize,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let receiver =
        std::thread::spawn(move || rx.iter().map(|e| (Instant::now(), e)).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), s.clone(), false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    drop(tx);
    let events = receiver.join().unwrap();
    assert_eq!(out, Outcome::Finished { step: steps as u64 });
    let started = events
        .iter()
        .find_map(|(t, e)| matches!(e, Event::Started { .. }).then_some(*t))
        .unwrap();
    let perf: Vec<(Instant, std::collections::BTreeMap<String, f64>)> = events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::Step { metrics, .. }
                if metrics.iter().any(|(k, _)| k == crate::perf::SAMPLES_PER_S) =>
            {
                Some((*t, metrics.iter().cloned().collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(perf.len(), steps as usize);
    let per_step = (s.batch_size) as f64; // two micro-batches of `per_gpu_batchsize`
    let cfg = crate::model::ModelConfig::from_settings(&s).unwrap();
    let flops = crate::perf::flops::training_per_sample(
        &cfg,
        &s.objectives(),
        crate::perf::Shapes {
            text_len: s.max_text_len,
            batch: s.per_gpu_batchsize as i64,
            false_texts: 0,
        },
    ) as f64;
    let mut step_time = 0.0;
    for (_, m) in &perf {
        let (rate, time) = (m[crate::perf::SAMPLES_PER_S], m[crate::perf::STEP_TIME_S]);
        assert!((rate * time - per_step).abs() < 1e-6 * per_step, "{m:?}");
        assert_eq!(m[crate::perf::FLOPS_PER_SAMPLE], flops);
        let tflops = m[crate::perf::TFLOPS];
        assert!(
            (tflops - flops * rate / 1e12).abs() <= 1e-9 * tflops,
            "{m:?}"
        );
        assert!(
            !m.contains_key(crate::perf::MFU),
            "no MFU on the CPU: {m:?}"
        );
        assert!(m.contains_key("train/data_wait_share"));
        step_time += time;
    }
    let wall = (perf.last().unwrap().0 - started).as_secs_f64();
    let samples = per_step * steps as f64;
    let (ours, measured) = (samples / step_time, samples / wall);
    assert!(
        (ours - measured).abs() <= 0.10 * measured,
        "perf/samples_per_s over the run {ours:.2} vs {measured:.2} measured ({step_time:.3} s \
         of steps, {wall:.3} s wall)"
    );
}

/// `system/` metrics come from their own thread while the run trains and once at its end,
/// tagged with a step the run has reached, and none after the run's last event.
#[test]
fn system_metrics_are_sampled_while_the_run_trains() {
    let steps = 6;
    let mut s = settings(steps);
    s.val_check_steps = 0;
    s.system_interval_s = 0.02;
    let data = RandomVqa {
        settings: s.clone(),
        batches: 2 * steps as usize,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), s, false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(out, Outcome::Finished { step: steps as u64 });
    let events: Vec<Event> = rx.try_iter().collect();
    let samples: Vec<(u64, &Vec<(String, f64)>)> = events
        .iter()
        .filter_map(|e| match e {
            Event::System { step, metrics } => Some((*step, metrics)),
            _ => None,
        })
        .collect();
    assert!(!samples.is_empty(), "no system sample in {events:?}");
    for (step, metrics) in &samples {
        assert!(*step <= steps as u64);
        let rss = metrics
            .iter()
            .find(|(k, _)| k == crate::perf::system::PROC_RSS_MB)
            .map(|(_, v)| *v)
            .expect("RSS in every sample");
        assert!(rss > 10.0, "{rss} MiB");
        assert!(metrics.iter().all(|(k, _)| k.starts_with("system/")));
    }
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
    // A run shorter than the interval still gets the closing sample, at its last step and
    // before its last event.
    let mut s = settings(2);
    s.val_check_steps = 0;
    s.system_interval_s = 3600.0;
    let data = RandomVqa {
        settings: s.clone(),
        batches: 4,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    run_with_data(
        &job(dir.path(), s, false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    let events: Vec<Event> = rx.try_iter().collect();
    let steps_of_samples: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::System { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(steps_of_samples, [2], "{events:?}");
    assert!(matches!(events.last(), Some(Event::Finished { .. })));
    // Off: none.
    let mut s = settings(2);
    s.system_interval_s = 0.0;
    let data = RandomVqa {
        settings: s.clone(),
        batches: 4,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    run_with_data(
        &job(dir.path(), s, false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    assert!(!rx.try_iter().any(|e| matches!(e, Event::System { .. })));
}

/// `profile_steps = 2` records the first two steps with libtorch's profiler into the run
/// folder: a Chrome trace (JSON `traceEvents`) holding the ops of the forward and backward
/// passes and the optimiser's, and the run says where it is. The only profiling test of this
/// binary (libtorch has one profiler per process).
#[test]
fn profile_steps_writes_a_chrome_trace_of_those_steps() {
    let mut s = settings(4);
    s.val_check_steps = 0;
    s.profile_steps = 2;
    let data = RandomVqa {
        settings: s.clone(),
        batches: 8,
        poison_at: None,
    };
    let (tx, rx) = mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(dir.path(), s, false),
        &data,
        &tx,
        &AtomicBool::new(false),
    );
    assert_eq!(out, Outcome::Finished { step: 4 });
    let path = dir.path().join("profile/steps-1-2.trace.json");
    let logs: Vec<String> = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Log { message } => Some(message),
            _ => None,
        })
        .collect();
    assert!(
        logs.iter()
            .any(|m| m.contains("profile of steps 1-2") && m.contains(&path.display().to_string())),
        "{logs:?}"
    );
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the trace")).unwrap();
    let names: std::collections::BTreeSet<&str> = trace["traceEvents"]
        .as_array()
        .expect("a Chrome trace has traceEvents")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    // Forward (matrix products, softmax, layer norm), backward (autograd's nodes) and the
    // optimiser's parameter updates.
    for op in ["aten::addmm", "aten::softmax", "aten::layer_norm"] {
        assert!(names.contains(op), "{op} not in the trace: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.contains("Backward")),
        "no backward op in {names:?}"
    );
    // Only that trace: nothing half-written left beside it.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("profile"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}
