//! `towerlab data`: convert the raw public datasets, write the synthetic dataset, inspect Arrow
//! dataset files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use engine::data::{inspect_path, synth, SynthSize};

use crate::exit::UserError;

mod convert;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write a synthetic dataset of coloured-shape scenes in every ViLT format, plus tokenizer.json.
    Synth {
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// small: 64 px images, a few hundred per split; medium: 128 px, thousands.
        #[arg(long, default_value = "small", value_parser = parse_size)]
        size: SynthSize,
        /// Same seed, byte-identical files.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Convert a raw public dataset into the reference's ViLT Arrow tables (same files, columns,
    /// types and values as its `write_*.py`), streamed, on all cores, in a seeded order.
    #[command(after_long_help = convert::LAYOUTS)]
    Convert(convert::ConvertArgs),
    /// Rows, columns, decoded samples and label baselines of an .arrow file or a directory.
    Inspect {
        /// A .arrow file or a directory of them.
        path: PathBuf,
        /// Decoded samples to show per file.
        #[arg(long, default_value_t = 3)]
        samples: usize,
    },
}

fn parse_size(s: &str) -> Result<SynthSize, String> {
    s.parse()
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Convert(args) => convert::run(args),
        DataCommand::Synth { out, size, seed } => {
            let started = Instant::now();
            let report = synth(&out, size, seed)
                .with_context(|| format!("writing the synthetic dataset to {}", out.display()))?;
            for (name, rows) in &report.files {
                println!("{name}.arrow  {rows} rows");
            }
            println!(
                "tokenizer.json, vqav2_answers.json ({} answers)",
                report.vqa_answers
            );
            println!(
                "wrote {} files to {} in {:.1}s",
                report.files.len() + 2,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        DataCommand::Inspect { path, samples } => {
            let summaries = inspect_path(&path, samples).map_err(|e| {
                let code = if e.is_invalid_file() { 2 } else { 1 };
                anyhow::Error::new(UserError {
                    code,
                    message: e.to_string(),
                })
            })?;
            let mut unreadable = Vec::new();
            for s in &summaries {
                println!("{s}");
                if let Err(why) = &s.samples {
                    unreadable.push(format!("{}: {why}", s.path.display()));
                }
            }
            // A file that is not a dataset of any task is invalid input, whatever was printed.
            if !unreadable.is_empty() {
                return Err(anyhow::Error::new(UserError {
                    code: 2,
                    message: unreadable.join("; "),
                }));
            }
            Ok(())
        }
    }
}
