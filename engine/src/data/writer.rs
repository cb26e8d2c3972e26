//! Writes Arrow IPC files in the schemas pyarrow produces from the reference's pandas frames
//! (used by the synthetic generator and by tests).

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Float64Builder, Int64Builder, ListBuilder, NullBuilder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{Field, Schema};

use super::error::{DataError, DataResult};

/// One column's values, one entry per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Binary(Vec<Vec<u8>>),
    Str(Vec<String>),
    Int64(Vec<i64>),
    StrList(Vec<Vec<String>>),
    Int64List(Vec<Vec<i64>>),
    StrListList(Vec<Vec<Vec<String>>>),
    Int64ListList(Vec<Vec<Vec<i64>>>),
    F64ListList(Vec<Vec<Vec<f64>>>),
    /// `list<null>` with every list empty: pyarrow's type for a column of empty lists.
    EmptyLists(usize),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Self::Binary(v) => v.len(),
            Self::Str(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::StrList(v) => v.len(),
            Self::Int64List(v) => v.len(),
            Self::StrListList(v) => v.len(),
            Self::Int64ListList(v) => v.len(),
            Self::F64ListList(v) => v.len(),
            Self::EmptyLists(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slice_to_array(&self, start: usize, end: usize) -> ArrayRef {
        match self {
            Self::Binary(v) => {
                let mut b = BinaryBuilder::new();
                v[start..end].iter().for_each(|x| b.append_value(x));
                Arc::new(b.finish())
            }
            Self::Str(v) => {
                let mut b = StringBuilder::new();
                v[start..end].iter().for_each(|x| b.append_value(x));
                Arc::new(b.finish())
            }
            Self::Int64(v) => {
                let mut b = Int64Builder::new();
                v[start..end].iter().for_each(|&x| b.append_value(x));
                Arc::new(b.finish())
            }
            Self::StrList(v) => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for row in &v[start..end] {
                    row.iter().for_each(|x| b.values().append_value(x));
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Self::Int64List(v) => {
                let mut b = ListBuilder::new(Int64Builder::new());
                for row in &v[start..end] {
                    row.iter().for_each(|&x| b.values().append_value(x));
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Self::StrListList(v) => {
                let mut b = ListBuilder::new(ListBuilder::new(StringBuilder::new()));
                for row in &v[start..end] {
                    for inner in row {
                        inner
                            .iter()
                            .for_each(|x| b.values().values().append_value(x));
                        b.values().append(true);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Self::Int64ListList(v) => {
                let mut b = ListBuilder::new(ListBuilder::new(Int64Builder::new()));
                for row in &v[start..end] {
                    for inner in row {
                        inner
                            .iter()
                            .for_each(|&x| b.values().values().append_value(x));
                        b.values().append(true);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Self::F64ListList(v) => {
                let mut b = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
                for row in &v[start..end] {
                    for inner in row {
                        inner
                            .iter()
                            .for_each(|&x| b.values().values().append_value(x));
                        b.values().append(true);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            Self::EmptyLists(_) => {
                let mut b = ListBuilder::new(NullBuilder::new());
                (start..end).for_each(|_| b.append(true));
                Arc::new(b.finish())
            }
        }
    }
}

/// Writes `columns` as an Arrow IPC file, `rows_per_batch` rows per record batch (all in one
/// batch when `None`, as `pa.Table.from_pandas` + `write_table` does for small tables).
pub fn write_arrow(
    path: &Path,
    columns: &[(&str, Column)],
    rows_per_batch: Option<usize>,
) -> DataResult<()> {
    let err = |detail: String| DataError::Arrow {
        path: path.to_path_buf(),
        detail,
    };
    let rows = columns.first().map(|(_, c)| c.len()).unwrap_or(0);
    if let Some((name, c)) = columns.iter().find(|(_, c)| c.len() != rows) {
        return Err(DataError::RaggedColumns {
            path: path.to_path_buf(),
            column: name.to_string(),
            rows: c.len(),
            expected: rows,
        });
    }
    let step = rows_per_batch.unwrap_or(rows).max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    while start < rows || (rows == 0 && batches.is_empty()) {
        let end = (start + step).min(rows);
        let arrays: Vec<(String, ArrayRef)> = columns
            .iter()
            .map(|(n, c)| (n.to_string(), c.slice_to_array(start, end)))
            .collect();
        let schema = Arc::new(Schema::new(
            arrays
                .iter()
                .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(schema, arrays.into_iter().map(|(_, a)| a).collect())
            .map_err(|e| err(e.to_string()))?;
        batches.push(batch);
        start = end;
        if rows == 0 {
            break;
        }
    }
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let schema = batches[0].schema();
    let mut writer = FileWriter::try_new(std::io::BufWriter::new(file), &schema)
        .map_err(|e| err(e.to_string()))?;
    for b in &batches {
        writer.write(b).map_err(|e| err(e.to_string()))?;
    }
    writer.finish().map_err(|e| err(e.to_string()))?;
    Ok(())
}
