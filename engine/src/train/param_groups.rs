//! The reference's six AdamW parameter groups (`meter_utils.set_schedule`), chosen by substring
//! tests on parameter names.

use tch::Tensor;

/// Names containing any of these get no weight decay.
pub const NO_DECAY: [&str; 9] = [
    "bias",
    "LayerNorm.bias",
    "LayerNorm.weight",
    "norm.bias",
    "norm.weight",
    "norm1.bias",
    "norm1.weight",
    "norm2.bias",
    "norm2.weight",
];
/// Task heads: `lr × lr_mult_head`.
pub const HEAD_NAMES: [&str; 5] = [
    "vqa_classifier",
    "nlvr2_classifier",
    "snli_classifier",
    "mlm_score",
    "itm_score",
];
/// Cross-modal parts: `lr × lr_mult_cross_modal`.
pub const CROSS_MODAL_NAMES: [&str; 1] = ["cross_modal"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKind {
    Base,
    Head,
    CrossModal,
}

/// One group: its parameters (by name), learning rate and weight decay.
#[derive(Debug)]
pub struct ParamGroup {
    pub kind: GroupKind,
    pub decay: bool,
    pub lr: f64,
    pub weight_decay: f64,
    pub params: Vec<(String, Tensor)>,
}

/// The reference uses `lr × mult` when the multiplier is a Python int and the multiplier itself
/// as the learning rate when it is a float. Settings store numbers as f64, so a whole number
/// stands for the int case (every release script uses whole multipliers).
pub fn resolve_lr_mult(lr: f64, mult: f64) -> f64 {
    if mult.fract() == 0.0 {
        lr * mult
    } else {
        mult
    }
}

/// Splits named parameters into the six reference groups (empty groups are kept, in the
/// reference's order). Parameters whose name matches both a head and `cross_modal` belong to no
/// group in the reference (they are never updated); they are returned separately.
pub fn group_parameters(
    named: Vec<(String, Tensor)>,
    lr: f64,
    weight_decay: f64,
    lr_mult_head: f64,
    lr_mult_cross_modal: f64,
) -> (Vec<ParamGroup>, Vec<String>) {
    let lr_head = resolve_lr_mult(lr, lr_mult_head);
    let lr_cross = resolve_lr_mult(lr, lr_mult_cross_modal);
    let mut groups: Vec<ParamGroup> = [
        (GroupKind::Base, true, lr),
        (GroupKind::Base, false, lr),
        (GroupKind::Head, true, lr_head),
        (GroupKind::Head, false, lr_head),
        (GroupKind::CrossModal, true, lr_cross),
        (GroupKind::CrossModal, false, lr_cross),
    ]
    .into_iter()
    .map(|(kind, decay, lr)| ParamGroup {
        kind,
        decay,
        lr,
        weight_decay: if decay { weight_decay } else { 0.0 },
        params: Vec::new(),
    })
    .collect();
    let mut orphans = Vec::new();
    for (name, t) in named {
        let nd = NO_DECAY.iter().any(|p| name.contains(p));
        let head = HEAD_NAMES.iter().any(|p| name.contains(p));
        let cross = CROSS_MODAL_NAMES.iter().any(|p| name.contains(p));
        let slot = match (head, cross) {
            (false, false) => 0,
            (true, false) => 2,
            (false, true) => 4,
            (true, true) => {
                orphans.push(name);
                continue;
            }
        } + usize::from(nd);
        groups[slot].params.push((name, t));
    }
    (groups, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(g: &ParamGroup) -> Vec<&str> {
        g.params.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn groups_follow_the_reference_name_tests() {
        let named: Vec<(String, Tensor)> = [
            "text_transformer.encoder.layer.0.attention.self.query.weight",
            "text_transformer.encoder.layer.0.attention.output.LayerNorm.weight",
            "vit_model.visual.transformer.resblocks.0.ln_1.weight",
            "vit_model.visual.transformer.resblocks.0.ln_1.bias",
            "cross_modal_text_layers.0.attention.self.query.weight",
            "cross_modal_text_manager_tower.0.LayerNorm.0.weight",
            "cross_modal_text_manager_tower.0.LayerNorm.0.bias",
            "vqa_classifier.0.weight",
            "vqa_classifier.1.bias",
            "token_type_embeddings.weight",
        ]
        .iter()
        .map(|n| (n.to_string(), Tensor::zeros([1], tch::kind::FLOAT_CPU)))
        .collect();
        let (g, orphans) = group_parameters(named, 1e-5, 0.01, 5.0, 5.0);
        assert!(orphans.is_empty());
        assert_eq!(
            names(&g[0]),
            [
                "text_transformer.encoder.layer.0.attention.self.query.weight",
                "vit_model.visual.transformer.resblocks.0.ln_1.weight",
                "token_type_embeddings.weight"
            ]
        );
        assert_eq!(
            names(&g[1]),
            [
                "text_transformer.encoder.layer.0.attention.output.LayerNorm.weight",
                "vit_model.visual.transformer.resblocks.0.ln_1.bias"
            ]
        );
        assert_eq!(names(&g[2]), ["vqa_classifier.0.weight"]);
        assert_eq!(names(&g[3]), ["vqa_classifier.1.bias"]);
        // Manager LayerNorm weights are named `LayerNorm.0.weight`: decayed, as in the reference.
        assert_eq!(
            names(&g[4]),
            [
                "cross_modal_text_layers.0.attention.self.query.weight",
                "cross_modal_text_manager_tower.0.LayerNorm.0.weight"
            ]
        );
        assert_eq!(
            names(&g[5]),
            ["cross_modal_text_manager_tower.0.LayerNorm.0.bias"]
        );
        assert_eq!((g[2].lr, g[2].weight_decay), (5e-5, 0.01));
        assert_eq!((g[5].lr, g[5].weight_decay), (5e-5, 0.0));
        assert_eq!(resolve_lr_mult(1e-5, 0.002), 0.002);
    }
}
