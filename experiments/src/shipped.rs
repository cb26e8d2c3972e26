//! The experiment files shipped with TowerLab, embedded so the binary runs them with no file.

/// `(path in the repository, contents)` of every shipped experiment file.
pub const FILES: [(&str, &str); 7] = [
    (crate::experiment::DEMO_PATH, crate::experiment::DEMO_TOML),
    (
        "experiments/pretrain_synthetic.toml",
        include_str!("../pretrain_synthetic.toml"),
    ),
    (
        "experiments/paper/manager_types.toml",
        include_str!("../paper/manager_types.toml"),
    ),
    (
        "experiments/paper/cross_modal_layers.toml",
        include_str!("../paper/cross_modal_layers.toml"),
    ),
    (
        "experiments/paper/managed_layers.toml",
        include_str!("../paper/managed_layers.toml"),
    ),
    (
        "experiments/paper/vlp.toml",
        include_str!("../paper/vlp.toml"),
    ),
    (
        "experiments/paper/main_results.toml",
        include_str!("../paper/main_results.toml"),
    ),
];

/// A shipped file by its repository path or bare name (`demo`, `paper/vlp`, `vlp.toml`).
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    let n = name.trim_end_matches(".toml");
    FILES.iter().copied().find(|(path, _)| {
        let p = path.trim_end_matches(".toml");
        p == n || p.ends_with(&format!("/{n}"))
    })
}
