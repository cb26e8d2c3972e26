use super::*;
use tch::{nn::VarStore, Device};

fn cfg(kind: ManagerType, weight: ManagerWeightType, hidden: i64) -> ModelConfig {
    let mut c = ModelConfig::preset("tiny", kind).unwrap();
    c.hidden_size = hidden;
    c.manager_weight_type = weight;
    c
}

fn build(c: &ModelConfig, routed: i64, layer: i64) -> (VarStore, Manager) {
    let vs = VarStore::new(Device::Cpu);
    let m = Manager::new(vs.root() / "m", c, routed, layer);
    (vs, m)
}

fn input<'a>(
    normed: &'a Tensor,
    previous: &'a [Tensor],
    other: Option<&'a Tensor>,
) -> ManagerInput<'a> {
    ManagerInput {
        normed,
        previous,
        other,
        mask: None,
        record: true,
    }
}

/// Two experts of width 2 that LayerNorm to [1, -1] and [-1, 1]: `[B=1, N=2, L=1, D=2]`.
fn opposite_experts() -> Tensor {
    let u = Tensor::from_slice(&[3.0f32, 1.0, -2.0, 0.0]).view([1, 2, 1, 2]);
    normalize_experts(&u, Ctx::eval())
}

/// In-place writes to parameters (shared storage) outside autograd.
fn set(t: &Tensor, v: &Tensor) {
    let mut t = t.shallow_clone();
    tch::no_grad(|| t.copy_(v));
}

fn fill(t: &Tensor, x: f64) {
    let mut t = t.shallow_clone();
    tch::no_grad(|| {
        let _ = t.fill_(x);
    });
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).unwrap()
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
    }
}

#[test]
fn uniform_static_weights_give_the_mean_of_the_normalised_experts() {
    let c = cfg(ManagerType::Saue, ManagerWeightType::Vector, 8);
    let (_vs, m) = build(&c, 3, 0);
    let u = Tensor::randn([2, 3, 5, 8], (Kind::Float, Device::Cpu));
    let normed = normalize_experts(&u, Ctx::eval());
    let (out, rec) = m.forward(&input(&normed, &[], None), Ctx::eval());
    let expected = Tensor::stack(
        &(0..3)
            .map(|i| {
                u.select(1, i)
                    .layer_norm([8], None::<Tensor>, None::<Tensor>, 1e-5, true)
            })
            .collect::<Vec<_>>(),
        1,
    )
    .mean_dim(1, false, Kind::Float);
    assert!(out.allclose(&expected, 1e-5, 1e-5, false));
    let rec = rec.unwrap();
    assert_close(&values(&rec.experts), &[1.0 / 3.0; 3], 1e-6);
    assert!(rec.cross.is_none());
}

#[test]
fn temperature_sharpens_the_static_softmax() {
    let c = cfg(ManagerType::Saue, ManagerWeightType::Scalar, 2);
    let (_vs, m) = build(&c, 2, 0);
    let Manager::Static(s) = &m else {
        panic!("layer 0 is static")
    };
    assert_eq!(s.layer_scores.size(), vec![1, 2, 1, 1]);
    set(
        &s.layer_scores,
        &Tensor::from_slice(&[0.0f32, 3f32.ln()]).view([1, 2, 1, 1]),
    );
    let normed = opposite_experts();
    // softmax([0, ln 3]) = [1/4, 3/4]: 0.25·[1,-1] + 0.75·[-1,1] = [-0.5, 0.5].
    let (out, rec) = m.forward(&input(&normed, &[], None), Ctx::eval());
    assert_close(&values(&out), &[-0.5, 0.5], 1e-4);
    assert_close(&values(&rec.unwrap().experts), &[0.25, 0.75], 1e-6);
    // τ = 0.5: softmax([0, 2 ln 3]) = [0.1, 0.9].
    fill(&s.softmax_temperature, 0.5);
    let (out, _) = m.forward(&input(&normed, &[], None), Ctx::eval());
    assert_close(&values(&out), &[-0.8, 0.8], 1e-4);
}

#[test]
fn the_cross_modal_weight_is_raw() {
    let c = cfg(ManagerType::Saue, ManagerWeightType::Vector, 2);
    let (_vs, m) = build(&c, 2, 1);
    let Manager::Static(s) = &m else {
        panic!("SAUE is static")
    };
    assert_eq!(s.layer_scores.size(), vec![1, 3, 1, 2]);
    // Init: 1/N on the experts, 1 on the previous layer.
    assert_close(
        &values(&s.layer_scores),
        &[0.5, 0.5, 0.5, 0.5, 1.0, 1.0],
        1e-7,
    );
    fill(&s.layer_scores.narrow(1, 2, 1), 2.5);
    // Zero experts normalise to 0, so only the cross slot remains: 2.5 · LN([1, -1]).
    let normed = Tensor::zeros([1, 2, 1, 2], (Kind::Float, Device::Cpu));
    let prev = [Tensor::from_slice(&[1.0f32, -1.0]).view([1, 1, 2])];
    let (out, rec) = m.forward(&input(&normed, &prev, None), Ctx::eval());
    assert_close(&values(&out), &[2.5, -2.5], 1e-4);
    assert_close(&values(&rec.unwrap().cross.unwrap()), &[2.5], 1e-6);
}

#[test]
fn noise_only_in_training() {
    let c = cfg(ManagerType::Saue, ManagerWeightType::Vector, 8);
    let (_vs, m) = build(&c, 3, 1);
    let normed = normalize_experts(
        &Tensor::randn([2, 3, 4, 8], (Kind::Float, Device::Cpu)),
        Ctx::eval(),
    );
    let prev = [Tensor::randn([2, 4, 8], (Kind::Float, Device::Cpu))];
    let run = |ctx| m.forward(&input(&normed, &prev, None), ctx).0;
    let (e1, e2) = (run(Ctx::eval()), run(Ctx::eval()));
    assert!(e1.equal(&e2));
    let (t1, t2) = (run(Ctx::train()), run(Ctx::train()));
    assert!(!t1.allclose(&t2, 1e-6, 1e-6, false));
    assert!(!t1.allclose(&e1, 1e-6, 1e-6, false));
    assert_eq!(t1.size(), e1.size());
}

#[test]
fn training_noise_has_std_one_over_n() {
    // With zero scores and N = 2 experts that normalise to ±1 in each channel, the output is
    // w0 - w1 = tanh((s0 - s1) / 2) with s0 - s1 ~ N(0, 2/N²); its variance is checked against
    // a Monte-Carlo of the same law over many channels.
    let c = cfg(ManagerType::Saue, ManagerWeightType::Vector, 2);
    let (_vs, m) = build(&c, 2, 0);
    let Manager::Static(s) = &m else { panic!() };
    fill(&s.layer_scores, 0.0);
    let tokens = 20_000;
    let normed = opposite_experts()
        .expand([1, 2, tokens, 2], false)
        .contiguous();
    let (out, _) = m.forward(&input(&normed, &[], None), Ctx::train());
    let got = out.select(2, 0).var(true).double_value(&[]);
    let diff = Tensor::randn([tokens], (Kind::Double, Device::Cpu)) * (2f64.sqrt() / 2.0);
    let want = (diff / 2.0).tanh().var(true).double_value(&[]);
    assert!((got - want).abs() / want < 0.1, "var {got} vs {want}");
}

#[test]
fn scalar_and_vector_shapes() {
    for (w, width) in [
        (ManagerWeightType::Vector, 16),
        (ManagerWeightType::Scalar, 1),
    ] {
        let c = cfg(ManagerType::Aaue, w, 16);
        let (_vs, m) = build(&c, 4, 2);
        let Manager::Adaptive(a) = &m else {
            panic!("AAUE above layer 0")
        };
        assert_eq!(a.layer_scores_cross.size(), vec![1, 1, 1, width]);
        assert_eq!(a.layer_norms.len(), 5);
        let (_vs, m0) = build(&c, 4, 0);
        let Manager::Static(s) = &m0 else {
            panic!("AAUE layer 0 is SAUE")
        };
        assert_eq!(s.layer_scores.size(), vec![1, 4, 1, width]);
        assert_eq!(s.layer_norms.len(), 4);
    }
}

#[test]
fn adaptive_weights_come_from_the_controller_and_the_cross_weight_is_raw() {
    let c = cfg(ManagerType::Aaue, ManagerWeightType::Vector, 2);
    let (_vs, m) = build(&c, 2, 1);
    let Manager::Adaptive(a) = &m else { panic!() };
    fill(&a.linear_controller.weight, 0.0);
    set(
        a.linear_controller.bias.as_ref().unwrap(),
        &Tensor::from_slice(&[0.0f32, 3f32.ln()]),
    );
    fill(&a.layer_scores_cross, 0.5);
    let normed = opposite_experts();
    let prev = [Tensor::from_slice(&[2.0f32, -2.0]).view([1, 1, 2])];
    // The other modality has 3 tokens; its content must not matter with a zero controller.
    let other = Tensor::randn([1, 3, 2], (Kind::Float, Device::Cpu));
    let (out, rec) = m.forward(&input(&normed, &prev, Some(&other)), Ctx::eval());
    // 0.25·[1,-1] + 0.75·[-1,1] + 0.5·LN([2,-2]) = [-0.5, 0.5] + [0.5, -0.5] = [0, 0].
    assert_close(&values(&out), &[0.0, 0.0], 1e-4);
    let rec = rec.unwrap();
    assert_close(&values(&rec.experts), &[0.25, 0.75], 1e-6);
    assert_close(&values(&rec.cross.unwrap()), &[0.5], 1e-6);
}

#[test]
fn adaptive_fusion_attends_over_every_token_of_the_other_modality() {
    // LayerAttention has no mask: a token of the other modality always changes the weights.
    let c = cfg(ManagerType::Aaue, ManagerWeightType::Vector, 8);
    let (_vs, m) = build(&c, 3, 1);
    let normed = normalize_experts(
        &Tensor::randn([1, 3, 4, 8], (Kind::Float, Device::Cpu)),
        Ctx::eval(),
    );
    let prev = [Tensor::randn([1, 4, 8], (Kind::Float, Device::Cpu))];
    let other = Tensor::randn([1, 5, 8], (Kind::Float, Device::Cpu));
    let other2 = other.copy();
    fill(&other2.get(0).get(4), 7.0);
    let a = m
        .forward(&input(&normed, &prev, Some(&other)), Ctx::eval())
        .0;
    let b = m
        .forward(&input(&normed, &prev, Some(&other2)), Ctx::eval())
        .0;
    assert!(!a.allclose(&b, 1e-7, 1e-7, false));
}

#[test]
fn sae_weights_every_previous_layer() {
    let c = cfg(ManagerType::Sae, ManagerWeightType::Vector, 2);
    let (_vs, m) = build(&c, 2, 2);
    let Manager::Static(s) = &m else { panic!() };
    assert_eq!(s.layer_scores.size(), vec![1, 4, 1, 2]);
    assert_eq!(s.layer_norms.len(), 4);
    assert_close(
        &values(&s.layer_scores),
        &[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        1e-7,
    );
    fill(&s.layer_scores.narrow(1, 2, 1), 1.0);
    fill(&s.layer_scores.narrow(1, 3, 1), -3.0);
    let normed = Tensor::zeros([1, 2, 1, 2], (Kind::Float, Device::Cpu));
    let prev = [
        Tensor::from_slice(&[1.0f32, -1.0]).view([1, 1, 2]),
        Tensor::from_slice(&[-1.0f32, 1.0]).view([1, 1, 2]),
    ];
    // 1·LN([1,-1]) - 3·LN([-1,1]) = [4, -4].
    let (out, rec) = m.forward(&input(&normed, &prev, None), Ctx::eval());
    assert_close(&values(&out), &[4.0, -4.0], 1e-3);
    assert_close(&values(&rec.unwrap().cross.unwrap()), &[1.0, -3.0], 1e-6);
}

#[test]
fn frozen_managers_have_no_trainable_scores() {
    let mut c = cfg(ManagerType::Saue, ManagerWeightType::Vector, 4);
    c.manager_learnable = false;
    c.manager_softmax_temperature_learnable = false;
    let (vs, _m) = build(&c, 2, 1);
    let trainable = vs.trainable_variables().len();
    // 3 LayerNorms × (weight, bias) stay trainable; scores and temperatures do not.
    assert_eq!(trainable, 6);
    assert_eq!(vs.variables().len(), 9);
}

/// Spec 1.5: AAUE ≈ 1.20M parameters each, ≈ 12.0M for the 10 AAUE managers of the base model.
#[test]
fn base_aaue_manager_parameter_count() {
    let c = ModelConfig::preset("base", ManagerType::Aaue).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    for (name, routed) in [
        ("cross_modal_text_manager_tower", c.managed_layers_text),
        ("cross_modal_image_manager_tower", c.managed_layers_image),
    ] {
        for l in 0..c.num_layers {
            let _ = Manager::new(&root / name / l, &c, routed, l);
        }
    }
    let count = |filter: &dyn Fn(&str) -> bool| -> i64 {
        vs.variables()
            .iter()
            .filter(|(k, _)| filter(k))
            .map(|(_, v)| v.numel() as i64)
            .sum()
    };
    let layer0 = count(&|k: &str| k.contains("tower.0."));
    let aaue = count(&|k: &str| !k.contains("tower.0."));
    let d = 768i64;
    let n = 6i64;
    let per_aaue = d + (2 * d * n + n) + 2 * (d * d + d) + (n + 2) * 2 * d + 2;
    assert_eq!(aaue, 10 * per_aaue);
    assert!((11_900_000..12_100_000).contains(&aaue), "{aaue}");
    // SAUE at layer 0: 6 vector scores + 6 LNs + 2 temperatures, per modality.
    assert_eq!(layer0, 2 * (n * d + n * 2 * d + 2));
}

/// The reference `heads.SAUE`/`heads.AAUE` (eval mode, randomised parameters, temperature 0.7),
/// recorded by `scripts/gen_manager_fixture.py`: same keys, same outputs.
#[test]
fn managers_match_the_reference_implementation() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/managers_reference.safetensors"
    );
    let t: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect();
    for (wt, w) in [
        ("vector", ManagerWeightType::Vector),
        ("scalar", ManagerWeightType::Scalar),
    ] {
        for (name, kind, layer) in [
            ("SAUE", ManagerType::Saue, 0),
            ("SAUE", ManagerType::Saue, 1),
            ("AAUE", ManagerType::Aaue, 1),
        ] {
            let tag = format!("{wt}_{name}_{layer}");
            let mut c = cfg(kind, w, 16);
            c.manager_softmax_temperature = 0.7;
            let vs = VarStore::new(Device::Cpu);
            let m = Manager::new(vs.root() / tag.as_str(), &c, 3, layer);
            let reference_params = t
                .keys()
                .filter(|k| k.starts_with(&format!("{tag}.manager_layer.")))
                .count();
            assert_eq!(
                vs.variables().len(),
                reference_params,
                "{tag}: parameter keys"
            );
            for (k, v) in vs.variables() {
                let r = t
                    .get(&k)
                    .unwrap_or_else(|| panic!("{k} not in the reference"));
                assert_eq!(v.size(), r.size(), "{k}");
                set(&v, r);
            }
            let normed = normalize_experts(&t[&format!("{tag}.__U")], Ctx::eval());
            let prev = [t[&format!("{tag}.__C")].shallow_clone()];
            let other = &t[&format!("{tag}.__Co")];
            let inp = if layer == 0 {
                input(&normed, &[], None)
            } else {
                input(&normed, &prev, Some(other))
            };
            let (y, _) = m.forward(&inp, Ctx::eval());
            let diff = f64::try_from((&y - &t[&format!("{tag}.__y")]).abs().max()).unwrap();
            assert!(diff < 1e-5, "{tag}: max difference {diff}");
        }
    }
}
