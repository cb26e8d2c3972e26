//! Writes every table and figure of the built-in sample ablation into a folder:
//! `cargo run -p reports --example sample -- OUT_DIR`; `-- OUT_DIR study N` writes the study
//! grid with N (1 to 3) axes instead.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/report-sample"));
    let input = match (std::env::args().nth(2).as_deref(), std::env::args().nth(3)) {
        (Some("study"), Some(n)) => reports::sample::study_input(n.parse()?),
        _ => reports::sample::sample_input(),
    };
    let written = reports::write_all(&input, &out, &reports::Format::ALL)?;
    for f in &written.files {
        println!("{}", f.display());
    }
    for s in &written.skipped {
        println!("skipped {s}");
    }
    print!(
        "{}",
        reports::render_terminal(&reports::build_table(&input)?)
    );
    Ok(())
}
