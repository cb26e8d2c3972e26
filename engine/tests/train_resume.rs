//! Exact resume: training 2N steps equals N steps, a stop, and N more after resuming.
//! Alone in this test binary because torch's random generator is process-wide.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use experiments::{ManagerType, Settings, Task};
use tch::{Device, Kind, Tensor};

use engine::model::objectives::{Batch, Split};
use engine::train::{checkpoint, run_with_data, Outcome, TaskData, TrainJob};
use engine::Result;

/// Random VQA batches, a pure function of (epoch, batch index): what the real loader guarantees.
struct RandomVqa {
    settings: Settings,
    batches: usize,
    poison_at: Option<(u64, usize)>,
}

impl RandomVqa {
    fn batch(&self, epoch: u64, index: usize, eval: bool) -> Batch {
        let s = &self.settings;
        let _guard = tch::no_grad_guard();
        let seed = 1000 + epoch as i64 * 100 + index as i64 + if eval { 50_000 } else { 0 };
        let gen_seed = |k: i64| tch::manual_seed(seed * 7 + k);
        let b = s.per_gpu_batchsize as i64;
        let l = s.max_text_len;
        gen_seed(0);
        let ids = Tensor::randint_low(3, s.vocab_size, [b, l], (Kind::Int64, Device::Cpu));
        let masks = Tensor::ones([b, l], (Kind::Int64, Device::Cpu));
        gen_seed(1);
        let mut image = Tensor::randn(
            [b, 3, s.image_size, s.image_size],
            (Kind::Float, Device::Cpu),
        );
        if self.poison_at == Some((epoch, index)) {
            image *= f64::NAN;
        }
        gen_seed(2);
        let targets = Tensor::rand([b, s.vqav2_label_size], (Kind::Float, Device::Cpu))
            .lt(0.05)
            .to_kind(Kind::Float);
        let mut batch = Batch::new(ids, masks, image);
        batch.vqa_targets = Some(targets);
        batch
    }
}

impl TaskData for RandomVqa {
    fn train_batches_per_epoch(&self) -> usize {
        self.batches
    }
    fn train_epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new((start..self.batches).map(move |i| Ok(self.batch(epoch, i, false))))
    }
    fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_> {
        Box::new((0..2).map(|i| Ok((Split::Val, self.batch(0, i, true)))))
    }
    fn skipped_images(&self) -> usize {
        0
    }
}

fn settings(max_steps: i64) -> Settings {
    Settings {
        task: Task::Vqa,
        manager_type: ManagerType::Aaue,
        device: "cpu".into(),
        vqav2_label_size: 10,
        per_gpu_batchsize: 4,
        batch_size: 8,
        max_steps,
        val_check_steps: 2,
        image_size: 32,
        resolution_before: 32,
        max_text_len: 8,
        ..Settings::tiny()
    }
}

fn job(dir: &std::path::Path, s: Settings, resume: bool) -> TrainJob {
    TrainJob {
        settings: s,
        run_hash: "test-run".into(),
        run_dir: dir.to_path_buf(),
        init_from: None,
        resume,
    }
}

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
