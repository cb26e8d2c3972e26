//! Cross-crate integration tests live beside this file, one `[[test]]` each.
