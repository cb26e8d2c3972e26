//! Validation errors with file, line and column, collected all at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a problem is: a place in the experiment file, or an outside source (an environment
/// variable, a `--set` flag) that has no line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// 1-based line and column in the experiment file.
    File { line: usize, col: usize },
    /// An environment variable, by name.
    Env(String),
    /// The n-th (1-based) `--set key=value` flag.
    Set(usize),
    /// The file as a whole (a missing section, an unreadable file).
    Whole,
}

/// One problem found while reading or checking an experiment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidationError {
    pub file: PathBuf,
    pub origin: Origin,
    pub message: String,
}

impl ValidationError {
    pub fn line_col(&self) -> Option<(usize, usize)> {
        match self.origin {
            Origin::File { line, col } => Some((line, col)),
            _ => None,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match &self.origin {
            Origin::File { line, col } => write!(f, "{file}:{line}:{col}: {}", self.message),
            Origin::Env(var) => write!(f, "{file}: environment variable {var}: {}", self.message),
            Origin::Set(n) => write!(f, "{file}: --set #{n}: {}", self.message),
            Origin::Whole => write!(f, "{file}: {}", self.message),
        }
    }
}

/// Every problem of an experiment, in file order. `Display` prints one `path:line:col: message`
/// line per problem; the app exits with status 2 on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidationErrors {
    pub errors: Vec<ValidationError>,
}

impl ValidationErrors {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ValidationError> {
        self.errors.iter()
    }

    /// The messages alone, for tests and short UIs.
    pub fn messages(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.message.clone()).collect()
    }

    pub(crate) fn sort_dedup(&mut self) {
        self.errors.sort();
        self.errors.dedup();
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects errors for one file, turning byte offsets into line and column.
pub(crate) struct Collector<'a> {
    file: PathBuf,
    lines: LineIndex<'a>,
    pub(crate) errors: Vec<ValidationError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &Path, src: &'a str) -> Self {
        Self {
            file: file.to_path_buf(),
            lines: LineIndex::new(src),
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, col) = self.lines.line_col(offset);
        self.push(Origin::File { line, col }, message);
    }

    pub(crate) fn push(&mut self, origin: Origin, message: impl Into<String>) {
        self.errors.push(ValidationError {
            file: self.file.clone(),
            origin,
            message: message.into(),
        });
    }

    /// The collected errors, sorted by position and without repeats.
    pub(crate) fn into_errors(self) -> ValidationErrors {
        let mut all = ValidationErrors {
            errors: self.errors,
        };
        all.sort_dedup();
        all
    }
}

/// Byte offset to 1-based line and column (columns count characters, as editors do).
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { src, starts }
    }

    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col = self
            .src
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let idx = LineIndex::new("ab\ncd\n\nxé=1");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(1), (1, 2));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(6), (3, 1));
        assert_eq!(idx.line_col(7), (4, 1));
        // 'é' is two bytes but one column.
        assert_eq!(idx.line_col(10), (4, 3));
    }

    #[test]
    fn display_is_one_line_per_problem() {
        let errs = ValidationErrors {
            errors: vec![
                ValidationError {
                    file: "a.toml".into(),
                    origin: Origin::File { line: 3, col: 5 },
                    message: "bad".into(),
                },
                ValidationError {
                    file: "a.toml".into(),
                    origin: Origin::Env("TOWERLAB_X".into()),
                    message: "worse".into(),
                },
            ],
        };
        assert_eq!(
            errs.to_string(),
            "a.toml:3:5: bad\na.toml: environment variable TOWERLAB_X: worse"
        );
    }
}
