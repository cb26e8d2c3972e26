//! A tiny ManagerTower pre-trained from scratch on the synthetic captions learns image-text
//! matching: validation ITM accuracy (random negatives, chance 0.5) well above chance after a
//! short run of the real loop on the real loaders. ITC is on beside ITM, as
//! `loss_names = ["itm", "itc"]`: it aligns the uni-modal features that the cross-modal layers
//! then match (ITM alone stays at chance for hundreds of steps at this size).
//! Alone in this test binary because torch's random generator is process-wide.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use engine::data::synth::{synth, SynthSize};
use engine::train::{run, Event, Outcome, TrainJob};
use experiments::{ManagerType, Settings, Task};

#[test]
fn tiny_aaue_learns_itm_with_itc() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    synth(&data, SynthSize::Small, 0).unwrap();
    let steps = 200;
    let settings = Settings {
        task: Task::Pretrain,
        loss_names: vec!["itm".into(), "itc".into()],
        manager_type: ManagerType::Aaue,
        device: "cpu".into(),
        data_root: data.display().to_string(),
        train_tables: vec!["sbu_*".into(), "conceptual_caption_train_*".into()],
        val_tables: vec!["coco_caption_karpathy_val".into()],
        test_tables: Vec::new(),
        num_workers: 0,
        batch_size: 16,
        per_gpu_batchsize: 16,
        per_gpu_eval_batchsize: 48,
        learning_rate: 1e-3,
        max_steps: steps,
        val_check_steps: steps,
        ..Settings::tiny()
    };
    let job = TrainJob {
        settings,
        run_hash: "itm".into(),
        run_dir: dir.path().join("run"),
        init_from: None,
        resume: false,
        loads: Default::default(),
        hub: Default::default(),
    };
    let (tx, rx) = mpsc::channel();
    let outcome = run(&job, &tx, &AtomicBool::new(false));
    assert_eq!(outcome, Outcome::Finished { step: steps as u64 });
    let accuracy = rx
        .try_iter()
        .filter_map(|e| match e {
            Event::Eval { metrics, .. } => metrics
                .into_iter()
                .find(|(k, _)| k == "val/itm/accuracy_epoch")
                .map(|(_, v)| v),
            _ => None,
        })
        .last()
        .expect("an evaluation with val/itm/accuracy_epoch");
    assert!(
        accuracy > 0.65,
        "val ITM accuracy {accuracy} after {steps} steps (chance 0.5)"
    );
}
