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
        .downcast_ref::<UserError>()
        .map_or(1, |user| user.code.max(1));
    eprintln!("error: {err:#}");
    ExitCode::from(code)
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
    fn other_errors_exit_with_one() {
        let err = anyhow::anyhow!("boom").context("while testing");
        assert_eq!(report(&err), ExitCode::from(1));
    }
}
