//! Image-text retrieval evaluation (`compute_irtr_itm_itc_recall`), single process: ITC
//! similarities pick the top `k_test` candidates per image and per text, the ITM logit `[:, 1]`
//! re-ranks them (non-candidates score −100), and the two score matrices are merged by max.

use tch::{Kind, Tensor};

use super::objectives::StepMetric;
use super::tower::{ForwardOptions, ImageFeatures, TextFeatures, TowerModel};
use crate::{InputError, Result};

/// Recall@k for image retrieval (IR: text → images) and text retrieval (TR), as fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recall {
    pub ir_r1: f64,
    pub ir_r5: f64,
    pub ir_r10: f64,
    pub tr_r1: f64,
    pub tr_r5: f64,
    pub tr_r10: f64,
}

impl Recall {
    pub fn ir_mean(&self) -> f64 {
        (self.ir_r1 + self.ir_r5 + self.ir_r10) / 3.0
    }

    pub fn tr_mean(&self) -> f64 {
        (self.tr_r1 + self.tr_r5 + self.tr_r10) / 3.0
    }

    pub fn r_mean(&self) -> f64 {
        (self.ir_mean() + self.tr_mean()) / 2.0
    }

    /// The reference's epoch metrics, in percent: `{split}/ir_r1` … `{split}/r_mean`.
    pub fn metrics(&self, split: &str) -> Vec<StepMetric> {
        [
            ("ir_r1", self.ir_r1),
            ("ir_r5", self.ir_r5),
            ("ir_r10", self.ir_r10),
            ("tr_r1", self.tr_r1),
            ("tr_r5", self.tr_r5),
            ("tr_r10", self.tr_r10),
            ("ir_mean", self.ir_mean()),
            ("tr_mean", self.tr_mean()),
            ("r_mean", self.r_mean()),
        ]
        .into_iter()
        .map(|(k, v)| StepMetric {
            name: format!("{split}/{k}"),
            value: v * 100.0,
            weight: 1.0,
        })
        .collect()
    }
}

/// Scores every (image, text) pair: `[images, texts]`, ITM logits for the ITC top-`k_test`
/// candidates in either direction, −100 elsewhere. `chunk` bounds the pairs fused at once.
pub fn rerank_scores(
    model: &TowerModel,
    texts: &TextFeatures,
    images: &ImageFeatures,
    k_test: i64,
    chunk: i64,
) -> Result<Tensor> {
    let itm = model
        .heads()
        .itm_score
        .as_ref()
        .ok_or(InputError::NoHead { head: "itm_score" })?;
    tch::no_grad(|| {
        let ctx = model.ctx(false);
        let (t, i) = model.itc_features(texts, images, false)?;
        let sims = ctx.full(&i.matmul(&t.tr())); // [images, texts]
        let (ni, nt) = (sims.size()[0], sims.size()[1]);
        let device = sims.device();
        let chunk = chunk.max(1);
        // Fuses the pairs (image[a], text[b]) in chunks and returns their ITM match logits.
        let score_pairs = |img_idx: &Tensor, txt_idx: &Tensor| -> Result<Tensor> {
            let n = img_idx.size()[0];
            let mut parts = Vec::new();
            let mut start = 0;
            while start < n {
                let len = chunk.min(n - start);
                let ii = img_idx.narrow(0, start, len);
                let ti = txt_idx.narrow(0, start, len);
                let out = model.fuse(
                    &texts.index_select(&ti),
                    &images.index_select(&ii),
                    ForwardOptions::eval(),
                )?;
                parts.push(ctx.full(&itm.forward(&out.cls_feats, ctx)).select(1, 1));
                start += len;
            }
            Ok(Tensor::cat(&parts, 0))
        };
        let base = || Tensor::full([ni, nt], -100.0, (Kind::Float, device));
        // Image → text: top k texts per image.
        let kt = k_test.min(nt);
        let top_t = sims.topk(kt, 1, true, true).1; // [ni, kt]
        let img_rows =
            Tensor::arange(ni, (Kind::Int64, device)).repeat_interleave_self_int(kt, 0, None);
        let i2t = base();
        let s = score_pairs(&img_rows, &top_t.reshape([-1]))?;
        let i2t = i2t.index_put(
            &[Some(img_rows.shallow_clone()), Some(top_t.reshape([-1]))],
            &s,
            false,
        );
        // Text → image: top k images per text.
        let ki = k_test.min(ni);
        let top_i = sims.topk(ki, 0, true, true).1; // [ki, nt]
        let txt_cols = Tensor::arange(nt, (Kind::Int64, device))
            .unsqueeze(0)
            .expand([ki, nt], false)
            .reshape([-1]);
        let s = score_pairs(&top_i.reshape([-1]), &txt_cols)?;
        let t2i = base().index_put(&[Some(top_i.reshape([-1])), Some(txt_cols)], &s, false);
        Ok(i2t.maximum(&t2i))
    })
}

/// Recall@{1,5,10} from a `[images, texts]` score matrix and the image id of every image and
/// every text (a text matches an image when the ids are equal).
pub fn recall(scores: &Tensor, image_ids: &Tensor, text_ids: &Tensor) -> Recall {
    let (ni, nt) = (scores.size()[0], scores.size()[1]);
    let device = scores.device();
    let iids = image_ids.to_device(device).view([-1]);
    let tiids = text_ids.to_device(device).view([-1]);
    let at = |k: i64, dim: i64| -> f64 {
        let k = k.min(if dim == 1 { nt } else { ni });
        let idx = scores.topk(k, dim, true, true).1;
        let hit = if dim == 1 {
            // Text retrieval: for each image, do its top-k texts include one of its captions?
            tiids
                .index_select(0, &idx.reshape([-1]))
                .view([ni, k])
                .eq_tensor(&iids.unsqueeze(1))
        } else {
            iids.index_select(0, &idx.reshape([-1]))
                .view([k, nt])
                .eq_tensor(&tiids.unsqueeze(0))
        };
        hit.any_dim(dim, false)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[])
    };
    Recall {
        ir_r1: at(1, 0),
        ir_r5: at(5, 0),
        ir_r10: at(10, 0),
        tr_r1: at(1, 1),
        tr_r5: at(5, 1),
        tr_r10: at(10, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use experiments::{ManagerType, Settings, Task};
    use tch::{nn, Device};

    #[test]
    fn recall_of_a_known_matrix() {
        // 2 images, 4 texts (2 captions each: texts 0,1 → image 0; 2,3 → image 1).
        let scores = Tensor::from_slice(&[
            0.9f32, 0.1, 0.8, 0.2, //
            0.3, 0.7, 0.6, 0.5,
        ])
        .view([2, 4]);
        let r = recall(
            &scores,
            &Tensor::from_slice(&[0i64, 1]),
            &Tensor::from_slice(&[0i64, 0, 1, 1]),
        );
        // TR@1: image 0 → text 0 (hit), image 1 → text 1 (miss).
        assert_eq!(r.tr_r1, 0.5);
        assert_eq!(r.tr_r5, 1.0);
        // IR@1: texts pick images 0, 1, 0, 1 → hits for texts 0 and 3.
        assert_eq!(r.ir_r1, 0.5);
        assert_eq!(r.ir_r10, 1.0);
        let m = r.metrics("val");
        assert_eq!(m[0].name, "val/ir_r1");
        assert_eq!(m[8].name, "val/r_mean");
        // (0.5 + 1 + 1) / 3 on both sides (k is clamped to the candidates).
        assert!((m[8].value - 250.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn rerank_fills_only_candidates() {
        let mut s = Settings::tiny();
        s.manager_type = ManagerType::Aaue;
        s.task = Task::Irtr;
        let cfg = super::super::ModelConfig::from_settings(&s).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = TowerModel::new(&vs.root(), &cfg).unwrap();
        let ids = Tensor::randint_low(3, s.vocab_size, [5, 8], (Kind::Int64, Device::Cpu));
        let mask = ids.ones_like();
        let imgs = Tensor::randn([3, 3, 64, 64], (Kind::Float, Device::Cpu));
        let t = model.encode_text(&ids, &mask, false).unwrap();
        let i = model.encode_image(&imgs, false).unwrap();
        let scores = rerank_scores(&model, &t, &i, 2, 4).unwrap();
        assert_eq!(scores.size(), vec![3, 5]);
        let filled = scores.ne(-100.0).sum(Kind::Int64).int64_value(&[]);
        // At least 2 texts per image and 2 images per text, at most all 15 pairs.
        assert!((10..=15).contains(&filled), "{filled}");
        // A candidate's score is its ITM logit for that pair alone.
        let top = scores.get(0).argmax(0, false).int64_value(&[]);
        let idx = Tensor::from_slice(&[top]);
        let out = model
            .fuse(
                &t.index_select(&idx),
                &i.index_select(&Tensor::from_slice(&[0i64])),
                ForwardOptions::eval(),
            )
            .unwrap();
        let itm = model.heads().itm_score.as_ref().unwrap();
        let direct = itm
            .forward(&out.cls_feats, Ctx::eval())
            .double_value(&[0, 1]);
        assert!((direct - scores.double_value(&[0, top])).abs() < 1e-4);
    }

    /// `amp_flag` switches bf16 on for the recall alone (the reference autocasts only there):
    /// scores stay fp32 and close to the fp32 ones; outside, the model computes in fp32.
    #[test]
    fn recall_precision_applies_inside_the_recall_only() {
        let mut s = Settings::tiny();
        s.task = Task::Irtr;
        s.amp_flag = true;
        let cfg = super::super::ModelConfig::from_settings(&s).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let mut model = TowerModel::new(&vs.root(), &cfg).unwrap();
        model.amp_on_cpu = true;
        // Inputs drawn from nothing random (other tests share torch's generator).
        let ids =
            (Tensor::arange(32, (Kind::Int64, Device::Cpu)) * 7).remainder(s.vocab_size - 3) + 3;
        let ids = ids.view([4, 8]);
        let mask = ids.ones_like();
        let imgs = (Tensor::arange(3 * 3 * 64 * 64, (Kind::Float, Device::Cpu)) * 0.01)
            .sin()
            .view([3, 3, 64, 64]);
        let scores = |model: &TowerModel| {
            let t = model.encode_text(&ids, &mask, false).unwrap();
            let i = model.encode_image(&imgs, false).unwrap();
            // Every pair a candidate: bf16 similarities may pick other top-k sets.
            rerank_scores(model, &t, &i, 8, 4).unwrap()
        };
        assert!(!model.ctx(false).amp);
        let full = scores(&model);
        let half = model.with_recall_precision(|| {
            assert!(model.ctx(false).amp);
            scores(&model)
        });
        assert!(!model.ctx(false).amp);
        assert_eq!(half.kind(), Kind::Float);
        let diff = f64::try_from((&half - &full).abs().max()).unwrap();
        assert!(diff < 0.1, "bf16 recall scores drift by {diff}");
    }

    use super::super::Ctx;
}
