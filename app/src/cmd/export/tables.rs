//! Metric export in long format, with every column a pandas user groups by: experiment, cell,
//! each grid axis (typed), seed, identity and run id beside key, step, value and time; the
//! manager weights as a second table. CSV, Parquet or Arrow IPC.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::Value as Json;
use store::{RunId, Store};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Arrow,
}

/// One exported run and what it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRun {
    pub run: RunId,
    pub experiment: String,
    pub cell: String,
    pub axes: Vec<(String, Json)>,
    pub seed: Option<u64>,
    pub identity: String,
}

impl ExportRun {
    /// A stored run as its own row describes it.
    pub fn of_row(row: &store::RunRow) -> Self {
        Self {
            run: row.id,
            experiment: row.experiment.clone(),
            cell: row.cell_key.clone(),
            axes: row
                .axes
                .iter()
                .filter(|(k, _)| k.as_str() != "seed")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            seed: crate::runner::plan::run_seed(row),
            identity: row.hash.clone(),
        }
    }
}

/// A column of values that are all of one JSON type (or missing).
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
}

fn typed(values: &[Option<&Json>]) -> Typed {
    let present = || values.iter().flatten();
    if present().all(|v| v.is_i64()) {
        Typed::Int(values.iter().map(|v| v.and_then(Json::as_i64)).collect())
    } else if present().all(|v| v.is_number()) {
        Typed::Float(values.iter().map(|v| v.and_then(Json::as_f64)).collect())
    } else if present().all(|v| v.is_boolean()) {
        Typed::Bool(values.iter().map(|v| v.and_then(Json::as_bool)).collect())
    } else {
        Typed::Text(
            values
                .iter()
                .map(|v| v.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect(),
        )
    }
}

impl Typed {
    fn data_type(&self) -> DataType {
        match self {
            Typed::Int(_) => DataType::Int64,
            Typed::Float(_) => DataType::Float64,
            Typed::Bool(_) => DataType::Boolean,
            Typed::Text(_) => DataType::Utf8,
        }
    }

    fn array(&self) -> ArrayRef {
        match self {
            Typed::Int(v) => Arc::new(Int64Array::from(v.clone())),
            Typed::Float(v) => Arc::new(Float64Array::from(v.clone())),
            Typed::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Typed::Text(v) => Arc::new(StringArray::from(v.clone())),
        }
    }

    fn csv(&self, i: usize) -> String {
        match self {
            Typed::Int(v) => v[i].map(|x| x.to_string()),
            Typed::Float(v) => v[i].map(|x| x.to_string()),
            Typed::Bool(v) => v[i].map(|x| x.to_string()),
            Typed::Text(v) => v[i].as_deref().map(csv_field),
        }
        .unwrap_or_default()
    }
}

/// A table: named typed columns of equal length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    columns: Vec<(String, Typed)>,
    rows: usize,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|(n, c)| {
                    if n == "time" {
                        Field::new(
                            n,
                            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                            false,
                        )
                    } else {
                        Field::new(n, c.data_type(), true)
                    }
                })
                .collect::<Vec<_>>(),
        )
    }

    fn batch(&self) -> anyhow::Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|(n, c)| match (n.as_str(), c) {
                ("time", Typed::Int(v)) => {
                    Arc::new(TimestampMillisecondArray::from(v.clone()).with_timezone("UTC"))
                        as ArrayRef
                }
                _ => c.array(),
            })
            .collect();
        Ok(RecordBatch::try_new(Arc::new(self.schema()), arrays)?)
    }
}

/// The columns that identify a run's rows, then the row's own columns.
struct Builder<'a> {
    runs: &'a [ExportRun],
    axes: Vec<String>,
    /// Index into `runs` of each row.
    of_run: Vec<usize>,
    own: Vec<(String, Vec<Json>)>,
}

/// Identity columns that a grid axis of the same name would collide with.
const FIXED: [&str; 14] = [
    "experiment",
    "cell",
    "seed",
    "identity",
    "run",
    "key",
    "step",
    "value",
    "time",
    "modality",
    "layer",
    "source",
    "expert",
    "weight",
];

impl<'a> Builder<'a> {
    /// Axis columns come in `order` (the grid's), then any other axis in first-seen order.
    fn new(runs: &'a [ExportRun], order: &[String], own: &[&str]) -> Self {
        let mut axes: Vec<String> = Vec::new();
        for r in runs {
            for (k, _) in &r.axes {
                if !axes.contains(k) {
                    axes.push(k.clone());
                }
            }
        }
        axes.sort_by_key(|a| order.iter().position(|o| o == a).unwrap_or(usize::MAX));
        Self {
            runs,
            axes,
            of_run: Vec::new(),
            own: own.iter().map(|n| (n.to_string(), Vec::new())).collect(),
        }
    }

    fn push(&mut self, run: usize, values: Vec<Json>) {
        self.of_run.push(run);
        for ((_, col), v) in self.own.iter_mut().zip(values) {
            col.push(v);
        }
    }

    fn finish(self) -> Table {
        let runs = self.runs;
        let rows = self.of_run.len();
        let per_row = |f: &dyn Fn(&ExportRun) -> Option<Json>| -> Vec<Option<Json>> {
            self.of_run.iter().map(|&i| f(&runs[i])).collect()
        };
        let column = |values: Vec<Option<Json>>| {
            typed(&values.iter().map(Option::as_ref).collect::<Vec<_>>())
        };
        let mut columns: Vec<(String, Typed)> = vec![
            (
                "experiment".into(),
                column(per_row(&|r| Some(Json::from(r.experiment.clone())))),
            ),
            (
                "cell".into(),
                column(per_row(&|r| Some(Json::from(r.cell.clone())))),
            ),
        ];
        for axis in &self.axes {
            let name = if FIXED.contains(&axis.as_str()) {
                format!("axis_{axis}")
            } else {
                axis.clone()
            };
            let values = per_row(&|r| {
                r.axes
                    .iter()
                    .find(|(k, _)| k == axis)
                    .map(|(_, v)| v.clone())
            });
            columns.push((name, column(values)));
        }
        columns.push(("seed".into(), column(per_row(&|r| r.seed.map(Json::from)))));
        columns.push((
            "identity".into(),
            column(per_row(&|r| Some(Json::from(r.identity.clone())))),
        ));
        columns.push((
            "run".into(),
            column(per_row(&|r| Some(Json::from(r.run.0)))),
        ));
        for (name, values) in self.own {
            let values: Vec<Option<Json>> = values
                .into_iter()
                .map(|v| (!v.is_null()).then_some(v))
                .collect();
            columns.push((name, column(values)));
        }
        Table { columns, rows }
    }
}

/// The metric points of `runs`: one row per point, with the run's identity columns.
/// `order`: the grid's axes, in the order their columns come.
pub async fn metrics(store: &Store, runs: &[ExportRun], order: &[String]) -> anyhow::Result<Table> {
    let mut b = Builder::new(runs, order, &["key", "step", "value", "time"]);
    for (i, r) in runs.iter().enumerate() {
        for p in store.metric_points(r.run, None).await? {
            // JSON has no NaN: non-finite values travel as text and are read back below.
            let value = serde_json::Number::from_f64(p.value)
                .map_or_else(|| Json::from(p.value.to_string()), Json::Number);
            b.push(
                i,
                vec![
                    Json::from(p.key),
                    Json::from(p.step),
                    value,
                    Json::from(p.wall_ms),
                ],
            );
        }
    }
    let mut t = b.finish();
    // `value` must stay a float column even with NaN or whole numbers in it.
    if let Some((_, col)) = t.columns.iter_mut().find(|(n, _)| n == "value") {
        *col = float_column(col);
    }
    Ok(t)
}

fn float_column(col: &Typed) -> Typed {
    match col {
        Typed::Int(v) => Typed::Float(v.iter().map(|x| x.map(|x| x as f64)).collect()),
        Typed::Float(v) => Typed::Float(v.clone()),
        Typed::Text(v) => Typed::Float(
            v.iter()
                .map(|x| x.as_deref().and_then(|s| s.parse::<f64>().ok()))
                .collect(),
        ),
        Typed::Bool(v) => Typed::Float(v.iter().map(|x| x.map(f64::from)).collect()),
    }
}

/// The manager weights of `runs` at every step they were recorded, numbered as the paper's
/// Fig. 6: `layer` is the cross-modal layer from 1, `source` is `unimodal` (then `expert` is
/// the encoder layer it aggregates, from 1) or `cross_modal` (then `expert` is k for the k-th
/// previous cross-modal output).
pub async fn manager_weights(
    store: &Store,
    runs: &[ExportRun],
    order: &[String],
) -> anyhow::Result<Table> {
    let mut b = Builder::new(
        runs,
        order,
        &["step", "modality", "layer", "source", "expert", "weight"],
    );
    for (i, r) in runs.iter().enumerate() {
        let steps = store.manager_weight_steps(r.run).await?;
        if steps.is_empty() {
            continue;
        }
        let params: BTreeMap<String, Json> = store
            .params(r.run)
            .await?
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect();
        for step in steps {
            for row in store.manager_weights(r.run, Some(step)).await? {
                let w = row.value;
                let (source, expert) = if w.expert >= 0 {
                    let first = crate::report_input::first_expert_layer(&params, w.modality);
                    ("unimodal", first + w.expert)
                } else {
                    ("cross_modal", -w.expert)
                };
                b.push(
                    i,
                    vec![
                        Json::from(row.step),
                        Json::from(w.modality.as_str()),
                        Json::from(i64::from(w.layer) + 1),
                        Json::from(source),
                        Json::from(expert),
                        serde_json::Number::from_f64(w.weight).map_or(Json::Null, Json::Number),
                    ],
                );
            }
        }
    }
    let mut t = b.finish();
    if let Some((_, col)) = t.columns.iter_mut().find(|(n, _)| n == "weight") {
        *col = float_column(col);
    }
    Ok(t)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where the manager-weight table of an export to `out` goes: `<stem>-manager-weights.<ext>`.
pub fn weights_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "export".into(), |s| s.to_string_lossy().into_owned());
    let name = match out.extension() {
        Some(ext) => format!("{stem}-manager-weights.{}", ext.to_string_lossy()),
        None => format!("{stem}-manager-weights"),
    };
    out.with_file_name(name)
}

/// Writes `t` to `out` in `format`, creating the folder it goes in. CSV's `time` is unix
/// milliseconds; NaN is written as `NaN`.
pub fn write(t: &Table, format: Format, out: &Path) -> anyhow::Result<()> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    match format {
        Format::Csv => {
            let mut w = std::io::BufWriter::new(file);
            writeln!(w, "{}", t.column_names().join(","))?;
            for i in 0..t.rows {
                let fields: Vec<String> = t.columns.iter().map(|(_, c)| c.csv(i)).collect();
                writeln!(w, "{}", fields.join(","))?;
            }
            w.flush()?;
        }
        Format::Arrow => {
            let b = t.batch()?;
            let mut w = arrow_ipc::writer::FileWriter::try_new(file, &b.schema())?;
            w.write(&b)?;
            w.finish()?;
        }
        Format::Parquet => {
            let b = t.batch()?;
            let mut w = parquet::arrow::ArrowWriter::try_new(file, b.schema(), None)?;
            w.write(&b)?;
            w.close()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runs() -> Vec<ExportRun> {
        vec![
            ExportRun {
                run: RunId(1),
                experiment: "study".into(),
                cell: "manager_type=SAUE,managed_layers_text=2".into(),
                axes: vec![
                    ("manager_type".into(), json!("SAUE")),
                    ("managed_layers_text".into(), json!(2)),
                    ("key".into(), json!(true)),
                ],
                seed: Some(0),
                identity: "a".repeat(64),
            },
            ExportRun {
                run: RunId(2),
                experiment: "study".into(),
                cell: "pretrain[manager_type=SAUE]".into(),
                axes: vec![("manager_type".into(), json!("SAUE"))],
                seed: Some(0),
                identity: "b".repeat(64),
            },
        ]
    }

    fn table() -> Table {
        let runs = runs();
        let mut b = Builder::new(&runs, &[], &["key", "step", "value", "time"]);
        b.push(
            0,
            vec![json!("train/loss"), json!(1), json!(0.5), json!(1000)],
        );
        b.push(
            0,
            vec![json!("val,odd\"key"), json!(2), json!("NaN"), json!(2000)],
        );
        b.push(1, vec![json!("train/mlm"), json!(1), json!(3), json!(3000)]);
        let mut t = b.finish();
        if let Some((_, col)) = t.columns.iter_mut().find(|(n, _)| n == "value") {
            *col = float_column(col);
        }
        t
    }

    #[test]
    fn csv_has_identity_and_typed_axis_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join("folder").join("m.csv");
        write(&table(), Format::Csv, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "experiment,cell,manager_type,managed_layers_text,axis_key,seed,identity,run,key,step,value,time"
        );
        assert_eq!(
            lines[1],
            format!(
                "study,\"manager_type=SAUE,managed_layers_text=2\",SAUE,2,true,0,{},1,train/loss,1,0.5,1000",
                "a".repeat(64)
            )
        );
        assert!(
            lines[2].contains(",\"val,odd\"\"key\",2,NaN,2000"),
            "{}",
            lines[2]
        );
        // An axis a run does not have is empty (the pre-training run has model axes only).
        assert!(lines[3].contains(",SAUE,,,0,"), "{}", lines[3]);
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn arrow_and_parquet_keep_the_types() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Arrow, Format::Parquet] {
            let path = dir.path().join(format!("m-{format:?}"));
            write(&table(), format, &path).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            let batches: Vec<RecordBatch> = match format {
                Format::Arrow => arrow_ipc::reader::FileReader::try_new(f, None)
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect(),
                _ => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect(),
            };
            let schema = batches[0].schema();
            let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
            assert_eq!(ty("managed_layers_text"), DataType::Int64);
            assert_eq!(ty("manager_type"), DataType::Utf8);
            assert_eq!(ty("axis_key"), DataType::Boolean);
            assert_eq!(ty("value"), DataType::Float64);
            assert_eq!(ty("seed"), DataType::Int64);
            assert!(matches!(
                ty("time"),
                DataType::Timestamp(TimeUnit::Millisecond, _)
            ));
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 3);
        }
    }

    #[test]
    fn the_weights_table_sits_beside_the_export() {
        assert_eq!(
            weights_path(Path::new("out/study.parquet")),
            Path::new("out/study-manager-weights.parquet")
        );
        assert_eq!(
            weights_path(Path::new("metrics")),
            Path::new("metrics-manager-weights")
        );
    }
}
