//! `towerlab eval --weights FILE --task TASK`: scores a checkpoint on a task's validation or test
//! tables (the reference's `test_only`) and records it as an eval run of the experiment `eval`,
//! so `ls`, `show`, the TUI, `export` and W&B sync treat it as any run. A TowerLab checkpoint
//! whose run the store knows is scored with that run's settings (the same tables, batches and
//! order, so it reproduces what the run logged); any other checkpoint with the preset, the
//! task's recipe and what the weights determine. Scoring the same weights with the same
//! settings and data again prints the stored result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use experiments::{
    text_table, CellState, EvalRequest, EvalSplit, Experiment, Overrides, Settings, Task,
};
use store::{RunStatus, Store};

use crate::exit::UserError;
use crate::runner::worker::{self, Runner, Slot, Until};
use crate::runner::{self, executor, plan, Workspace};

fn user(code: u8, message: String) -> anyhow::Error {
    anyhow::Error::new(UserError { code, message })
}

fn parse_task(name: &str) -> anyhow::Result<Task> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        user(
            2,
            format!("--task expects one of vqa, nlvr2, snli, irtr, pretrain, found `{name}`"),
        )
    })
}

/// The `state.json` of a TowerLab checkpoint `path` names (a step, checkpoints or run folder,
/// or a step's `model.safetensors`), if it is one.
fn checkpoint_state(path: &Path) -> Option<PathBuf> {
    let weights = experiments::weights_file(path);
    let state = weights.parent()?.join("state.json");
    state.is_file().then_some(state)
}

/// The settings of the training run that wrote the checkpoint, when it is a TowerLab one and
/// the store knows the run.
async fn training_run_settings(store: &Store, weights: &Path) -> anyhow::Result<Option<Settings>> {
    let Some(state) = checkpoint_state(weights) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&state).with_context(|| format!("reading {}", state.display()))?;
    let hash = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("settings_hash")?.as_str().map(str::to_string))
        .ok_or_else(|| {
            user(
                1,
                format!(
                    "{}: not a TowerLab checkpoint state (no settings_hash)",
                    state.display()
                ),
            )
        })?;
    let runs = store.runs_by_hash(std::slice::from_ref(&hash)).await?;
    let Some(run) = runs.first() else {
        eprintln!(
            "warning: the run {} that wrote {} is not in this store; scoring with the preset \
             and the task's recipe (pass --set for the settings it trained with)",
            &hash[..12.min(hash.len())],
            weights.display()
        );
        return Ok(None);
    };
    Ok(Some(worker::stored_settings(store, run.id).await?))
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The checkpoint: a TowerLab run, checkpoints or step folder, a `.safetensors` file, the
    /// reference's Lightning `.ckpt`, a torch `.pt`/`.bin`, or a Hugging Face folder.
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// The task to score: vqa, nlvr2, snli, irtr (or pretrain).
    #[arg(long, value_name = "TASK")]
    pub task: String,
    /// The data folder (the `.arrow` tables); default: the run's, or `data`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// `val`: the validation pass as training runs it (NLVR2 and SNLI-VE also score their test
    /// table in it); `test`: the test tables (VQA writes `vqa_submit.json`).
    #[arg(long, value_name = "SPLIT", default_value = "val")]
    pub split: String,
    /// The preset under the task's recipe when the checkpoint is not a TowerLab run's
    /// (`base`, or `tiny`); keys the weights determine are read from them.
    #[arg(long, value_name = "NAME", default_value = "base")]
    pub preset: String,
    /// Override a setting: `--set key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the metrics as one JSON object (metric name → value).
    #[arg(long)]
    pub json: bool,
    /// CPU threads (default: this host's cores shared among its live CPU workers).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn run(db: &Path, args: EvalArgs) -> anyhow::Result<()> {
    let task = parse_task(&args.task)?;
    let split = EvalSplit::from_name(&args.split).ok_or_else(|| {
        user(
            2,
            format!("--split expects val or test, found `{}`", args.split),
        )
    })?;
    if !args.weights.exists() {
        return Err(user(
            1,
            format!("{}: no such file or folder", args.weights.display()),
        ));
    }
    let executor = executor::local_executor()?;
    let rt = runner::runtime()?;
    rt.block_on(async move {
        let ws = Workspace::new(db);
        let store = ws.open().await?;
        let request = EvalRequest {
            weights: args.weights.clone(),
            task,
            split,
            data_root: args.data.as_ref().map(|d| d.display().to_string()),
            run_settings: training_run_settings(&store, &args.weights).await?,
            preset: args.preset.clone(),
            overrides: Overrides::from_process_env(args.set.clone()),
        };
        let exp = Experiment::for_eval(&request).map_err(|errors| {
            let n = errors.len();
            user(
                2,
                format!(
                    "{n} problem{} with the eval; nothing was run:\n{errors}",
                    if n == 1 { "" } else { "s" }
                ),
            )
        })?;
        for w in &exp.warnings {
            eprintln!("warning: {w}");
        }
        let cells = exp.cells(&experiments::IdentityContext::from_files(
            runner::executor::ENGINE_VERSION,
        ));
        let cell = cells
            .first()
            .context("the eval experiment has no cell")?
            .clone();
        let target = cell.eval.clone().context("the eval cell has no target")?;
        // A bad checkpoint or data folder is one message, with nothing stored.
        let job = engine::train::ScoreJob {
            settings: cell.settings.clone(),
            weights: target.weights.clone(),
            split: target.split,
            explicit: target.explicit.clone(),
            run_dir: ws.runs_dir.clone(),
        };
        let checked = tokio::task::spawn_blocking(move || engine::train::check_score(&job))
            .await
            .context("checking the checkpoint")?;
        if let Err(e) = checked {
            return Err(user(1, e.to_string()));
        }

        let (planned, report) = plan::plan_and_queue(&store, &exp, "", cells.clone()).await?;
        let state = planned.rows.first().map(|r| r.state);
        if state == Some(CellState::Done) {
            eprintln!("already scored: the same weights, settings and data; nothing was run");
        } else {
            let row = match report.experiment.clone() {
                Some(row) => row,
                None => {
                    store
                        .upsert_experiment(&exp.name, &exp.path.display().to_string(), "")
                        .await?
                }
            };
            if state == Some(CellState::Failed) {
                // An earlier attempt failed (or was stopped): score again from the start.
                let old = store
                    .runs_by_hash(&[cell.identity.as_str().to_string()])
                    .await?;
                let ids: Vec<store::RunId> = old
                    .iter()
                    .filter(|r| r.experiment_id == row.id)
                    .map(|r| r.id)
                    .collect();
                store.requeue_runs(&ids, true).await?;
            }
            let devices = executor::local_devices();
            let slots =
                Slot::for_process(Some(1), args.threads, &devices, &executor.engine_version());
            let mut r = Runner::new(store.clone(), ws.runs_dir.clone(), executor);
            r.experiment = Some(row.id);
            r.ui = runner::ui::Ui::on_stderr();
            let runner = Arc::new(r);
            super::run::watch_ctrl_c(runner.clone());
            worker::serve(runner, slots, Until::ExperimentDone).await?;
        }
        let out = result(&store, &ws, cell.identity.as_str(), args.json).await;
        store.close().await;
        let text = out?;
        print!("{text}");
        anyhow::Ok(())
    })
}

/// The eval run's metrics (its last value of each), as a table or one JSON object; an error
/// when it did not finish.
async fn result(store: &Store, ws: &Workspace, hash: &str, json: bool) -> anyhow::Result<String> {
    let runs = store.runs_by_hash(&[hash.to_string()]).await?;
    let run = runs
        .iter()
        .find(|r| r.status == RunStatus::Finished)
        .or(runs.first())
        .context("the eval run is not in the store")?;
    if run.status != RunStatus::Finished {
        let why = run.failure_message.clone().unwrap_or_default();
        return Err(user(
            1,
            format!("the eval (run {}) {}: {why}", run.id, run.status),
        ));
    }
    let metrics: BTreeMap<String, f64> = store
        .summaries(run.id)
        .await?
        .into_iter()
        .filter_map(|s| Some((s.key, s.last?)))
        .collect();
    let dir = worker::run_dir(&ws.runs_dir, &run.hash);
    let submission = dir.join("vqa_submit.json");
    let mut out = String::new();
    if json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&metrics)?);
        if submission.is_file() {
            eprintln!("answers: {}", submission.display());
        }
        return Ok(out);
    }
    let rows: Vec<Vec<String>> = metrics
        .iter()
        .map(|(k, v)| vec![k.clone(), format!("{v:.6}")])
        .collect();
    out.push_str(&text_table::render(&["metric", "value"], &rows));
    if submission.is_file() {
        let _ = writeln!(out, "answers:  {}", submission.display());
    }
    let _ = writeln!(
        out,
        "eval run {} [{}] in {}",
        run.id,
        &run.hash[..12.min(run.hash.len())],
        ws.describe()
    );
    Ok(out)
}
