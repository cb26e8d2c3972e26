//! Output tables: planned rows, the Arrow schema pandas → pyarrow gives them, and the writer:
//! images read and checked on all cores, record batches assembled in order and streamed to
//! `NAME.arrow.partial`, renamed to `NAME.arrow` only once complete (so a killed run never leaves
//! a file that looks finished). Memory is bounded by the chunks in flight, whatever the split size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, ListBuilder, NullBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, RecordBatch};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::error::{ConvertError, ConvertResult};
use super::image_check::check_image;
use super::{ConvertEvent, Ctx, OutputReport, OutputStatus, SkipReason, SkippedImage};
use crate::data::schema::{ColType, ColumnDef, TableSchema, EMPTY_INDEX_COLUMN};

/// An image of a chunk, opened, with its size (or why it could not be).
type OpenedImage = std::io::Result<(File, u64)>;

/// Rows per record batch (and per unit of parallel work). Fixed, so the bytes do not depend
/// on `--jobs`.
pub const CHUNK_ROWS: usize = 64;

/// The schema metadata key holding the conversion's settings (the "finished" stamp).
pub const STAMP_KEY: &str = "towerlab.convert";

/// One non-image value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Str(String),
    Int(i64),
    /// `None` is a null item (pandas' NaN in a caption list).
    StrList(Vec<Option<String>>),
    IntList(Vec<i64>),
    StrListList(Vec<Vec<String>>),
    IntListList(Vec<Vec<i64>>),
    F64ListList(Vec<Vec<f64>>),
}

impl Cell {
    pub fn strs<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Self {
        Self::StrList(items.into_iter().map(|s| Some(s.into())).collect())
    }

    fn is_empty_list(&self) -> bool {
        match self {
            Self::Str(_) | Self::Int(_) => false,
            Self::StrList(v) => v.is_empty(),
            Self::IntList(v) => v.is_empty(),
            Self::StrListList(v) => v.is_empty(),
            Self::IntListList(v) => v.is_empty(),
            Self::F64ListList(v) => v.is_empty(),
        }
    }
}

/// One planned row: its image files (in the schema's image-column order) and the other values
/// (in schema order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub images: Vec<PathBuf>,
    pub cells: Vec<Cell>,
}

/// Builds row `i` of an output on demand (from the planner's shared, compact data), so a
/// split's rows never all exist at once.
pub(crate) type RowFn = Arc<dyn Fn(usize) -> Row + Send + Sync>;

/// One output file.
pub(crate) struct Output {
    /// File stem: `{name}.arrow`.
    pub name: String,
    pub schema: &'static TableSchema,
    pub len: usize,
    pub row: RowFn,
    /// The output this one is byte-identical to (the VQAv2 test files of both variants):
    /// copied once that one is written, instead of reading its images again.
    pub copy_of: Option<String>,
}

impl Output {
    /// An output over rows built by `row(0..len)`.
    pub fn lazy(name: String, schema: &'static TableSchema, len: usize, row: RowFn) -> Self {
        Self {
            name,
            schema,
            len,
            row,
            copy_of: None,
        }
    }

    /// A copy of `source` under another name.
    pub fn copy(name: String, source: &Output) -> Self {
        Self {
            name,
            schema: source.schema,
            len: source.len,
            row: source.row.clone(),
            copy_of: Some(source.name.clone()),
        }
    }

    /// An output over rows planned up front (the small annotation sets).
    pub fn eager(name: String, schema: &'static TableSchema, rows: Vec<Row>) -> Self {
        let len = rows.len();
        let rows = Arc::new(rows);
        Self::lazy(name, schema, len, Arc::new(move |i| rows[i].clone()))
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.name)
            .field("len", &self.len)
            .finish()
    }
}

fn null_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Null, true)))
}

fn with_stamp(fields: Vec<Field>, stamp: &str) -> SchemaRef {
    let meta = [(STAMP_KEY.to_string(), stamp.to_string())].into();
    Arc::new(Schema::new_with_metadata(fields, meta))
}

impl Output {
    /// pyarrow's inference: a list column empty in every row is `list<null>` (decided over the
    /// planned rows; the scan stops once every list column has shown a value).
    fn arrow_schema(&self, stamp: &str) -> SchemaRef {
        let cells: Vec<&ColumnDef> = self
            .schema
            .columns
            .iter()
            .filter(|c| c.ty != ColType::Binary)
            .collect();
        let mut empty: Vec<bool> = cells.iter().map(|c| c.ty.is_list()).collect();
        for i in 0..self.len {
            if !empty.contains(&true) {
                break;
            }
            let row = (self.row)(i);
            for (e, cell) in empty.iter_mut().zip(&row.cells) {
                *e = *e && cell.is_empty_list();
            }
        }
        let mut cell = 0;
        let fields = self
            .schema
            .columns
            .iter()
            .map(|c| {
                let dt = if c.ty == ColType::Binary {
                    DataType::Binary
                } else {
                    cell += 1;
                    if empty[cell - 1] {
                        null_list()
                    } else {
                        c.ty.data_type()
                    }
                };
                Field::new(c.name, dt, true)
            })
            .collect();
        with_stamp(fields, stamp)
    }
}

/// What pandas makes of a frame built from no rows: every column `null`, plus the object index
/// as a `__index_level_0__` column.
fn empty_schema(table: &TableSchema, stamp: &str) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| Field::new(c.name, DataType::Null, true))
        .collect();
    fields.push(Field::new(EMPTY_INDEX_COLUMN, DataType::Null, true));
    with_stamp(fields, stamp)
}

/// What `pa.Table.from_pandas(df[:0])` gives for an empty slice of a typed table (the
/// reference's `vqav2_trainable_val` when val has at most 1000 rows): object columns become
/// `null`, numpy `int64` columns stay `int64`, the RangeIndex leaves no column.
fn empty_slice_schema(typed: &Schema, stamp: &str) -> SchemaRef {
    let fields = typed
        .fields()
        .iter()
        .map(|f| {
            let dt = if *f.data_type() == DataType::Int64 {
                DataType::Int64
            } else {
                DataType::Null
            };
            Field::new(f.name(), dt, true)
        })
        .collect();
    with_stamp(fields, stamp)
}

/// Column builders for one chunk.
enum ColBuilder {
    Binary { values: Vec<u8>, offsets: Vec<i32> },
    Str(StringBuilder),
    Int(Int64Builder),
    StrList(ListBuilder<StringBuilder>),
    IntList(ListBuilder<Int64Builder>),
    StrListList(ListBuilder<ListBuilder<StringBuilder>>),
    IntListList(ListBuilder<ListBuilder<Int64Builder>>),
    F64ListList(ListBuilder<ListBuilder<Float64Builder>>),
    NullList(ListBuilder<NullBuilder>),
}

impl ColBuilder {
    fn new(dt: &DataType, ty: ColType) -> Self {
        if *dt == null_list() {
            return Self::NullList(ListBuilder::new(NullBuilder::new()));
        }
        match ty {
            ColType::Binary => Self::Binary {
                values: Vec::new(),
                offsets: vec![0],
            },
            ColType::Str => Self::Str(StringBuilder::new()),
            ColType::Int64 => Self::Int(Int64Builder::new()),
            ColType::StrList => Self::StrList(ListBuilder::new(StringBuilder::new())),
            ColType::Int64List => Self::IntList(ListBuilder::new(Int64Builder::new())),
            ColType::StrListList => {
                Self::StrListList(ListBuilder::new(ListBuilder::new(StringBuilder::new())))
            }
            ColType::Int64ListList => {
                Self::IntListList(ListBuilder::new(ListBuilder::new(Int64Builder::new())))
            }
            ColType::F64ListList => {
                Self::F64ListList(ListBuilder::new(ListBuilder::new(Float64Builder::new())))
            }
        }
    }

    /// Appends a planned value. The planners build cells from the schema, so a mismatch is a
    /// bug; it is reported, not a panic.
    fn push(&mut self, cell: &Cell) -> Result<(), String> {
        match (self, cell) {
            (Self::Str(b), Cell::Str(s)) => b.append_value(s),
            (Self::Int(b), Cell::Int(v)) => b.append_value(*v),
            (Self::StrList(b), Cell::StrList(v)) => {
                v.iter()
                    .for_each(|s| b.values().append_option(s.as_deref()));
                b.append(true);
            }
            (Self::IntList(b), Cell::IntList(v)) => {
                b.values().append_slice(v);
                b.append(true);
            }
            (Self::StrListList(b), Cell::StrListList(v)) => {
                for inner in v {
                    inner
                        .iter()
                        .for_each(|s| b.values().values().append_value(s));
                    b.values().append(true);
                }
                b.append(true);
            }
            (Self::IntListList(b), Cell::IntListList(v)) => {
                for inner in v {
                    b.values().values().append_slice(inner);
                    b.values().append(true);
                }
                b.append(true);
            }
            (Self::F64ListList(b), Cell::F64ListList(v)) => {
                for inner in v {
                    b.values().values().append_slice(inner);
                    b.values().append(true);
                }
                b.append(true);
            }
            (Self::NullList(b), c) if c.is_empty_list() => b.append(true),
            (_, c) => return Err(format!("a planned value does not fit its column: {c:?}")),
        }
        Ok(())
    }

    fn finish(self) -> Result<ArrayRef, String> {
        Ok(match self {
            Self::Binary { values, offsets } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(
                    BinaryArray::try_new(offsets, Buffer::from_vec(values), None)
                        .map_err(|e| e.to_string())?,
                )
            }
            Self::Str(mut b) => Arc::new(b.finish()),
            Self::Int(mut b) => Arc::new(b.finish()),
            Self::StrList(mut b) => Arc::new(b.finish()),
            Self::IntList(mut b) => Arc::new(b.finish()),
            Self::StrListList(mut b) => Arc::new(b.finish()),
            Self::IntListList(mut b) => Arc::new(b.finish()),
            Self::F64ListList(mut b) => Arc::new(b.finish()),
            Self::NullList(mut b) => Arc::new(b.finish()),
        })
    }
}

struct Work {
    output: usize,
    chunk: usize,
    start: usize,
    end: usize,
}

struct ChunkDone {
    output: usize,
    chunk: usize,
    batch: Option<RecordBatch>,
    skipped: Vec<SkippedImage>,
    planned: usize,
}

/// Reads, checks and assembles one chunk of rows into a record batch.
fn build_chunk(ctx: &Ctx, out: &Output, schema: &SchemaRef, w: &Work) -> ConvertResult<ChunkDone> {
    let mut builders: Vec<ColBuilder> = schema
        .fields()
        .iter()
        .zip(out.schema.columns)
        .map(|(f, c)| ColBuilder::new(f.data_type(), c.ty))
        .collect();
    let image_cols: Vec<usize> = out
        .schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ty == ColType::Binary)
        .map(|(i, _)| i)
        .collect();
    let mut skipped = Vec::new();
    let mut rows = 0;
    let bug = |detail: String| ConvertError::BadInput {
        path: ctx.out.join(format!("{}.arrow", out.name)),
        detail,
    };
    // Open every image of the chunk first: their sizes size each image column's buffer once
    // (growing it image by image would copy the bytes again at every doubling).
    let planned: Vec<(Row, Vec<OpenedImage>)> = (w.start..w.end)
        .map(|i| {
            let row = (out.row)(i);
            let files = row
                .images
                .iter()
                .map(|p| {
                    let f = File::open(p)?;
                    let len = f.metadata()?.len();
                    Ok((f, len))
                })
                .collect();
            (row, files)
        })
        .collect();
    for (k, &c) in image_cols.iter().enumerate() {
        let total: u64 = planned
            .iter()
            .filter_map(|(_, files)| files.get(k)?.as_ref().ok().map(|(_, len)| *len))
            .sum();
        if let ColBuilder::Binary { values, .. } = &mut builders[c] {
            values.reserve(usize::try_from(total).unwrap_or(0));
        }
    }
    for (row, files) in planned {
        // Read every image of the row; keep the row only if all are readable.
        let mut ok = true;
        for (k, (path, file)) in row.images.iter().zip(files).enumerate() {
            let ColBuilder::Binary { values, .. } = &mut builders[image_cols[k]] else {
                return Err(bug("image column without a binary builder".into()));
            };
            let start = values.len();
            let read = file.and_then(|(mut f, _)| f.read_to_end(values));
            let reason = match read {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(SkipReason::Missing),
                Err(e) => Some(SkipReason::Unreadable(e.to_string())),
                Ok(_) => check_image(&values[start..], ctx.opts.check)
                    .err()
                    .map(SkipReason::Corrupt),
            };
            if let Some(reason) = reason {
                values.truncate(start);
                skipped.push(SkippedImage {
                    path: path.clone(),
                    output: out.name.clone(),
                    reason,
                });
                ok = false;
            }
        }
        if !ok {
            // Undo the images of this row already appended.
            for &c in &image_cols {
                if let ColBuilder::Binary { values, offsets } = &mut builders[c] {
                    values.truncate(offsets.last().copied().unwrap_or(0) as usize);
                }
            }
            continue;
        }
        let mut cell = 0;
        for b in builders.iter_mut() {
            match b {
                ColBuilder::Binary { values, offsets } => {
                    let end = i32::try_from(values.len()).map_err(|_| {
                        bug(format!(
                            "a record batch of {CHUNK_ROWS} rows holds over 2 GiB of images"
                        ))
                    })?;
                    offsets.push(end);
                }
                other => {
                    other.push(&row.cells[cell]).map_err(bug)?;
                    cell += 1;
                }
            }
        }
        rows += 1;
    }
    let batch = if rows == 0 {
        None
    } else {
        let arrays = builders
            .into_iter()
            .map(ColBuilder::finish)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bug)?;
        Some(
            RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| ConvertError::arrow(ctx.out.join(&out.name), e))?,
        )
    };
    Ok(ChunkDone {
        output: w.output,
        chunk: w.chunk,
        batch,
        skipped,
        planned: w.end - w.start,
    })
}

/// An output being written.
struct Open {
    writer: FileWriter<BufWriter<File>>,
    partial: PathBuf,
    rows: usize,
    next: usize,
    pending: BTreeMap<usize, ChunkDone>,
}

pub(crate) fn final_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.arrow"))
}

fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.arrow.partial"))
}

fn create_writer(
    ctx: &Ctx,
    name: &str,
    schema: &Schema,
) -> ConvertResult<(FileWriter<BufWriter<File>>, PathBuf)> {
    let partial = partial_path(ctx.out, name);
    let file = File::create(&partial).map_err(|e| ConvertError::io(&partial, e))?;
    let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema)
        .map_err(|e| ConvertError::arrow(&partial, e))?;
    Ok((writer, partial))
}

/// Finishes the IPC file, syncs it when asked (`--sync`) and renames it into place: the name
/// appears only once the file is complete.
fn commit(
    ctx: &Ctx,
    name: &str,
    writer: FileWriter<BufWriter<File>>,
    partial: &Path,
) -> ConvertResult<PathBuf> {
    let buf = writer
        .into_inner()
        .map_err(|e| ConvertError::arrow(partial, e))?;
    let file = buf
        .into_inner()
        .map_err(|e| ConvertError::io(partial, e.into_error()))?;
    if ctx.opts.sync {
        file.sync_all().map_err(|e| ConvertError::io(partial, e))?;
    }
    drop(file);
    let path = final_path(ctx.out, name);
    std::fs::rename(partial, &path).map_err(|e| ConvertError::io(&path, e))?;
    Ok(path)
}

/// Writes a table with no record batches.
fn write_empty(ctx: &Ctx, name: &str, schema: &Schema) -> ConvertResult<PathBuf> {
    let (writer, partial) = create_writer(ctx, name, schema)?;
    commit(ctx, name, writer, &partial)
}

/// Whether `name` is already converted with these settings.
pub(crate) fn is_up_to_date(ctx: &Ctx, name: &str) -> ConvertResult<bool> {
    let path = final_path(ctx.out, name);
    if !path.exists() {
        return Ok(false);
    }
    if ctx.opts.force {
        return Ok(false);
    }
    let found = File::open(&path)
        .ok()
        .and_then(|f| FileReader::try_new(f, None).ok())
        .map(|r| r.schema().metadata().get(STAMP_KEY).cloned());
    match found {
        Some(Some(stamp)) if stamp == ctx.stamp => Ok(true),
        Some(Some(stamp)) => Err(ConvertError::OutputExists {
            path,
            detail: format!(
                "was converted with other settings ({stamp}; this run: {})",
                ctx.stamp
            ),
        }),
        Some(None) => Err(ConvertError::OutputExists {
            path,
            detail: "was not written by `towerlab data convert` (no conversion stamp)".into(),
        }),
        None => Err(ConvertError::OutputExists {
            path,
            detail: "is not a readable Arrow IPC file".into(),
        }),
    }
}

fn report(
    ctx: &Ctx,
    name: &str,
    rows: usize,
    skipped: usize,
    status: OutputStatus,
) -> OutputReport {
    let r = OutputReport {
        name: name.to_string(),
        path: final_path(ctx.out, name),
        rows,
        skipped_images: skipped,
        status,
    };
    (ctx.progress)(&ConvertEvent::OutputDone(&r));
    r
}

/// Rows of an existing output (for the report of an up-to-date file).
fn existing_rows(path: &Path) -> usize {
    crate::data::ArrowFile::open(path)
        .map(|f| f.num_rows())
        .unwrap_or(0)
}

/// The writer side of [`write_outputs`]: puts chunks back in order, writes and commits files.
struct Collector<'a> {
    ctx: &'a Ctx<'a>,
    outputs: &'a [Output],
    schemas: &'a [Option<SchemaRef>],
    open: BTreeMap<usize, Open>,
    reports: Vec<Option<OutputReport>>,
    skipped_per: BTreeMap<usize, usize>,
    skipped: &'a mut Vec<SkippedImage>,
}

impl Collector<'_> {
    /// Takes one finished chunk; returns how many chunks were written (each frees a token).
    fn take(&mut self, done: ChunkDone) -> ConvertResult<usize> {
        let (ctx, o) = (self.ctx, done.output);
        let out = &self.outputs[o];
        let state = match self.open.entry(o) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let schema = self.schemas[o].as_ref().ok_or_else(|| {
                    ConvertError::Worker(format!(
                        "{}: a chunk for an output that is not being written",
                        out.name
                    ))
                })?;
                let (writer, partial) = create_writer(ctx, &out.name, schema)?;
                e.insert(Open {
                    writer,
                    partial,
                    rows: 0,
                    next: 0,
                    pending: BTreeMap::new(),
                })
            }
        };
        state.pending.insert(done.chunk, done);
        let mut written = 0;
        while let Some(ready) = state.pending.remove(&state.next) {
            if let Some(batch) = &ready.batch {
                state
                    .writer
                    .write(batch)
                    .map_err(|e| ConvertError::arrow(&state.partial, e))?;
                state.rows += batch.num_rows();
            }
            *self.skipped_per.entry(o).or_default() += ready.skipped.len();
            self.skipped.extend(ready.skipped);
            (ctx.progress)(&ConvertEvent::Progress {
                rows: ready.planned as u64,
            });
            state.next += 1;
            written += 1;
        }
        if state.next == out.len.div_ceil(CHUNK_ROWS) {
            let state = self.open.remove(&o).expect("the output is open");
            let skipped_here = self.skipped_per.get(&o).copied().unwrap_or(0);
            if state.rows == 0 {
                // Every image failed: what pandas writes for a frame with no rows.
                drop(state.writer);
                let _ = std::fs::remove_file(&state.partial);
                write_empty(ctx, &out.name, &empty_schema(out.schema, &ctx.stamp))?;
            } else {
                commit(ctx, &out.name, state.writer, &state.partial)?;
            }
            self.reports[o] = Some(report(
                ctx,
                &out.name,
                state.rows,
                skipped_here,
                OutputStatus::Written,
            ));
        }
        Ok(written)
    }

    /// Removes the half-written files of a failed run (finished ones are complete and stay).
    fn abandon(&mut self) {
        for (_, state) in std::mem::take(&mut self.open) {
            drop(state.writer);
            let _ = std::fs::remove_file(&state.partial);
        }
    }
}

/// Writes `outputs` (skipping those up to date), in parallel over rows and files: `jobs`
/// workers read, check and assemble chunks of [`CHUNK_ROWS`] rows in order; this thread writes
/// them. At most `2 * jobs + 2` chunks exist at once (a token is taken per chunk and given back
/// once it is written), so memory does not grow with the number of rows.
pub(crate) fn write_outputs(
    ctx: &Ctx,
    outputs: &[Output],
    skipped: &mut Vec<SkippedImage>,
) -> ConvertResult<Vec<OutputReport>> {
    let mut reports: Vec<Option<OutputReport>> = (0..outputs.len()).map(|_| None).collect();
    let mut todo = Vec::new();
    let mut copies = Vec::new();
    for (i, out) in outputs.iter().enumerate() {
        if is_up_to_date(ctx, &out.name)? {
            let path = final_path(ctx.out, &out.name);
            reports[i] = Some(report(
                ctx,
                &out.name,
                existing_rows(&path),
                0,
                OutputStatus::UpToDate,
            ));
            (ctx.progress)(&ConvertEvent::Progress {
                rows: out.len as u64,
            });
        } else if out.copy_of.is_some() {
            copies.push(i);
        } else if out.len == 0 {
            write_empty(ctx, &out.name, &empty_schema(out.schema, &ctx.stamp))?;
            reports[i] = Some(report(ctx, &out.name, 0, 0, OutputStatus::Written));
        } else {
            todo.push(i);
        }
    }
    let schemas: Vec<Option<SchemaRef>> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| todo.contains(&i).then(|| o.arrow_schema(&ctx.stamp)))
        .collect();
    let mut work = Vec::new();
    for &o in &todo {
        let n = outputs[o].len;
        for (chunk, start) in (0..n).step_by(CHUNK_ROWS).enumerate() {
            work.push(Work {
                output: o,
                chunk,
                start,
                end: (start + CHUNK_ROWS).min(n),
            });
        }
    }
    let jobs = ctx.opts.jobs.max(1);
    let in_flight = 2 * jobs + 2;
    let next = AtomicUsize::new(0);
    let abort = AtomicBool::new(false);
    let (token_tx, token_rx) = crossbeam_channel::bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.send(());
    }
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<ConvertResult<ChunkDone>>();
    let mut collector = Collector {
        ctx,
        outputs,
        schemas: &schemas,
        open: BTreeMap::new(),
        reports,
        skipped_per: BTreeMap::new(),
        skipped,
    };
    let mut first_error: Option<ConvertError> = None;
    let mut received = 0usize;

    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for _ in 0..jobs {
            let (token_rx, done_tx) = (token_rx.clone(), done_tx.clone());
            let (work, next, abort, schemas) = (&work, &next, &abort, &schemas);
            handles.push(scope.spawn(move || {
                while token_rx.recv().is_ok() {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(w) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let Some(schema) = schemas[w.output].as_ref() else {
                        break;
                    };
                    if done_tx
                        .send(build_chunk(ctx, &outputs[w.output], schema, w))
                        .is_err()
                    {
                        break;
                    }
                }
            }));
        }
        drop(done_tx);
        drop(token_rx);
        let mut token_tx = Some(token_tx);
        for result in done_rx.iter() {
            received += 1;
            if first_error.is_some() {
                // Failing: chunks still coming back are dropped, not written.
                continue;
            }
            match result.and_then(|done| collector.take(done)) {
                Ok(freed) => {
                    if let Some(tx) = &token_tx {
                        for _ in 0..freed {
                            let _ = tx.send(());
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    abort.store(true, Ordering::Relaxed);
                    // Wake the workers waiting for a token: they see the abort and stop.
                    token_tx = None;
                }
            }
        }
        drop(token_tx);
        for h in handles {
            if let Err(panic) = h.join() {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                first_error.get_or_insert(ConvertError::Worker(msg));
            }
        }
    });
    collector.abandon();
    if let Some(e) = first_error {
        return Err(e);
    }
    if received != work.len() {
        return Err(ConvertError::Worker(format!(
            "{received} of {} chunks came back",
            work.len()
        )));
    }
    let mut reports = collector.reports;
    for i in copies {
        let out = &outputs[i];
        let source = out.copy_of.as_deref().unwrap_or_default();
        let from = final_path(ctx.out, source);
        let partial = partial_path(ctx.out, &out.name);
        std::fs::copy(&from, &partial).map_err(|e| ConvertError::io(&from, e))?;
        let to = final_path(ctx.out, &out.name);
        std::fs::rename(&partial, &to).map_err(|e| ConvertError::io(&to, e))?;
        (ctx.progress)(&ConvertEvent::Progress {
            rows: out.len as u64,
        });
        let skipped = outputs
            .iter()
            .position(|o| o.name == source)
            .and_then(|j| reports[j].as_ref())
            .map_or(0, |r| r.skipped_images);
        reports[i] = Some(report(
            ctx,
            &out.name,
            existing_rows(&to),
            skipped,
            OutputStatus::Written,
        ));
    }
    Ok(reports.into_iter().flatten().collect())
}

/// Splits an already written table into its first rows and its last `tail_rows` rows, as the
/// reference's `pdtable[:-1000]` / `pdtable[-1000:]` (`vqav2_trainable_val`, `vqav2_rest_val`).
/// Reads the source batch by batch (bounded memory).
pub(crate) fn split_tail(
    ctx: &Ctx,
    source: &str,
    head: &str,
    tail: &str,
    tail_rows: usize,
) -> ConvertResult<Vec<OutputReport>> {
    let head_done = is_up_to_date(ctx, head)?;
    let tail_done = is_up_to_date(ctx, tail)?;
    let mut reports = Vec::new();
    if head_done && tail_done {
        for name in [head, tail] {
            let rows = existing_rows(&final_path(ctx.out, name));
            reports.push(report(ctx, name, rows, 0, OutputStatus::UpToDate));
        }
        return Ok(reports);
    }
    let src = final_path(ctx.out, source);
    let read_err = |detail: String| ConvertError::ReadBack {
        path: src.clone(),
        detail,
    };
    let open = || -> ConvertResult<FileReader<File>> {
        let f = File::open(&src).map_err(|e| ConvertError::io(&src, e))?;
        FileReader::try_new(f, None).map_err(|e| read_err(e.to_string()))
    };
    let reader = open()?;
    let typed = reader.schema();
    // The row count from the batch headers alone (the map's data pages are not touched).
    let total = crate::data::ArrowFile::open(&src)
        .map_err(|e| read_err(e.to_string()))?
        .num_rows();
    let cut = total.saturating_sub(tail_rows);
    // An empty source (all columns null) splits into two copies of itself.
    let empty_source = total == 0;
    let restamp = |s: &Schema| {
        with_stamp(
            s.fields().iter().map(|f| f.as_ref().clone()).collect(),
            &ctx.stamp,
        )
    };
    let part_schema = |rows: usize| {
        if empty_source {
            restamp(&typed)
        } else if rows == 0 {
            empty_slice_schema(&typed, &ctx.stamp)
        } else {
            restamp(&typed)
        }
    };
    let mut parts = Vec::new();
    for (name, rows, done) in [(head, cut, head_done), (tail, total - cut, tail_done)] {
        if done {
            parts.push(None);
        } else {
            let schema = part_schema(rows);
            let (writer, partial) = create_writer(ctx, name, &schema)?;
            parts.push(Some((writer, partial, schema, rows)));
        }
    }
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| read_err(e.to_string()))?;
        let n = batch.num_rows();
        // This batch holds rows [row, row + n): its part before `cut` goes to the head.
        let mid = cut.clamp(row, row + n);
        let pieces = [(0, row, mid), (1, mid, row + n)];
        for (k, from, to) in pieces {
            if to <= from {
                continue;
            }
            if let Some((writer, partial, schema, _)) = parts[k].as_mut() {
                let piece = batch.slice(from - row, to - from);
                let piece = RecordBatch::try_new(schema.clone(), piece.columns().to_vec())
                    .map_err(|e| ConvertError::arrow(&*partial, e))?;
                writer
                    .write(&piece)
                    .map_err(|e| ConvertError::arrow(&*partial, e))?;
            }
        }
        row += n;
    }
    for (k, name) in [head, tail].into_iter().enumerate() {
        match parts[k].take() {
            Some((writer, partial, _, rows)) => {
                commit(ctx, name, writer, &partial)?;
                reports.push(report(ctx, name, rows, 0, OutputStatus::Written));
            }
            None => {
                let rows = existing_rows(&final_path(ctx.out, name));
                reports.push(report(ctx, name, rows, 0, OutputStatus::UpToDate));
            }
        }
    }
    Ok(reports)
}
