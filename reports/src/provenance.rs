//! Where an output came from: the experiment hash and the run ids it used.

use crate::input::ReportInput;

/// Provenance printed into every output (as a comment, `<desc>` or header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub experiment: String,
    pub experiment_hash: String,
    /// Runs whose data the output used, in cell order then seed order.
    pub run_ids: Vec<String>,
}

/// Run ids per provenance line, so that comments stay readable.
const IDS_PER_LINE: usize = 8;

impl Provenance {
    pub fn new(input: &ReportInput, run_ids: Vec<String>) -> Self {
        Self {
            experiment: input.experiment.clone(),
            experiment_hash: input.experiment_hash.clone(),
            run_ids,
        }
    }

    /// Plain-text lines; each format wraps them in its own comment syntax. Line breaks inside
    /// names are flattened so that no line can escape its comment.
    pub fn lines(&self, what: &str) -> Vec<String> {
        let flat = |s: &str| s.replace(['\r', '\n'], " ");
        let mut lines = vec![
            format!("TowerLab {what}: experiment {}", flat(&self.experiment)),
            format!("experiment hash: {}", flat(&self.experiment_hash)),
            format!("runs used ({}):", self.run_ids.len()),
        ];
        for chunk in self.run_ids.chunks(IDS_PER_LINE) {
            let ids: Vec<String> = chunk.iter().map(|s| flat(s)).collect();
            lines.push(format!("  {}", ids.join(" ")));
        }
        lines
    }
}
