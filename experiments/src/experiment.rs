//! An experiment: a checked file, its grid expanded into runs with fully resolved settings,
//! and — given the engine version and the data's identity — the cells with their run
//! identities and pre-training dependencies.
//!
//! Pre-training runs (the "with VLP" arm): every cell with `vlp = true` depends on one
//! pre-training run whose model keys ([`Settings::MODEL_KEYS`]) equal the cell's. Its other
//! settings are: the preset → `[data]` → `[pretrain]` → the cell's model keys →
//! `TOWERLAB_*` → `--set` (plus `--set pretrain.key=value`, for pre-training only), with
//! `task = "pretrain"`. Pre-training uses ONE seed (`[pretrain] seed`, default 0) whatever
//! the fine-tuning seeds are: the paper pre-trains once and replicates fine-tuning, and a
//! pre-training run costs orders of magnitude more. Cells that share model keys share the run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::constraints::{self, fixed_managed_layers};
use crate::errors::{Collector, Origin, ValidationErrors};
use crate::evaluation::{EvalTarget, ResolvedEval};
use crate::experts::{self, HubEnv, HubRepo, Loads};
use crate::file::{self, Parsed, SetEntry};
use crate::grid::{self, display_value, values_equal, Assignment, CellKey, Dimension};
use crate::identity::{
    canonical_json, describe_stamp, eval_identity_document, identity_document,
    identity_document_with, vqa_answer_count, IdentityContext, RunId, DATA_STAMPS_KEY,
};
use crate::labels::Labels;
use crate::layering::{self, env_key, Layer, Overrides, SettingSource, Sources};
use crate::recipes::{self, Recipe, Selector};
use crate::schema;
use crate::settings::{Settings, Split, Task};
use crate::spanned;
use crate::spec::{DataSpec, MetricSpec, WandbSpec};

/// The demo experiment, shipped inside the binary.
pub const DEMO_TOML: &str = include_str!("../demo.toml");
/// The path shown in messages about the embedded demo.
pub const DEMO_PATH: &str = "experiments/demo.toml";

/// A checked experiment with its grid expanded and every run's settings resolved.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    pub description: String,
    /// The file it was read from (or [`DEMO_PATH`]).
    pub path: PathBuf,
    /// The preset under the base settings (`base` or `tiny`).
    pub preset: String,
    pub data: DataSpec,
    /// The grid's dimensions (axes and zip groups) after `--set`/`TOWERLAB_*` narrowing.
    pub dimensions: Vec<Dimension>,
    /// The replicate axis.
    pub seeds: Vec<u64>,
    /// Metrics to report: one per task, or one for all tasks.
    pub metrics: Vec<MetricSpec>,
    /// The baseline: a partial assignment of axis values (e.g. `manager_type = "BT"`).
    pub baseline: Option<Assignment>,
    pub wandb: Option<WandbSpec>,
    /// The file's `[executor]` (default: local).
    pub executor: crate::executor::ExecutorSpec,
    /// The file's `[labels]`: names of metrics, axes and values in figures (defaults for the
    /// rest come from [`Labels`] itself).
    pub labels: Labels,
    /// Things worth telling the user that do not stop the experiment.
    pub warnings: Vec<String>,
    /// The Hugging Face environment the experts were looked up in (from [`Overrides`]).
    pub hub: HubEnv,
    /// Experts the runs start from that are not on this machine yet, by the setting naming
    /// them: `queue`/`run` download them before computing identities.
    pub missing_experts: Vec<MissingExpert>,
    /// Grid points × seeds, in plan order.
    runs: Vec<ResolvedRun>,
    /// The file's `[[eval]]` entries: checkpoints scored beside the grid.
    evals: Vec<ResolvedEval>,
}

/// An expert some run starts from that is not on this machine (see [`experts::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingExpert {
    /// `vit` or `tokenizer`.
    pub key: &'static str,
    pub repo: HubRepo,
    /// Why it counts as missing (not in the cache, or an incomplete snapshot).
    pub detail: String,
}

/// One grid point and seed, before identities are known.
#[derive(Debug, Clone)]
pub struct ResolvedRun {
    pub key: CellKey,
    pub axes: Assignment,
    pub seed: u64,
    pub settings: Settings,
    /// Where each setting's value came from.
    pub sources: Sources,
    /// The task recipe under the file's settings (`crate::recipes`), by name.
    pub recipe: Option<&'static str>,
    /// The settings of the pre-training run this one starts from (`vlp = true`), with their
    /// sources.
    pub pretrain: Option<(Settings, Sources)>,
}

/// Why a cell is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A cell of the grid (one grid point and seed).
    Grid,
    /// A pre-training run that `vlp = true` cells start from.
    Pretrain,
    /// The scoring of a checkpoint (an `[[eval]]` entry, or `towerlab eval`).
    Eval,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Pretrain => "pretrain",
            Self::Eval => "eval",
        }
    }
}

/// One run of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The grid point's key, the same for every seed. Pre-training runs have
    /// `pretrain[<model axes>]`.
    pub key: CellKey,
    /// The axis values of the grid point, in dimension order (for pre-training: the cell's
    /// model axes).
    pub axes: Assignment,
    pub seed: u64,
    /// Fully resolved settings (all layers applied).
    pub settings: Settings,
    /// Where each setting's value came from.
    pub sources: Sources,
    /// Content hash of [`Cell::identity_document`] (without its data stamps: see
    /// [`crate::identity::identity_of`]).
    pub identity: RunId,
    /// What the identity hashes: settings without execution keys, data digest, engine version,
    /// dependency; plus the stamps of the data files (not hashed). The store keeps it so a
    /// later plan can say what changed, naming the file.
    pub identity_document: Json,
    /// The pre-training run this cell starts from.
    pub depends_on: Option<RunId>,
    pub role: Role,
    /// What the run loads before its first step, as its identity pins it.
    pub loads: Loads,
    /// The task recipe under the file's settings, by name (`crate::recipes`).
    pub recipe: Option<&'static str>,
    /// What an eval cell scores (`Role::Eval`).
    pub eval: Option<EvalTarget>,
}

/// Experiment files are read up to this size (the paper's grids are a few KB); a mistyped path
/// such as `/dev/zero` is refused instead of read until memory runs out.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

enum Bounded {
    Io(std::io::Error),
    TooLarge,
    NotText,
}

fn read_bounded(path: &Path, limit: u64) -> Result<String, Bounded> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(Bounded::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Bounded::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| Bounded::NotText)
}

impl Experiment {
    /// Reads and checks an experiment file. All problems come back at once.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ValidationErrors> {
        let fail = |message: String| {
            let mut c = Collector::new(path, "");
            c.push(Origin::Whole, message);
            c.into_errors()
        };
        let src = read_bounded(path, MAX_FILE_BYTES).map_err(|e| match e {
            Bounded::Io(e) => fail(format!("cannot read the file: {e}")),
            Bounded::TooLarge => fail(format!(
                "larger than {} KiB: not an experiment file",
                MAX_FILE_BYTES / 1024
            )),
            Bounded::NotText => fail("not UTF-8 text: not an experiment file".into()),
        })?;
        Self::from_toml(&src, path, overrides)
    }

    /// The embedded demo experiment.
    pub fn demo(overrides: &Overrides) -> Result<Self, ValidationErrors> {
        Self::from_toml(DEMO_TOML, Path::new(DEMO_PATH), overrides)
    }

    /// Checks an experiment given as text; `path` is used in messages.
    pub fn from_toml(
        src: &str,
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::new(path, src);
        let root = match spanned::parse(src) {
            Ok(r) => r,
            Err(e) => {
                c.at(e.offset, format!("TOML syntax error: {}", e.message));
                return Err(c.into_errors());
            }
        };
        let parsed = file::read(&mut c, &root);
        let mut warnings = Vec::new();
        let ov = read_overrides(&mut c, overrides, &mut warnings);
        // Combination checks run even after schema errors (bad entries are left out), so one
        // pass shows every problem.
        let exp = build(&mut c, parsed, ov, warnings, path);
        let errors = c.into_errors();
        match exp {
            Some(e) if errors.is_empty() => Ok(e),
            _ => Err(errors),
        }
    }

    /// Grid points × seeds with resolved settings, in plan order (no identities yet).
    pub fn runs(&self) -> &[ResolvedRun] {
        &self.runs
    }

    /// The tasks the grid trains.
    pub fn tasks(&self) -> Vec<Task> {
        let mut out = Vec::new();
        for r in &self.runs {
            if !out.contains(&r.settings.task) {
                out.push(r.settings.task);
            }
        }
        out
    }

    /// When some run validates on tables it also trains on (VQA's reference tables do: the
    /// reference trains on train + val for the test server), a sentence saying so: its
    /// validation scores are not held out.
    pub fn validation_overlap(&self) -> Option<String> {
        self.runs.iter().find_map(|r| {
            let train = r.settings.tables(Split::Train);
            let shared: Vec<String> = r
                .settings
                .tables(Split::Val)
                .into_iter()
                .filter(|t| train.contains(t))
                .collect();
            (!shared.is_empty()).then(|| {
                format!(
                    "the validation tables {} are also training tables{}, so validation scores \
                     are not held out; name the training tables in [base] train_tables to keep \
                     them apart",
                    shared.join(", "),
                    if r.settings.task == Task::Vqa && r.settings.train_tables.is_empty() {
                        " (the reference trains VQAv2 on train + val for the test server)"
                    } else {
                        ""
                    }
                )
            })
        })
    }

    /// The metric reported for `task`.
    pub fn metric_for(&self, task: Task) -> Option<&MetricSpec> {
        self.metrics
            .iter()
            .find(|m| m.task == Some(task))
            .or_else(|| self.metrics.iter().find(|m| m.task.is_none()))
    }

    /// The key of the baseline cell to compare a cell with: the cell's axes with the baseline's
    /// values put in (so with a `num_layers` axis, each depth is compared with the baseline at
    /// that depth). `None` without a baseline or when that cell is not in the grid.
    pub fn baseline_for(&self, axes: &[(String, Json)]) -> Option<CellKey> {
        let base = self.baseline.as_ref()?;
        // Keys the baseline decides: its own, and the rest of any zip group it names.
        let mut free: Vec<&str> = base.iter().map(|(k, _)| k.as_str()).collect();
        for d in &self.dimensions {
            let keys = d.keys();
            if keys.iter().any(|k| free.contains(k)) {
                free.extend(keys);
            }
        }
        let kept: Assignment = axes
            .iter()
            .filter(|(k, _)| !free.contains(&k.as_str()))
            .cloned()
            .collect();
        self.runs
            .iter()
            .find(|r| {
                r.axes.len() == axes.len()
                    && grid::matches(base, &r.axes)
                    && grid::matches(&kept, &r.axes)
            })
            .map(|r| r.key.clone())
    }

    /// Is this grid point a baseline cell?
    pub fn is_baseline(&self, axes: &[(String, Json)]) -> bool {
        self.baseline
            .as_ref()
            .is_some_and(|b| grid::matches(b, axes))
    }

    /// The file's eval entries, resolved.
    pub fn evals(&self) -> &[ResolvedEval] {
        &self.evals
    }

    /// The plan's cells with identities: pre-training runs first (each once), then the grid's
    /// cells in order, each `vlp = true` cell referencing its pre-training run, then the eval
    /// cells.
    pub fn cells(&self, ctx: &IdentityContext<'_>) -> Vec<Cell> {
        let mut pre: Vec<Cell> = Vec::new();
        let mut main: Vec<Cell> = Vec::new();
        for r in &self.runs {
            let depends_on = r.pretrain.as_ref().map(|(ps, sources)| {
                let recipe = recipes::select(
                    &self.preset,
                    Selector {
                        task: Task::Pretrain,
                        vlp: false,
                        coco: false,
                    },
                );
                let cell = make_cell(
                    ctx,
                    &self.hub,
                    pretrain_key(&r.axes),
                    model_axes(&r.axes),
                    (ps.clone(), sources.clone(), recipe.map(|r| r.name)),
                    None,
                    Role::Pretrain,
                );
                let id = cell.identity.clone();
                if !pre.iter().any(|p| p.identity == id) {
                    pre.push(cell);
                }
                id
            });
            main.push(make_cell(
                ctx,
                &self.hub,
                r.key.clone(),
                r.axes.clone(),
                (r.settings.clone(), r.sources.clone(), r.recipe),
                depends_on,
                Role::Grid,
            ));
        }
        pre.extend(main);
        pre.extend(self.evals.iter().map(|e| e.cell(ctx)));
        pre
    }
}

fn make_cell(
    ctx: &IdentityContext<'_>,
    hub: &HubEnv,
    key: CellKey,
    axes: Assignment,
    (settings, sources, recipe): (Settings, Sources, Option<&'static str>),
    depends_on: Option<RunId>,
    role: Role,
) -> Cell {
    let data = (ctx.data)(&settings);
    let loads = experts::loads(&settings, hub);
    let mut doc = identity_document_with(
        &settings,
        data.as_str(),
        &ctx.engine_version,
        depends_on.as_ref(),
        loads.to_json(),
    );
    let identity = RunId::of_document(&doc);
    let stamps = (ctx.stamps)(&settings);
    if let (Json::Object(map), false) = (&mut doc, stamps.is_null()) {
        map.insert(DATA_STAMPS_KEY.into(), stamps);
    }
    Cell {
        key,
        axes,
        seed: settings.seed,
        identity,
        identity_document: doc,
        settings,
        sources,
        depends_on,
        role,
        loads,
        recipe,
        eval: None,
    }
}

impl ResolvedEval {
    /// The eval cell: its identity hashes the settings, the data, the engine and the weights'
    /// content and the split.
    pub fn cell(&self, ctx: &IdentityContext<'_>) -> Cell {
        let data = (ctx.data)(&self.settings);
        let weights = (ctx.weights)(&self.target.weights);
        let doc = eval_identity_document(
            &self.settings,
            data.as_str(),
            &ctx.engine_version,
            &weights,
            self.target.split,
        );
        Cell {
            key: self.key.clone(),
            axes: self.axes.clone(),
            seed: self.settings.seed,
            identity: RunId::of_document(&doc),
            identity_document: doc,
            settings: self.settings.clone(),
            sources: self.sources.clone(),
            depends_on: None,
            role: Role::Eval,
            recipe: self.recipe,
            eval: Some(self.target.clone()),
            // The checkpoint it scores holds the weights; its digest is in the identity.
            loads: Loads::default(),
        }
    }
}

fn model_axes(axes: &[(String, Json)]) -> Assignment {
    axes.iter()
        .filter(|(k, _)| Settings::MODEL_KEYS.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn pretrain_key(axes: &[(String, Json)]) -> CellKey {
    let inner = model_axes(axes);
    let inner = if inner.is_empty() {
        "(base)".to_string()
    } else {
        CellKey::of(&inner).0
    };
    CellKey(format!("pretrain[{inner}]"))
}

/// Where a resolved value came from, ranked by layer (with the file offset or variable that
/// error messages point at).
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The task recipe, by name.
    Task(&'static str),
    Base(usize),
    Cell(usize),
    Env(String),
    Set(usize),
    /// A pre-training run's `[pretrain]` entry or fixed key.
    Pretrain(usize),
}

impl Source {
    fn rank(&self) -> u8 {
        match self {
            Self::Task(_) => 0,
            Self::Base(_) | Self::Pretrain(_) => 1,
            Self::Cell(_) => 2,
            Self::Env(_) => 3,
            Self::Set(_) => 4,
        }
    }

    fn kind(&self) -> SettingSource {
        match self {
            Self::Task(_) => SettingSource::Task,
            Self::Base(_) | Self::Cell(_) => SettingSource::File,
            Self::Env(_) => SettingSource::Env,
            Self::Set(_) => SettingSource::Set,
            Self::Pretrain(_) => SettingSource::Pretrain,
        }
    }
}

/// Resolves `layers` over the preset with the task's recipe under them: a first pass finds the
/// task (and what picks its recipe: `vlp`, `datasets`), the second puts the recipe in.
fn resolve_with_recipe(
    preset_name: &str,
    preset: &Settings,
    layers: &[&[(String, Json)]],
) -> Result<(Settings, Option<Recipe>), String> {
    let first = layering::resolve(preset, layers)?;
    let Some(recipe) = recipes::select(preset_name, Selector::of(&first)) else {
        return Ok((first, None));
    };
    let layer = recipe.layer();
    let mut all: Vec<&[(String, Json)]> = vec![&layer];
    all.extend_from_slice(layers);
    Ok((layering::resolve(preset, &all)?, Some(recipe)))
}

/// Notes the recipe's keys as their source where no higher layer set them.
fn add_recipe_sources(sources: &mut HashMap<String, Source>, recipe: Option<&Recipe>) {
    for r in recipe
        .iter()
        .flat_map(|r| r.values.iter().map(move |v| (r.name, v.key)))
    {
        sources.entry(r.1.to_string()).or_insert(Source::Task(r.0));
    }
}

/// Every setting's source: the layer that set it last, else the preset.
fn sources_of(sources: &HashMap<String, Source>) -> Sources {
    Settings::keys()
        .into_iter()
        .map(|k| {
            let s = sources.get(&k).map_or(SettingSource::Preset, Source::kind);
            (k, s)
        })
        .collect()
}

/// What `towerlab eval` scores, and where its settings start from.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub weights: PathBuf,
    pub task: Task,
    pub split: crate::evaluation::EvalSplit,
    /// `--data DIR`: the data root.
    pub data_root: Option<String>,
    /// The settings of the TowerLab run that wrote the checkpoint, when the store knows it:
    /// the eval then reads the same tables the same way (no preset, no recipe). Otherwise the
    /// preset, the task's recipe and what the weights determine.
    pub run_settings: Option<Settings>,
    pub preset: String,
    pub overrides: Overrides,
}

/// The name of the experiment `towerlab eval` records its runs under.
pub const EVAL_EXPERIMENT: &str = "eval";

impl Experiment {
    /// The one-cell experiment of `towerlab eval`: preset (or the run that wrote the
    /// checkpoint) → task recipe → `--task`/`--data` → `TOWERLAB_*` → `--set`.
    pub fn for_eval(req: &EvalRequest) -> Result<Self, ValidationErrors> {
        let path = Path::new("towerlab eval");
        let mut c = Collector::new(path, "");
        let mut warnings = Vec::new();
        let ov = read_overrides(&mut c, &req.overrides, &mut warnings);
        if let Some((k, _, n)) = ov.pretrain_set.first() {
            c.push(
                Origin::Set(*n),
                format!("`pretrain.{k}`: an eval has no pre-training run"),
            );
        }
        let base = match &req.run_settings {
            Some(s) => Some(s.clone()),
            None => Settings::preset(&req.preset),
        };
        let Some(base) = base else {
            c.push(
                Origin::Whole,
                format!(
                    "preset expects one of {}, found \"{}\"",
                    Settings::PRESETS.join(", "),
                    req.preset
                ),
            );
            return Err(c.into_errors());
        };
        let mut sources: HashMap<String, Source> = HashMap::new();
        let mut request: Layer = vec![("task".into(), Json::from(req.task.as_str()))];
        sources.insert("task".into(), Source::Set(0));
        if let Some(d) = &req.data_root {
            request.push(("data_root".into(), Json::from(d.as_str())));
            sources.insert("data_root".into(), Source::Set(0));
        }
        let mut env_layer: Layer = Vec::new();
        for (k, v, var) in &ov.env {
            env_layer.push((k.clone(), v.clone()));
            sources.insert(k.clone(), Source::Env(var.clone()));
        }
        let mut set_layer: Layer = Vec::new();
        for (k, v, n) in &ov.set {
            set_layer.push((k.clone(), v.clone()));
            sources.insert(k.clone(), Source::Set(*n));
        }
        let layers = [&request[..], &env_layer, &set_layer];
        let resolved = match &req.run_settings {
            Some(_) => layering::resolve(&base, &layers).map(|s| (s, None)),
            None => resolve_with_recipe(&req.preset, &base, &layers),
        };
        let (mut settings, recipe) = match resolved {
            Ok(s) => s,
            Err(m) => {
                c.push(Origin::Whole, m);
                return Err(c.into_errors());
            }
        };
        add_recipe_sources(&mut sources, recipe.as_ref());
        let label = req.weights.display().to_string();
        let key = CellKey(format!("eval[{label}]"));
        let mut problems = normalise(&mut settings, &mut sources);
        problems.extend(constraints::check(&settings));
        report(&mut c, &problems, &sources, &key, &req.preset, "eval");
        let errors = c.into_errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut sources = sources_of(&sources);
        if req.run_settings.is_some() {
            for s in sources.values_mut() {
                if *s == SettingSource::Preset {
                    *s = SettingSource::Run;
                }
            }
        }
        let explicit = match &req.run_settings {
            // The run's settings built the model that wrote the weights.
            Some(_) => sources.keys().cloned().collect(),
            None => explicit_keys(&sources),
        };
        let eval = ResolvedEval {
            name: label.clone(),
            key,
            axes: vec![
                ("task".into(), Json::from(req.task.as_str())),
                ("split".into(), Json::from(req.split.as_str())),
                ("eval".into(), Json::String(label)),
            ],
            target: EvalTarget {
                weights: req.weights.clone(),
                split: req.split,
                explicit,
            },
            settings,
            sources,
            recipe: recipe.map(|r| r.name),
        };
        Ok(Experiment {
            name: EVAL_EXPERIMENT.into(),
            description: "checkpoints scored by `towerlab eval`".into(),
            path: path.to_path_buf(),
            preset: req.preset.clone(),
            data: DataSpec {
                root: eval.settings.data_root.clone(),
                synthetic: false,
            },
            dimensions: Vec::new(),
            seeds: vec![eval.settings.seed],
            metrics: vec![MetricSpec {
                task: None,
                name: crate::evaluation::main_metric(req.task, req.split),
                goal: crate::spec::Goal::Maximize,
                summary: crate::spec::Summary::Last,
            }],
            baseline: None,
            wandb: None,
            executor: crate::executor::ExecutorSpec::default(),
            labels: Labels::default(),
            warnings,
            hub: HubEnv::from_vars(&req.overrides.env),
            // A checkpoint holds its weights: nothing to fetch.
            missing_experts: Vec::new(),
            runs: Vec::new(),
            evals: vec![eval],
        })
    }
}

/// The checked `TOWERLAB_*` and `--set` overrides.
#[derive(Default)]
struct CheckedOverrides {
    hub: HubEnv,
    env: Vec<(String, Json, String)>,
    set: Vec<(String, Json, usize)>,
    pretrain_set: Vec<(String, Json, usize)>,
    /// `--set preset=NAME` or `TOWERLAB_PRESET` (the flag wins): the preset under `[base]`.
    preset: Option<String>,
}

/// A preset name given outside the file, as the file's `[base] preset` takes it.
fn preset_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_matches('"');
    match Settings::preset(name) {
        Some(_) => Ok(name.to_string()),
        None => Err(format!(
            "preset expects one of {}, found `{text}`",
            Settings::PRESETS
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn read_overrides(
    c: &mut Collector<'_>,
    ov: &Overrides,
    warnings: &mut Vec<String>,
) -> CheckedOverrides {
    let mut out = CheckedOverrides {
        hub: HubEnv::from_vars(&ov.env),
        ..CheckedOverrides::default()
    };
    let mut env_preset = None;
    for (var, text) in &ov.env {
        let Some(key) = env_key(var) else { continue };
        if key == "preset" {
            match preset_name(text) {
                Ok(name) => env_preset = Some(name),
                Err(m) => c.push(Origin::Env(var.clone()), m),
            }
            continue;
        }
        if schema::key_type(&key).is_none() {
            // Other TOWERLAB_* variables belong to the app (paths, logging); only flag typos.
            if let Some(s) = schema::suggest(&key) {
                warnings.push(format!(
                    "{var} is not a setting and is ignored; did you mean {}?",
                    layering::env_var(s)
                ));
            }
            continue;
        }
        match schema::parse_text(&key, text) {
            Ok(v) => out.env.push((key, v, var.clone())),
            Err(m) => c.push(Origin::Env(var.clone()), m),
        }
    }
    for (i, flag) in ov.set.iter().enumerate() {
        let n = i + 1;
        let Some((key, text)) = flag.split_once('=') else {
            c.push(
                Origin::Set(n),
                format!("expected key=value, found `{flag}`"),
            );
            continue;
        };
        let key = key.trim();
        let (for_pretrain, key) = match key.strip_prefix("pretrain.") {
            Some(k) => (true, k),
            None => (false, key),
        };
        if key == "preset" {
            if for_pretrain {
                c.push(
                    Origin::Set(n),
                    "the preset applies to the whole experiment: write `--set preset=NAME`",
                );
            } else {
                match preset_name(text) {
                    Ok(name) => out.preset = Some(name),
                    Err(m) => c.push(Origin::Set(n), m),
                }
            }
            continue;
        }
        if for_pretrain
            && (Settings::MODEL_KEYS.contains(&key) || matches!(key, "task" | "vlp" | "load_path"))
        {
            c.push(
                Origin::Set(n),
                format!("`{key}` cannot be set for pre-training alone: the model comes from the fine-tuning cell"),
            );
            continue;
        }
        match schema::parse_text(key, text) {
            Ok(v) if for_pretrain => out.pretrain_set.push((key.to_string(), v, n)),
            Ok(v) => out.set.push((key.to_string(), v, n)),
            Err(m) => c.push(Origin::Set(n), m),
        }
    }
    if out.preset.is_none() {
        out.preset = env_preset;
    }
    out
}

fn build(
    c: &mut Collector<'_>,
    mut p: Parsed,
    ov: CheckedOverrides,
    mut warnings: Vec<String>,
    path: &Path,
) -> Option<Experiment> {
    if let Some(name) = &ov.preset {
        p.preset.clone_from(name);
    }
    let preset = Settings::preset(&p.preset)?;
    let data = p.data.clone().unwrap_or(DataSpec {
        root: preset.data_root.clone(),
        synthetic: false,
    });

    // The base layer: [data] root, then `task` and [base] in file order.
    let mut base: Layer = vec![("data_root".into(), Json::String(data.root.clone()))];
    let mut sources: HashMap<String, Source> = HashMap::new();
    if let Some(off) = p.data_root_off {
        sources.insert("data_root".into(), Source::Base(off));
    }
    for SetEntry {
        path,
        value,
        val_off,
        ..
    } in &p.base
    {
        base.push((path.clone(), value.clone()));
        sources.insert(path.clone(), Source::Base(*val_off));
    }
    let has_task = p.task_written
        || p.dims.iter().any(|d| d.keys().contains(&"task"))
        || p.include
            .iter()
            .any(|i| i.assignment.iter().any(|(k, _)| k == "task"))
        || p.evals
            .iter()
            .any(|e| e.settings.iter().any(|s| s.path == "task"))
        || ov.set.iter().any(|(k, _, _)| k == "task")
        || ov.env.iter().any(|(k, _, _)| k == "task");
    if !has_task {
        c.at(
            0,
            "missing `task`: say what the grid trains, e.g. task = \"vqa\"",
        );
    }

    // Overrides of an axis narrow it to that value (so cell keys stay truthful); `seed`
    // replaces the replicate axis.
    let mut env_layer: Layer = Vec::new();
    let mut set_layer: Layer = Vec::new();
    let mut narrowed: Vec<String> = Vec::new();
    let mut seeds = p.seeds.clone();
    let overrides = ov
        .env
        .iter()
        .map(|(k, v, var)| (k, v, Source::Env(var.clone())))
        .chain(ov.set.iter().map(|(k, v, n)| (k, v, Source::Set(*n))));
    for (key, value, src) in overrides {
        if key == "seed" {
            seeds = value.as_u64().map(|s| vec![s]);
            sources.insert(key.clone(), src);
            continue;
        }
        if let Some(dim) = p.dims.iter_mut().find(|d| d.keys().contains(&key.as_str())) {
            narrowed.push(key.clone());
            if !narrow(dim, key, value) {
                let origin = match &src {
                    Source::Env(v) => Origin::Env(v.clone()),
                    Source::Set(n) => Origin::Set(*n),
                    _ => Origin::Whole,
                };
                c.push(
                    origin,
                    format!(
                        "`{key}` = {} matches no row of its zip group",
                        display_value(value)
                    ),
                );
            }
            // Include rules that set the key to another value are narrowed away too.
            p.include.retain(|i| {
                i.assignment
                    .iter()
                    .all(|(k, v)| k != key || values_equal(v, value))
            });
        }
        match &src {
            Source::Env(_) => env_layer.push((key.clone(), value.clone())),
            _ => set_layer.push((key.clone(), value.clone())),
        }
        sources.insert(key.clone(), src);
    }

    let include_points: Vec<Assignment> = p.include.iter().map(|i| i.assignment.clone()).collect();
    let seed_count = seeds.as_ref().map_or(1, |s| s.len().max(1));
    let total = grid::product_len(&p.dims)
        .and_then(|n| n.checked_add(include_points.len()))
        .and_then(|n| n.checked_mul(seed_count));
    if total.is_none_or(|n| n > grid::MAX_RUNS) {
        let cells = grid::product_len(&p.dims).map_or("more than 2^64".into(), |n| n.to_string());
        c.push(
            Origin::Whole,
            format!(
                "the grid has {cells} cells × {seed_count} seed(s), more than the {} runs one \
                 experiment may have; split it into several files",
                grid::MAX_RUNS
            ),
        );
        return None;
    }
    let points = grid::expand(&p.dims, &p.exclude, &include_points);
    if points.is_empty() {
        // An empty dimension was already reported (an override matching no zip row).
        if p.dims.iter().all(|d| !d.is_empty()) {
            c.push(
                Origin::Whole,
                "the exclude rules remove every cell of the grid",
            );
        }
        return None;
    }

    let mut runs = Vec::new();
    let mut seen: HashMap<String, CellKey> = HashMap::new();
    if p.seeds.is_some() && !sources.contains_key("seed") {
        sources.insert("seed".into(), Source::Cell(0));
    }
    let pretrain_entries: Layer = p
        .pretrain
        .as_ref()
        .map(|(e, _)| {
            e.iter()
                .map(|s| (s.path.clone(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    let pretrain_seed = pretrain_entries
        .iter()
        .find(|(k, _)| k == "seed")
        .and_then(|(_, v)| v.as_u64())
        .unwrap_or(0);
    let mut any_vlp = false;
    let mut rejected_cells = false;
    let mut missing_experts: Vec<MissingExpert> = Vec::new();
    let mut seen_expert_problems: HashSet<String> = HashSet::new();
    let mut vocabularies: HashMap<String, Result<Option<usize>, String>> = HashMap::new();
    for point in &points {
        let include = p.include.iter().find(|i| i.assignment == *point);
        let mut cell_sources = sources.clone();
        for (k, v) in point {
            let off = include
                .and_then(|i| i.offsets.get(k).copied())
                .or_else(|| p.value_offset(k, v))
                .unwrap_or(0);
            cell_sources.insert(k.clone(), Source::Cell(off));
        }
        let key = match include {
            Some(_) => CellKey::of(point),
            None => CellKey::of_point(&p.dims, point),
        };
        let seed_list: Vec<Option<u64>> = match &seeds {
            Some(s) => s.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        for seed in seed_list {
            let mut cell_layer: Layer = point.clone();
            if let Some(s) = seed {
                cell_layer.push(("seed".into(), Json::from(s)));
            }
            let resolved = resolve_with_recipe(
                &p.preset,
                &preset,
                &[&base, &cell_layer, &env_layer, &set_layer],
            );
            let (mut settings, recipe) = match resolved {
                Ok(s) => s,
                Err(m) => {
                    c.push(Origin::Whole, format!("cell {key}: {m}"));
                    rejected_cells = true;
                    continue;
                }
            };
            // The experts decide the encoder keys the user left open: the recipe's keys are
            // defaults, not choices, so they are added to the sources after.
            let expert_problems =
                apply_experts(&mut settings, &cell_sources, &ov.hub, &mut missing_experts);
            // A bad expert is one problem, however many cells share it.
            let expert_failed = !expert_problems.is_empty();
            let mut cell_sources = cell_sources.clone();
            add_recipe_sources(&mut cell_sources, recipe.as_ref());
            let mut problems: Vec<constraints::Problem> = expert_problems
                .into_iter()
                .filter(|pr| seen_expert_problems.insert(pr.message.clone()))
                .collect();
            problems.extend(normalise(&mut settings, &mut cell_sources));
            problems.extend(answer_count(
                &mut settings,
                &cell_sources,
                &mut vocabularies,
            ));
            problems.extend(constraints::check(&settings));
            report(c, &problems, &cell_sources, &key, &p.preset, "cell");
            if !problems.is_empty() || expert_failed {
                rejected_cells = true;
                continue;
            }
            // A released pre-trained checkpoint stands in for the pre-training run.
            let pretrain = if settings.vlp && settings.vlp_checkpoint.is_empty() {
                any_vlp = true;
                resolve_pretrain(
                    c,
                    &preset,
                    &data,
                    &p,
                    &pretrain_entries,
                    pretrain_seed,
                    &settings,
                    &env_layer,
                    &set_layer,
                    &ov,
                    &key,
                    &cell_sources,
                )
            } else {
                None
            };
            let doc = canonical_json(&identity_document(&settings, "", "", None));
            if let Some(first) = seen.get(&doc) {
                warnings.push(format!(
                    "cell {key} (seed {}) resolves to the same settings as {first}; it is skipped",
                    settings.seed
                ));
                continue;
            }
            seen.insert(doc, key.clone());
            runs.push(ResolvedRun {
                key: key.clone(),
                axes: point.clone(),
                seed: settings.seed,
                settings,
                sources: sources_of(&cell_sources),
                recipe: recipe.map(|r| r.name),
                pretrain,
            });
        }
    }
    if p.pretrain.is_some() && !any_vlp {
        warnings.push("[pretrain] is unused: no cell has vlp = true".into());
    }
    let evals = resolve_evals(c, &p, &preset, [&base, &env_layer, &set_layer], &sources);

    // Every task needs a metric.
    let metrics: Vec<MetricSpec> = p.metrics.iter().map(|(m, _)| m.clone()).collect();
    if !p.metrics.is_empty() {
        let mut tasks: Vec<Task> = Vec::new();
        for t in runs
            .iter()
            .map(|r| r.settings.task)
            .chain(evals.iter().map(|e| e.settings.task))
        {
            if !tasks.contains(&t) {
                tasks.push(t);
            }
        }
        for t in tasks {
            let covered = metrics
                .iter()
                .any(|m| m.task == Some(t) || m.task.is_none());
            if !covered {
                c.at(
                    p.metric_off.unwrap_or(0),
                    format!(
                        "no metric for task `{}`; add a [[metric]] with task = \"{}\"",
                        t.as_str(),
                        t.as_str()
                    ),
                );
            }
        }
    }
    // With cells rejected above, their errors say what is wrong; the baseline may be one of them.
    if let Some((b, off)) = p.baseline.as_ref().filter(|_| !rejected_cells) {
        if !runs.iter().any(|r| grid::matches(b, &r.axes)) {
            // An override narrowed the baseline's axis away: a deliberate subset of the grid,
            // which runs, only without differences to a baseline.
            match b.iter().find(|(k, _)| narrowed.contains(k)) {
                Some((k, _)) => warnings.push(format!(
                    "the baseline is outside the grid once the override of `{k}` narrows it; \
                     reports show no differences"
                )),
                None => c.at(*off, "the baseline matches no cell of the grid"),
            }
        }
    }
    let seeds_out = seeds.unwrap_or_else(|| {
        let mut s: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        s.sort_unstable();
        s.dedup();
        s
    });
    Some(Experiment {
        name: p.name,
        description: p.description,
        path: path.to_path_buf(),
        preset: p.preset,
        data,
        dimensions: p.dims,
        seeds: seeds_out,
        metrics,
        baseline: p.baseline.map(|(b, _)| b),
        wandb: p.wandb,
        executor: p.executor.unwrap_or_default(),
        labels: p.labels,
        warnings,
        hub: ov.hub,
        missing_experts,
        runs,
        evals,
    })
}

/// The experts a run starts from, on this machine: their configs write the encoder keys the
/// experiment leaves to them (a key it sets to another value is a problem, naming both values);
/// experts not here yet are collected for `queue`/`run` to download. `vlp_checkpoint` only
/// means something with `vlp`: elsewhere it is cleared so it does not split identities.
fn apply_experts(
    s: &mut Settings,
    sources: &HashMap<String, Source>,
    hub: &HubEnv,
    missing: &mut Vec<MissingExpert>,
) -> Vec<constraints::Problem> {
    if !s.vlp {
        s.vlp_checkpoint.clear();
    }
    let applied = experts::apply(s, &|k| sources.contains_key(k), hub);
    for (role, repo, detail) in applied.missing {
        let m = MissingExpert {
            key: role.key(),
            repo,
            detail,
        };
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    let mut out: Vec<constraints::Problem> = applied
        .errors
        .into_iter()
        .map(|(key, e)| constraints::Problem {
            keys: vec![key],
            message: e.to_string(),
        })
        .collect();
    if s.vlp && !s.vlp_checkpoint.is_empty() {
        if let Err(e) = experts::locate_checkpoint(&s.vlp_checkpoint) {
            out.push(constraints::Problem {
                keys: vec!["vlp_checkpoint"],
                message: e.to_string(),
            });
        }
    }
    out
}

/// The file's `[[eval]]` entries: each resolved as preset → task recipe → `[data]`/`[base]` →
/// the entry's settings → `TOWERLAB_*` → `--set`, checked like a cell.
fn resolve_evals(
    c: &mut Collector<'_>,
    p: &Parsed,
    preset: &Settings,
    [base, env_layer, set_layer]: [&[(String, Json)]; 3],
    sources: &HashMap<String, Source>,
) -> Vec<ResolvedEval> {
    let axis_keys = p.axis_keys();
    let mut out = Vec::new();
    for e in &p.evals {
        let key = CellKey(format!("eval[{}]", e.name));
        let layer: Layer = e
            .settings
            .iter()
            .map(|s| (s.path.clone(), s.value.clone()))
            .collect();
        let (mut settings, recipe) =
            match resolve_with_recipe(&p.preset, preset, &[base, &layer, env_layer, set_layer]) {
                Ok(s) => s,
                Err(m) => {
                    c.at(e.off, format!("eval {}: {m}", e.name));
                    continue;
                }
            };
        let mut src = sources.clone();
        for s in &e.settings {
            // Overrides outrank the entry.
            if !matches!(src.get(&s.path), Some(Source::Env(_) | Source::Set(_))) {
                src.insert(s.path.clone(), Source::Cell(s.val_off));
            }
        }
        add_recipe_sources(&mut src, recipe.as_ref());
        let mut problems = normalise(&mut settings, &mut src);
        problems.extend(constraints::check(&settings));
        report(c, &problems, &src, &key, &p.preset, "eval");
        if !problems.is_empty() {
            continue;
        }
        let json = serde_json::to_value(&settings).unwrap_or(Json::Null);
        let mut axes: Assignment = axis_keys
            .iter()
            .filter_map(|k| json.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        axes.push(("eval".into(), Json::String(e.name.clone())));
        let sources = sources_of(&src);
        out.push(ResolvedEval {
            name: e.name.clone(),
            key,
            axes,
            target: EvalTarget {
                weights: PathBuf::from(&e.weights),
                split: e.split,
                explicit: explicit_keys(&sources),
            },
            settings,
            sources,
            recipe: recipe.map(|r| r.name),
        });
    }
    out
}

/// The keys a user chose (file, environment, `--set`), as opposed to the preset and recipe.
fn explicit_keys(sources: &Sources) -> Vec<String> {
    sources
        .iter()
        .filter(|(_, s)| {
            matches!(
                s,
                SettingSource::File | SettingSource::Env | SettingSource::Set
            )
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Narrows a dimension to the rows where `key` has `value`; a plain axis not holding the
/// value becomes that single value. `false` when a zip group has no such row.
fn narrow(dim: &mut Dimension, key: &str, value: &Json) -> bool {
    match dim {
        Dimension::Axis { values, .. } => {
            *values = vec![value.clone()];
            true
        }
        Dimension::Zip { keys, rows } => {
            let i = keys.iter().position(|k| k == key).unwrap_or(0);
            rows.retain(|r| values_equal(&r[i], value));
            !rows.is_empty()
        }
    }
}

/// BridgeTower and METER fix how many uni-modal layers they use; their `managed_layers_*` are
/// set to that number so that irrelevant values do not split identities. A value written on a
/// grid axis or include rule that disagrees is an error: those cells would be duplicates.
fn normalise(s: &mut Settings, sources: &mut HashMap<String, Source>) -> Vec<constraints::Problem> {
    let mut out = Vec::new();
    let Some(n) = fixed_managed_layers(s) else {
        return out;
    };
    // The fixed count follows the manager type (and BT's num_layers), so their source is its.
    let fixed_by = ["num_layers", "manager_type"]
        .iter()
        .filter(|_| s.manager_type == crate::settings::ManagerType::Bt)
        .chain(std::iter::once(&"manager_type"))
        .filter_map(|k| sources.get(*k))
        .max_by_key(|src| src.rank())
        .cloned();
    let name = s.manager_type.as_str();
    let why = if name == "BT" {
        format!("which bridges the top num_layers ({n}) uni-modal layers")
    } else {
        "which fuses the last uni-modal layer only".to_string()
    };
    for key in ["managed_layers_text", "managed_layers_image"] {
        let v = if key == "managed_layers_text" {
            &mut s.managed_layers_text
        } else {
            &mut s.managed_layers_image
        };
        if *v != n && matches!(sources.get(key), Some(Source::Cell(_))) {
            out.push(constraints::Problem {
                keys: vec![key],
                message: format!(
                    "{key} = {v} has no effect for {name}, {why}; exclude this combination or use {n}"
                ),
            });
        } else {
            match &fixed_by {
                Some(src) => sources.insert(key.to_string(), src.clone()),
                None => sources.remove(key),
            };
        }
        *v = n;
    }
    out
}

/// VQA's head size: when `vqav2_label_size` is not given, the number of answers in the data's
/// answer vocabulary ([`crate::answers::ANSWERS_FILE`] beside the tables, as `towerlab data synth`
/// writes it); a given size that disagrees with that file is an error, since the head's
/// outputs would not be the data's labels (scores stay at 0, or labels fall outside it).
fn answer_count(
    s: &mut Settings,
    sources: &HashMap<String, Source>,
    cache: &mut HashMap<String, Result<Option<usize>, String>>,
) -> Vec<constraints::Problem> {
    if s.task != Task::Vqa {
        return Vec::new();
    }
    let found = cache
        .entry(s.data_root.clone())
        .or_insert_with(|| vqa_answer_count(Path::new(&s.data_root)).map_err(|e| e.to_string()));
    let problem = |message: String| constraints::Problem {
        keys: vec!["vqav2_label_size"],
        message,
    };
    match (found, sources.contains_key("vqav2_label_size")) {
        (Err(m), _) => vec![problem(format!("cannot read the answer vocabulary: {m}"))],
        (Ok(None), _) => Vec::new(),
        (Ok(Some(n)), false) => {
            s.vqav2_label_size = *n as i64;
            Vec::new()
        }
        (Ok(Some(n)), true) if s.vqav2_label_size == *n as i64 => Vec::new(),
        (Ok(Some(n)), true) => vec![problem(format!(
            "vqav2_label_size = {}, but {} lists {n} answers: the VQA head needs one output \
             per answer of the data; remove the setting to take {n} from the data",
            s.vqav2_label_size,
            Path::new(&s.data_root)
                .join(crate::answers::ANSWERS_FILE)
                .display()
        ))],
    }
}

/// Reports constraint problems at the place the user set the last involved key.
fn report(
    c: &mut Collector<'_>,
    problems: &[constraints::Problem],
    sources: &HashMap<String, Source>,
    key: &CellKey,
    preset: &str,
    what: &str,
) {
    for pr in problems {
        let src = pr
            .keys
            .iter()
            .filter_map(|k| sources.get(*k))
            .max_by_key(|s| s.rank());
        match src {
            Some(Source::Cell(off)) => c.at(*off, format!("{what} {key}: {}", pr.message)),
            Some(Source::Base(off)) if what == "cell" => c.at(*off, pr.message.clone()),
            Some(Source::Base(off) | Source::Pretrain(off)) => {
                c.at(*off, format!("{what} {key}: {}", pr.message))
            }
            Some(Source::Task(recipe)) => c.push(
                Origin::Whole,
                format!("{what} {key}: the `{recipe}` recipe: {}", pr.message),
            ),
            Some(Source::Env(var)) => c.push(Origin::Env(var.clone()), pr.message.clone()),
            Some(Source::Set(n)) => c.push(Origin::Set(*n), pr.message.clone()),
            None => c.push(Origin::Whole, format!("preset `{preset}`: {}", pr.message)),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn resolve_pretrain(
    c: &mut Collector<'_>,
    preset: &Settings,
    data: &DataSpec,
    p: &Parsed,
    entries: &[(String, Json)],
    seed: u64,
    cell: &Settings,
    env_layer: &[(String, Json)],
    set_layer: &[(String, Json)],
    ov: &CheckedOverrides,
    key: &CellKey,
    cell_sources: &HashMap<String, Source>,
) -> Option<(Settings, Sources)> {
    let recipe = recipes::select(
        &p.preset,
        Selector {
            task: Task::Pretrain,
            vlp: false,
            coco: false,
        },
    );
    let recipe_layer: Layer = recipe.as_ref().map(Recipe::layer).unwrap_or_default();
    let data_layer: Layer = vec![("data_root".into(), Json::String(data.root.clone()))];
    let cell_json = serde_json::to_value(cell).unwrap_or(Json::Null);
    let model: Layer = Settings::MODEL_KEYS
        .iter()
        .filter_map(|k| cell_json.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let pre_set: Layer = ov
        .pretrain_set
        .iter()
        .map(|(k, v, _)| (k.clone(), v.clone()))
        .collect();
    let fixed: Layer = vec![
        ("task".into(), Json::from("pretrain")),
        ("vlp".into(), Json::Bool(false)),
        ("load_path".into(), Json::from("")),
        ("seed".into(), Json::from(seed)),
    ];
    let mut settings = match layering::resolve(
        preset,
        &[
            &recipe_layer,
            &data_layer,
            entries,
            &model,
            env_layer,
            set_layer,
            &pre_set,
            &fixed,
        ],
    ) {
        Ok(s) => s,
        Err(m) => {
            c.push(Origin::Whole, format!("pre-training for cell {key}: {m}"));
            return None;
        }
    };
    let mut sources: HashMap<String, Source> = HashMap::new();
    add_recipe_sources(&mut sources, recipe.as_ref());
    if let Some(off) = p.data_root_off {
        sources.insert("data_root".into(), Source::Base(off));
    }
    let section_off = p.pretrain.as_ref().map_or(0, |(_, off)| *off);
    if let Some((set, _)) = &p.pretrain {
        for e in set {
            sources.insert(e.path.clone(), Source::Pretrain(e.val_off));
        }
    }
    for (k, _) in &model {
        if let Some(src) = cell_sources.get(k) {
            sources.insert(k.clone(), src.clone());
        }
    }
    for (k, _, var) in &ov.env {
        sources.insert(k.clone(), Source::Env(var.clone()));
    }
    for (k, _, n) in ov.set.iter().chain(&ov.pretrain_set) {
        sources.insert(k.clone(), Source::Set(*n));
    }
    for (k, _) in &fixed {
        sources.insert(k.clone(), Source::Pretrain(section_off));
    }
    // The model keys were checked with the cell; check the rest.
    let problems: Vec<_> = constraints::check(&settings)
        .into_iter()
        .filter(|pr| !pr.keys.iter().all(|k| Settings::MODEL_KEYS.contains(k)))
        .collect();
    report(
        c,
        &problems,
        &sources,
        key,
        &p.preset,
        "pre-training for cell",
    );
    settings.seed = seed;
    problems
        .is_empty()
        .then(|| (settings, sources_of(&sources)))
}

/// The settings keys that differ between two identity documents, as `key: old → new`
/// (identity inputs other than settings appear as `@data`, `@engine`, `@depends_on`).
///
/// A changed data digest is told file by file (`@data vqav2_train.arrow: 512 B, modified … →
/// missing`) when both documents keep the files' stamps; an empty `*_tables` list is shown with
/// the task's tables it stands for.
pub fn diff_documents(old: &Json, new: &Json) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let flat_old = flatten_doc(old);
    let flat_new = flatten_doc(new);
    let mut keys: Vec<&String> = flat_old.keys().chain(flat_new.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let a = flat_old.get(k);
        let b = flat_new.get(k);
        let same = match (a, b) {
            (Some(x), Some(y)) => values_equal(x, y),
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        if k == "@data" {
            let files = file_changes(old, new);
            if !files.is_empty() {
                out.extend(files);
                continue;
            }
        }
        let show = |v: Option<&Json>, doc: &Json| match v {
            None => "(unset)".to_string(),
            Some(v) => match default_tables(k, v, doc) {
                Some(tables) => format!("[] (the task's tables: {tables})"),
                None => display_value(v),
            },
        };
        out.push((k.clone(), show(a, old), show(b, new)));
    }
    out
}

/// The files whose stamps differ between two identity documents, as `@data <file>` changes.
fn file_changes(old: &Json, new: &Json) -> Vec<(String, String, String)> {
    let (Some(Json::Object(a)), Some(Json::Object(b))) =
        (old.get(DATA_STAMPS_KEY), new.get(DATA_STAMPS_KEY))
    else {
        return Vec::new();
    };
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| {
            (
                format!("@data {n}"),
                describe_stamp(a.get(n)),
                describe_stamp(b.get(n)),
            )
        })
        .collect()
}

/// For an empty `train_tables`/`val_tables`/`test_tables` of a settings document: the tables
/// the run reads instead (the task's reference tables), so a plan shows what runs.
fn default_tables(key: &str, value: &Json, doc: &Json) -> Option<String> {
    let split = match key {
        "train_tables" => Split::Train,
        "val_tables" => Split::Val,
        "test_tables" => Split::Test,
        _ => return None,
    };
    if value.as_array().is_none_or(|a| !a.is_empty()) {
        return None;
    }
    let settings = doc.get("settings").unwrap_or(doc).clone();
    let settings: Settings = serde_json::from_value(settings).ok()?;
    let tables = settings.tables(split);
    Some(if tables.is_empty() {
        "none".into()
    } else {
        tables.join(", ")
    })
}

fn flatten_doc(doc: &Json) -> HashMap<String, Json> {
    let mut out = HashMap::new();
    // A bare settings object (no identity wrapper) is accepted too.
    let (settings, meta) = match doc.get("settings") {
        Some(s) => (s, true),
        None => (doc, false),
    };
    flatten_into(settings, "", &mut out);
    if meta {
        for k in ["data", "engine", "depends_on"] {
            if let Some(v) = doc.get(k) {
                out.insert(format!("@{k}"), v.clone());
            }
        }
        // What the run loads: `@weights.vit.commit: abc → def`.
        if let Some(w) = doc.get("weights") {
            flatten_into(w, "@weights", &mut out);
        }
    }
    out
}

fn flatten_into(v: &Json, prefix: &str, out: &mut HashMap<String, Json>) {
    match v {
        Json::Object(map) => {
            for (k, x) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(x, &path, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The identities in `cells`, for de-duplication checks.
pub fn identities(cells: &[Cell]) -> HashSet<RunId> {
    cells.iter().map(|c| c.identity.clone()).collect()
}
