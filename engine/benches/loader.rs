//! Loader throughput (images/s) with the training transforms at 224 and 384 px.
//!
//! `cargo bench -p engine --bench loader` writes a temporary Arrow file of 640x480 JPEGs (COCO-like
//! sizes) and times full epochs for several worker counts.

use std::sync::Arc;
use std::time::Instant;

use engine::data::synth_tokenizer::train_tokenizer;
use engine::data::*;
use image::{ImageFormat, RgbImage};

const IMAGES: usize = 96;
const BATCH: usize = 16;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut images = Vec::new();
    let mut captions = Vec::new();
    for i in 0..IMAGES {
        let img = RgbImage::from_fn(640, 480, |x, y| {
            let v = ((x * 7 + y * 3 + i as u32 * 11) % 251) as u8;
            image::Rgb([v, (x / 3) as u8, (y / 2) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).expect("encode");
        images.push(out.into_inner());
        captions.push(vec![format!(
            "a picture of {i} red circles and a blue square"
        )]);
    }
    let corpus: Vec<String> = captions.iter().flatten().cloned().collect();
    write_arrow(
        &dir.path().join("bench.arrow"),
        &[
            ("image", Column::Binary(images)),
            ("caption", Column::StrList(captions)),
        ],
        None,
    )
    .expect("write");
    let tok_path = dir.path().join("tokenizer.json");
    train_tokenizer(&corpus, &tok_path).expect("tokenizer");
    let tokenizer = Arc::new(TextTokenizer::from_file(&tok_path, 40).expect("tokenizer"));
    let dataset = Arc::new(
        ViltDataset::open(dir.path(), &["bench".to_string()], DatasetKind::Captions).expect("open"),
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut workers: Vec<usize> = vec![0, 1, 2, 4, 8];
    workers.retain(|&w| w <= cores.max(2));

    println!("loader throughput, {IMAGES} JPEG 640x480 per epoch, batch {BATCH}, {cores} cores");
    println!(
        "{:<20} {:>5} {:>8} {:>10} {:>12}",
        "transform", "size", "workers", "images/s", "ms/batch"
    );
    for key in ["albef_randaug_wc", "clip"] {
        for size in [224u32, 384] {
            for &w in &workers {
                let transform = ImageTransform::from_key(key, size).expect("transform");
                let pipeline = SamplePipeline::new(dataset.clone(), transform, tokenizer.clone());
                let loader = Loader::new(
                    pipeline,
                    LoaderConfig {
                        batch_size: BATCH,
                        shuffle: true,
                        drop_last: true,
                        seed: 0,
                        num_workers: w,
                        prefetch: 2,
                    },
                )
                .expect("loader");
                let started = Instant::now();
                let mut n = 0usize;
                let mut batches = 0usize;
                for batch in loader.epoch(0) {
                    n += batch.expect("batch").len();
                    batches += 1;
                }
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{:<20} {:>5} {:>8} {:>10.1} {:>12.1}",
                    key,
                    size,
                    w,
                    n as f64 / secs,
                    1000.0 * secs / batches as f64
                );
            }
        }
    }
}
