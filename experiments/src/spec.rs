//! The parts of an experiment file besides settings: metrics, W&B, data.

use serde::{Deserialize, Serialize};

pub use crate::run::Goal;
use crate::settings::Task;

/// Which value of a metric's history stands for the run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// The last logged value.
    Last,
    /// The best value by the metric's goal.
    Best,
    /// The value logged at the step where `metric` was best by `goal` (e.g. test score at the
    /// best validation score).
    AtBestOf { metric: String, goal: Goal },
}

/// The metric a report shows for a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricSpec {
    /// The task it applies to; `None` = every task without a metric of its own.
    pub task: Option<Task>,
    /// The logged name, e.g. `val/vqa/score_epoch`.
    pub name: String,
    pub goal: Goal,
    pub summary: Summary,
}

impl MetricSpec {
    /// Picks, from history points `(step, value_of_this_metric, value_of_the_at_best_metric)`,
    /// the summary value. Points without the needed value are skipped.
    pub fn summarize(&self, history: &[(i64, Option<f64>, Option<f64>)]) -> Option<f64> {
        match &self.summary {
            Summary::Last => history.iter().rev().find_map(|(_, v, _)| *v),
            Summary::Best => history
                .iter()
                .filter_map(|(_, v, _)| *v)
                .filter(|v| !v.is_nan())
                .fold(None, |best: Option<f64>, v| match best {
                    Some(b) if !self.goal.better(v, b) => Some(b),
                    _ => Some(v),
                }),
            Summary::AtBestOf { goal, .. } => {
                let mut best: Option<(f64, i64)> = None;
                for (step, _, other) in history {
                    if let Some(o) = other.filter(|o| !o.is_nan()) {
                        if best.is_none_or(|(b, _)| goal.better(o, b)) {
                            best = Some((o, *step));
                        }
                    }
                }
                let (_, at) = best?;
                history
                    .iter()
                    .filter(|(s, v, _)| *s == at && v.is_some())
                    .find_map(|(_, v, _)| *v)
            }
        }
    }
}

/// The optional `[wandb]` section (parsed and checked here; syncing lives in the app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WandbSpec {
    pub enabled: bool,
    /// Defaults to the experiment's name.
    pub project: String,
    pub entity: Option<String>,
    /// Stream metrics while runs train, instead of syncing after.
    pub live: bool,
}

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSpec {
    /// Folder of the `.arrow` tables (the `data_root` setting).
    pub root: String,
    /// Make synthetic tables in `root` when they are missing (demos and tests).
    pub synthetic: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(summary: Summary, goal: Goal) -> MetricSpec {
        MetricSpec {
            task: None,
            name: "m".into(),
            goal,
            summary,
        }
    }

    #[test]
    fn summary_policies() {
        let h = [
            (1, Some(0.5), Some(1.0)),
            (2, Some(0.9), Some(0.2)),
            (3, Some(0.7), Some(0.6)),
        ];
        assert_eq!(spec(Summary::Last, Goal::Maximize).summarize(&h), Some(0.7));
        assert_eq!(spec(Summary::Best, Goal::Maximize).summarize(&h), Some(0.9));
        assert_eq!(spec(Summary::Best, Goal::Minimize).summarize(&h), Some(0.5));
        let at = |goal| Summary::AtBestOf {
            metric: "val/loss".into(),
            goal,
        };
        assert_eq!(
            spec(at(Goal::Minimize), Goal::Maximize).summarize(&h),
            Some(0.9)
        );
        assert_eq!(
            spec(at(Goal::Maximize), Goal::Maximize).summarize(&h),
            Some(0.5)
        );
        assert_eq!(spec(Summary::Last, Goal::Maximize).summarize(&[]), None);
    }
}
