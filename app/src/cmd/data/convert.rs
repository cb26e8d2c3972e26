//! `towerlab data convert`: arguments, progress bar and the closing report.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use engine::data::convert::{
    convert, ConvertEvent, ConvertOptions, ConvertReport, Dataset, ImageCheck, OutputStatus,
    SkipReason,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Skipped images shown on the terminal (all of them are in the `.tsv` list).
const SHOWN_SKIPPED: usize = 10;

pub const LAYOUTS: &str = "\
Raw layouts (--raw ROOT), as the reference's writers read them:
  vqav2    ROOT/vqav2/v2_OpenEnded_mscoco_{train2014,val2014,test2015,test-dev2015}_questions.json,
           ROOT/vqav2/v2_mscoco_{train2014,val2014}_annotations.json, ROOT/{train2014,val2014,test2015}/
  vgqa     ROOT/annotations/question_answers.json, ROOT/image_data.json, ROOT/images/{VG_100K,VG_100K_2}/,
           ROOT/vgqa/{ids,coco_ids}.json or ROOT/coco_splits/karpathy_{train,val,test}_images.txt;
           the VQAv2 answers: OUT/vqav2_answers.json (convert vqav2 first) or --vqav2-raw
  nlvr2    ROOT/nlvr2/data/{train,dev,test1}.json, .../{balanced,unbalanced}/*_{dev,test1}.json,
           ROOT/images/train/<directory>/, ROOT/{dev,test1}/
  snli-ve  ROOT/snli_ve/snli_ve_{train,dev,test}.jsonl, ROOT/flickr30k-images/
  f30k     ROOT/karpathy/dataset_flickr30k.json, ROOT/flickr30k-images/
  coco     ROOT/karpathy/dataset_coco.json, ROOT/{train2014,val2014}/
  vg       ROOT/annotations/region_descriptions.json, ROOT/images/{VG_100K,VG_100K_2}/
  sbu      ROOT/sbu-captions-all.json, ROOT/SBU/
  gcc      ROOT/utils/{Train_GCC-training,Validation_GCC-1.1.0-Validation}.tsv,
           ROOT/{train,val}_image_exist.txt, ROOT/{train,val}_image/

Row order: the reference shuffles its image list without a seed; here the list (sorted by path)
is shuffled by a ChaCha8 stream keyed by --seed and the file's name: same seed, same bytes.
Re-running skips the files already converted with the same settings; a file converted with other
settings (or by another tool) is an error unless --force.";

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// vqav2, vgqa, nlvr2, snli-ve, f30k, coco, vg, sbu or gcc.
    #[arg(value_parser = parse_dataset)]
    dataset: Dataset,
    /// The raw dataset root (see the layouts below).
    #[arg(long, value_name = "DIR")]
    raw: PathBuf,
    /// Where the .arrow files go (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of the row order (the reference's shuffle is unseeded).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads reading and checking images [default: all cores].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// structure: JPEG/PNG headers, segments and end markers; decode: a full decode of every image.
    #[arg(long, default_value = "structure", value_parser = parse_check)]
    check: ImageCheck,
    /// Rows per shard of sbu and gcc.
    #[arg(long, value_name = "ROWS", default_value_t = 100_000)]
    shard_size: usize,
    /// vgqa: the VQAv2 raw root to build the answer vocabulary from.
    #[arg(long, value_name = "DIR")]
    vqav2_raw: Option<PathBuf>,
    /// Overwrite existing outputs, even ones converted with other settings.
    #[arg(long)]
    force: bool,
    /// fsync each file before it takes its name (durable across a power loss; slower).
    #[arg(long)]
    sync: bool,
}

fn parse_dataset(s: &str) -> Result<Dataset, String> {
    s.parse()
}

fn parse_check(s: &str) -> Result<ImageCheck, String> {
    s.parse()
}

/// The bar on a terminal; plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    fn event(&self, event: &ConvertEvent) {
        match event {
            ConvertEvent::Phase(what) => match &self.bar {
                Some(bar) => bar.set_message(what.to_string()),
                None => tracing::info!("{what}"),
            },
            ConvertEvent::Planned { files, rows } => {
                if let Some(bar) = &self.bar {
                    bar.set_length(*rows);
                    bar.set_position(0);
                    bar.reset_eta();
                    bar.set_style(
                        ProgressStyle::with_template(
                            "[{bar:30}] {pos}/{len} images  {per_sec}  ETA {eta}  {msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_message(format!("{files} files"));
                }
            }
            ConvertEvent::Progress { rows } => {
                if let Some(bar) = &self.bar {
                    bar.inc(*rows);
                }
            }
            ConvertEvent::OutputDone(out) => {
                let file = format!("{}.arrow", out.name);
                let text = match out.status {
                    OutputStatus::UpToDate => {
                        format!("{file:<36} {:>9} rows  up to date", out.rows)
                    }
                    OutputStatus::Written if out.skipped_images > 0 => format!(
                        "{file:<36} {:>9} rows  ({} images skipped)",
                        out.rows, out.skipped_images
                    ),
                    OutputStatus::Written => format!("{file:<36} {:>9} rows", out.rows),
                };
                self.line(&text);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn summary(report: &ConvertReport, elapsed: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some((path, n)) = &report.vocab {
        lines.push(format!("{}: {n} answers", path.display()));
    }
    if !report.skipped.is_empty() {
        let missing = report.missing();
        lines.push(format!(
            "skipped {} images ({missing} missing, {} unreadable or corrupt){}",
            report.skipped.len(),
            report.skipped.len() - missing,
            report
                .skipped_list
                .as_ref()
                .map(|p| format!(", all listed in {}", p.display()))
                .unwrap_or_default()
        ));
        for s in report.skipped.iter().take(SHOWN_SKIPPED) {
            let reason = match &s.reason {
                SkipReason::Missing => "missing".to_string(),
                other => other.to_string(),
            };
            lines.push(format!("  {}  {reason}", s.path.display()));
        }
        if report.skipped.len() > SHOWN_SKIPPED {
            lines.push(format!(
                "  ... and {} more",
                report.skipped.len() - SHOWN_SKIPPED
            ));
        }
    }
    let written = report
        .outputs
        .iter()
        .filter(|o| o.status == OutputStatus::Written)
        .count();
    let up_to_date = report.outputs.len() - written;
    let images: usize = report
        .outputs
        .iter()
        .filter(|o| o.status == OutputStatus::Written)
        .map(|o| o.rows)
        .sum();
    let secs = elapsed.as_secs_f64();
    let mut last = format!(
        "converted {}: {} files ({written} written, {up_to_date} up to date), {images} rows written in {secs:.1}s",
        report.dataset,
        report.outputs.len(),
    );
    if images > 0 && secs > 0.0 {
        last.push_str(&format!(" ({:.0} rows/s)", images as f64 / secs));
    }
    lines.push(last);
    lines
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut opts = ConvertOptions::new(&args.raw, &args.out);
    opts.seed = args.seed;
    if let Some(jobs) = args.jobs {
        anyhow::ensure!(jobs > 0, "--jobs must be at least 1");
        opts.jobs = jobs;
    }
    anyhow::ensure!(args.shard_size > 0, "--shard-size must be at least 1");
    opts.check = args.check;
    opts.shard_size = args.shard_size;
    opts.vqav2_raw = args.vqav2_raw;
    opts.force = args.force;
    opts.sync = args.sync;
    let progress = Progress::new();
    // The engine calls back from its writer thread only; the lock keeps lines whole anyway.
    let lock = Mutex::new(());
    let report = convert(args.dataset, &opts, &|event| {
        let _guard = lock.lock();
        progress.event(event);
    });
    progress.finish();
    let report = report.with_context(|| {
        format!(
            "converting {} from {} into {}",
            args.dataset,
            args.raw.display(),
            args.out.display()
        )
    })?;
    for line in summary(&report, started.elapsed()) {
        println!("{line}");
    }
    Ok(())
}
