//! What the training loop needs from the data side, as a trait so that the loop does not depend
//! on how batches are read and collated.

use std::collections::BTreeMap;

use crate::model::objectives::{Batch, Split};
use crate::Result;

/// The VQA test questions (`test_tables`) and what their predicted labels mean.
pub struct VqaTest<'a> {
    /// `id2answer` of the training and validation tables.
    pub id2answer: BTreeMap<i64, String>,
    /// Test batches with the `question_id` of each question.
    pub batches: Box<dyn Iterator<Item = Result<(Vec<i64>, Batch)>> + 'a>,
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
    /// VQA's test questions, for the submission file; `None` for other tasks or when the test
    /// tables are absent (`Err` when they exist but cannot be read).
    fn vqa_test(&self) -> Result<Option<VqaTest<'_>>> {
        Ok(None)
    }
}
