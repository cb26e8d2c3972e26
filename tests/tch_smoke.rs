//! libtorch is linked, found at run time without LD_LIBRARY_PATH, and trains on CPU.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

#[test]
fn small_module_forward_and_backward_on_cpu() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::linear(&root / "fc1", 8, 16, Default::default()))
        .add_fn(|x| x.gelu("none"))
        .add(nn::layer_norm(&root / "ln", vec![16], Default::default()))
        .add(nn::linear(&root / "fc2", 16, 1, Default::default()));
    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();

    // y = sum(x): learnable by the network, so the loss must fall.
    let x = Tensor::randn([64, 8], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
    let first = f64::try_from(net.forward(&x).mse_loss(&y, tch::Reduction::Mean)).unwrap();
    let mut last = first;
    for _ in 0..200 {
        let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
        opt.backward_step(&loss);
        last = f64::try_from(&loss).unwrap();
    }
    assert!(last.is_finite());
    assert!(last < first * 0.1, "loss {first} -> {last}");

    // Gradients reach every parameter.
    let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
    opt.zero_grad();
    loss.backward();
    for (name, var) in vs.variables() {
        let g = var.grad();
        assert!(g.defined(), "{name} has no gradient");
        assert!(
            f64::try_from(g.abs().sum(Kind::Float)).unwrap() > 0.0,
            "{name}"
        );
    }
}

#[test]
fn libtorch_is_the_pinned_version() {
    let info = engine::runtime::RuntimeInfo::probe();
    let version = info.version.expect("the loaded libtorch's version");
    assert!(version.starts_with("2.11.0"), "{version}");
}
