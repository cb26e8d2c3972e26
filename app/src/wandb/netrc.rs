//! Just enough of the `.netrc` format to find the W&B key: `machine`, `default`, `login`,
//! `password`, `account` and `macdef` (skipped up to its blank line).

/// The password of the entry for `host` (or of the `default` entry when no machine matches).
pub fn password_for(text: &str, host: &str) -> Option<String> {
    let mut tokens = Tokens::new(text);
    let mut current: Option<bool> = None; // Some(true): the entry for `host`.
    let mut default_password = None;
    let mut in_default = false;
    while let Some(token) = tokens.next() {
        match token {
            "machine" => {
                let name = tokens.next()?;
                current = Some(name == host);
                in_default = false;
            }
            "default" => {
                current = Some(false);
                in_default = true;
            }
            "password" => {
                let value = tokens.next()?;
                if current == Some(true) {
                    return Some(value.to_owned());
                }
                if in_default && default_password.is_none() {
                    default_password = Some(value.to_owned());
                }
            }
            "login" | "account" => {
                tokens.next();
            }
            "macdef" => {
                tokens.next();
                tokens.skip_macro();
            }
            _ => {}
        }
    }
    default_password
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    /// A macro body runs to the first empty line.
    fn skip_macro(&mut self) {
        match self.rest.find("\n\n") {
            Some(end) => self.rest = &self.rest[end + 2..],
            None => self.rest = "",
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            self.rest = self.rest.trim_start();
            if self.rest.starts_with('#') {
                // A comment runs to the end of its line.
                let end = self.rest.find('\n').unwrap_or(self.rest.len());
                self.rest = &self.rest[end..];
                continue;
            }
            break;
        }
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .find(char::is_whitespace)
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_machine_entry() {
        let text = "machine example.com login a password x\n\
                    # a comment\n\
                    machine api.wandb.ai\n  login user\n  password k123\n";
        assert_eq!(password_for(text, "api.wandb.ai").as_deref(), Some("k123"));
        assert_eq!(password_for(text, "example.com").as_deref(), Some("x"));
        assert_eq!(password_for(text, "other.org"), None);
    }

    #[test]
    fn falls_back_to_default_and_skips_macros() {
        let text = "macdef init\npassword nope\n\ndefault login u password dflt\n";
        assert_eq!(password_for(text, "api.wandb.ai").as_deref(), Some("dflt"));
    }
}
