//! Readable names for figures: metric keys, axes and axis values as a paper shows them
//! (`val/vqa/score_epoch` → "VQA score (val)", `manager_type` → "Manager"). An experiment
//! file's `[labels]` section names what it wants; everything else gets a default derived from
//! TowerLab's setting keys and the metric names the engine logs.

use std::collections::BTreeMap;

use serde_json::Value as Json;

/// Display names. Anything not named here gets a default from its key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// Metric (logged key) → display name.
    pub metrics: BTreeMap<String, String>,
    /// Axis → display name.
    pub axes: BTreeMap<String, String>,
    /// Axis → value (as text) → display text in legends and group labels.
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

/// Task and objective names as the papers write them.
const TASKS: [(&str, &str); 13] = [
    ("vqa", "VQA"),
    ("itm", "ITM"),
    ("mlm", "MLM"),
    ("itc", "ITC"),
    ("snli", "SNLI-VE"),
    ("nlvr2", "NLVR2"),
    ("irtr", "IR/TR"),
    ("irtr_itm", "IR/TR ITM"),
    ("irtr_itc", "IR/TR ITC"),
    ("itm_itc", "ITM (hard negatives)"),
    ("ir", "IR"),
    ("tr", "TR"),
    ("pretrain", "pre-training"),
];

/// Words of metric names that are not just lower-cased.
const WORDS: [(&str, &str); 8] = [
    ("the_metric", "selection metric"),
    ("best_the_metric", "best selection metric"),
    ("lr", "learning rate"),
    ("grad_norm", "gradient norm"),
    ("data_wait_share", "data-wait share"),
    ("r_mean", "mean recall"),
    ("score", "score"),
    ("accuracy", "accuracy"),
];

/// Axes (setting keys) with names a reader knows.
const AXES: [(&str, &str); 14] = [
    ("manager_type", "Manager"),
    ("num_layers", "Cross-modal layers"),
    ("managed_layers_text", "Managed layers (text)"),
    ("managed_layers_image", "Managed layers (image)"),
    ("vlp", "VLP"),
    ("task", "Task"),
    ("seed", "Seed"),
    ("learning_rate", "Learning rate"),
    ("manager_weight_type", "Manager weights"),
    ("precision", "Precision"),
    ("max_steps", "Steps"),
    ("batch_size", "Batch size"),
    ("image_size", "Image size"),
    ("loss_names", "Objectives"),
];

/// An axis value as text, the way runs carry it to reports and labels key it: strings as
/// they are, anything else as JSON (`2`, `true`, `0.0001`).
pub fn value_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn lookup<'a>(table: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The default name of a metric key: `split/task/name[_epoch|_step]` → "Task name (split)",
/// `split/name` → "Name (split)"; other keys are shown as written.
pub fn default_metric_label(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    let (split, rest) = match parts.as_slice() {
        [s, rest @ ..] if !rest.is_empty() && matches!(*s, "train" | "val" | "test" | "dev") => {
            (Some(*s), rest)
        }
        _ => (None, parts.as_slice()),
    };
    let name = |n: &str| -> String {
        let n = n
            .strip_suffix("_epoch")
            .or_else(|| n.strip_suffix("_step"))
            .unwrap_or(n);
        lookup(&WORDS, n).map_or_else(|| n.replace('_', " "), str::to_string)
    };
    let body = match rest {
        [task, metric] if lookup(&TASKS, task).is_some() => {
            format!("{} {}", lookup(&TASKS, task).unwrap_or(task), name(metric))
        }
        [metric] => capitalise(&name(metric)),
        _ => return key.to_string(),
    };
    match split {
        Some(s) => format!("{body} ({s})"),
        None => body,
    }
}

/// The default name of an axis: a known setting's name, else the key with spaces.
pub fn default_axis_label(axis: &str) -> String {
    lookup(&AXES, axis).map_or_else(
        || capitalise(&axis.replace(['_', '.'], " ")),
        str::to_string,
    )
}

impl Labels {
    /// The name of a metric.
    pub fn metric(&self, key: &str) -> String {
        self.metrics
            .get(key)
            .cloned()
            .unwrap_or_else(|| default_metric_label(key))
    }

    /// The name of an axis.
    pub fn axis(&self, axis: &str) -> String {
        self.axes
            .get(axis)
            .cloned()
            .unwrap_or_else(|| default_axis_label(axis))
    }

    /// A value in a legend or under a group of bars: the file's name for it when given; a
    /// boolean as "VLP" / "no VLP"; a number with its axis ("Managed layers 2"); a word
    /// ("SAUE") on its own, as it already says what it is.
    pub fn value(&self, axis: &str, value: &str) -> String {
        self.value_as(axis, &self.axis(axis), value)
    }

    /// [`Labels::value`] with the axis called `name` (a zip group's name).
    pub fn value_as(&self, axis: &str, name: &str, value: &str) -> String {
        if let Some(v) = self.values.get(axis).and_then(|m| m.get(value)) {
            return v.clone();
        }
        let name = name.to_string();
        match value {
            "true" => name,
            "false" => format!("no {name}"),
            v if v.parse::<f64>().is_ok() => format!("{name} {v}"),
            v if axis == "task" => lookup(&TASKS, v).map_or_else(|| v.to_string(), str::to_string),
            v => v.to_string(),
        }
    }

    /// The name of a zip group (axes that move together), shown once by its first axis:
    /// the first axis' name, or what the names share when they differ only in a trailing
    /// qualifier ("Managed layers (text)" and "Managed layers (image)" → "Managed layers").
    pub fn zip_name(&self, keys: &[String]) -> String {
        let Some(first) = keys.first() else {
            return String::new();
        };
        if let Some(name) = self.axes.get(first) {
            return name.clone();
        }
        let names: Vec<String> = keys.iter().map(|k| self.axis(k)).collect();
        let stem = |n: &str| {
            n.split_once(" (")
                .map_or(n.to_string(), |(s, _)| s.to_string())
        };
        let first_stem = stem(&names[0]);
        if names.len() > 1 && names.iter().all(|n| stem(n) == first_stem) {
            first_stem
        } else {
            names[0].clone()
        }
    }

    /// These labels, with `overrides` on top (the file's `[labels]` over the defaults).
    #[must_use]
    pub fn merged(mut self, overrides: &Labels) -> Labels {
        self.metrics.extend(overrides.metrics.clone());
        self.axes.extend(overrides.axes.clone());
        for (axis, values) in &overrides.values {
            self.values
                .entry(axis.clone())
                .or_default()
                .extend(values.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_keys_read_as_a_paper_writes_them() {
        for (key, want) in [
            ("val/vqa/score_epoch", "VQA score (val)"),
            ("val/vqa/score", "VQA score (val)"),
            ("train/loss", "Loss (train)"),
            ("val/itm/accuracy_epoch", "ITM accuracy (val)"),
            ("val/irtr_itm/accuracy_epoch", "IR/TR ITM accuracy (val)"),
            ("val/the_metric", "Selection metric (val)"),
            ("train/lr", "Learning rate (train)"),
            ("test/snli/accuracy", "SNLI-VE accuracy (test)"),
            ("val/r_mean", "Mean recall (val)"),
            ("custom", "Custom"),
            ("a/b/c/d", "a/b/c/d"),
        ] {
            assert_eq!(default_metric_label(key), want, "{key}");
        }
    }

    #[test]
    fn axes_values_and_zip_groups() {
        let mut l = Labels::default();
        assert_eq!(l.axis("manager_type"), "Manager");
        assert_eq!(l.axis("some_new_key"), "Some new key");
        assert_eq!(l.value("manager_type", "SAUE"), "SAUE");
        assert_eq!(l.value("vlp", "true"), "VLP");
        assert_eq!(l.value("vlp", "false"), "no VLP");
        assert_eq!(
            l.value("managed_layers_text", "2"),
            "Managed layers (text) 2"
        );
        assert_eq!(l.value("task", "vqa"), "VQA");
        let zip = [
            "managed_layers_text".to_string(),
            "managed_layers_image".into(),
        ];
        assert_eq!(l.zip_name(&zip), "Managed layers");
        let mixed = ["learning_rate".to_string(), "task".into()];
        assert_eq!(l.zip_name(&mixed), "Learning rate");

        let file = Labels {
            metrics: BTreeMap::from([("val/vqa/score_epoch".into(), "VQAv2 acc.".into())]),
            axes: BTreeMap::from([("vlp".into(), "Pre-training".into())]),
            values: BTreeMap::from([(
                "vlp".into(),
                BTreeMap::from([("false".into(), "from scratch".into())]),
            )]),
        };
        l = l.merged(&file);
        assert_eq!(l.metric("val/vqa/score_epoch"), "VQAv2 acc.");
        assert_eq!(l.value("vlp", "true"), "Pre-training");
        assert_eq!(l.value("vlp", "false"), "from scratch");
    }
}
