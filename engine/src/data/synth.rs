//! A synthetic dataset of coloured-shape scenes in every ViLT format, for learnability checks.
//!
//! Scenes hold circles, squares and triangles of six colours on a jittered grid, so counts and
//! spatial relations (left/right/above/below by grid cell) are exact. Caption scenes
//! (pre-training and retrieval) sit on a lighter shade of a colour no object has, named by a word
//! of its own (`pink`, `mint`, ...) at the start of every caption: a global cue for image-text
//! matching. VQA scenes get one too, with a question about its colour: the first thing a tiny
//! model learns to read from the image (the other questions' text alone sets a strong prior).
//! Texts are built so that the image and the text are both needed: VQA count answers are drawn
//! uniformly before the scene is built, yes/no questions are balanced, NLVR2 labels are balanced
//! by rejection, and SNLI-VE templates are shared between labels (a text-only model cannot tell
//! them apart).
//! Everything comes from one seed: the same seed writes byte-identical files.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::{DataError, DataResult};
use super::vocab::AnswerVocab;
use super::writer::{write_arrow, Column};

pub const COLOURS: [&str; 6] = ["red", "green", "blue", "yellow", "purple", "orange"];
const RGB: [[u8; 3]; 6] = [
    [215, 40, 40],
    [40, 165, 60],
    [45, 80, 215],
    [225, 200, 35],
    [135, 55, 175],
    [240, 130, 25],
];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
/// Names of the lighter shades of [`COLOURS`] that caption backgrounds are painted with: words
/// of their own, so that a background is never confused with an object's colour.
const BACKGROUNDS: [&str; 6] = ["pink", "mint", "sky", "gold", "lilac", "peach"];
const NUMBERS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
const RELATIONS: [&str; 4] = ["to the left of", "to the right of", "above", "below"];
const MATERIALS: [&str; 5] = ["wood", "metal", "paper", "plastic", "glass"];

/// The VQA answer vocabulary, in label order.
pub fn answer_vocabulary() -> Vec<String> {
    let mut v: Vec<String> = vec!["yes".into(), "no".into()];
    v.extend((0..=9).map(|k| k.to_string()));
    v.extend(COLOURS.iter().map(|s| s.to_string()));
    v.extend(SHAPES.iter().map(|s| s.to_string()));
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthSize {
    Small,
    Medium,
}

impl std::str::FromStr for SynthSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "small" => Ok(Self::Small),
            "medium" => Ok(Self::Medium),
            o => Err(format!("unknown size `{o}` (expected small or medium)")),
        }
    }
}

struct Plan {
    image: u32,
    grid: u32,
    max_objects: usize,
    /// Images (or pairs) per split for the main fine-tuning sets.
    train: usize,
    eval: usize,
    /// Images of each pre-training-only set (vg, sbu, gcc).
    pretrain: usize,
}

impl SynthSize {
    fn plan(self) -> Plan {
        match self {
            Self::Small => Plan {
                image: 64,
                grid: 3,
                max_objects: 6,
                train: 192,
                eval: 48,
                pretrain: 96,
            },
            Self::Medium => Plan {
                image: 128,
                grid: 4,
                max_objects: 9,
                train: 2048,
                eval: 256,
                pretrain: 1024,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Obj {
    shape: usize,
    colour: usize,
    row: u32,
    col: u32,
}

#[derive(Debug, Clone)]
struct Scene {
    objects: Vec<Obj>,
    /// A lighter shade of one of [`COLOURS`] (named by [`BACKGROUNDS`]); `None` is plain grey.
    background: Option<usize>,
}

impl Scene {
    fn count(&self, colour: Option<usize>, shape: Option<usize>) -> usize {
        self.objects
            .iter()
            .filter(|o| colour.is_none_or(|c| o.colour == c) && shape.is_none_or(|s| o.shape == s))
            .count()
    }

    /// Objects whose (colour, shape) is unique in the scene: they can be named unambiguously.
    fn unique(&self) -> Vec<Obj> {
        self.objects
            .iter()
            .copied()
            .filter(|o| self.count(Some(o.colour), Some(o.shape)) == 1)
            .collect()
    }
}

fn relation_holds(a: &Obj, rel: usize, b: &Obj) -> bool {
    match rel {
        0 => a.col < b.col,
        1 => a.col > b.col,
        2 => a.row < b.row,
        _ => a.row > b.row,
    }
}

fn name(o: &Obj) -> String {
    format!("{} {}", COLOURS[o.colour], SHAPES[o.shape])
}

fn plural(shape: usize, k: usize) -> String {
    if k == 1 {
        SHAPES[shape].to_string()
    } else {
        format!("{}s", SHAPES[shape])
    }
}

struct Gen {
    rng: ChaCha8Rng,
    plan: Plan,
}

impl Gen {
    /// A scene with exactly `required` objects of each given (colour, shape) and random others
    /// (never of a required kind), up to `total` objects.
    fn scene(&mut self, required: &[(usize, usize, usize)], total: usize) -> Scene {
        let g = self.plan.grid;
        let mut cells: Vec<(u32, u32)> = (0..g).flat_map(|r| (0..g).map(move |c| (r, c))).collect();
        cells.shuffle(&mut self.rng);
        let mut objects = Vec::new();
        for &(colour, shape, k) in required {
            for _ in 0..k {
                if let Some((row, col)) = cells.pop() {
                    objects.push(Obj {
                        shape,
                        colour,
                        row,
                        col,
                    });
                }
            }
        }
        while objects.len() < total {
            let Some((row, col)) = cells.pop() else { break };
            let (colour, shape) = loop {
                let c = self.rng.gen_range(0..COLOURS.len());
                let s = self.rng.gen_range(0..SHAPES.len());
                if !required.iter().any(|&(rc, rs, _)| rc == c && rs == s) {
                    break (c, s);
                }
            };
            objects.push(Obj {
                shape,
                colour,
                row,
                col,
            });
        }
        Scene {
            objects,
            background: None,
        }
    }

    fn random_scene(&mut self) -> Scene {
        let n = self.rng.gen_range(2..=self.plan.max_objects);
        self.scene(&[], n)
    }

    /// A scene for the caption sets, on a coloured background that every caption names: a
    /// global cue for image-text matching, while the rest of a caption (objects, counts,
    /// relations) needs the objects. The background's colour is one no object has, so every
    /// object stays visible.
    fn caption_scene(&mut self) -> Scene {
        let mut scene = self.random_scene();
        self.paint_background(&mut scene);
        scene
    }

    /// Gives the scene a background of a colour no object has (any colour when all are used).
    fn paint_background(&mut self, scene: &mut Scene) {
        let free: Vec<usize> = (0..COLOURS.len())
            .filter(|&c| scene.count(Some(c), None) == 0)
            .collect();
        scene.background = Some(match free.choose(&mut self.rng) {
            Some(&c) => c,
            None => self.rng.gen_range(0..COLOURS.len()),
        });
    }

    fn render(&mut self, scene: &Scene) -> RgbImage {
        let s = self.plan.image;
        let cell = s as f32 / self.plan.grid as f32;
        let base = self.rng.gen_range(225..=245u8);
        // Three quarters of the full colour: paler tints all but vanish behind the ViT's
        // LayerNorm (a bright offset with small hue differences), and matching stalls.
        let tint = |v: u8, c: usize| match scene.background {
            Some(b) => 255 - ((255 - RGB[b][c] as u32) * 3 / 4) as u8 - (255 - v) / 2,
            None => v,
        };
        // Per-pixel noise from a hash of one draw: cheap even in debug builds.
        let noise_seed: u64 = self.rng.gen();
        let mut img = RgbImage::from_fn(s, s, |x, y| {
            let n = (super::loader::mix(noise_seed ^ (y as u64 * s as u64 + x as u64)) % 9) as u8;
            let v = base.saturating_sub(n);
            image::Rgb([tint(v, 0), tint(v, 1), tint(v, 2)])
        });
        for o in &scene.objects {
            let r = cell * self.rng.gen_range(0.28..0.38);
            let jitter = cell * 0.08;
            let cx = (o.col as f32 + 0.5) * cell + self.rng.gen_range(-jitter..=jitter);
            let cy = (o.row as f32 + 0.5) * cell + self.rng.gen_range(-jitter..=jitter);
            let colour = RGB[o.colour];
            let (x0, x1) = (
                (cx - r).floor().max(0.0) as u32,
                ((cx + r).ceil() as u32).min(s - 1),
            );
            let (y0, y1) = (
                (cy - r).floor().max(0.0) as u32,
                ((cy + r).ceil() as u32).min(s - 1),
            );
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                    let inside = match o.shape {
                        0 => dx * dx + dy * dy <= r * r,
                        1 => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
                        _ => {
                            // Upward triangle: apex at the top, base at 0.8r below the centre.
                            let t = (dy + r) / (1.8 * r);
                            (0.0..=1.0).contains(&t) && dx.abs() <= t * r
                        }
                    };
                    if inside {
                        img.put_pixel(x, y, image::Rgb(colour));
                    }
                }
            }
        }
        img
    }

    fn encode(&mut self, img: &RgbImage, format: ImageFormat) -> DataResult<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format)
            .map_err(|e| DataError::Image(e.to_string()))?;
        Ok(out.into_inner())
    }

    fn listing(&self, scene: &Scene) -> String {
        let mut groups: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for o in &scene.objects {
            *groups.entry((o.colour, o.shape)).or_default() += 1;
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|(&(c, s), &k)| {
                if k == 1 {
                    format!("a {} {}", COLOURS[c], SHAPES[s])
                } else {
                    format!("{} {} {}", NUMBERS[k], COLOURS[c], plural(s, k))
                }
            })
            .collect();
        match parts.len() {
            0 => "nothing".into(),
            1 => parts[0].clone(),
            n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
        }
    }

    /// A true relation sentence between two nameable objects, when there are two.
    fn relation_caption(&mut self, scene: &Scene) -> Option<String> {
        let uniq = scene.unique();
        if uniq.len() < 2 {
            return None;
        }
        let mut pair: Vec<Obj> = uniq.choose_multiple(&mut self.rng, 2).copied().collect();
        pair.shuffle(&mut self.rng);
        let (a, b) = (pair[0], pair[1]);
        let rels: Vec<usize> = (0..4).filter(|&r| relation_holds(&a, r, &b)).collect();
        let rel = *rels.choose(&mut self.rng)?;
        Some(format!("a {} {} a {}", name(&a), RELATIONS[rel], name(&b)))
    }

    /// `n` distinct true captions. Each starts by naming the background (always in the same
    /// place, and before `max_text_len` can cut it off); the rest lists objects, counts or a
    /// relation.
    fn captions(&mut self, scene: &Scene, n: usize) -> Vec<String> {
        let bg = scene.background.map_or("grey", |b| BACKGROUNDS[b]);
        let mut out = vec![format!("a {bg} background with {}", self.listing(scene))];
        let total = scene.objects.len();
        let mut tries = 0;
        while out.len() < n && tries < 20 {
            tries += 1;
            let c = match self.rng.gen_range(0..4) {
                0 => self
                    .relation_caption(scene)
                    .map(|r| format!("a {bg} background where {r}")),
                1 => Some(format!("a {bg} background with {} shapes", NUMBERS[total])),
                2 => {
                    let s = self.rng.gen_range(0..SHAPES.len());
                    let k = scene.count(None, Some(s));
                    Some(format!(
                        "a {bg} background and {} {}",
                        NUMBERS[k],
                        plural(s, k)
                    ))
                }
                _ => Some(format!("a {bg} picture of {}", self.listing(scene))),
            };
            if let Some(c) = c {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        while out.len() < n {
            out.push(format!(
                "a {bg} picture of {} coloured shapes",
                NUMBERS[total]
            ));
        }
        out
    }
}

/// What [`synth`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthReport {
    pub dir: PathBuf,
    /// Every table (name without `.arrow`) with its rows.
    pub files: Vec<(String, usize)>,
    pub vqa_answers: usize,
    /// The files (by name) that were missing or differed and were written; the others were
    /// already byte-identical and were left untouched (their modification time kept, so run
    /// identities that hash it do not change).
    pub written: Vec<String>,
}

/// The VQA tables under the reference's names too (`vqav2_*_fix`, the tables a VQA run reads
/// by default): the synthetic answers are normalised already, so they hold the same rows.
const VQA_FIX_COPIES: [(&str, &str); 3] = [
    ("vqav2_train", "vqav2_train_fix"),
    ("vqav2_val", "vqav2_val_fix"),
    ("vqav2_test", "vqav2_test_fix"),
];

struct Vqa {
    questions: Vec<String>,
    answers: Vec<Vec<String>>,
    labels: Vec<Vec<i64>>,
    scores: Vec<Vec<f64>>,
}

impl Gen {
    /// A VQA image with its questions; the first question's count is planned.
    fn vqa_image(&mut self, vocab: &[String]) -> (Scene, Vqa) {
        let k = self.rng.gen_range(0..=3usize);
        let (tc, ts) = (
            self.rng.gen_range(0..COLOURS.len()),
            self.rng.gen_range(0..SHAPES.len()),
        );
        let total = self.rng.gen_range((k + 1).max(2)..=self.plan.max_objects);
        let mut scene = self.scene(&[(tc, ts, k)], total);
        // Distractors of the same colour or shape make the count need both words.
        if let Some(o) = scene.objects.get_mut(k) {
            if self.rng.gen_bool(0.5) {
                o.colour = tc;
                o.shape = (ts + 1 + self.rng.gen_range(0..2)) % 3;
            } else {
                o.shape = ts;
                o.colour = (tc + 1 + self.rng.gen_range(0..5)) % 6;
            }
        }
        let mut qa: Vec<(String, String)> = Vec::new();
        qa.push((
            format!("how many {} {}s are there?", COLOURS[tc], SHAPES[ts]),
            scene.count(Some(tc), Some(ts)).to_string(),
        ));
        // Balanced existence question.
        let want_yes = self.rng.gen_bool(0.5);
        let (c, s) = if want_yes {
            let o = *scene
                .objects
                .choose(&mut self.rng)
                .expect("scene has objects");
            (o.colour, o.shape)
        } else {
            loop {
                let c = self.rng.gen_range(0..COLOURS.len());
                let s = self.rng.gen_range(0..SHAPES.len());
                if scene.count(Some(c), Some(s)) == 0 {
                    break (c, s);
                }
            }
        };
        qa.push((
            format!("is there a {} {}?", COLOURS[c], SHAPES[s]),
            if scene.count(Some(c), Some(s)) > 0 {
                "yes"
            } else {
                "no"
            }
            .into(),
        ));
        // Balanced relation question between two nameable objects.
        let uniq = scene.unique();
        if uniq.len() >= 2 {
            let pair: Vec<Obj> = uniq.choose_multiple(&mut self.rng, 2).copied().collect();
            let (a, b) = (pair[0], pair[1]);
            let want = self.rng.gen_bool(0.5);
            let rels: Vec<usize> = (0..4)
                .filter(|&r| relation_holds(&a, r, &b) == want)
                .collect();
            if let Some(&rel) = rels.choose(&mut self.rng) {
                qa.push((
                    format!("is the {} {} the {}?", name(&a), RELATIONS[rel], name(&b)),
                    if relation_holds(&a, rel, &b) {
                        "yes"
                    } else {
                        "no"
                    }
                    .into(),
                ));
            }
        }
        // Attribute question about a shape (or colour) that occurs once.
        let shape_once: Vec<usize> = (0..3)
            .filter(|&s| scene.count(None, Some(s)) == 1)
            .collect();
        let colour_once: Vec<usize> = (0..6)
            .filter(|&c| scene.count(Some(c), None) == 1)
            .collect();
        if self.rng.gen_bool(0.5) && !shape_once.is_empty() {
            let s = *shape_once.choose(&mut self.rng).expect("non-empty");
            let o = scene
                .objects
                .iter()
                .find(|o| o.shape == s)
                .expect("present");
            qa.push((
                format!("what color is the {}?", SHAPES[s]),
                COLOURS[o.colour].into(),
            ));
        } else if let Some(&c) = colour_once.choose(&mut self.rng) {
            let o = scene
                .objects
                .iter()
                .find(|o| o.colour == c)
                .expect("present");
            qa.push((
                format!("what shape is the {} object?", COLOURS[c]),
                SHAPES[o.shape].into(),
            ));
        }
        // A shape count (unplanned, usually 0-3).
        let s = self.rng.gen_range(0..3);
        qa.push((
            format!("how many {}s are there?", SHAPES[s]),
            scene.count(None, Some(s)).to_string(),
        ));
        // The background: a whole-image cue, the first thing a model learns to read from the
        // image (the other questions' text alone already sets a strong prior).
        self.paint_background(&mut scene);
        if let Some(b) = scene.background {
            qa.push(("what color is the background?".into(), COLOURS[b].into()));
        }

        let mut out = Vqa {
            questions: Vec::new(),
            answers: Vec::new(),
            labels: Vec::new(),
            scores: Vec::new(),
        };
        for (q, a) in qa {
            // Ten annotators; for counts some are off by one, giving soft scores.
            let mut votes: BTreeMap<String, usize> = BTreeMap::new();
            let noisy = a.parse::<usize>().ok().filter(|_| self.rng.gen_bool(0.3));
            for i in 0..10 {
                let v = match noisy {
                    Some(n) if i < self.rng.gen_range(1..=3) => if n == 0 || self.rng.gen_bool(0.5)
                    {
                        n + 1
                    } else {
                        n - 1
                    }
                    .to_string(),
                    _ => a.clone(),
                };
                *votes.entry(v).or_default() += 1;
            }
            let mut answers = Vec::new();
            let mut labels = Vec::new();
            let mut scores = Vec::new();
            for (ans, n) in votes {
                if let Some(l) = vocab.iter().position(|v| *v == ans) {
                    answers.push(ans);
                    labels.push(l as i64);
                    scores.push(super::convert::vqa_score(n));
                }
            }
            out.questions.push(q);
            out.answers.push(answers);
            out.labels.push(labels);
            out.scores.push(scores);
        }
        (scene, out)
    }

    /// One NLVR2 statement about a pair, with the wanted truth value when it can be found.
    fn nlvr2_statement(&mut self, left: &Scene, right: &Scene, want: bool) -> (String, bool) {
        let mut last = (String::new(), false);
        for _ in 0..64 {
            let s = self.rng.gen_range(0..3);
            let c = self.rng.gen_range(0..6);
            let (text, truth) = match self.rng.gen_range(0..4) {
                0 => (
                    format!(
                        "the left image has more {}s than the right image",
                        SHAPES[s]
                    ),
                    left.count(None, Some(s)) > right.count(None, Some(s)),
                ),
                1 => {
                    let k = self.rng.gen_range(0..=3);
                    let side = self.rng.gen_bool(0.5);
                    let scene = if side { right } else { left };
                    (
                        format!(
                            "the {} image contains exactly {} {} shapes",
                            if side { "right" } else { "left" },
                            NUMBERS[k],
                            COLOURS[c]
                        ),
                        scene.count(Some(c), None) == k,
                    )
                }
                2 => (
                    format!("both images contain a {} {}", COLOURS[c], SHAPES[s]),
                    left.count(Some(c), Some(s)) > 0 && right.count(Some(c), Some(s)) > 0,
                ),
                _ => {
                    let k = self.rng.gen_range(1..=5);
                    (
                        format!("there are {} {} in total", NUMBERS[k], plural(s, k)),
                        left.count(None, Some(s)) + right.count(None, Some(s)) == k,
                    )
                }
            };
            last = (text, truth);
            if truth == want {
                break;
            }
        }
        last
    }

    /// "the A is REL the B" about two nameable objects, true or false as asked.
    fn relation_hypothesis(&mut self, scene: &Scene, truth: bool) -> Option<String> {
        let uniq = scene.unique();
        if uniq.len() < 2 {
            return None;
        }
        let pair: Vec<Obj> = uniq.choose_multiple(&mut self.rng, 2).copied().collect();
        let rels: Vec<usize> = (0..4)
            .filter(|&r| relation_holds(&pair[0], r, &pair[1]) == truth)
            .collect();
        let rel = *rels.choose(&mut self.rng)?;
        Some(format!(
            "the {} is {} the {}",
            name(&pair[0]),
            RELATIONS[rel],
            name(&pair[1])
        ))
    }

    /// SNLI-VE hypotheses: one per label, templates shared across labels.
    fn snli_hypothesis(&mut self, scene: &Scene, label: i64) -> String {
        let present: Vec<Obj> = scene.objects.clone();
        let absent: Vec<(usize, usize)> = (0..6)
            .flat_map(|c| (0..3).map(move |s| (c, s)))
            .filter(|&(c, s)| scene.count(Some(c), Some(s)) == 0)
            .collect();
        let material = MATERIALS[self.rng.gen_range(0..MATERIALS.len())];
        match label {
            // neutral: a property the picture cannot show, of an object that is there.
            1 => {
                let o = present.choose(&mut self.rng).expect("scene has objects");
                format!("the {} is made of {material}", name(o))
            }
            2 => match self.rng.gen_range(0..3) {
                0 => {
                    let o = present.choose(&mut self.rng).expect("scene has objects");
                    format!("there is a {}", name(o))
                }
                1 => {
                    let s = self.rng.gen_range(0..3);
                    let k = scene.count(None, Some(s));
                    format!("there are {} {}", NUMBERS[k], plural(s, k))
                }
                _ => self.relation_hypothesis(scene, true).unwrap_or_else(|| {
                    format!("there are {} shapes", NUMBERS[scene.objects.len().min(9)])
                }),
            },
            // contradiction: the same templates, false; or a property of an absent object.
            _ => match self.rng.gen_range(0..3) {
                0 => {
                    let &(c, s) = absent.choose(&mut self.rng).expect("18 kinds > 9 cells");
                    if self.rng.gen_bool(0.5) {
                        format!("there is a {} {}", COLOURS[c], SHAPES[s])
                    } else {
                        format!("the {} {} is made of {material}", COLOURS[c], SHAPES[s])
                    }
                }
                1 => {
                    let s = self.rng.gen_range(0..3);
                    let k = scene.count(None, Some(s));
                    let wrong = if k == 0 || self.rng.gen_bool(0.5) {
                        k + 1
                    } else {
                        k - 1
                    };
                    format!("there are {} {}", NUMBERS[wrong], plural(s, wrong))
                }
                _ => self.relation_hypothesis(scene, false).unwrap_or_else(|| {
                    format!(
                        "there are {} shapes",
                        NUMBERS[(scene.objects.len() + 1).min(9)]
                    )
                }),
            },
        }
    }
}

/// Writes the synthetic dataset under `dir`. Deterministic for `seed`, and idempotent: the
/// set is made in a staging folder beside `dir`, and only files that are missing or differ
/// replace those in `dir` (each by an atomic rename), so making it twice leaves every file as
/// it was.
pub fn synth(dir: &Path, size: SynthSize, seed: u64) -> DataResult<SynthReport> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let staging = dir.join(format!(".synth-staging-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
    let made = synth_into(&staging, size, seed).and_then(|mut report| {
        report.written = publish(&staging, dir)?;
        report.dir = dir.to_path_buf();
        Ok(report)
    });
    let _ = std::fs::remove_dir_all(&staging);
    made
}

/// Moves every file of `staging` into `dir` unless `dir` already holds the same bytes; returns
/// the names moved.
fn publish(staging: &Path, dir: &Path) -> DataResult<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(staging)
        .map_err(|e| DataError::io(staging, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    let mut written = Vec::new();
    for name in names {
        let (from, to) = (staging.join(&name), dir.join(&name));
        let new = std::fs::read(&from).map_err(|e| DataError::io(&from, e))?;
        if std::fs::read(&to).is_ok_and(|old| old == new) {
            continue;
        }
        std::fs::rename(&from, &to).map_err(|e| DataError::io(&to, e))?;
        written.push(name);
    }
    Ok(written)
}

fn synth_into(dir: &Path, size: SynthSize, seed: u64) -> DataResult<SynthReport> {
    let mut gen = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        plan: size.plan(),
    };
    let (train, eval, pre) = (gen.plan.train, gen.plan.eval, gen.plan.pretrain);
    let vocab = answer_vocabulary();
    let mut files = Vec::new();
    let mut corpus: Vec<String> = Vec::new();
    let mut write = |name: &str, cols: &[(&str, Column)], corpus_add: Vec<String>| {
        let rows = cols.first().map(|(_, c)| c.len()).unwrap_or(0);
        write_arrow(&dir.join(format!("{name}.arrow")), cols, None)?;
        files.push((name.to_string(), rows));
        corpus.extend(corpus_add);
        Ok::<(), DataError>(())
    };

    // Caption sets: Karpathy-style (5 captions), VG (region phrases), SBU/GCC (1 caption).
    let caption_sets: Vec<(String, usize, usize, &str)> = vec![
        ("f30k_caption_karpathy_train".into(), train, 5, "f30k"),
        ("f30k_caption_karpathy_val".into(), eval, 5, "f30k"),
        ("f30k_caption_karpathy_test".into(), eval, 5, "f30k"),
        ("coco_caption_karpathy_train".into(), train, 5, "coco"),
        ("coco_caption_karpathy_restval".into(), eval, 5, "coco"),
        ("coco_caption_karpathy_val".into(), eval, 5, "coco"),
        ("coco_caption_karpathy_test".into(), eval, 5, "coco"),
        ("vg".into(), pre, 4, "vg"),
        ("sbu_0".into(), pre, 1, "sbu"),
        ("conceptual_caption_train_0".into(), pre, 1, "gcc"),
    ];
    let mut image_counter = 0u64;
    for (name, n, per, family) in caption_sets {
        let (mut images, mut caps, mut ids, mut splits) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let scene = gen.caption_scene();
            let img = gen.render(&scene);
            images.push(gen.encode(&img, ImageFormat::Jpeg)?);
            let c = if family == "vg" {
                let mut phrases: Vec<String> = scene
                    .objects
                    .iter()
                    .map(|o| name_phrase(o, gen.plan.grid))
                    .collect();
                phrases.truncate(per);
                phrases
            } else {
                gen.captions(&scene, per)
            };
            caps.push(c);
            image_counter += 1;
            ids.push(if family == "coco" {
                format!("COCO_val2014_{image_counter:012}.jpg")
            } else {
                format!("{image_counter}.jpg")
            });
            splits.push(name.rsplit('_').next().unwrap_or("train").to_string());
        }
        let text: Vec<String> = caps.iter().flatten().cloned().collect();
        let mut cols = vec![
            ("image", Column::Binary(images)),
            ("caption", Column::StrList(caps)),
            ("image_id", Column::Str(ids)),
        ];
        if family != "vg" {
            cols.push(("split", Column::Str(splits)));
        }
        write(&name, &cols, text)?;
    }

    // VQAv2: test rows have empty answer lists, as the reference's test split.
    let mut qid = 0i64;
    for (name, n, test) in [
        ("vqav2_train", train, false),
        ("vqav2_val", eval, false),
        ("vqav2_test", eval, true),
    ] {
        let (mut images, mut qs, mut ans, mut labs, mut scs, mut iids, mut qids) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let (scene, vqa) = gen.vqa_image(&vocab);
            let img = gen.render(&scene);
            images.push(gen.encode(&img, ImageFormat::Jpeg)?);
            qids.push(
                (0..vqa.questions.len())
                    .map(|_| {
                        qid += 1;
                        qid
                    })
                    .collect::<Vec<_>>(),
            );
            iids.push(i as i64);
            qs.push(vqa.questions);
            ans.push(vqa.answers);
            labs.push(vqa.labels);
            scs.push(vqa.scores);
        }
        let mut text: Vec<String> = qs.iter().flatten().cloned().collect();
        text.extend(ans.iter().flatten().flatten().cloned());
        let rows = images.len();
        let split = name.trim_start_matches("vqav2_").to_string();
        let (answers, labels, scores) = if test {
            (
                Column::EmptyLists(rows),
                Column::EmptyLists(rows),
                Column::EmptyLists(rows),
            )
        } else {
            (
                Column::StrListList(ans),
                Column::Int64ListList(labs),
                Column::F64ListList(scs),
            )
        };
        write(
            name,
            &[
                ("image", Column::Binary(images)),
                ("questions", Column::StrList(qs)),
                ("answers", answers),
                ("answer_labels", labels),
                ("answer_scores", scores),
                ("image_id", Column::Int64(iids)),
                ("question_id", Column::Int64List(qids)),
                ("split", Column::Str(vec![split; rows])),
            ],
            text,
        )?;
    }
    AnswerVocab::new(vocab.clone()).write(dir)?;

    // NLVR2: PNG pairs, 2 statements each, labels balanced.
    for (name, n) in [
        ("nlvr2_train", train),
        ("nlvr2_dev", eval),
        ("nlvr2_test1", eval),
    ] {
        let (mut im0, mut im1, mut qs, mut ans, mut ids) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let (left, right) = (gen.random_scene(), gen.random_scene());
            let (a, b) = (gen.render(&left), gen.render(&right));
            im0.push(gen.encode(&a, ImageFormat::Png)?);
            im1.push(gen.encode(&b, ImageFormat::Png)?);
            let mut q = Vec::new();
            let mut l = Vec::new();
            for _ in 0..2 {
                let want = gen.rng.gen_bool(0.5);
                let (text, truth) = gen.nlvr2_statement(&left, &right, want);
                q.push(text);
                l.push(if truth { "True" } else { "False" }.to_string());
            }
            qs.push(q);
            ans.push(l);
            ids.push(format!("{}-{i}-0", name.trim_start_matches("nlvr2_")));
        }
        let text = qs.iter().flatten().cloned().collect();
        write(
            name,
            &[
                ("image_0", Column::Binary(im0)),
                ("image_1", Column::Binary(im1)),
                ("questions", Column::StrList(qs)),
                ("answers", Column::StrList(ans)),
                ("identifier", Column::Str(ids)),
            ],
            text,
        )?;
    }

    // SNLI-VE: premise = a caption, one hypothesis per label in random order.
    for (name, n) in [
        ("snli_train", train),
        ("snli_dev", eval),
        ("snli_test", eval),
    ] {
        let (mut images, mut sents, mut labels) = (vec![], vec![], vec![]);
        for _ in 0..n {
            let scene = gen.random_scene();
            let img = gen.render(&scene);
            images.push(gen.encode(&img, ImageFormat::Jpeg)?);
            let premise = gen.captions(&scene, 1).remove(0);
            let mut order = vec![0i64, 1, 2];
            order.shuffle(&mut gen.rng);
            let pairs: Vec<Vec<String>> = order
                .iter()
                .map(|&l| vec![premise.clone(), gen.snli_hypothesis(&scene, l)])
                .collect();
            sents.push(pairs);
            labels.push(order);
        }
        let text = sents.iter().flatten().flatten().cloned().collect();
        write(
            name,
            &[
                ("image", Column::Binary(images)),
                ("sentences", Column::StrListList(sents)),
                ("labels", Column::Int64List(labels)),
            ],
            text,
        )?;
    }

    for (name, fix) in VQA_FIX_COPIES {
        let (from, to) = (
            dir.join(format!("{name}.arrow")),
            dir.join(format!("{fix}.arrow")),
        );
        std::fs::copy(&from, &to).map_err(|e| DataError::io(&to, e))?;
        let rows = files.iter().find(|(n, _)| n == name).map_or(0, |(_, r)| *r);
        files.push((fix.to_string(), rows));
    }
    corpus.sort();
    corpus.dedup();
    super::synth_tokenizer::train_tokenizer(&corpus, &dir.join("tokenizer.json"))?;
    Ok(SynthReport {
        dir: dir.to_path_buf(),
        files,
        vqa_answers: vocab.len(),
        written: Vec::new(),
    })
}

fn name_phrase(o: &Obj, grid: u32) -> String {
    let h = ["left", "middle", "right"][((o.col * 3 / grid) as usize).min(2)];
    format!("{} {} on the {h}", COLOURS[o.colour], SHAPES[o.shape])
}
