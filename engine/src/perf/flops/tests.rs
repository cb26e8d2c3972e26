use super::*;
use crate::model::TowerModel;

fn tiny(manager_type: ManagerType) -> ModelConfig {
    ModelConfig::preset("tiny", manager_type).expect("tiny preset")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The tiny AAUE model by hand: 24 text tokens of width 64 (4 layers, MLP 128), 64-px images
/// in 16-px patches (17 tokens, width 64, 4 blocks, MLP 256), 2 cross-modal layers of width 64
/// (MLP 256) over the top 3 layers of each encoder.
#[test]
fn tiny_aaue_inference_by_hand() {
    let f = inference(&tiny(ManagerType::Aaue), 24);
    // Per RoBERTa layer: Q, K, V, O; Q·Kᵀ and P·V; the MLP's two Linears.
    let text_layer = 4 * (2 * 24 * 64 * 64) + 2 * (2 * 24 * 24 * 64) + 2 * (2 * 24 * 64 * 128);
    assert_eq!(f.text_encoder, 4 * text_layer);
    // conv1: 4×4 patches of 64 channels, each a dot product over 3·16·16 inputs.
    assert_eq!(f.patch_embedding, 2 * 16 * 64 * (3 * 16 * 16));
    let vit_block = 2 * 17 * 64 * (3 * 64) // in_proj
        + 2 * (2 * 17 * 17 * 64)
        + 2 * 17 * 64 * 64 // out_proj
        + 2 * (2 * 17 * 64 * 256);
    assert_eq!(f.vision_encoder, 4 * vit_block);
    assert_eq!(
        f.projections,
        3 * (2 * 24 * 64 * 64) + 3 * (2 * 17 * 64 * 64)
    );
    let text_cross = 4 * (2 * 24 * 64 * 64) + 2 * (2 * 24 * 24 * 64) // self-attention
        + 2 * (2 * 24 * 64 * 64) + 2 * (2 * 17 * 64 * 64) + 2 * (2 * 24 * 17 * 64) // cross
        + 2 * (2 * 24 * 64 * 256);
    let image_cross = 4 * (2 * 17 * 64 * 64)
        + 2 * (2 * 17 * 17 * 64)
        + 2 * (2 * 17 * 64 * 64)
        + 2 * (2 * 24 * 64 * 64)
        + 2 * (2 * 17 * 24 * 64)
        + 2 * (2 * 17 * 64 * 256);
    assert_eq!(f.cross_layers, 2 * (text_cross + image_cross));
    // One AAUE layer (layer 1) per tower: q_proj, k_proj (other modality), the two attention
    // products, linear_controller(128 → 3).
    let text_manager =
        2 * 24 * 64 * 64 + 2 * 17 * 64 * 64 + 2 * (2 * 24 * 17 * 64) + 2 * 24 * 128 * 3;
    let image_manager =
        2 * 17 * 64 * 64 + 2 * 24 * 64 * 64 + 2 * (2 * 17 * 24 * 64) + 2 * 17 * 128 * 3;
    assert_eq!(f.managers, text_manager + image_manager);
    assert_eq!(f.poolers, 2 * (2 * 64 * 64));
    assert_eq!(f.heads, 0);
    assert_eq!(f.total(), 28_979_456);
    assert_eq!(f.training(), 3 * 28_979_456 - f.patch_embedding);
}

/// Rows a weight of the built model is applied to in one forward pass of one sample (text of
/// `lt` tokens) with the MLM and ITM heads; panics on a weight it does not know, so a new
/// product in the model cannot go uncounted.
fn rows_of(key: &str, cfg: &ModelConfig, lt: u64) -> u64 {
    let lv = cfg.image_tokens() as u64;
    let grid = (cfg.image_size / cfg.patch_size) as u64;
    let (kt, kv) = kept(cfg);
    let other = |own: u64, theirs: u64, reads_other: bool| if reads_other { theirs } else { own };
    if key.starts_with("text_transformer.encoder.") {
        lt
    } else if key.starts_with("vit_model.visual.transformer.") {
        lv
    } else if key == "vit_model.visual.conv1.weight" {
        grid * grid
    } else if key.starts_with("cross_modal_text_transform.") {
        kt as u64 * lt
    } else if key.starts_with("cross_modal_image_transform.") {
        kv as u64 * lv
    } else if key.starts_with("text_gate.") {
        (cfg.text_layers as u64 - 1) * lt
    } else if key.starts_with("image_gate.") {
        (cfg.vit_layers as u64 - 1) * lv
    } else if key.starts_with("cross_modal_text_layers.") {
        let kv_proj =
            key.contains("crossattention.self.key") || key.contains("crossattention.self.value");
        other(lt, lv, kv_proj)
    } else if key.starts_with("cross_modal_image_layers.") {
        let kv_proj =
            key.contains("crossattention.self.key") || key.contains("crossattention.self.value");
        other(lv, lt, kv_proj)
    } else if key.starts_with("cross_modal_text_manager_tower.") {
        other(lt, lv, key.contains("k_proj"))
    } else if key.starts_with("cross_modal_image_manager_tower.") {
        other(lv, lt, key.contains("k_proj"))
    } else if key.starts_with("mlm_score.") {
        lt
    } else if key.contains("_pooler.") || key.starts_with("itm_score.") {
        1
    } else {
        panic!("no rows known for {key}: count its product in flops.rs and here")
    }
}

/// Products of one forward with MLM and ITM heads, from the parameters of the model that
/// `TowerModel::new` builds (2 · rows · numel of every weight applied to activations) plus
/// the attention products written out by shape.
fn count_from_built_model(cfg: &ModelConfig, lt: i64) -> u64 {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _model = TowerModel::new(&vs.root(), cfg).expect("model");
    let mut total = 0u64;
    for (key, t) in vs.variables() {
        let dims = t.size().len();
        let is_product = key.ends_with("weight") && (dims == 2 || key.ends_with("conv1.weight"));
        let unused = key.starts_with("text_transformer.pooler.")
            || key.starts_with("text_transformer.embeddings.")
            || key.contains("embeddings")
            || key.contains("positional_embedding")
            || key.starts_with("vit_model.ln_final");
        if !is_product || unused {
            continue;
        }
        total += 2 * rows_of(&key, cfg, lt as u64) * t.numel() as u64;
    }
    let lv = cfg.image_tokens() as u64;
    let lt = lt as u64;
    let (dt, dv, h) = (
        cfg.text_width as u64,
        cfg.vit_width as u64,
        cfg.hidden_size as u64,
    );
    let layers = cfg.num_layers as u64;
    total += cfg.text_layers as u64 * 4 * lt * lt * dt;
    total += cfg.vit_layers as u64 * 4 * lv * lv * dv;
    total += layers * (4 * lt * lt * h + 4 * lt * lv * h + 4 * lv * lv * h + 4 * lv * lt * h);
    if cfg.manager_type == ManagerType::Aaue {
        total += (layers - 1) * (4 * lt * lv * h + 4 * lv * lt * h);
    }
    total
}

#[test]
fn the_count_matches_the_products_of_the_built_models() {
    let mut meter_fusion = tiny(ManagerType::Meter);
    meter_fusion.meter_fusion = true;
    let mut three_layers = tiny(ManagerType::Aaue);
    three_layers.num_layers = 3;
    three_layers.managed_layers_text = 4;
    three_layers.managed_layers_image = 2;
    let configs = ManagerType::ALL
        .map(tiny)
        .into_iter()
        .chain([meter_fusion, three_layers]);
    for cfg in configs {
        for lt in [24, 7] {
            let pretrain = names(&["mlm", "itm"]);
            let shapes = Shapes {
                text_len: lt,
                batch: 4,
                false_texts: 0,
            };
            // Two passes (MLM, ITM) and both heads, less one pass: one pass with both heads.
            let ours =
                objectives_forward(&cfg, &pretrain, shapes).total() - inference(&cfg, lt).total();
            assert_eq!(
                ours,
                count_from_built_model(&cfg, lt),
                "{:?} meter_fusion={} num_layers={} text_len={lt}",
                cfg.manager_type,
                cfg.meter_fusion,
                cfg.num_layers
            );
        }
    }
}

#[test]
fn objectives_count_their_passes() {
    let cfg = tiny(ManagerType::Aaue);
    let shapes = Shapes {
        text_len: 24,
        batch: 8,
        false_texts: 0,
    };
    let one = inference(&cfg, 24).total();
    let vqa = objectives_forward(&cfg, &names(&["vqa"]), shapes);
    // Linear(128 → 128) → LN → GELU → Linear(128 → 3129).
    assert_eq!(vqa.heads, 2 * 128 * 128 + 2 * 128 * 3129);
    assert_eq!(vqa.total(), one + vqa.heads);
    let nlvr2 = objectives_forward(&cfg, &names(&["nlvr2"]), shapes);
    assert_eq!(nlvr2.total(), 2 * one + 2 * 256 * 128 + 2 * 128 * 2);
    // ITM+ITC: one encoding, three fused pairs, ITC heads and the two 8 × 8 similarities.
    let f = objectives_forward(&cfg, &names(&["itm_itc"]), shapes);
    let fused = inference(&cfg, 24);
    let pair = fused.cross_layers + fused.managers + fused.poolers;
    let encode = one - pair;
    let itc = 2 * 64 * 32 + 2 * 64 * 32 + 2 * (2 * 32 * 8);
    assert_eq!(f.total(), encode + 3 * pair + 3 * (2 * 128 * 2) + itc);
    // Training is three times the forward but for the image's patch embedding (no input
    // gradient).
    assert_eq!(
        training_per_sample(&cfg, &names(&["vqa"]), shapes),
        3 * vqa.total() - vqa.patch_embedding
    );
    assert_eq!(objectives_forward(&cfg, &[], shapes).total(), 0);
}

#[test]
fn no_cross_modal_layers_count_encoders_poolers_and_heads() {
    let mut cfg = tiny(ManagerType::Aaue);
    cfg.num_layers = 0;
    let f = inference(&cfg, 24);
    assert_eq!((f.projections, f.cross_layers, f.managers), (0, 0, 0));
    assert_eq!(f.poolers, 2 * 2 * 64 * 64);
    assert!(f.text_encoder > 0 && f.vision_encoder > 0);
}
