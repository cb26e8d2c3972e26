//! Live sync beside the runner: poll the source, push what is new, keep going through outages.
//! It runs on its own thread and runtime, and its errors are logged, never handed to training.

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::config::WandbConfig;
use super::source::{OffsetStore, SyncSource};
use super::sync::{sync_runs, SyncOptions, SyncReport};

/// How often to poll and what to sync.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interval: Duration,
    pub selection: super::types::Selection,
}

/// Polls until `stop` resolves, then makes one last pass so that the final lines and the
/// `complete` marker go out. Failed passes are logged and retried at the next poll; the
/// offsets make every pass resume where the last acknowledged one stopped.
pub async fn live_sync<S: SyncSource, O: OffsetStore>(
    config: WandbConfig,
    source: Arc<S>,
    offsets: Arc<O>,
    options: LiveOptions,
    stop: impl Future<Output = ()>,
) -> LiveSummary {
    let sync_options = SyncOptions {
        selection: options.selection,
        dry_run: false,
        progress: false,
        heartbeat: true,
    };
    let mut summary = LiveSummary::default();
    tokio::pin!(stop);
    loop {
        let stopping = tokio::select! {
            biased;
            () = &mut stop => true,
            () = tokio::time::sleep(if summary.passes == 0 { Duration::ZERO } else { options.interval }) => false,
        };
        pass(&config, &source, &offsets, &sync_options, &mut summary).await;
        if stopping {
            return summary;
        }
    }
}

/// Counts over all passes of a live sync.
#[derive(Debug, Clone, Default)]
pub struct LiveSummary {
    pub passes: u64,
    pub failed_passes: u64,
    pub history_lines: u64,
    pub log_lines: u64,
    pub last_error: Option<String>,
}

async fn pass<S: SyncSource, O: OffsetStore>(
    config: &WandbConfig,
    source: &Arc<S>,
    offsets: &Arc<O>,
    options: &SyncOptions,
    summary: &mut LiveSummary,
) {
    summary.passes += 1;
    match sync_runs(config, source.clone(), offsets.clone(), options).await {
        Ok(report) => record(&report, summary),
        Err(err) => {
            summary.failed_passes += 1;
            let message = err.to_string();
            // Every pass meets the same problem (no key, no entity): say it once.
            if summary.last_error.as_deref() != Some(message.as_str()) {
                tracing::warn!(error = %message, "live W&B sync pass failed; will retry");
            }
            summary.last_error = Some(message);
        }
    }
}

fn record(report: &SyncReport, summary: &mut LiveSummary) {
    summary.history_lines += report.history_lines();
    summary.log_lines += report.log_lines();
    if let Some(failure) = report.failures.first() {
        summary.failed_passes += 1;
        for f in &report.failures {
            if summary.last_error.as_deref() != Some(f.message.as_str()) {
                tracing::warn!(run = %f.run_id, error = %f.message, "live W&B sync: run failed; will retry");
            }
        }
        summary.last_error = Some(failure.message.clone());
    }
    tracing::debug!(
        history = report.history_lines(),
        logs = report.log_lines(),
        "live W&B sync pass"
    );
}

/// A live sync on its own thread (with a single-threaded runtime), so that a runner with or
/// without tokio can start it and training never waits on the network.
#[derive(Debug)]
pub struct LiveHandle {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<LiveSummary>>,
}

impl LiveHandle {
    pub fn spawn<S: SyncSource, O: OffsetStore>(
        config: WandbConfig,
        source: Arc<S>,
        offsets: Arc<O>,
        options: LiveOptions,
    ) -> std::io::Result<Self> {
        let (tx, rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wandb-live-sync".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        tracing::warn!(error = %err, "live W&B sync could not start a runtime");
                        return LiveSummary {
                            last_error: Some(err.to_string()),
                            ..LiveSummary::default()
                        };
                    }
                };
                runtime.block_on(live_sync(config, source, offsets, options, async {
                    // A dropped handle stops the sync too.
                    let _ = rx.await;
                }))
            })?;
        Ok(Self {
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a last pass and waits for it.
    pub fn stop(mut self) -> LiveSummary {
        self.finish()
    }

    fn finish(&mut self) -> LiveSummary {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        // Dropping without `stop` still ends the thread, but does not wait for it.
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
