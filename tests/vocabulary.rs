//! The run vocabulary has one home (`experiments::run`): no other crate declares its own
//! `RunStatus`, `Goal`, `FailureClass`, `CellState`, `Modality`, `ManagerWeight`, run `Event` or
//! `Outcome`, whether by hand or through a macro such as `text_enum!`. Copies drift apart (a
//! cancelled run was `Crashed` to the planner and `Cancelled` to reports); this scan of every
//! `.rs` file of the workspace stops a new one at review time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The vocabulary and the one file allowed to declare it.
const NAMES: [&str; 8] = [
    "RunStatus",
    "Goal",
    "FailureClass",
    "CellState",
    "Modality",
    "ManagerWeight",
    "Event",
    "Outcome",
];
const HOME: &str = "experiments/src/run.rs";

/// Every `.rs` file below `dir`, build outputs and hidden folders left out.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The type names `text` declares: `enum N`, `struct N` and `type N` items (any visibility),
/// and the first name of each `…_enum!(` macro call, which declares an enum of that name.
/// Comment lines are skipped.
fn declared(text: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut in_macro_call = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        if in_macro_call {
            let name = ident(line);
            if !name.is_empty() {
                out.push((i + 1, name));
                in_macro_call = false;
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "enum" | "struct" | "type") {
                let name = ident(pair[1]);
                if !name.is_empty() {
                    out.push((i + 1, name));
                }
            }
        }
        // `text_enum!(` and the like, but not the macro's own definition.
        if let Some(at) = line.find("_enum!(") {
            if !line.starts_with("macro_rules!") {
                let rest = &line[at + "_enum!(".len()..];
                let name = ident(rest.trim_start());
                if name.is_empty() {
                    in_macro_call = true;
                } else {
                    out.push((i + 1, name));
                }
            }
        }
    }
    out
}

#[test]
fn the_scan_finds_hand_written_and_macro_declarations() {
    let text = "pub enum RunStatus {\n}\n// enum Goal\nstruct ManagerWeight {\n\
                pub(crate) type Outcome = u8;\ntext_enum!(\n    /// Doc.\n    Modality, \"m\", {\n\
                x_enum!(FailureClass, \"f\", {\n";
    let names: Vec<String> = declared(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        [
            "RunStatus",
            "ManagerWeight",
            "Outcome",
            "Modality",
            "FailureClass"
        ]
    );
}

#[test]
fn the_run_vocabulary_is_declared_once_in_the_workspace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf();
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(
        files.len() > 100,
        "found only {} .rs files below {}",
        files.len(),
        root.display()
    );
    let this = Path::new(file!())
        .file_name()
        .expect("a file name")
        .to_owned();
    let mut found: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for file in &files {
        // This file names the vocabulary in its own fixture.
        if file.parent() == Some(&root.join("tests")) && file.file_name() == Some(&this) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (line, name) in declared(&text) {
            if let Some(n) = NAMES.iter().find(|n| **n == name) {
                found.entry(n).or_default().push(format!("{rel}:{line}"));
            }
        }
    }
    let mut wrong = Vec::new();
    for name in NAMES {
        let places = found.get(name).cloned().unwrap_or_default();
        let home_only = places.len() == 1 && places[0].starts_with(&format!("{HOME}:"));
        if !home_only {
            wrong.push(format!("{name}: {places:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "each of these must be declared once, in {HOME} (use it from there):\n{}",
        wrong.join("\n")
    );
}
