//! The training step the engine's step benches time: a BridgeTower-shaped model with its ITM
//! head, forward, cross-entropy, backward and the reference AdamW.

use engine::model::{ForwardOptions, HeadSet, ModelConfig, TowerModel};
use engine::train::optim::{Algorithm, OptimConfig, Optimizer};
use tch::{nn, Device, Reduction, Tensor};

pub struct ItmStep {
    vs: nn::VarStore,
    model: TowerModel,
    opt: Optimizer,
}

impl ItmStep {
    /// The model of `cfg` with the ITM head only, on `device`.
    pub fn new(mut cfg: ModelConfig, device: Device) -> Self {
        cfg.heads = HeadSet {
            itm: true,
            ..HeadSet::default()
        };
        let vs = nn::VarStore::new(device);
        let model = TowerModel::new(&vs.root(), &cfg).expect("model builds");
        let opt = Optimizer::new(
            OptimConfig::reference(Algorithm::AdamW, 1e-5, 0.01, 1.0, 1.0),
            vs.variables(),
        );
        Self { vs, model, opt }
    }

    /// The number of trainable parameters.
    pub fn trainable_params(&self) -> i64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// One optimiser step on the batch (not synchronised with the device).
    pub fn step(&mut self, ids: &Tensor, mask: &Tensor, pixels: &Tensor, labels: &Tensor) {
        let out = self
            .model
            .forward(ids, mask, pixels, ForwardOptions::train())
            .expect("forward");
        let itm = self.model.heads().itm_score.as_ref().expect("itm head");
        let logits = itm.forward(&out.cls_feats, self.model.ctx(true));
        let loss = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0);
        self.opt.zero_grad();
        loss.backward();
        self.opt.step();
    }
}
