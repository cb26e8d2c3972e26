//! Conceptual Captions (`write_conceptual_caption.py`).
//!
//! Raw layout: `ROOT/utils/Validation_GCC-1.1.0-Validation.tsv` and
//! `ROOT/utils/Train_GCC-training.tsv` (caption TAB url, no header), the lists of downloaded
//! images `ROOT/{val,train}_image_exist.txt` (one path per line, its file name `N.ext` meaning
//! TSV row `N`), and the images `ROOT/{val,train}_image/`.
//!
//! The reference's rules: the TSV is read by `pd.read_csv(sep="\t", header=None)` (quoted
//! fields, blank lines skipped, pandas' NA strings become a null caption); each listed image is
//! captioned by its row; every file of the image folder that is listed is a row, cut into
//! shards of 100,000 (`conceptual_caption_{split}_{k}`, val first), `split` as SBU's.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use super::error::ConvertError;
use super::inputs::{list_dir, Required};
use super::order::seeded_shuffle;
use super::output::{Cell, Row, RowFn};
use super::sbu::{root_split, shards};
use super::{ConvertResult, Ctx, Plan, SkipReason, SkippedImage};

const SPLITS: [(&str, &str); 2] = [
    ("val", "Validation_GCC-1.1.0-Validation.tsv"),
    ("train", "Train_GCC-training.tsv"),
];

/// pandas' default NA strings (pandas 1.x `STR_NA_VALUES`; the reference pins pandas 1.4.1).
const NA_VALUES: [&str; 18] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    StartRecord,
    StartField,
    InField,
    InQuoted,
    QuoteInQuoted,
    EatCr,
    /// Spaces at the start of a line: skipped if nothing else follows.
    WhitespaceLine,
}

/// The first column of every record of a tab-separated file, as pandas' C tokenizer reads it
/// (`quotechar='"'`, `doublequote=True`, `skip_blank_lines=True`, `\n`, `\r\n` or `\r` ends a
/// record). `keep(row)` says which rows' captions are wanted (the others are not stored).
/// Returns `(rows, captions)`; a caption is `None` for pandas' NA strings.
pub(crate) fn read_first_column(
    path: &Path,
    keep: &dyn Fn(usize) -> bool,
) -> ConvertResult<(usize, HashMap<usize, Option<String>>)> {
    let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    // A UTF-8 byte-order mark before the first record is dropped, as pandas does.
    if reader
        .fill_buf()
        .map_err(|e| ConvertError::io(path, e))?
        .starts_with(b"\xEF\xBB\xBF")
    {
        reader.consume(3);
    }
    let mut bytes = reader.bytes();
    let mut out = HashMap::new();
    let mut record = 0usize;
    let mut line = 1usize;
    let mut record_line = 1usize;
    let mut field: Vec<u8> = Vec::new();
    let mut first: Option<Vec<u8>> = None;
    let mut fields = 0usize;
    let mut expected: Option<usize> = None;
    let mut pending_spaces = 0usize;
    let mut state = State::StartRecord;

    let mut end_record = |first: &mut Option<Vec<u8>>,
                          fields: usize,
                          record_line: usize,
                          record: &mut usize|
     -> ConvertResult<()> {
        let want = *expected.get_or_insert(fields);
        if fields > want {
            return Err(ConvertError::BadLine {
                path: path.to_path_buf(),
                line: record_line,
                what: "more fields than the first line has (pandas: Error tokenizing data)",
                value: format!("{fields} fields, expected {want}"),
            });
        }
        let value = first.take().unwrap_or_default();
        if keep(*record) {
            let text = String::from_utf8(value).map_err(|_| ConvertError::BadLine {
                path: path.to_path_buf(),
                line: record_line,
                what: "the caption is not UTF-8",
                value: String::new(),
            })?;
            let caption = (!NA_VALUES.contains(&text.as_str())).then_some(text);
            out.insert(*record, caption);
        }
        *record += 1;
        Ok(())
    };

    loop {
        let next = bytes
            .next()
            .transpose()
            .map_err(|e| ConvertError::io(path, e))?;
        let Some(c) = next else { break };
        loop {
            match state {
                State::StartRecord => {
                    record_line = line;
                    fields = 0;
                    match c {
                        b'\n' => {}
                        b'\r' => state = State::EatCr,
                        b' ' => {
                            pending_spaces = 1;
                            state = State::WhitespaceLine;
                        }
                        _ => {
                            state = State::StartField;
                            continue;
                        }
                    }
                }
                State::WhitespaceLine => match c {
                    b'\n' => state = State::StartRecord,
                    b'\r' => state = State::EatCr,
                    b' ' => pending_spaces += 1,
                    _ => {
                        // Not a blank line after all: the spaces start the first field.
                        field.extend(std::iter::repeat_n(b' ', pending_spaces));
                        pending_spaces = 0;
                        state = State::InField;
                        continue;
                    }
                },
                State::StartField => match c {
                    b'"' => state = State::InQuoted,
                    _ => {
                        state = State::InField;
                        continue;
                    }
                },
                State::InField => match c {
                    b'\t' => {
                        end_field(&mut field, &mut first, &mut fields);
                        state = State::StartField;
                    }
                    b'\n' | b'\r' => {
                        end_field(&mut field, &mut first, &mut fields);
                        end_record(&mut first, fields, record_line, &mut record)?;
                        state = if c == b'\r' {
                            State::EatCr
                        } else {
                            State::StartRecord
                        };
                    }
                    _ => field.push(c),
                },
                State::InQuoted => match c {
                    b'"' => state = State::QuoteInQuoted,
                    _ => field.push(c),
                },
                State::QuoteInQuoted => match c {
                    b'"' => {
                        field.push(b'"');
                        state = State::InQuoted;
                    }
                    b'\t' | b'\n' | b'\r' => {
                        state = State::InField;
                        continue;
                    }
                    _ => {
                        field.push(c);
                        state = State::InField;
                    }
                },
                State::EatCr => {
                    state = State::StartRecord;
                    if c == b'\n' {
                        // `\r\n`: one line end.
                    } else {
                        line += 1;
                        continue;
                    }
                }
            }
            break;
        }
        if c == b'\n' {
            line += 1;
        }
    }
    // The last record, when the file does not end with a line end.
    match state {
        State::InField | State::InQuoted | State::QuoteInQuoted => {
            end_field(&mut field, &mut first, &mut fields);
            end_record(&mut first, fields, record_line, &mut record)?;
        }
        State::StartField => {
            end_field(&mut field, &mut first, &mut fields);
            end_record(&mut first, fields, record_line, &mut record)?;
        }
        _ => {}
    }
    Ok((record, out))
}

fn end_field(field: &mut Vec<u8>, first: &mut Option<Vec<u8>>, fields: &mut usize) {
    if *fields == 0 {
        *first = Some(std::mem::take(field));
    } else {
        field.clear();
    }
    *fields += 1;
}

/// `{split}_image_exist.txt`: file names with the TSV row they caption, in file order.
fn read_exist(path: &Path) -> ConvertResult<Vec<(String, usize, usize)>> {
    let file = File::open(path).map_err(|e| ConvertError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ConvertError::io(path, e))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let name = line.rsplit('/').next().unwrap_or_default().to_string();
        let index = name
            .split('.')
            .next()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .ok_or_else(|| ConvertError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                what: "the file name does not start with its TSV row number (`N.jpg`)",
                value: line.to_string(),
            })?;
        out.push((name, index, i + 1));
    }
    Ok(out)
}

pub(crate) fn plan(ctx: &Ctx) -> ConvertResult<Plan> {
    let root = &ctx.opts.raw;
    let mut req = Required::default();
    for (split, tsv) in SPLITS {
        req.file(root.join("utils").join(tsv));
        req.file(root.join(format!("{split}_image_exist.txt")));
        req.dir(root.join(format!("{split}_image")));
    }
    req.check("gcc", root)?;

    let column = root_split(ctx);
    let mut plan = Plan::default();
    for (split, tsv) in SPLITS {
        let exist_path = root.join(format!("{split}_image_exist.txt"));
        ctx.phase(&format!("reading {}", exist_path.display()));
        let exist = read_exist(&exist_path)?;
        let wanted: HashSet<usize> = exist.iter().map(|(_, i, _)| *i).collect();
        let tsv_path = root.join("utils").join(tsv);
        ctx.phase(&format!("reading {}", tsv_path.display()));
        let (records, captions) = read_first_column(&tsv_path, &|r| wanted.contains(&r))?;
        let mut caption_of: HashMap<String, Option<String>> = HashMap::new();
        let mut order = Vec::new();
        for (name, index, line) in exist {
            let caption = captions.get(&index).ok_or_else(|| ConvertError::BadLine {
                path: exist_path.clone(),
                line,
                what: "names a TSV row past the end",
                value: format!("row {index} of {} ({records} rows)", tsv_path.display()),
            })?;
            if caption_of.insert(name.clone(), caption.clone()).is_none() {
                order.push(name);
            }
        }
        let folder = root.join(format!("{split}_image"));
        ctx.phase(&format!("listing {}", folder.display()));
        let mut names = list_dir(&folder, "")?;
        let prefix = format!("conceptual_caption_{split}");
        seeded_shuffle(&mut names, ctx.opts.seed, &prefix);
        {
            let present: HashSet<&str> = names.iter().map(String::as_str).collect();
            for name in order.iter().filter(|n| !present.contains(n.as_str())) {
                plan.missing.push(SkippedImage {
                    path: folder.join(name),
                    output: prefix.clone(),
                    reason: SkipReason::Missing,
                });
            }
        }
        let keys: Vec<(String, Option<String>)> = names
            .into_iter()
            .filter_map(|name| caption_of.remove(&name).map(|c| (name, c)))
            .collect();
        let (len, column) = (keys.len(), column.clone());
        let row: RowFn = Arc::new(move |i| {
            let (name, caption) = &keys[i];
            Row {
                images: vec![folder.join(name)],
                cells: vec![
                    Cell::StrList(vec![caption.clone()]),
                    Cell::Str(name.clone()),
                    Cell::Str(column.clone()),
                ],
            }
        });
        plan.outputs
            .extend(shards(&prefix, len, ctx.opts.shard_size, row));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_column(text: &str) -> Vec<Option<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tsv");
        std::fs::write(&path, text).unwrap();
        let (n, map) = read_first_column(&path, &|_| true).unwrap();
        (0..n).map(|i| map[&i].clone()).collect()
    }

    fn s(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some(x.to_string())).collect()
    }

    #[test]
    fn reads_captions_as_pandas_does() {
        assert_eq!(
            first_column("a cat\thttp://x/1\nb dog\thttp://x/2\n"),
            s(&["a cat", "b dog"])
        );
        // No final line end; CRLF and CR line ends.
        assert_eq!(first_column("a\tu\r\nb\tu\rc\tu"), s(&["a", "b", "c"]));
        // Blank lines (and lines of spaces) are skipped: they do not shift row numbers.
        assert_eq!(first_column("a\tu\n\n   \nb\tu\n"), s(&["a", "b"]));
        // Leading spaces of a real line stay.
        assert_eq!(first_column("  a\tu\n"), s(&["  a"]));
        // Quoted fields: tabs, newlines and doubled quotes inside; quotes mid-field literal.
        assert_eq!(
            first_column("\"a\tb\nc \"\"d\"\"\"\tu\nsay \"hi\"\tu\n\"x\"y\tu\n"),
            s(&["a\tb\nc \"d\"", "say \"hi\"", "xy"])
        );
        // pandas' NA strings become null captions; other text is kept as is.
        assert_eq!(
            first_column("nan\tu\nNULL\tu\n\tu\nNone\tu\n1984\tu\n"),
            vec![None, None, None, Some("None".into()), Some("1984".into())]
        );
        // A byte-order mark is not part of the first caption.
        assert_eq!(first_column("\u{feff}a\tu\n"), s(&["a"]));
    }

    #[test]
    fn extra_fields_are_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tsv");
        std::fs::write(&path, "a\tu\nb\tu\tz\n").unwrap();
        let err = read_first_column(&path, &|_| true).unwrap_err().to_string();
        assert!(err.contains("t.tsv:2"), "{err}");
    }
}
