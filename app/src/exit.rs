//! How errors leave the process: one line on stderr and a non-zero exit code, no backtrace.

use std::process::ExitCode;

/// An error caused by the user's input (a file, a key, a flag), with the exit code to use.
/// Validation problems exit with 2; other user errors with 1.
#[derive(Debug)]
pub struct UserError {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Prints the error chain on one line and picks the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<UserError>())
        .map_or(1, |user| user.code.max(1));
    eprintln!("error: {}", one_line(err));
    ExitCode::from(code)
}

/// The chain joined by `: `, each cause once: many errors quote their source in their own
/// message (`cannot open X: <sqlite error>`) and name it as `source()` too, which `{:#}`
/// would print again at every level.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_error_code_is_kept() {
        let err = anyhow::Error::new(UserError {
            code: 2,
            message: "bad key".into(),
        });
        assert_eq!(report(&err), ExitCode::from(2));
    }

    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("file is not a database")]
        struct Sqlite;
        #[derive(Debug, thiserror::Error)]
        #[error("x.db is not a SQLite database, or it is corrupt ({0})")]
        struct Corrupt(#[source] Sqlite);
        let err = anyhow::Error::new(Corrupt(Sqlite)).context("opening the store x.db");
        assert_eq!(
            one_line(&err),
            "opening the store x.db: x.db is not a SQLite database, or it is corrupt \
             (file is not a database)"
        );
    }

    #[test]
    fn a_user_error_under_context_keeps_its_code() {
        let err = anyhow::Error::new(UserError {
            code: 2,
            message: "bad file".into(),
        })
        .context("reading");
        assert_eq!(report(&err), ExitCode::from(2));
    }

    #[test]
    fn other_errors_exit_with_one() {
        let err = anyhow::anyhow!("boom").context("while testing");
        assert_eq!(report(&err), ExitCode::from(1));
    }
}
