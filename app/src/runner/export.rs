//! Metric export in long format — run, key, step, value, time — as CSV, Parquet or Arrow IPC.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use store::{RunId, Store};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    Arrow,
}

/// The metric points of `runs`, as columns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Columns {
    pub run: Vec<i64>,
    pub key: Vec<String>,
    pub step: Vec<i64>,
    pub value: Vec<f64>,
    pub time_ms: Vec<i64>,
}

pub async fn collect(store: &Store, runs: &[RunId]) -> anyhow::Result<Columns> {
    let mut c = Columns::default();
    for &run in runs {
        for p in store.metric_points(run, None).await? {
            c.run.push(run.0);
            c.key.push(p.key);
            c.step.push(p.step);
            c.value.push(p.value);
            c.time_ms.push(p.wall_ms);
        }
    }
    Ok(c)
}

/// The Arrow schema of the export (`time` is UTC milliseconds).
pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("run", DataType::Int64, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("step", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ])
}

fn batch(c: &Columns) -> anyhow::Result<RecordBatch> {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(c.run.clone())),
        Arc::new(StringArray::from(c.key.clone())),
        Arc::new(Int64Array::from(c.step.clone())),
        Arc::new(Float64Array::from(c.value.clone())),
        Arc::new(TimestampMillisecondArray::from(c.time_ms.clone()).with_timezone("UTC")),
    ];
    Ok(RecordBatch::try_new(Arc::new(schema()), cols)?)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `c` to `out` in `format`. CSV's `time` is unix milliseconds; NaN is written as `NaN`.
pub fn write(c: &Columns, format: Format, out: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    match format {
        Format::Csv => {
            let mut w = std::io::BufWriter::new(file);
            writeln!(w, "run,key,step,value,time")?;
            for i in 0..c.run.len() {
                writeln!(
                    w,
                    "{},{},{},{},{}",
                    c.run[i],
                    csv_field(&c.key[i]),
                    c.step[i],
                    c.value[i],
                    c.time_ms[i]
                )?;
            }
            w.flush()?;
        }
        Format::Arrow => {
            let b = batch(c)?;
            let mut w = arrow_ipc::writer::FileWriter::try_new(file, &b.schema())?;
            w.write(&b)?;
            w.finish()?;
        }
        Format::Parquet => {
            let b = batch(c)?;
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

    fn sample() -> Columns {
        Columns {
            run: vec![1, 1, 2],
            key: vec![
                "train/loss".into(),
                "val,odd\"key".into(),
                "train/loss".into(),
            ],
            step: vec![1, 2, 1],
            value: vec![0.5, f64::NAN, 0.25],
            time_ms: vec![1000, 2000, 3000],
        }
    }

    #[test]
    fn csv_is_long_format_and_quotes_odd_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        write(&sample(), Format::Csv, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run,key,step,value,time");
        assert_eq!(lines[1], "1,train/loss,1,0.5,1000");
        assert_eq!(lines[2], "1,\"val,odd\"\"key\",2,NaN,2000");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn arrow_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.arrow");
        write(&sample(), Format::Arrow, &path).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let reader = arrow_ipc::reader::FileReader::try_new(f, None).unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 3);
        assert_eq!(batches[0].schema().as_ref(), &schema());
    }

    #[test]
    fn parquet_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.parquet");
        write(&sample(), Format::Parquet, &path).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 3);
    }
}
