//! Test data shared by the engine's unit tests (`src/train/tests.rs`) and the exact-resume
//! integration test: random VQA batches and the settings and job they train with. The includer
//! provides the names imported from `super`.

use super::{
    Batch, Device, Kind, ManagerType, Result, Settings, Split, Task, TaskData, Tensor, TrainJob,
};

/// Random VQA batches, a pure function of (epoch, batch index): what the real loader guarantees.
pub struct RandomVqa {
    pub settings: Settings,
    pub batches: usize,
    pub poison_at: Option<(u64, usize)>,
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

pub fn settings(max_steps: i64) -> Settings {
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

pub fn job(dir: &std::path::Path, s: Settings, resume: bool) -> TrainJob {
    TrainJob {
        settings: s,
        run_hash: "test-run".into(),
        run_dir: dir.to_path_buf(),
        init_from: None,
        resume,
        loads: Default::default(),
        hub: Default::default(),
    }
}
