//! Terminal events become actions: pure functions of the event and the input mode.

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::table::Column;

/// Everything the user can ask for. `App::update` applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// ← / h: previous metric (run view), previous step (weights), left pane (sweeps).
    Left,
    Right,
    NextView,
    PrevView,
    Open,
    Back,
    ToggleHelp,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterClear,
    FilterCommit,
    FilterCancel,
    SortBy(Column),
    NextSortColumn,
    ReverseSort,
    CycleGroup,
    ToggleMark,
    ClearMarks,
    Compare,
    Weights,
    Sweeps,
    NextKeyMetric,
    PrevKeyMetric,
    QueueExperiment,
    /// `o`: pick an experiment file (one not in the store yet, too) and show its plan.
    OpenFile,
    PickerChar(char),
    PickerBackspace,
    /// Tab: complete the typed path to the file under the cursor.
    PickerComplete,
    PickerCommit,
    PickerCancel,
    StartWorker,
    StopWorker,
    CancelRun,
    RetryRun,
    Confirm,
    Dismiss,
    Refresh,
    Resize(u16, u16),
    Click(u16, u16),
}

/// What keys mean depends on what has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    Normal,
    /// Typing a `/` filter.
    Filter,
    /// The help overlay is open: any key closes it (`q` still quits).
    Help,
    /// A yes/no question is open.
    Confirm,
    /// The file picker is open: typing filters the experiment files (or types a path).
    Open,
}

/// Maps one terminal event to an action (`None`: ignored).
pub fn event_to_action(mode: InputMode, event: &Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => key_to_action(mode, *key),
        Event::Mouse(mouse) => mouse_to_action(mode, *mouse),
        Event::Resize(w, h) => Some(Action::Resize(*w, *h)),
        _ => None,
    }
}

pub fn key_to_action(mode: InputMode, key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    match mode {
        InputMode::Filter => filter_key(key, ctrl),
        InputMode::Help => Some(match key.code {
            KeyCode::Char('q') => Action::Quit,
            _ => Action::ToggleHelp,
        }),
        InputMode::Confirm => Some(match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Action::Confirm,
            _ => Action::Dismiss,
        }),
        InputMode::Open => picker_key(key, ctrl),
        InputMode::Normal => normal_key(key, ctrl),
    }
}

fn picker_key(key: KeyEvent, ctrl: bool) -> Option<Action> {
    Some(match key.code {
        KeyCode::Enter => Action::PickerCommit,
        KeyCode::Esc => Action::PickerCancel,
        KeyCode::Backspace => Action::PickerBackspace,
        KeyCode::Tab => Action::PickerComplete,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::Char(c) if !ctrl => Action::PickerChar(c),
        _ => return None,
    })
}

fn filter_key(key: KeyEvent, ctrl: bool) -> Option<Action> {
    Some(match key.code {
        KeyCode::Enter => Action::FilterCommit,
        KeyCode::Esc => Action::FilterCancel,
        KeyCode::Backspace => Action::FilterBackspace,
        KeyCode::Char('u') if ctrl => Action::FilterClear,
        KeyCode::Char(c) if !ctrl => Action::FilterChar(c),
        _ => return None,
    })
}

fn normal_key(key: KeyEvent, ctrl: bool) -> Option<Action> {
    if ctrl {
        return match key.code {
            KeyCode::Char('d') => Some(Action::PageDown),
            KeyCode::Char('u') => Some(Action::PageUp),
            KeyCode::Char('r') => Some(Action::Refresh),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::Left | KeyCode::Char('h') | KeyCode::Char('[') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') | KeyCode::Char(']') => Action::Right,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Tab => Action::NextView,
        KeyCode::BackTab => Action::PrevView,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc | KeyCode::Backspace => Action::Back,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char(c @ '1'..='7') => Action::SortBy(Column::ALL[(c as u8 - b'1') as usize]),
        KeyCode::Char('s') => Action::NextSortColumn,
        KeyCode::Char('S') => Action::ReverseSort,
        KeyCode::Char('a') => Action::CycleGroup,
        KeyCode::Char(' ') => Action::ToggleMark,
        KeyCode::Char('u') => Action::ClearMarks,
        KeyCode::Char('c') => Action::Compare,
        KeyCode::Char('w') => Action::Weights,
        KeyCode::Char('e') => Action::Sweeps,
        KeyCode::Char('m') => Action::NextKeyMetric,
        KeyCode::Char('M') => Action::PrevKeyMetric,
        KeyCode::Char('Q') => Action::QueueExperiment,
        KeyCode::Char('o') => Action::OpenFile,
        KeyCode::Char('W') => Action::StartWorker,
        KeyCode::Char('X') => Action::StopWorker,
        KeyCode::Char('d') => Action::CancelRun,
        KeyCode::Char('r') => Action::RetryRun,
        KeyCode::Char('R') => Action::Refresh,
        _ => return None,
    })
}

fn mouse_to_action(mode: InputMode, mouse: MouseEvent) -> Option<Action> {
    if mode != InputMode::Normal {
        return None;
    }
    match mouse.kind {
        MouseEventKind::ScrollUp => Some(Action::Up),
        MouseEventKind::ScrollDown => Some(Action::Down),
        MouseEventKind::Down(MouseButton::Left) => Some(Action::Click(mouse.column, mouse.row)),
        _ => None,
    }
}

/// The help overlay: every key, grouped. Kept next to the key map so that they agree.
pub const HELP: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("Tab / S-Tab", "next / previous view"),
            ("↑↓ or j k", "move"),
            ("PgUp PgDn, ^u ^d", "page"),
            ("g G, Home End", "first / last"),
            ("Enter", "open"),
            ("Esc", "back"),
            ("?", "this help"),
            ("q, ^c", "quit"),
            ("R, ^r", "reload now"),
            ("mouse", "scroll, click row/tab"),
        ],
    ),
    (
        "Runs",
        &[
            ("/", "filter (status:x a=v)"),
            ("1..7", "sort by column n"),
            ("s S", "next column / reverse"),
            ("a", "group: mean ± std"),
            ("m M", "next / prev key metric"),
            ("space", "mark run for compare"),
            ("u", "clear marks"),
            ("c", "compare marked runs"),
            ("w", "manager weights"),
            ("d", "cancel run(s)"),
            ("r", "retry failed run(s)"),
        ],
    ),
    (
        "Run, Compare, Weights",
        &[
            ("←→ h l [ ]", "metric; Weights: step"),
            ("m", "compare: next metric"),
        ],
    ),
    (
        "Sweeps (e)",
        &[
            ("←→", "experiments / cells"),
            ("Enter, Esc", "plan / back to list"),
            ("o", "open a file (.toml)"),
            ("Q", "queue new cells"),
            ("W X", "start / stop worker"),
            ("d", "cancel the cell's run"),
            ("r", "retry failed cells"),
        ],
    ),
    (
        "Header: runs in the store",
        &[
            ("N▶ N✓", "running, finished"),
            ("N✗ N…", "failed/crashed, queued"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn vim_keys_and_arrows_agree() {
        let n = InputMode::Normal;
        assert_eq!(
            key_to_action(n, key(KeyCode::Char('j'))),
            Some(Action::Down)
        );
        assert_eq!(key_to_action(n, key(KeyCode::Down)), Some(Action::Down));
        assert_eq!(key_to_action(n, key(KeyCode::Char('k'))), Some(Action::Up));
        assert_eq!(key_to_action(n, key(KeyCode::Up)), Some(Action::Up));
        assert_eq!(
            key_to_action(n, key(KeyCode::Char('G'))),
            Some(Action::Bottom)
        );
    }

    #[test]
    fn typing_a_filter_does_not_trigger_commands() {
        let f = InputMode::Filter;
        assert_eq!(
            key_to_action(f, key(KeyCode::Char('q'))),
            Some(Action::FilterChar('q'))
        );
        assert_eq!(
            key_to_action(f, key(KeyCode::Esc)),
            Some(Action::FilterCancel)
        );
        assert_eq!(
            key_to_action(f, key(KeyCode::Enter)),
            Some(Action::FilterCommit)
        );
    }

    #[test]
    fn ctrl_c_quits_in_every_mode() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        for mode in [
            InputMode::Normal,
            InputMode::Filter,
            InputMode::Help,
            InputMode::Confirm,
            InputMode::Open,
        ] {
            assert_eq!(key_to_action(mode, ctrl_c), Some(Action::Quit), "{mode:?}");
        }
    }

    #[test]
    fn number_keys_sort_by_column() {
        let n = InputMode::Normal;
        assert_eq!(
            key_to_action(n, key(KeyCode::Char('4'))),
            Some(Action::SortBy(Column::Status))
        );
        assert_eq!(
            key_to_action(n, key(KeyCode::Char('7'))),
            Some(Action::SortBy(Column::Metric))
        );
    }

    #[test]
    fn confirm_takes_only_yes() {
        let c = InputMode::Confirm;
        assert_eq!(
            key_to_action(c, key(KeyCode::Char('y'))),
            Some(Action::Confirm)
        );
        assert_eq!(
            key_to_action(c, key(KeyCode::Char('n'))),
            Some(Action::Dismiss)
        );
        assert_eq!(
            key_to_action(c, key(KeyCode::Char('d'))),
            Some(Action::Dismiss)
        );
    }

    #[test]
    fn key_releases_are_ignored_and_mouse_scroll_moves() {
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(
            event_to_action(InputMode::Normal, &Event::Key(release)),
            None
        );
        let scroll = Event::Mouse(MouseEvent {
            kind: MouseEventKind::ScrollDown,
            column: 3,
            row: 4,
            modifiers: KeyModifiers::NONE,
        });
        assert_eq!(
            event_to_action(InputMode::Normal, &scroll),
            Some(Action::Down)
        );
    }

    #[test]
    fn every_normal_key_in_help_maps_to_an_action() {
        // The single-character keys the help lists must exist in the key map.
        for (_, keys) in HELP {
            for (k, _) in *keys {
                for word in k.split([' ', ',', '/']) {
                    let mut chars = word.chars();
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        if !c.is_ascii() || c == '/' || c == '^' {
                            continue;
                        }
                        assert!(
                            key_to_action(InputMode::Normal, key(KeyCode::Char(c))).is_some(),
                            "help lists {c:?} but it does nothing"
                        );
                    }
                }
            }
        }
    }
}
