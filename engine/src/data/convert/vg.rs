//! Visual Genome region descriptions (`write_vg.py`).
//!
//! Raw layout: `ROOT/annotations/region_descriptions.json` and
//! `ROOT/images/{VG_100K,VG_100K_2}/*.jpg`.
//!
//! The reference's rules: regions are grouped by their `image_id`; each image file present and
//! annotated (its id is the file name without `.jpg`) is a row: `caption` the phrases, `width`,
//! `height`, `x`, `y` the boxes, `image_id` the id as a string.

use std::sync::Arc;

use serde::Deserialize;

use super::inputs::{list_dir, read_json, Required};
use super::order::seeded_shuffle;
use super::output::{Cell, Output, Row};
use super::vqa::ByImage;
use super::{ConvertResult, Ctx, Plan, SkipReason, SkippedImage};
use crate::data::schema::VG_CAPTION;

pub(crate) const VG_FOLDERS: [&str; 2] = ["VG_100K", "VG_100K_2"];

#[derive(Deserialize)]
struct ImageRegions {
    regions: Vec<Region>,
}

#[derive(Deserialize)]
struct Region {
    image_id: i64,
    phrase: String,
    width: i64,
    height: i64,
    x: i64,
    y: i64,
}

/// `int(name[:-4])`: the image id of a VG file name.
pub(crate) fn vg_image_id(name: &str) -> Option<i64> {
    name.get(..name.len().checked_sub(4)?)?.trim().parse().ok()
}

/// The VG image files, sorted by relative path then shuffled by the seeded rule.
pub(crate) fn vg_images(ctx: &Ctx, stream: &str) -> ConvertResult<Vec<(&'static str, String)>> {
    let root = ctx.opts.raw.join("images");
    let mut paths = Vec::new();
    for f in VG_FOLDERS {
        ctx.phase(&format!("listing {}", root.join(f).display()));
        paths.extend(list_dir(&root.join(f), ".jpg")?.into_iter().map(|n| (f, n)));
    }
    paths.sort();
    seeded_shuffle(&mut paths, ctx.opts.seed, stream);
    Ok(paths)
}

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    let ann = req.file(root.join("annotations").join("region_descriptions.json"));
    for f in VG_FOLDERS {
        req.dir(root.join("images").join(f));
    }
    req.check("vg", root)?;

    ctx.phase(&format!("reading {}", ann.display()));
    let images: Vec<ImageRegions> =
        read_json(&ann, "VG region descriptions ([{\"regions\": [...]}, ...])")?;
    let mut by_image: ByImage<Region> = ByImage::default();
    for img in images {
        for r in img.regions {
            by_image.entry(r.image_id).push(r);
        }
    }
    let paths = vg_images(ctx, "vg")?;
    let mut present = std::collections::HashSet::new();
    let mut keys: Vec<(&'static str, String, i64)> = Vec::new();
    for (folder, name) in paths {
        let Some(iid) = vg_image_id(&name) else {
            continue;
        };
        if by_image.items.contains_key(&iid) {
            present.insert(iid);
            keys.push((folder, name, iid));
        }
    }
    let mut plan = Plan::default();
    for iid in by_image.order.iter().filter(|i| !present.contains(*i)) {
        plan.missing.push(SkippedImage {
            path: root
                .join("images")
                .join(VG_FOLDERS[0])
                .join(format!("{iid}.jpg")),
            output: "vg".into(),
            reason: SkipReason::Missing,
        });
    }
    let images = root.join("images");
    let regions_of = Arc::new(by_image.items);
    plan.outputs.push(Output::lazy(
        "vg".into(),
        &VG_CAPTION,
        keys.len(),
        Arc::new(move |r| {
            let (folder, name, iid) = &keys[r];
            let regions = &regions_of[iid];
            let ints = |f: fn(&Region) -> i64| Cell::IntList(regions.iter().map(f).collect());
            Row {
                images: vec![images.join(folder).join(name)],
                cells: vec![
                    Cell::strs(regions.iter().map(|r| r.phrase.clone())),
                    ints(|r| r.width),
                    ints(|r| r.height),
                    ints(|r| r.x),
                    ints(|r| r.y),
                    Cell::Str(iid.to_string()),
                ],
            }
        }),
    ));
    Ok(plan)
}
