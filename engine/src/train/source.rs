//! What the training loop needs from the data side, as a trait so that the loop does not depend
//! on how batches are read and collated.

use std::collections::BTreeMap;

use tch::Device;

use crate::model::objectives::{Batch, Split};
use crate::Result;

/// The VQA test questions (`test_tables`) and what their predicted labels mean.
pub struct VqaTest<'a> {
    /// `id2answer` of the training and validation tables.
    pub id2answer: BTreeMap<i64, String>,
    /// Questions in the test tables.
    pub questions: usize,
    /// Test batches with the `question_id` of each question.
    pub batches: Box<dyn Iterator<Item = Result<(Vec<i64>, Batch)>> + 'a>,
}

/// What a run has to answer for the evaluation server.
pub enum TestQuestions<'a> {
    /// Not a VQA run, or no `test_tables`.
    None,
    /// `test_tables` named but not in the data folder (paths).
    Missing(Vec<String>),
    Ready(VqaTest<'a>),
}

/// Batches of one task: a resumable training stream and the evaluation batches.
pub trait TaskData {
    /// Training micro-batches (of `per_gpu_batchsize`) per epoch.
    fn train_batches_per_epoch(&self) -> usize;
    /// The training batches of `epoch` from batch index `start` on, in order. The same
    /// `(epoch, start)` always yields the same batches: that is what makes resume exact.
    fn train_epoch(&self, epoch: u64, start: usize)
        -> Box<dyn Iterator<Item = Result<Batch>> + '_>;
    /// Evaluation batches with their split (`Val`, or `Test` for the second table of NLVR2 and
    /// SNLI-VE, which the reference evaluates in the same pass).
    fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_>;
    /// Corrupt images skipped so far.
    fn skipped_images(&self) -> usize;
    /// VQA's test questions, for the submission file (`Err` when they exist but cannot be read).
    fn vqa_test(&self) -> Result<TestQuestions<'_>> {
        Ok(TestQuestions::None)
    }
}

/// Another source's batches on the model's device. The loader collates on the CPU, so on a GPU
/// every batch the loop, the evaluation and the test predictions read passes through here.
pub struct OnDevice<'a> {
    pub inner: &'a dyn TaskData,
    pub device: Device,
}

impl TaskData for OnDevice<'_> {
    fn train_batches_per_epoch(&self) -> usize {
        self.inner.train_batches_per_epoch()
    }

    fn train_epoch(
        &self,
        epoch: u64,
        start: usize,
    ) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let device = self.device;
        Box::new(
            self.inner
                .train_epoch(epoch, start)
                .map(move |b| b.map(|b| b.to_device(device))),
        )
    }

    fn eval_batches(&self) -> Box<dyn Iterator<Item = Result<(Split, Batch)>> + '_> {
        let device = self.device;
        Box::new(
            self.inner
                .eval_batches()
                .map(move |b| b.map(|(split, b)| (split, b.to_device(device)))),
        )
    }

    fn skipped_images(&self) -> usize {
        self.inner.skipped_images()
    }

    fn vqa_test(&self) -> Result<TestQuestions<'_>> {
        let device = self.device;
        Ok(match self.inner.vqa_test()? {
            TestQuestions::Ready(test) => TestQuestions::Ready(VqaTest {
                batches: Box::new(
                    test.batches
                        .map(move |b| b.map(|(ids, b)| (ids, b.to_device(device)))),
                ),
                ..test
            }),
            other => other,
        })
    }
}
