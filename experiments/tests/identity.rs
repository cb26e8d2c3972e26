//! Run identities: unique per distinct resolved config, stable across runs and key order.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use experiments::identity::{canonical_json, identity_document};
use experiments::{Experiment, IdentityContext, Overrides};
use proptest::prelude::*;

/// Candidate axes (all valid with the tiny preset and every manager type).
const AXES: [(&str, &[&str]); 5] = [
    ("manager_type", &["\"BT\"", "\"SAUE\"", "\"AAUE\""]),
    ("learning_rate", &["1e-3", "2e-3", "5e-4"]),
    ("hidden_size", &["64", "128"]),
    ("drop_rate", &["0.0", "0.1"]),
    ("num_layers", &["1", "2"]),
];

fn file(axes: &[(usize, usize)], seeds: usize, reversed: bool) -> String {
    let mut lines: Vec<String> = axes
        .iter()
        .map(|&(a, n)| {
            let (k, vals) = AXES[a];
            format!("{k} = [{}]", vals[..n].join(", "))
        })
        .collect();
    if reversed {
        lines.reverse();
    }
    format!(
        "name = \"p\"\ntask = \"vqa\"\n[base]\npreset = \"tiny\"\n[grid]\nseeds = {seeds}\n{}\n[metric]\nname = \"m\"\ngoal = \"minimize\"\n",
        lines.join("\n")
    )
}

fn axes_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::sample::subsequence(vec![0usize, 1, 2, 3, 4], 0..=4).prop_flat_map(|picked| {
        picked
            .into_iter()
            .map(|a| (Just(a), 1..=AXES[a].1.len()))
            .collect::<Vec<_>>()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn identities_unique_stable_and_order_independent(axes in axes_strategy(), seeds in 1usize..3) {
        let ctx = IdentityContext::fixed("v", "d");
        let a = Experiment::from_toml(&file(&axes, seeds, false), Path::new("a.toml"), &Overrides::none()).unwrap();
        let b = Experiment::from_toml(&file(&axes, seeds, true), Path::new("b.toml"), &Overrides::none()).unwrap();
        let ca = a.cells(&ctx);
        let cb = b.cells(&ctx);
        // count = product of axis sizes × seeds.
        let product: usize = axes.iter().map(|&(_, n)| n).product();
        prop_assert_eq!(ca.len(), product * seeds);
        // Unique per distinct resolved config.
        let ids: HashSet<_> = ca.iter().map(|c| c.identity.clone()).collect();
        let configs: HashSet<String> = ca
            .iter()
            .map(|c| canonical_json(&identity_document(&c.settings, "d", "v", None)))
            .collect();
        prop_assert_eq!(ids.len(), configs.len());
        prop_assert_eq!(ids.len(), ca.len());
        // Same identities and keys whatever order the axes were written in.
        let ka: BTreeSet<_> = ca.iter().map(|c| (c.key.clone(), c.seed, c.identity.clone())).collect();
        let kb: BTreeSet<_> = cb.iter().map(|c| (c.key.clone(), c.seed, c.identity.clone())).collect();
        prop_assert_eq!(ka, kb);
        // Stable: computing again gives the same.
        let again: Vec<_> = a.cells(&ctx).into_iter().map(|c| c.identity).collect();
        prop_assert_eq!(again, ca.iter().map(|c| c.identity.clone()).collect::<Vec<_>>());
    }
}

#[test]
fn equal_values_written_differently_give_one_identity() {
    let ctx = IdentityContext::fixed("v", "d");
    let one = |lr: &str, order: bool| {
        let base = if order {
            format!("preset = \"tiny\"\nlearning_rate = {lr}\nlr_mult_head = 5")
        } else {
            format!("lr_mult_head = 5.0\nlearning_rate = {lr}\npreset = \"tiny\"")
        };
        let src = format!("name = \"p\"\ntask = \"vqa\"\n[base]\n{base}\n[metric]\nname = \"m\"\ngoal = \"minimize\"\n");
        Experiment::from_toml(&src, Path::new("x.toml"), &Overrides::none())
            .unwrap()
            .cells(&ctx)[0]
            .identity
            .clone()
    };
    assert_eq!(one("0.001", true), one("1e-3", false));
    assert_ne!(one("0.001", true), one("0.002", true));
}

#[test]
fn data_and_engine_change_the_identity() {
    let exp = Experiment::demo(&Overrides::none()).unwrap();
    let a = exp.cells(&IdentityContext::fixed("v1", "d1"));
    let b = exp.cells(&IdentityContext::fixed("v1", "d2"));
    let c = exp.cells(&IdentityContext::fixed("v2", "d1"));
    for i in 0..a.len() {
        assert_ne!(a[i].identity, b[i].identity);
        assert_ne!(a[i].identity, c[i].identity);
    }
}
