//! SBU Captions (`write_sbu.py`), and the sharding it shares with GCC.
//!
//! Raw layout: `ROOT/sbu-captions-all.json` (`{"image_urls": [...], "captions": [...]}`) and the
//! downloaded images in `ROOT/SBU/`.
//!
//! The reference's rules: an image's id is its URL's last `/` part, its caption list that one
//! caption (a later duplicate URL replaces it); every file in `ROOT/SBU/` whose name is an id is
//! a row; rows are cut into shards of 100,000 (`sbu_0`, `sbu_1`, ...), with one shard more
//! than `rows / 100000` (so a multiple of 100,000 ends with an empty shard, as the reference's).
//! `split` is what the reference's `path.split("/")[-3].split("_")[-1]` gives: the raw root's
//! own folder name after its last `_`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::inputs::{list_dir, read_json, root_name, Required};
use super::order::seeded_shuffle;
use super::output::{Cell, Output, Row, RowFn};
use super::{ConvertResult, Ctx, Plan, SkipReason, SkippedImage};
use crate::data::schema::CAPTION;

/// `rows[k * size .. (k + 1) * size]` for `k` in `0 ..= rows / size`, over the `len` rows that
/// `row` builds.
pub(crate) fn shards(prefix: &str, len: usize, size: usize, row: RowFn) -> Vec<Output> {
    let size = size.max(1);
    (0..=len / size)
        .map(|k| {
            let start = k * size;
            let row = row.clone();
            Output::lazy(
                format!("{prefix}_{k}"),
                &CAPTION,
                size.min(len - start),
                Arc::new(move |i| row(start + i)),
            )
        })
        .collect()
}

/// The `split` column of SBU and GCC rows.
pub(crate) fn root_split(ctx: &Ctx) -> String {
    let name = root_name(&ctx.opts.raw);
    name.rsplit('_').next().unwrap_or_default().to_string()
}

#[derive(Deserialize)]
struct SbuFile {
    image_urls: Vec<String>,
    captions: Vec<String>,
}

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    let ann = req.file(root.join("sbu-captions-all.json"));
    let folder = req.dir(root.join("SBU"));
    req.check("sbu", root)?;

    ctx.phase(&format!("reading {}", ann.display()));
    let file: SbuFile = read_json(
        &ann,
        "SBU captions ({\"image_urls\": [...], \"captions\": [...]})",
    )?;
    let mut order: Vec<String> = Vec::new();
    let mut captions: HashMap<String, String> = HashMap::new();
    for (url, caption) in file.image_urls.into_iter().zip(file.captions) {
        let iid = url.rsplit('/').next().unwrap_or_default().to_string();
        if captions.insert(iid.clone(), caption).is_none() {
            order.push(iid);
        }
    }
    ctx.phase(&format!("listing {}", folder.display()));
    let mut names = list_dir(&folder, "")?;
    seeded_shuffle(&mut names, ctx.opts.seed, "sbu");
    let split = root_split(ctx);
    let mut plan = Plan::default();
    {
        let present: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        for iid in order.iter().filter(|i| !present.contains(i.as_str())) {
            plan.missing.push(SkippedImage {
                path: folder.join(iid),
                output: "sbu".into(),
                reason: SkipReason::Missing,
            });
        }
    }
    let keys: Vec<(String, String)> = names
        .into_iter()
        .filter_map(|name| captions.remove(&name).map(|c| (name, c)))
        .collect();
    let len = keys.len();
    let row: RowFn = Arc::new(move |i| {
        let (name, caption) = &keys[i];
        Row {
            images: vec![folder.join(name)],
            cells: vec![
                Cell::strs([caption.clone()]),
                Cell::Str(name.clone()),
                Cell::Str(split.clone()),
            ],
        }
    });
    plan.outputs = shards("sbu", len, ctx.opts.shard_size, row);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RowFn {
        Arc::new(|i| Row {
            images: vec![],
            cells: vec![Cell::Int(i as i64)],
        })
    }

    #[test]
    fn shards_follow_the_reference_slicing() {
        let sizes =
            |n, size| -> Vec<usize> { shards("s", n, size, row()).iter().map(|o| o.len).collect() };
        assert_eq!(sizes(5, 2), [2, 2, 1]);
        // A multiple of the shard size ends with an empty shard; no rows is one empty shard.
        assert_eq!(sizes(4, 2), [2, 2, 0]);
        assert_eq!(sizes(0, 2), [0]);
        assert_eq!(sizes(3, 100_000), [3]);
        let names: Vec<String> = shards("sbu", 3, 2, row())
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["sbu_0", "sbu_1"]);
    }
}
