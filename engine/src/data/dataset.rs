//! ViLT/ManagerTower datasets over one or more Arrow files: one sample per caption or question.

use std::path::{Path, PathBuf};

use super::arrow_file::{cell, ArrowFile, ColKind};
use super::error::{DataError, DataResult};
use super::schema::{self, TableSchema};

/// SNLI-VE's classes: contradiction, neutral, entailment.
pub const SNLI_CLASSES: i64 = 3;

/// The four schemas of the reference writers (`src/utils/write_*.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    /// `image`, `caption: list<string>`: COCO/F30K Karpathy, VG, SBU, GCC.
    Captions,
    /// `image`, `questions`, `answers`, `answer_labels`, `answer_scores`, `question_id`: VQAv2, VG-QA.
    Vqa,
    /// `image_0`, `image_1`, `questions`, `answers: list<string>` ("True"/"False").
    Nlvr2,
    /// `image`, `sentences: list<list<string>>` ([premise, hypothesis]), `labels: list<int64>`.
    Snli,
}

impl DatasetKind {
    pub fn text_column(self) -> &'static str {
        match self {
            Self::Captions => "caption",
            Self::Vqa | Self::Nlvr2 => "questions",
            Self::Snli => "sentences",
        }
    }

    pub fn image_columns(self) -> &'static [&'static str] {
        match self {
            Self::Nlvr2 => &["image_0", "image_1"],
            _ => &["image"],
        }
    }

    /// The reference table this kind reads (VG's `vg.arrow` has the same required columns as
    /// [`schema::CAPTION`]).
    pub fn schema(self) -> &'static TableSchema {
        match self {
            Self::Captions => &schema::CAPTION,
            Self::Vqa => &schema::VQA,
            Self::Nlvr2 => &schema::NLVR2,
            Self::Snli => &schema::SNLI,
        }
    }

    /// The columns a file of this kind must have, with their kinds.
    pub fn required_columns(self) -> Vec<(&'static str, ColKind)> {
        self.schema().required()
    }

    /// The reference deduplicates captions (`list(set(...))`); QA-style datasets keep every text.
    fn remove_duplicates(self) -> bool {
        self == Self::Captions
    }

    /// Guesses the kind of a file from its columns (used by `data inspect`).
    pub fn detect(file: &ArrowFile) -> Option<Self> {
        let has = |c: &str| file.schema().index_of(c).is_ok();
        if has("image_0") && has("image_1") {
            Some(Self::Nlvr2)
        } else if has("answer_labels") {
            Some(Self::Vqa)
        } else if has("sentences") {
            Some(Self::Snli)
        } else if has("caption") {
            Some(Self::Captions)
        } else {
            None
        }
    }
}

/// Which image of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSlot {
    Image,
    Image0,
    Image1,
}

impl ImageSlot {
    fn column(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Image0 => "image_0",
            Self::Image1 => "image_1",
        }
    }
}

/// The supervision of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Captions: no label beyond the image/text pairing.
    None,
    Vqa {
        answers: Vec<String>,
        labels: Vec<i64>,
        scores: Vec<f64>,
        question_id: i64,
    },
    /// `answers == "True"`.
    Nlvr2 { label: bool },
    /// contradiction 0, neutral 1, entailment 2.
    Snli { label: i64 },
}

#[derive(Debug)]
struct FileCols {
    text: usize,
    images: Vec<usize>,
    extra: Vec<usize>,
}

/// One or more Arrow files of the same kind, concatenated in order, indexed per text.
#[derive(Debug)]
pub struct ViltDataset {
    kind: DatasetKind,
    names: Vec<String>,
    files: Vec<ArrowFile>,
    cols: Vec<FileCols>,
    /// First global row of each file, plus the total.
    file_starts: Vec<usize>,
    /// Sample -> (global row, index into the row's text list). `u32` keeps 10M captions at 80 MB.
    index: Vec<(u32, u32)>,
    image_only: bool,
}

impl ViltDataset {
    /// Opens `{dir}/{name}.arrow` for each name. A missing file is an error (the reference skips
    /// it silently, which hides typos in data roots).
    pub fn open(dir: &Path, names: &[String], kind: DatasetKind) -> DataResult<Self> {
        Self::open_with(dir, names, kind, false)
    }

    /// `image_only`: one sample per row (the retrieval image side), texts unused.
    pub fn open_with(
        dir: &Path,
        names: &[String],
        kind: DatasetKind,
        image_only: bool,
    ) -> DataResult<Self> {
        let paths: Vec<PathBuf> = names
            .iter()
            .map(|n| dir.join(format!("{n}.arrow")))
            .collect();
        Self::open_paths(&paths, kind, image_only)
    }

    pub fn open_paths(paths: &[PathBuf], kind: DatasetKind, image_only: bool) -> DataResult<Self> {
        if paths.is_empty() {
            return Err(DataError::NoFiles);
        }
        let mut files = Vec::with_capacity(paths.len());
        let mut cols = Vec::with_capacity(paths.len());
        let mut names = Vec::with_capacity(paths.len());
        let mut file_starts = vec![0usize];
        for path in paths {
            let file = ArrowFile::open(path)?;
            let mut resolved = Vec::new();
            for (name, kind) in kind.required_columns() {
                resolved.push((name, file.require(name, kind)?));
            }
            let find = |c: &str| resolved.iter().find(|(n, _)| *n == c).map(|(_, i)| *i);
            let text = find(kind.text_column()).unwrap_or_default();
            let images = kind
                .image_columns()
                .iter()
                .filter_map(|c| find(c))
                .collect();
            let extra = resolved.iter().map(|(_, i)| *i).collect();
            file_starts.push(file_starts.last().copied().unwrap_or(0) + file.num_rows());
            names.push(
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            cols.push(FileCols {
                text,
                images,
                extra,
            });
            files.push(file);
        }
        let mut ds = Self {
            kind,
            names,
            files,
            cols,
            file_starts,
            index: Vec::new(),
            image_only,
        };
        ds.build_index()?;
        Ok(ds)
    }

    fn build_index(&mut self) -> DataResult<()> {
        let total_rows = self.num_rows();
        if total_rows > u32::MAX as usize {
            return Err(DataError::TooManyRows { rows: total_rows });
        }
        let mut index = Vec::new();
        for (f, file) in self.files.iter().enumerate() {
            let base = self.file_starts[f];
            let text_col = self.cols[f].text;
            for row in 0..file.num_rows() {
                let global = (base + row) as u32;
                if self.image_only {
                    index.push((global, 0));
                    continue;
                }
                let (arr, i) = file.cell(text_col, row);
                let bad = |detail: String| DataError::BadValue {
                    path: file.path().to_path_buf(),
                    row,
                    column: self.kind.text_column().into(),
                    detail,
                };
                let n = cell::list_len(arr.as_ref(), i).map_err(bad)?;
                if self.kind.remove_duplicates() {
                    let texts = cell::list(arr.as_ref(), i).map_err(bad)?;
                    let texts = cell::strings(texts.as_ref()).map_err(bad)?;
                    // First occurrence wins: deterministic, unlike the reference's `set`.
                    for (t, text) in texts.iter().enumerate() {
                        if !texts[..t].contains(text) {
                            index.push((global, t as u32));
                        }
                    }
                } else {
                    index.extend((0..n).map(|t| (global, t as u32)));
                }
            }
        }
        self.index = index;
        Ok(())
    }

    pub fn kind(&self) -> DatasetKind {
        self.kind
    }

    /// Number of samples (texts, or rows when image-only).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Number of rows (images or image pairs) across all files.
    pub fn num_rows(&self) -> usize {
        self.file_starts.last().copied().unwrap_or(0)
    }

    pub fn files(&self) -> &[ArrowFile] {
        &self.files
    }

    /// (global row, text index) of a sample.
    pub fn locate(&self, sample: usize) -> (usize, usize) {
        let (row, t) = self.index[sample];
        (row as usize, t as usize)
    }

    fn file_of(&self, row: usize) -> (usize, usize) {
        let f = self.file_starts.partition_point(|&s| s <= row) - 1;
        (f, row - self.file_starts[f])
    }

    /// The file name (without `.arrow`) a row came from: the reference's `table_name`.
    pub fn table_name(&self, row: usize) -> &str {
        &self.names[self.file_of(row).0]
    }

    /// A bad value in global `row` of `column`, naming its file and the row in that file.
    pub fn bad_value(&self, row: usize, column: &str, detail: String) -> DataError {
        let (f, local) = self.file_of(row);
        self.bad(f, local, column, detail)
    }

    fn bad(&self, f: usize, row: usize, column: &str, detail: String) -> DataError {
        DataError::BadValue {
            path: self.files[f].path().to_path_buf(),
            row,
            column: column.to_string(),
            detail,
        }
    }

    /// The encoded image bytes of a row (zero-copy from the map).
    pub fn image_bytes(&self, row: usize, slot: ImageSlot) -> DataResult<&[u8]> {
        let (f, local) = self.file_of(row);
        let pos = self
            .kind
            .image_columns()
            .iter()
            .position(|c| *c == slot.column())
            .ok_or_else(|| DataError::NoImageColumn {
                kind: format!("{:?}", self.kind),
                column: slot.column(),
            })?;
        let col = self.cols[f].images[pos];
        let (arr, i) = self.files[f].cell(col, local);
        cell::binary(arr.as_ref(), i).map_err(|d| self.bad(f, local, slot.column(), d))
    }

    fn column_index(&self, f: usize, name: &str) -> usize {
        let pos = self
            .kind
            .required_columns()
            .iter()
            .position(|(c, _)| *c == name)
            .unwrap_or_default();
        self.cols[f].extra[pos]
    }

    /// The `t`-th element of list column `name` at a row.
    fn list_item(&self, row: usize, name: &str, t: usize) -> DataResult<arrow_array::ArrayRef> {
        let (f, local) = self.file_of(row);
        let (arr, i) = self.files[f].cell(self.column_index(f, name), local);
        let bad = |d: String| self.bad(f, local, name, d);
        let list = cell::list(arr.as_ref(), i).map_err(bad)?;
        if t >= list.len() {
            return Err(bad(format!(
                "item {t} requested but the list has {} items (lists misaligned with `{}`)",
                list.len(),
                self.kind.text_column()
            )));
        }
        Ok(list.slice(t, 1))
    }

    /// All texts of a row, in file order.
    pub fn row_texts(&self, row: usize) -> DataResult<Vec<String>> {
        let (f, local) = self.file_of(row);
        let col = self.kind.text_column();
        let (arr, i) = self.files[f].cell(self.cols[f].text, local);
        let bad = |d: String| self.bad(f, local, col, d);
        let list = cell::list(arr.as_ref(), i).map_err(bad)?;
        (0..list.len())
            .map(|t| self.text_of(row, t))
            .collect::<DataResult<Vec<_>>>()
    }

    fn text_of(&self, row: usize, t: usize) -> DataResult<String> {
        let (f, local) = self.file_of(row);
        let col = self.kind.text_column();
        let item = self.list_item(row, col, t)?;
        let bad = |d: String| self.bad(f, local, col, d);
        match self.kind {
            // SNLI keeps only the hypothesis, stripped.
            DatasetKind::Snli => {
                let pair = cell::list(item.as_ref(), 0).map_err(bad)?;
                if pair.len() < 2 {
                    return Err(bad(format!(
                        "sentence {t} has {} parts, expected [premise, hypothesis]",
                        pair.len()
                    )));
                }
                Ok(cell::string(pair.as_ref(), 1)
                    .map_err(bad)?
                    .trim()
                    .to_string())
            }
            _ => Ok(cell::string(item.as_ref(), 0).map_err(bad)?.to_string()),
        }
    }

    /// The text of a sample.
    pub fn text(&self, sample: usize) -> DataResult<String> {
        let (row, t) = self.locate(sample);
        self.text_of(row, t)
    }

    /// The label of a sample.
    pub fn target(&self, sample: usize) -> DataResult<Target> {
        let (row, t) = self.locate(sample);
        let (f, local) = self.file_of(row);
        match self.kind {
            DatasetKind::Captions => Ok(Target::None),
            DatasetKind::Vqa => {
                let read = |name: &str| -> DataResult<arrow_array::ArrayRef> {
                    let (arr, i) = self.files[f].cell(self.column_index(f, name), local);
                    let list =
                        cell::list(arr.as_ref(), i).map_err(|d| self.bad(f, local, name, d))?;
                    // Test rows have empty answer lists.
                    if list.is_empty() {
                        return Ok(arrow_array::new_empty_array(&arrow_schema::DataType::Null));
                    }
                    let item = self.list_item(row, name, t)?;
                    cell::list(item.as_ref(), 0).map_err(|d| self.bad(f, local, name, d))
                };
                let answers = cell::strings(read("answers")?.as_ref())
                    .map_err(|d| self.bad(f, local, "answers", d))?;
                let labels = cell::int64s(read("answer_labels")?.as_ref())
                    .map_err(|d| self.bad(f, local, "answer_labels", d))?;
                let scores = cell::float64s(read("answer_scores")?.as_ref())
                    .map_err(|d| self.bad(f, local, "answer_scores", d))?;
                if labels.len() != scores.len() {
                    return Err(self.bad(
                        f,
                        local,
                        "answer_scores",
                        format!(
                            "{} labels but {} scores for question {t}",
                            labels.len(),
                            scores.len()
                        ),
                    ));
                }
                if let Some(bad) = scores.iter().find(|s| !(0.0..=1.0).contains(*s)) {
                    return Err(self.bad(
                        f,
                        local,
                        "answer_scores",
                        format!("score {bad} for question {t}: expected a VQA score in [0, 1]"),
                    ));
                }
                let qid = self.list_item(row, "question_id", t)?;
                let question_id = cell::int64(qid.as_ref(), 0)
                    .map_err(|d| self.bad(f, local, "question_id", d))?;
                Ok(Target::Vqa {
                    answers,
                    labels,
                    scores,
                    question_id,
                })
            }
            DatasetKind::Nlvr2 => {
                let item = self.list_item(row, "answers", t)?;
                let answer =
                    cell::string(item.as_ref(), 0).map_err(|d| self.bad(f, local, "answers", d))?;
                // The reference compares with "True": any other answer than the two would
                // silently train as False.
                let label = match answer {
                    "True" => true,
                    "False" => false,
                    other => {
                        return Err(self.bad(
                            f,
                            local,
                            "answers",
                            format!(
                                "answer {other:?} for text {t}: expected \"True\" or \"False\""
                            ),
                        ))
                    }
                };
                Ok(Target::Nlvr2 { label })
            }
            DatasetKind::Snli => {
                let item = self.list_item(row, "labels", t)?;
                let label =
                    cell::int64(item.as_ref(), 0).map_err(|d| self.bad(f, local, "labels", d))?;
                // An index outside the classifier's three classes would panic the loss (a
                // device-side assert on a GPU, which poisons every later run there).
                if !(0..SNLI_CLASSES).contains(&label) {
                    return Err(self.bad(
                        f,
                        local,
                        "labels",
                        format!(
                            "label {label} for hypothesis {t}: expected 0 (contradiction), \
                             1 (neutral) or 2 (entailment)"
                        ),
                    ));
                }
                Ok(Target::Snli { label })
            }
        }
    }
}
