//! The file picker (`o`): what was typed, the files that match, the cursor among them.

use super::{step_index, App, View};
use crate::tui::action::{Action, InputMode};
use crate::tui::message::Command;

impl App {
    /// The files the picker offers for what was typed (a case-insensitive part of the path).
    pub fn picker_matches(&self) -> Vec<&str> {
        let typed = self.picker_input.to_lowercase();
        self.picker_files
            .iter()
            .filter(|f| f.to_lowercase().contains(&typed))
            .map(String::as_str)
            .collect()
    }

    pub(super) fn update_picker(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::OpenFile => {
                self.goto(View::Sweeps);
                self.mode = InputMode::Open;
                self.picker_input.clear();
                self.picker_cursor = 0;
            }
            Action::PickerChar(c) => {
                self.picker_input.push(c);
                self.picker_cursor = 0;
            }
            Action::PickerBackspace => {
                self.picker_input.pop();
                self.picker_cursor = 0;
            }
            Action::PickerComplete => {
                if let Some(f) = self.picker_matches().get(self.picker_cursor) {
                    self.picker_input = (*f).to_string();
                    self.picker_cursor = 0;
                }
            }
            Action::PickerCancel => self.mode = InputMode::Normal,
            Action::PickerCommit => {
                self.mode = InputMode::Normal;
                // The file under the cursor, else the path as typed.
                let path = self
                    .picker_matches()
                    .get(self.picker_cursor)
                    .map(|f| (*f).to_string())
                    .unwrap_or_else(|| self.picker_input.trim().to_string());
                if !path.is_empty() {
                    return vec![Command::OpenFile(path)];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn apply_files(&mut self, f: Vec<String>) {
        self.picker_files = f;
        self.picker_cursor = 0;
    }

    pub(super) fn move_in_picker(&mut self, delta: i64) {
        let n = self.picker_matches().len();
        self.picker_cursor = step_index(self.picker_cursor, delta, n);
    }
}
