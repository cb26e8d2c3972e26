//! Exact resume: training 2N steps equals N steps, a stop, and N more after resuming.
//! Alone in this test binary because torch's random generator is process-wide.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use experiments::{ManagerType, Settings, Task};
use tch::{Device, Kind, Tensor};

use engine::model::objectives::{Batch, Split};
use engine::train::{checkpoint, run_with_data, Outcome, TaskData, TrainJob};
use engine::Result;

#[path = "support/random_vqa.rs"]
mod random_vqa;
use random_vqa::{job, settings, RandomVqa};

fn final_weights(dir: &std::path::Path) -> std::collections::BTreeMap<String, Tensor> {
    let last = checkpoint::latest(&dir.join("checkpoints"))
        .unwrap()
        .unwrap();
    checkpoint::load(&last).unwrap().model.into_iter().collect()
}

#[test]
fn resume_equals_uninterrupted() {
    let data = RandomVqa {
        settings: settings(4),
        batches: 5,
        poison_at: None,
    };
    let (tx, _rx) = mpsc::channel();
    let never = AtomicBool::new(false);

    let straight = tempfile::tempdir().unwrap();
    let out = run_with_data(
        &job(straight.path(), settings(4), false),
        &data,
        &tx,
        &never,
    );
    assert_eq!(out, Outcome::Finished { step: 4 });

    // The same run stopped after 3 steps (cancel), then resumed to 6.
    let split = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(true);
    let out = run_with_data(&job(split.path(), settings(4), false), &data, &tx, &stop);
    assert_eq!(out, Outcome::Cancelled { step: 1 });
    let out = run_with_data(&job(split.path(), settings(4), true), &data, &tx, &never);
    assert_eq!(out, Outcome::Finished { step: 4 });

    let a = final_weights(straight.path());
    let b = final_weights(split.path());
    let ka: Vec<&String> = a.keys().collect();
    let kb: Vec<&String> = b.keys().collect();
    assert_eq!(ka, kb);
    for ((na, ta), (_, tb)) in a.iter().zip(&b) {
        let diff = f64::try_from((ta - tb).abs().max()).unwrap();
        assert!(diff <= 1e-6, "{na}: {diff}");
    }
}
