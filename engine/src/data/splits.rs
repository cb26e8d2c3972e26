//! Which Arrow files make up each task's splits, as the reference datasets list them.

use std::path::Path;

use super::dataset::DatasetKind;
use super::error::{DataError, DataResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataTask {
    /// MLM + ITM over the caption sets named in `datasets` (coco, vg, sbu, gcc, f30k).
    Pretrain,
    Vqa,
    Nlvr2,
    Snli,
    F30k,
    Coco,
}

impl DataTask {
    pub fn kind(self) -> DatasetKind {
        match self {
            Self::Pretrain | Self::F30k | Self::Coco => DatasetKind::Captions,
            Self::Vqa => DatasetKind::Vqa,
            Self::Nlvr2 => DatasetKind::Nlvr2,
            Self::Snli => DatasetKind::Snli,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

/// `Reference` reproduces the reference lists exactly, including their overlaps (VQA trains on
/// val and validates on val; F30K trains on train+val; NLVR2/SNLI validate on dev+test).
/// `HeldOut` keeps every split disjoint, which is what a small synthetic study wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SplitProtocol {
    #[default]
    Reference,
    HeldOut,
}

/// The file names (without `.arrow`) of a split. For pre-training, `datasets` chooses the caption
/// sets; shards (`sbu_k`, `conceptual_caption_train_k`) are those present in `dir`.
pub fn split_names(
    dir: &Path,
    task: DataTask,
    split: Split,
    protocol: SplitProtocol,
    datasets: &[String],
) -> DataResult<Vec<String>> {
    use Split::*;
    use SplitProtocol::*;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let names = match (task, split, protocol) {
        (DataTask::Vqa, Train, Reference) => vec![vqa(dir, "train"), vqa(dir, "val")],
        (DataTask::Vqa, Train, HeldOut) => vec![vqa(dir, "train")],
        (DataTask::Vqa, Val, _) => vec![vqa(dir, "val")],
        (DataTask::Vqa, Test, _) => s(&["vqav2_test"]),
        (DataTask::Nlvr2, Train, _) => s(&["nlvr2_train"]),
        (DataTask::Nlvr2, _, Reference) => s(&["nlvr2_dev", "nlvr2_test1"]),
        (DataTask::Nlvr2, Val, HeldOut) => s(&["nlvr2_dev"]),
        (DataTask::Nlvr2, Test, HeldOut) => s(&["nlvr2_test1"]),
        (DataTask::Snli, Train, _) => s(&["snli_train"]),
        (DataTask::Snli, _, Reference) => s(&["snli_dev", "snli_test"]),
        (DataTask::Snli, Val, HeldOut) => s(&["snli_dev"]),
        (DataTask::Snli, Test, HeldOut) => s(&["snli_test"]),
        (DataTask::F30k, Train, Reference) => {
            s(&["f30k_caption_karpathy_train", "f30k_caption_karpathy_val"])
        }
        (DataTask::F30k, Train, HeldOut) => s(&["f30k_caption_karpathy_train"]),
        (DataTask::F30k, Val, HeldOut) => s(&["f30k_caption_karpathy_val"]),
        (DataTask::F30k, _, _) => s(&["f30k_caption_karpathy_test"]),
        (DataTask::Coco, Train, _) => s(&[
            "coco_caption_karpathy_train",
            "coco_caption_karpathy_restval",
        ]),
        (DataTask::Coco, Val, HeldOut) => s(&["coco_caption_karpathy_val"]),
        (DataTask::Coco, _, _) => s(&["coco_caption_karpathy_test"]),
        (DataTask::Pretrain, Train, _) => {
            let mut names = Vec::new();
            for d in datasets {
                let found = pretrain_train_names(dir, d)?;
                if found.is_empty() {
                    return Err(DataError::Invalid(format!(
                        "{}: no Arrow files for pre-training dataset `{d}`",
                        dir.display()
                    )));
                }
                names.extend(found);
            }
            names
        }
        // Only COCO has a validation split among the pre-training sets (the METER choice).
        (DataTask::Pretrain, _, _) => s(&["coco_caption_karpathy_test"]),
    };
    Ok(names)
}

/// `vqav2_{split}_fix` (the reference's corrected answers) when present, else `vqav2_{split}`.
fn vqa(dir: &Path, split: &str) -> String {
    let fixed = format!("vqav2_{split}_fix");
    if dir.join(format!("{fixed}.arrow")).is_file() {
        fixed
    } else {
        format!("vqav2_{split}")
    }
}

fn pretrain_train_names(dir: &Path, dataset: &str) -> DataResult<Vec<String>> {
    let exists = |n: &str| dir.join(format!("{n}.arrow")).is_file();
    let shards = |prefix: &str, max: usize| {
        (0..max)
            .map(|k| format!("{prefix}_{k}"))
            .filter(|n| exists(n))
            .collect::<Vec<_>>()
    };
    Ok(match dataset {
        "coco" => [
            "coco_caption_karpathy_train",
            "coco_caption_karpathy_restval",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "f30k" => vec![
            "f30k_caption_karpathy_train".into(),
            "f30k_caption_karpathy_val".into(),
        ],
        "vg" => vec!["vg".into()],
        // The reference lists sbu_0..8 and conceptual_caption_train_0..30 and skips absent shards.
        "sbu" => shards("sbu", 9),
        "gcc" => shards("conceptual_caption_train", 31),
        other => {
            return Err(DataError::Invalid(format!(
                "unknown pre-training dataset `{other}` (expected coco, vg, sbu, gcc or f30k)"
            )))
        }
    })
}
