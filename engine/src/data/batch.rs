//! From sample indices to a collated [`Batch`] of tensors (the reference `get_suite` + `collate`).

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::dataset::{DatasetKind, ImageSlot, Target, ViltDataset};
use super::error::{DataError, DataResult};
use super::text::{mlm_mask, Encoded, TextTokenizer, IGNORE_INDEX};
use super::transforms::{decode_rgb, ImageTransform};

/// Attempts at finding a decodable image before the batch fails.
const MAX_IMAGE_RETRIES: usize = 32;

/// Tokenised texts of a batch. All tensors are `[B, max_text_len]` int64.
#[derive(Debug)]
pub struct TextBatch {
    pub texts: Vec<String>,
    pub ids: Tensor,
    /// 1 for tokens, 0 for padding.
    pub masks: Tensor,
    /// All -100 (the reference's `text_labels`).
    pub labels: Tensor,
    /// `ids` with MLM masking applied.
    pub ids_mlm: Tensor,
    /// Original ids at masked positions, -100 elsewhere.
    pub labels_mlm: Tensor,
}

/// One collated batch. Images are CLIP-normalised `[B, 3, S, S]` float32.
#[derive(Debug)]
pub struct Batch {
    pub text: TextBatch,
    /// `image` (absent for NLVR2, which has `image_0`/`image_1`).
    pub image: Option<Tensor>,
    /// `false_image_k` for ITM negatives, `draw_false_image` of them.
    pub false_images: Vec<Tensor>,
    /// `false_text_k` for retrieval negatives, `draw_false_text` of them.
    pub false_texts: Vec<TextBatch>,
    pub image_0: Option<Tensor>,
    pub image_1: Option<Tensor>,
    /// VQA soft targets `[B, num_answers]` float32 (score at each label, 0 elsewhere).
    pub vqa_targets: Option<Tensor>,
    pub vqa_labels: Vec<Vec<i64>>,
    pub vqa_scores: Vec<Vec<f64>>,
    pub vqa_answers: Vec<Vec<String>>,
    pub question_ids: Vec<i64>,
    /// NLVR2 labels `[B]` int64 (1 = "True").
    pub nlvr2_labels: Option<Tensor>,
    /// SNLI-VE labels `[B]` int64 (contradiction 0, neutral 1, entailment 2).
    pub snli_labels: Option<Tensor>,
    /// Row (image) index of each sample in the concatenated table `[B]` int64: retrieval positives.
    pub img_index: Tensor,
    /// Dataset sample index of each element (after corrupt-image substitution).
    pub sample_index: Vec<usize>,
    /// Source file (without `.arrow`) of each sample: the reference's `table_name`.
    pub table_names: Vec<String>,
    /// Corrupt images met (and replaced by another sample) while building this batch.
    pub skipped_images: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.sample_index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sample_index.is_empty()
    }
}

/// How samples become batches: dataset, transform, tokenizer and the task's extras.
#[derive(Debug, Clone)]
pub struct SamplePipeline {
    pub dataset: Arc<ViltDataset>,
    pub transform: ImageTransform,
    pub tokenizer: Arc<TextTokenizer>,
    pub mlm_prob: f64,
    pub draw_false_image: usize,
    pub draw_false_text: usize,
    /// VQA answer-vocabulary size (`vqav2_label_size`); the dense target's width.
    pub num_answers: usize,
}

struct Decoded {
    sample: usize,
    images: Vec<Vec<f32>>,
}

impl SamplePipeline {
    pub fn new(
        dataset: Arc<ViltDataset>,
        transform: ImageTransform,
        tokenizer: Arc<TextTokenizer>,
    ) -> Self {
        Self {
            dataset,
            transform,
            tokenizer,
            mlm_prob: 0.15,
            draw_false_image: 0,
            draw_false_text: 0,
            num_answers: 3129,
        }
    }

    fn slots(&self) -> &'static [ImageSlot] {
        match self.dataset.kind() {
            DatasetKind::Nlvr2 => &[ImageSlot::Image0, ImageSlot::Image1],
            _ => &[ImageSlot::Image],
        }
    }

    fn load_images(&self, sample: usize, rng: &mut ChaCha8Rng) -> DataResult<Vec<Vec<f32>>> {
        let (row, _) = self.dataset.locate(sample);
        self.slots()
            .iter()
            .map(|&slot| {
                let bytes = self.dataset.image_bytes(row, slot)?;
                let img = decode_rgb(bytes)?;
                Ok(self.transform.apply(&img, rng))
            })
            .collect()
    }

    /// Decodes a sample's images; a corrupt image replaces the sample with a random one, as the
    /// reference's `get_suite` does, and is counted.
    fn decode_sample(
        &self,
        mut sample: usize,
        rng: &mut ChaCha8Rng,
        skipped: &mut usize,
    ) -> DataResult<Decoded> {
        let n = self.dataset.len();
        for _ in 0..MAX_IMAGE_RETRIES {
            match self.load_images(sample, rng) {
                Ok(images) => return Ok(Decoded { sample, images }),
                Err(DataError::Image(e)) => {
                    *skipped += 1;
                    let (row, _) = self.dataset.locate(sample);
                    tracing::debug!(
                        "corrupt image in {} row {row}: {e}",
                        self.dataset.table_name(row)
                    );
                    sample = rng.gen_range(0..n);
                }
                Err(other) => return Err(other),
            }
        }
        Err(DataError::CorruptImages {
            count: MAX_IMAGE_RETRIES,
        })
    }

    fn text_batch(&self, texts: Vec<String>, rng: &mut ChaCha8Rng) -> DataResult<TextBatch> {
        let encs: Vec<Encoded> = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<DataResult<_>>()?;
        let b = encs.len() as i64;
        let l = self.tokenizer.max_len() as i64;
        let flat = |f: &dyn Fn(&Encoded) -> Vec<i64>| -> Tensor {
            let v: Vec<i64> = encs.iter().flat_map(f).collect();
            Tensor::from_slice(&v).view([b, l])
        };
        let ids = flat(&|e| e.ids.clone());
        let masks = flat(&|e| e.attention_mask.clone());
        let mut ids_mlm = Vec::with_capacity((b * l) as usize);
        let mut labels_mlm = Vec::with_capacity((b * l) as usize);
        for e in &encs {
            let (m, lab) = mlm_mask(
                e,
                self.mlm_prob,
                self.tokenizer.mask_id(),
                self.tokenizer.vocab_size(),
                rng,
            );
            ids_mlm.extend(m);
            labels_mlm.extend(lab);
        }
        Ok(TextBatch {
            texts,
            labels: Tensor::full([b, l], IGNORE_INDEX, (Kind::Int64, tch::Device::Cpu)),
            ids,
            masks,
            ids_mlm: Tensor::from_slice(&ids_mlm).view([b, l]),
            labels_mlm: Tensor::from_slice(&labels_mlm).view([b, l]),
        })
    }

    fn stack_images(&self, images: Vec<Vec<f32>>) -> Tensor {
        let s = self.transform.size as i64;
        let b = images.len() as i64;
        let flat: Vec<f32> = images.into_iter().flatten().collect();
        Tensor::from_slice(&flat).view([b, 3, s, s])
    }

    /// Builds the batch of `samples`. `sample_seeds[i]` drives sample i's augmentation and
    /// substitutions, `batch_seed` the MLM masking and false draws: the result depends only on
    /// these, never on which thread builds it.
    pub fn make_batch(
        &self,
        samples: &[usize],
        sample_seeds: &[u64],
        batch_seed: u64,
    ) -> DataResult<Batch> {
        if samples.is_empty() {
            return Err(DataError::EmptyBatch);
        }
        let mut skipped = 0usize;
        let mut decoded = Vec::with_capacity(samples.len());
        let mut sample_rngs = Vec::with_capacity(samples.len());
        for (&s, &seed) in samples.iter().zip(sample_seeds) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            decoded.push(self.decode_sample(s, &mut rng, &mut skipped)?);
            sample_rngs.push(rng);
        }
        let ds = &self.dataset;
        let mut rng = ChaCha8Rng::seed_from_u64(batch_seed);
        let sample_index: Vec<usize> = decoded.iter().map(|d| d.sample).collect();
        let rows: Vec<usize> = sample_index.iter().map(|&s| ds.locate(s).0).collect();
        let texts = sample_index
            .iter()
            .map(|&s| ds.text(s))
            .collect::<DataResult<Vec<_>>>()?;

        // False images: one random sample's image per element, per draw.
        let mut false_images = Vec::with_capacity(self.draw_false_image);
        for _ in 0..self.draw_false_image {
            let mut imgs = Vec::with_capacity(samples.len());
            for sample_rng in sample_rngs.iter_mut() {
                let pick = sample_rng.gen_range(0..ds.len());
                let mut d = self.decode_sample(pick, sample_rng, &mut skipped)?;
                imgs.push(d.images.swap_remove(0));
            }
            false_images.push(self.stack_images(imgs));
        }
        let mut false_text_lists = Vec::with_capacity(self.draw_false_text);
        for _ in 0..self.draw_false_text {
            let picks: Vec<String> = sample_rngs
                .iter_mut()
                .map(|r| ds.text(r.gen_range(0..ds.len())))
                .collect::<DataResult<_>>()?;
            false_text_lists.push(picks);
        }

        let text = self.text_batch(texts, &mut rng)?;
        let false_texts = false_text_lists
            .into_iter()
            .map(|t| self.text_batch(t, &mut rng))
            .collect::<DataResult<Vec<_>>>()?;

        let mut batch = Batch {
            text,
            image: None,
            false_images,
            false_texts,
            image_0: None,
            image_1: None,
            vqa_targets: None,
            vqa_labels: Vec::new(),
            vqa_scores: Vec::new(),
            vqa_answers: Vec::new(),
            question_ids: Vec::new(),
            nlvr2_labels: None,
            snli_labels: None,
            img_index: Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()),
            table_names: rows.iter().map(|&r| ds.table_name(r).to_string()).collect(),
            sample_index: sample_index.clone(),
            skipped_images: skipped,
        };

        let mut firsts = Vec::with_capacity(decoded.len());
        let mut seconds = Vec::new();
        for d in decoded {
            let mut it = d.images.into_iter();
            firsts.extend(it.next());
            seconds.extend(it.next());
        }
        match ds.kind() {
            DatasetKind::Nlvr2 => {
                batch.image_0 = Some(self.stack_images(firsts));
                batch.image_1 = Some(self.stack_images(seconds));
            }
            _ => batch.image = Some(self.stack_images(firsts)),
        }

        let targets = sample_index
            .iter()
            .map(|&s| ds.target(s))
            .collect::<DataResult<Vec<_>>>()?;
        match ds.kind() {
            DatasetKind::Captions => {}
            DatasetKind::Vqa => self.vqa_fields(&mut batch, targets)?,
            DatasetKind::Nlvr2 => {
                let l: Vec<i64> = targets
                    .iter()
                    .map(|t| matches!(t, Target::Nlvr2 { label: true }) as i64)
                    .collect();
                batch.nlvr2_labels = Some(Tensor::from_slice(&l));
            }
            DatasetKind::Snli => {
                let l: Vec<i64> = targets
                    .iter()
                    .map(|t| match t {
                        Target::Snli { label } => *label,
                        _ => 0,
                    })
                    .collect();
                batch.snli_labels = Some(Tensor::from_slice(&l));
            }
        }
        Ok(batch)
    }

    fn vqa_fields(&self, batch: &mut Batch, targets: Vec<Target>) -> DataResult<()> {
        let b = targets.len();
        let n = self.num_answers;
        let mut dense = vec![0f32; b * n];
        for (i, t) in targets.into_iter().enumerate() {
            let Target::Vqa {
                answers,
                labels,
                scores,
                question_id,
            } = t
            else {
                continue;
            };
            for (&l, &s) in labels.iter().zip(&scores) {
                if l < 0 || l as usize >= n {
                    let row = self.dataset.locate(batch.sample_index[i]).0;
                    return Err(self.dataset.bad_value(
                        row,
                        "answer_labels",
                        format!(
                            "answer label {l} outside the {n}-answer vocabulary \
                             (vqav2_label_size); question {question_id}"
                        ),
                    ));
                }
                dense[i * n + l as usize] = s as f32;
            }
            batch.vqa_labels.push(labels);
            batch.vqa_scores.push(scores);
            batch.vqa_answers.push(answers);
            batch.question_ids.push(question_id);
        }
        batch.vqa_targets = Some(Tensor::from_slice(&dense).view([b as i64, n as i64]));
        Ok(())
    }
}
