//! Test support shared by the workspace's tests and benchmarks, so no test includes another's
//! files by path: a W&B-compatible server ([`wandb_server`]), a Hugging Face hub cache and
//! server ([`hub`]), and helpers for driving the `towerlab` binary ([`towerlab`]).

pub mod hub;
pub mod towerlab;
pub mod wandb_server;
