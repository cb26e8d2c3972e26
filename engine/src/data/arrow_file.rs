//! A memory-mapped Arrow IPC *file* (the format pyarrow's `RecordBatchFileWriter` writes).
//!
//! The file is mapped, not read: record batches are decoded zero-copy over the map, so only the
//! footer, the batch metadata and the pages actually touched (one image's bytes, one caption's
//! characters) come into memory. A 20 GB pre-training shard costs a few kilobytes of heap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_schema::{DataType, SchemaRef};

use super::error::{DataError, DataResult};
use super::schema::ColType;

const MAGIC: &[u8; 6] = b"ARROW1";

/// What a reader requires of a column: its type (see [`ColType::matches`]) and, for the columns
/// where every row may hold an empty list, also `list<null>` (pyarrow's type for the VQA test
/// answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColKind {
    pub ty: ColType,
    pub or_empty: bool,
}

impl ColKind {
    pub fn describe(self) -> String {
        if self.or_empty {
            format!("{} (or list<null> when all empty)", self.ty.describe())
        } else {
            self.ty.describe().to_string()
        }
    }

    pub fn matches(self, dt: &DataType) -> bool {
        self.ty.matches(dt) || (self.or_empty && is_null_list(dt))
    }
}

pub(super) fn list_item(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) => Some(f.data_type()),
        _ => None,
    }
}

fn is_null_list(dt: &DataType) -> bool {
    matches!(list_item(dt), Some(DataType::Null))
}

/// One mapped IPC file with its decoded (zero-copy) record batches.
#[derive(Debug)]
pub struct ArrowFile {
    path: PathBuf,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    /// `starts[b]` is the first global row of batch `b`; one extra entry holds the row count.
    starts: Vec<usize>,
}

/// The buffers a block's message declares must lie inside its body: arrow's decoder slices
/// them unchecked, so a damaged or crafted file panicked there (found by the fuzz target).
fn check_buffers(meta: &[u8], body_len: usize) -> Result<(), String> {
    // `0xFFFFFFFF`, a little-endian length, then the flatbuffer (files before 0.15 lack the
    // continuation marker).
    let (len_at, fb_at): (usize, usize) = if meta.len() >= 8 && meta[..4] == [0xff; 4] {
        (4, 8)
    } else {
        (0, 4)
    };
    let Some(len_bytes) = meta.get(len_at..len_at + 4) else {
        return Err("its message is cut short".into());
    };
    let len = u32::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
    let fb = meta
        .get(fb_at..fb_at.saturating_add(len))
        .ok_or_else(|| format!("its message of {len} bytes runs past the block"))?;
    let message = arrow_ipc::root_as_message(fb).map_err(|e| format!("unreadable message: {e}"))?;
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
    if let Some(batch) = batch {
        if batch.length() < 0 {
            return Err(format!("a batch of {} rows", batch.length()));
        }
        for n in batch.nodes().iter().flat_map(|v| v.iter()) {
            if n.length() < 0 || n.null_count() < 0 || n.null_count() > n.length() {
                return Err(format!(
                    "a column of {} values with {} nulls",
                    n.length(),
                    n.null_count()
                ));
            }
        }
    }
    let buffers = batch.and_then(|b| b.buffers());
    for b in buffers.iter().flat_map(|v| v.iter()) {
        let end = u64::try_from(b.offset())
            .ok()
            .zip(u64::try_from(b.length()).ok())
            .and_then(|(o, l)| o.checked_add(l));
        if end.is_none_or(|end| end > body_len as u64) {
            return Err(format!(
                "a buffer at {} of {} bytes lies outside the {body_len}-byte body",
                b.offset(),
                b.length()
            ));
        }
    }
    Ok(())
}

impl ArrowFile {
    pub fn open(path: &Path) -> DataResult<Self> {
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let truncated = |detail: String| DataError::Truncated {
            path: path.to_path_buf(),
            detail,
        };
        if len < (MAGIC.len() + 2 + 10) as u64 {
            return Err(truncated(format!(
                "{len} bytes is too short for an Arrow IPC file"
            )));
        }
        let map = map_file(&file).map_err(|e| DataError::io(path, e))?;
        let buffer = Buffer::from(bytes::Bytes::from_owner(map));
        // arrow-ipc panics on some damage (an unknown type id in the schema, ...) that the
        // checks in `from_buffer` cannot see first: that is a damaged file, not a crash.
        crate::panic::catch_panic(|| Self::from_buffer(path, buffer)).unwrap_or_else(|caught| {
            Err(DataError::Arrow {
                path: path.to_path_buf(),
                detail: format!("the decoder failed ({})", caught.1),
            })
        })
    }

    fn from_buffer(path: &Path, buffer: Buffer) -> DataResult<Self> {
        let arrow_err = |detail: String| DataError::Arrow {
            path: path.to_path_buf(),
            detail,
        };
        let truncated = |detail: String| DataError::Truncated {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = buffer.as_slice();
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(arrow_err(
                "it does not start with ARROW1 (an IPC *stream*, or not Arrow at all?)".into(),
            ));
        }
        let trailer_start = bytes.len() - 10;
        let mut trailer = [0u8; 10];
        trailer.copy_from_slice(&bytes[trailer_start..]);
        let footer_len = read_footer_length(trailer).map_err(|_| {
            truncated("the ARROW1 trailer is missing: the file was cut short".into())
        })?;
        if footer_len > trailer_start.saturating_sub(MAGIC.len()) {
            return Err(truncated(format!(
                "footer length {footer_len} exceeds the file size {}",
                bytes.len()
            )));
        }
        let footer = arrow_ipc::root_as_footer(&bytes[trailer_start - footer_len..trailer_start])
            .map_err(|e| truncated(format!("unreadable footer: {e}")))?;
        let fb_schema = footer
            .schema()
            .ok_or_else(|| truncated("the footer has no schema".into()))?;
        let schema: SchemaRef = Arc::new(arrow_ipc::convert::fb_to_schema(fb_schema));
        // Misaligned buffers would be copied silently by arrow; that would pull whole image
        // columns into RAM, so refuse them instead.
        let mut decoder =
            FileDecoder::new(schema.clone(), footer.version()).with_require_alignment(true);
        let body_end = trailer_start - footer_len;
        let block_slice = |offset: i64, meta: i32, body: i64| -> DataResult<Buffer> {
            let (Ok(offset), Ok(meta), Ok(body)) = (
                usize::try_from(offset),
                usize::try_from(meta),
                usize::try_from(body),
            ) else {
                return Err(truncated("negative block offset or length".into()));
            };
            let end = offset
                .checked_add(meta)
                .and_then(|x| x.checked_add(body))
                .filter(|&end| end <= body_end)
                .ok_or_else(|| {
                    truncated(format!(
                        "a block at byte {offset} ({} bytes) runs past the data ({body_end} bytes)",
                        meta + body
                    ))
                })?;
            check_buffers(&buffer.as_slice()[offset..offset + meta], body)
                .map_err(|detail| truncated(format!("a block at byte {offset}: {detail}")))?;
            Ok(buffer.slice_with_length(offset, end - offset))
        };
        for block in footer.dictionaries().iter().flatten() {
            let data = block_slice(block.offset(), block.metaDataLength(), block.bodyLength())?;
            crate::panic::catch_panic(|| decoder.read_dictionary(block, &data))
                .map_err(|c| truncated(format!("dictionary: the decoder failed ({})", c.1)))?
                .map_err(|e| truncated(format!("dictionary: {e}")))?;
        }
        let mut batches = Vec::new();
        let mut starts = vec![0usize];
        for block in footer.recordBatches().iter().flatten() {
            let data = block_slice(block.offset(), block.metaDataLength(), block.bodyLength())?;
            // arrow's decoder asserts on some damage the checks above do not see; a damaged
            // file is an error, not a crash.
            let batch = crate::panic::catch_panic(|| decoder.read_record_batch(block, &data))
                .map_err(|c| {
                    truncated(format!(
                        "record batch {}: the decoder failed ({})",
                        batches.len(),
                        c.1
                    ))
                })?
                .map_err(|e| truncated(format!("record batch {}: {e}", batches.len())))?
                .ok_or_else(|| truncated(format!("record batch {} is empty", batches.len())))?;
            starts.push(starts.last().copied().unwrap_or(0) + batch.num_rows());
            batches.push(batch);
        }
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            batches,
            starts,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn num_rows(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    pub fn num_batches(&self) -> usize {
        self.batches.len()
    }

    /// Checks that `column` exists with the expected kind and returns its index.
    pub fn require(&self, column: &str, kind: ColKind) -> DataResult<usize> {
        let index = self
            .schema
            .index_of(column)
            .map_err(|_| DataError::MissingColumn {
                path: self.path.clone(),
                column: column.to_string(),
                expected: kind.describe().to_string(),
            })?;
        let found = self.schema.field(index).data_type();
        // pandas types every column of a frame with no rows `null` (the reference's trailing
        // empty shard); pyarrow's `concat_tables(promote=True)` reads it as an empty table.
        let empty_table = self.num_rows() == 0 && *found == DataType::Null;
        if !kind.matches(found) && !empty_table {
            return Err(DataError::ColumnType {
                path: self.path.clone(),
                column: column.to_string(),
                expected: kind.describe().to_string(),
                found: found.to_string(),
            });
        }
        Ok(index)
    }

    /// The array holding `row` of column `col`, and the row's index inside it.
    pub fn cell(&self, col: usize, row: usize) -> (&ArrayRef, usize) {
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        (self.batches[b].column(col), row - self.starts[b])
    }
}

/// Maps the file read-only.
#[allow(unsafe_code)]
fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and dataset files are treated as immutable while a run reads
    // them (as pyarrow's `memory_map` does); a file truncated underneath a running process is the
    // one case this cannot defend against.
    unsafe { memmap2::Mmap::map(file) }
}

/// Typed reads of one cell. The schema was checked at open, so a type mismatch here is a bug in
/// the caller's column kind, reported as an error rather than a panic.
pub mod cell {
    use super::*;

    fn wrong(what: &str, dt: &DataType) -> String {
        format!("expected {what}, found {dt}")
    }

    pub fn is_null(arr: &dyn Array, i: usize) -> bool {
        arr.is_null(i)
    }

    pub fn binary(arr: &dyn Array, i: usize) -> Result<&[u8], String> {
        if arr.is_null(i) {
            return Err("null value".into());
        }
        match arr.data_type() {
            DataType::Binary => Ok(arr.as_binary::<i32>().value(i)),
            DataType::LargeBinary => Ok(arr.as_binary::<i64>().value(i)),
            dt => Err(wrong("binary", dt)),
        }
    }

    pub fn string(arr: &dyn Array, i: usize) -> Result<&str, String> {
        if arr.is_null(i) {
            return Err("null value".into());
        }
        match arr.data_type() {
            DataType::Utf8 => Ok(arr.as_string::<i32>().value(i)),
            DataType::LargeUtf8 => Ok(arr.as_string::<i64>().value(i)),
            dt => Err(wrong("string", dt)),
        }
    }

    pub fn int64(arr: &dyn Array, i: usize) -> Result<i64, String> {
        if arr.is_null(i) {
            return Err("null value".into());
        }
        match arr.as_primitive_opt::<arrow_array::types::Int64Type>() {
            Some(a) => Ok(a.value(i)),
            None => Err(wrong("int64", arr.data_type())),
        }
    }

    pub fn float64(arr: &dyn Array, i: usize) -> Result<f64, String> {
        if arr.is_null(i) {
            return Err("null value".into());
        }
        match arr.as_primitive_opt::<arrow_array::types::Float64Type>() {
            Some(a) => Ok(a.value(i)),
            None => Err(wrong("double", arr.data_type())),
        }
    }

    /// The list at row `i` (a null list reads as empty).
    pub fn list(arr: &dyn Array, i: usize) -> Result<ArrayRef, String> {
        let values = match arr.data_type() {
            DataType::List(_) => arr.as_list::<i32>().value(i),
            DataType::LargeList(_) => arr.as_list::<i64>().value(i),
            dt => return Err(wrong("list", dt)),
        };
        Ok(values)
    }

    pub fn list_len(arr: &dyn Array, i: usize) -> Result<usize, String> {
        if arr.is_null(i) {
            return Ok(0);
        }
        match arr.data_type() {
            DataType::List(_) => Ok(arr.as_list::<i32>().value_length(i) as usize),
            DataType::LargeList(_) => Ok(arr.as_list::<i64>().value_length(i) as usize),
            dt => Err(wrong("list", dt)),
        }
    }

    pub fn strings(arr: &dyn Array) -> Result<Vec<String>, String> {
        (0..arr.len())
            .map(|i| string(arr, i).map(str::to_string))
            .collect()
    }

    pub fn int64s(arr: &dyn Array) -> Result<Vec<i64>, String> {
        (0..arr.len()).map(|i| int64(arr, i)).collect()
    }

    pub fn float64s(arr: &dyn Array) -> Result<Vec<f64>, String> {
        (0..arr.len()).map(|i| float64(arr, i)).collect()
    }
}
