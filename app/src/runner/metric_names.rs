//! Every `[metric]` of an experiment names a metric its runs log: a name no run of its task
//! logs (a typo, `score` for `score_epoch`) would report nothing after the whole sweep, so it
//! is an error at plan time, with the closest logged name.

use experiments::{Experiment, Settings, Summary};

use crate::exit::UserError;

/// The names the runs of `task` log, from their settings.
#[cfg(feature = "engine")]
fn logged(settings: &[&Settings]) -> Vec<String> {
    let mut names: Vec<String> = settings
        .iter()
        .flat_map(|s| engine::train::metric_names(s))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(not(feature = "engine"))]
fn logged(_: &[&Settings]) -> Vec<String> {
    Vec::new()
}

/// The logged name closest to `name`.
fn closest<'a>(name: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(name, n), n.as_str()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// Checks the experiment's metrics against the names its runs log (nothing to check against
/// in a build without the engine).
pub fn check(exp: &Experiment) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for task in exp.tasks() {
        let Some(spec) = exp.metric_for(task) else {
            continue;
        };
        let settings: Vec<&Settings> = exp
            .runs()
            .iter()
            .filter(|r| r.settings.task == task)
            .map(|r| &r.settings)
            .collect();
        let names = logged(&settings);
        if names.is_empty() {
            continue;
        }
        let mut wanted = vec![("name", spec.name.as_str())];
        if let Summary::AtBestOf { metric, .. } = &spec.summary {
            wanted.push(("at_best_of", metric.as_str()));
        }
        for (key, name) in wanted {
            if names.iter().any(|n| n == name) {
                continue;
            }
            let hint = closest(name, &names)
                .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
            problems.push(format!(
                "[metric] {key} = \"{name}\" is not a metric that a {} run logs{hint} (it logs: {})",
                task.as_str(),
                names.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(anyhow::Error::new(UserError {
        code: 2,
        message: format!("{}: {}", exp.path.display(), problems.join("\n")),
    }))
}

#[cfg(all(test, feature = "engine"))]
mod tests {
    use super::*;

    fn exp(metric: &str) -> Experiment {
        let src = format!(
            "name = \"m\"\ntask = \"vqa\"\n[base]\npreset = \"tiny\"\n[grid]\n\
             manager_type = [\"AAUE\"]\n[metric]\nname = \"{metric}\"\ngoal = \"maximize\"\n"
        );
        Experiment::from_toml(&src, std::path::Path::new("m.toml"), &Default::default()).unwrap()
    }

    #[test]
    fn a_metric_no_run_logs_is_an_error_with_the_closest_name() {
        check(&exp("val/vqa/score_epoch")).unwrap();
        let e = check(&exp("val/vqa/score")).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "m.toml: [metric] name = \"val/vqa/score\" is not a metric that a vqa run logs; \
                 did you mean `val/vqa/score_epoch`?"
            ),
            "{e}"
        );
        let e = check(&exp("val/vqa_score_epoch")).unwrap_err().to_string();
        assert!(e.contains("did you mean `val/vqa/score_epoch`?"), "{e}");
    }
}
