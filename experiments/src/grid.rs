//! Grid expansion on plain values: the cartesian product of dimensions (an axis, or a zip group
//! whose axes move together), minus exclude rules, plus include rules.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// One assignment of values to axes, in dimension order.
pub type Assignment = Vec<(String, Json)>;

/// A dimension of the grid.
#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    /// One axis and its values.
    Axis { key: String, values: Vec<Json> },
    /// Axes that move together: `rows[i]` gives one value per key.
    Zip {
        keys: Vec<String>,
        rows: Vec<Vec<Json>>,
    },
}

impl Dimension {
    pub fn len(&self) -> usize {
        match self {
            Self::Axis { values, .. } => values.len(),
            Self::Zip { rows, .. } => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn keys(&self) -> Vec<&str> {
        match self {
            Self::Axis { key, .. } => vec![key.as_str()],
            Self::Zip { keys, .. } => keys.iter().map(String::as_str).collect(),
        }
    }

    fn pick(&self, i: usize) -> Assignment {
        match self {
            Self::Axis { key, values } => vec![(key.clone(), values[i].clone())],
            Self::Zip { keys, rows } => keys.iter().cloned().zip(rows[i].clone()).collect(),
        }
    }
}

/// Does `rule` (a partial assignment) hold for `a`?
pub fn matches(rule: &[(String, Json)], a: &[(String, Json)]) -> bool {
    rule.iter()
        .all(|(k, v)| a.iter().any(|(ak, av)| ak == k && values_equal(av, v)))
}

/// Values compare as JSON, with numbers compared by value (3 == 3.0).
pub fn values_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        _ => a == b,
    }
}

fn same_assignment(a: &[(String, Json)], b: &[(String, Json)]) -> bool {
    a.len() == b.len() && matches(a, b)
}

/// The most runs (grid points × seeds) one experiment expands to. Each resolved run holds its
/// settings and identity document (tens of KB), so an unbounded grid (a typo'd axis of 10⁶
/// values) would take the machine's memory before anything was planned.
pub const MAX_RUNS: usize = 10_000;

/// The number of product points of `dims`, or `None` past `usize`.
pub fn product_len(dims: &[Dimension]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, d| n.checked_mul(d.len()))
}

/// The grid's points: product order (first dimension slowest), excluded points removed, then
/// the include rules that are not already present, in file order.
pub fn expand(
    dims: &[Dimension],
    exclude: &[Assignment],
    include: &[Assignment],
) -> Vec<Assignment> {
    // Callers bound the grid first (`MAX_RUNS`); an overflowing product expands to nothing.
    let total = product_len(dims).unwrap_or(0);
    let mut out: Vec<Assignment> = Vec::with_capacity(total.min(MAX_RUNS));
    for n in 0..total {
        // Mixed-radix digits of n, last dimension fastest.
        let mut rest = n;
        let mut idx = vec![0usize; dims.len()];
        for (d, slot) in dims.iter().zip(idx.iter_mut()).rev() {
            *slot = rest % d.len();
            rest /= d.len();
        }
        let a: Assignment = dims
            .iter()
            .zip(&idx)
            .flat_map(|(d, &i)| d.pick(i))
            .collect();
        if !exclude.iter().any(|r| matches(r, &a)) {
            out.push(a);
        }
    }
    for inc in include {
        if !out.iter().any(|a| same_assignment(a, inc)) {
            out.push(inc.clone());
        }
    }
    out
}

/// A grid point's stable name: its axes sorted by key, `key=value` joined by commas (the seed
/// is not part of it). A grid with no axes has the key `(base)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CellKey(pub String);

impl CellKey {
    /// The key of a product point of `dims`: plain axes and the first axis of each zip group
    /// (the other axes of a group follow from it and would only lengthen the key). When the
    /// first axis repeats a value across rows (`task = ["irtr", "irtr"]` for Flickr30K and
    /// COCO), the following axes are shown as far as needed to tell the rows apart.
    pub fn of_point(dims: &[Dimension], assignment: &[(String, Json)]) -> Self {
        let hidden: Vec<&str> = dims
            .iter()
            .filter_map(|d| match d {
                Dimension::Zip { keys, rows } => Some(
                    keys.iter()
                        .skip(distinguishing_prefix(rows))
                        .map(String::as_str),
                ),
                Dimension::Axis { .. } => None,
            })
            .flatten()
            .collect();
        let shown: Assignment = assignment
            .iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()))
            .cloned()
            .collect();
        Self::of(&shown)
    }

    /// The key of an assignment: every key shown.
    pub fn of(assignment: &[(String, Json)]) -> Self {
        if assignment.is_empty() {
            return Self("(base)".into());
        }
        let mut parts: Vec<String> = assignment
            .iter()
            .map(|(k, v)| format!("{k}={}", display_value(v)))
            .collect();
        parts.sort();
        Self(parts.join(","))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many leading keys of a zip group tell its rows apart (at least one).
fn distinguishing_prefix(rows: &[Vec<Json>]) -> usize {
    let width = rows.first().map_or(1, Vec::len).max(1);
    (1..=width)
        .find(|&n| {
            rows.iter().enumerate().all(|(i, a)| {
                rows[..i]
                    .iter()
                    .all(|b| !a.iter().zip(b).take(n).all(|(x, y)| values_equal(x, y)))
            })
        })
        .unwrap_or(width)
}

/// A value as shown in keys and tables: strings bare, everything else as compact JSON.
pub fn display_value(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                format!("{f:?}")
            }
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn axis(key: &str, values: Vec<Json>) -> Dimension {
        Dimension::Axis {
            key: key.into(),
            values,
        }
    }

    #[test]
    fn product_order_first_axis_slowest() {
        let dims = [
            axis("a", vec![json!(1), json!(2)]),
            axis("b", vec![json!("x"), json!("y")]),
        ];
        let keys: Vec<String> = expand(&dims, &[], &[])
            .iter()
            .map(|a| CellKey::of(a).0)
            .collect();
        assert_eq!(keys, ["a=1,b=x", "a=1,b=y", "a=2,b=x", "a=2,b=y"]);
    }

    #[test]
    fn zip_moves_together_and_rules_apply() {
        let dims = [
            axis("m", vec![json!("BT"), json!("AAUE")]),
            Dimension::Zip {
                keys: vec!["t".into(), "lr".into()],
                rows: vec![
                    vec![json!("vqa"), json!(2e-5)],
                    vec![json!("irtr"), json!(6e-6)],
                ],
            },
        ];
        let ex = vec![vec![
            ("m".to_string(), json!("BT")),
            ("t".to_string(), json!("irtr")),
        ]];
        let inc = vec![vec![("m".to_string(), json!("SAE"))]];
        let keys: Vec<String> = expand(&dims, &ex, &inc)
            .iter()
            .map(|a| CellKey::of(a).0)
            .collect();
        assert_eq!(
            keys,
            [
                "lr=2e-5,m=BT,t=vqa",
                "lr=2e-5,m=AAUE,t=vqa",
                "lr=6e-6,m=AAUE,t=irtr",
                "m=SAE"
            ]
        );
    }

    #[test]
    fn no_axes_is_one_base_point() {
        let pts = expand(&[], &[], &[]);
        assert_eq!(pts.len(), 1);
        assert_eq!(CellKey::of(&pts[0]).0, "(base)");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(values_equal(&json!(3), &json!(3.0)));
        assert!(!values_equal(&json!(3), &json!("3")));
    }

    proptest! {
        // count = product of the dimension sizes − excluded points + new include points.
        #[test]
        fn count_is_product_minus_excludes_plus_includes(
            sizes in prop::collection::vec(1usize..4, 0..4),
            ex_picks in prop::collection::vec((0usize..4, 0usize..4), 0..3),
            n_inc in 0usize..3,
        ) {
            let dims: Vec<Dimension> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| axis(&format!("k{i}"), (0..n as i64).map(Json::from).collect()))
                .collect();
            let exclude: Vec<Assignment> = if dims.is_empty() { vec![] } else {
                ex_picks
                    .iter()
                    .map(|&(d, v)| {
                        let d = d % dims.len();
                        vec![(format!("k{d}"), json!((v % sizes[d]) as i64))]
                    })
                    .collect()
            };
            // Include values outside every axis, so they are always new points.
            let include: Vec<Assignment> =
                (0..n_inc).map(|i| vec![("extra".to_string(), json!(i as i64))]).collect();
            let product: usize = sizes.iter().product();
            let excluded = {
                let all = expand(&dims, &[], &[]);
                all.iter().filter(|a| exclude.iter().any(|r| matches(r, a))).count()
            };
            let got = expand(&dims, &exclude, &include);
            prop_assert_eq!(got.len(), product - excluded + n_inc);
            // Keys are unique.
            let mut keys: Vec<String> = got.iter().map(|a| CellKey::of(a).0).collect();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), got.len());
        }

        // The cell key does not depend on the order the axes were declared in.
        #[test]
        fn key_is_independent_of_axis_order(vals in prop::collection::vec(0i64..100, 1..6)) {
            let a: Assignment = vals.iter().enumerate().map(|(i, v)| (format!("k{i}"), json!(v))).collect();
            let mut b = a.clone();
            b.reverse();
            prop_assert_eq!(CellKey::of(&a), CellKey::of(&b));
        }
    }
}
