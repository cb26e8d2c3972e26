//! Push TowerLab runs to Weights & Biases over W&B's own HTTP protocol (GraphQL
//! `UpsertBucket` + `file_stream`), idempotently: the W&B run id comes from the content hash
//! and acknowledged line offsets are kept per run, so a sync sends only what is new.
//!
//! The store adapter, the runner's `[wandb]` section ([`tracker`]) and the tests all plug in
//! through [`SyncSource`] and [`OffsetStore`].

pub mod cli;
pub mod client;
pub mod config;
pub mod encode;
pub mod events_file;
// An in-memory run source for tests and benchmarks.
#[cfg(any(test, feature = "test-support"))]
pub mod fixture;
pub mod live;
pub mod netrc;
pub mod progress;
pub mod secret;
pub mod source;
pub mod store_source;
pub mod sync;
pub mod tracker;
pub mod types;

pub use client::RequestError;
pub use config::{Mode, RetryPolicy, WandbConfig};
pub use encode::wandb_run_id;
pub use events_file::{wandb_system_key, EventsRow, EVENTS_FILE};
pub use live::{live_sync, LiveHandle, LiveOptions, LiveSummary};
pub use secret::ApiKey;
pub use source::{
    sync_key, Acked, BoxError, FileOffsets, MemoryOffsets, OffsetStore, Offsets, SyncSource,
};
pub use store_source::StoreSource;
pub use sync::{sync_runs, RunReport, SyncError, SyncOptions, SyncOutcome, SyncReport};
pub use types::{manager_weight_key, HistoryRow, LogLine, LogStream, RunMeta, RunState, Selection};
