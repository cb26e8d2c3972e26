//! The VQA answer vocabulary written beside the tables (`vqav2_answers.json`): the reference's
//! `label2ans`, so label `i` of an `answer_labels` column is `label2answer[i]`. `data synth`
//! and `data convert` write it; a plan takes a VQA head's size from it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name, in the directory of the `.arrow` files.
pub const ANSWERS_FILE: &str = "vqav2_answers.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerVocab {
    /// Answers in label order.
    pub label2answer: Vec<String>,
    pub num_answers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an answer vocabulary ({{\"label2answer\": [...], \"num_answers\": N}}): {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: num_answers is {num_answers} but label2answer has {listed} answers")]
    Count {
        path: PathBuf,
        num_answers: usize,
        listed: usize,
    },
}

impl AnswerVocab {
    pub fn new(label2answer: Vec<String>) -> Self {
        Self {
            num_answers: label2answer.len(),
            label2answer,
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(ANSWERS_FILE)
    }

    /// The pretty JSON text (one answer per line, a trailing newline).
    pub fn to_json(&self) -> String {
        let value = serde_json::json!({
            "label2answer": self.label2answer,
            "num_answers": self.num_answers,
        });
        format!("{value:#}\n")
    }

    /// Writes `dir/vqav2_answers.json` through a temporary file, so a reader never sees half.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, VocabError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{ANSWERS_FILE}.partial"));
        let io = |source| VocabError::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<Self, VocabError> {
        let text = std::fs::read_to_string(path).map_err(|source| VocabError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // `num_answers` may be left out (it only repeats the list's length).
        #[derive(Deserialize)]
        struct Written {
            label2answer: Vec<String>,
            num_answers: Option<usize>,
        }
        let written: Written = serde_json::from_str(&text).map_err(|source| VocabError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let listed = written.label2answer.len();
        match written.num_answers {
            Some(n) if n != listed => Err(VocabError::Count {
                path: path.to_path_buf(),
                num_answers: n,
                listed,
            }),
            _ => Ok(Self::new(written.label2answer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let v = AnswerVocab::new(vec!["yes".into(), "no".into(), "2".into()]);
        let path = v.write(dir.path()).unwrap();
        assert_eq!(AnswerVocab::read(&path).unwrap(), v);
        std::fs::write(&path, r#"{"label2answer": ["a"], "num_answers": 2}"#).unwrap();
        let err = AnswerVocab::read(&path).unwrap_err().to_string();
        assert!(err.contains("num_answers is 2"), "{err}");
    }
}
