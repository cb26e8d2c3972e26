//! What a rendered SVG actually holds, measured: every text (with its ink box, by the embedded
//! font), line, bar, polyline and polygon, and which of them leave the canvas or overlap. Tests
//! (ours and the end-to-end study) use it to show that every series, bar and legend entry of a
//! figure is drawn inside the canvas and no label sits on another.
//!
//! ```
//! # use reports::figures::{check_svg, learning_curves, CurveOptions};
//! let input = reports::sample::sample_input();
//! let svg = learning_curves(&input, &CurveOptions::new("val/vqa/score"))?.to_svg()?;
//! let drawn = check_svg(&svg)?;
//! assert!(drawn.problems().is_empty(), "{:?}", drawn.problems());
//! assert!(drawn.has_text("Step"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use super::text::{baseline_shift, ink_box};

/// An axis-aligned box in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl BBox {
    fn of_points(points: &[(f64, f64)]) -> Option<BBox> {
        let first = points.first()?;
        Some(points.iter().fold(
            BBox {
                x0: first.0,
                y0: first.1,
                x1: first.0,
                y1: first.1,
            },
            |b, &(x, y)| BBox {
                x0: b.x0.min(x),
                y0: b.y0.min(y),
                x1: b.x1.max(x),
                y1: b.y1.max(y),
            },
        ))
    }

    fn grow(self, by: f64) -> BBox {
        BBox {
            x0: self.x0 - by,
            y0: self.y0 - by,
            x1: self.x1 + by,
            y1: self.y1 + by,
        }
    }

    /// Inside `w`×`h`, with `slack` pixels of rounding allowed.
    pub fn inside(&self, w: f64, h: f64, slack: f64) -> bool {
        self.x0 >= -slack && self.y0 >= -slack && self.x1 <= w + slack && self.y1 <= h + slack
    }

    /// Overlap area of two boxes (0 when they only touch).
    pub fn overlap(&self, o: &BBox) -> f64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        w * h
    }
}

impl fmt::Display for BBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({:.0},{:.0})–({:.0},{:.0})",
            self.x0, self.y0, self.x1, self.y1
        )
    }
}

/// One `<text>`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnText {
    pub text: String,
    /// Its ink, rotation included.
    pub bbox: BBox,
    pub font_px: f64,
}

/// What kind of shape an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    Rect,
    Line,
    Polyline,
    Polygon,
    Circle,
}

/// One non-text element.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnShape {
    pub kind: ShapeKind,
    pub bbox: BBox,
    /// `fill` of filled shapes, `stroke` of lines (e.g. `#0072B2`); `none` when unset.
    pub color: String,
    pub filled: bool,
}

/// Everything drawn on one SVG canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct SvgContent {
    pub width: f64,
    pub height: f64,
    pub texts: Vec<DrawnText>,
    pub shapes: Vec<DrawnShape>,
}

/// Why an SVG could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a TowerLab figure SVG: {0}")]
pub struct SvgError(String);

/// Pixels of rounding a box may leave the canvas or overlap another by.
const SLACK: f64 = 1.0;

impl SvgContent {
    /// Texts whose content is exactly `text`.
    pub fn texts_named<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a DrawnText> + 'a {
        self.texts.iter().filter(move |t| t.text == text)
    }

    pub fn has_text(&self, text: &str) -> bool {
        self.texts_named(text).next().is_some()
    }

    /// Shapes of `kind` drawn in `color` (`#RRGGBB`, any case).
    pub fn shapes_in<'a>(
        &'a self,
        kind: ShapeKind,
        color: &'a str,
    ) -> impl Iterator<Item = &'a DrawnShape> + 'a {
        self.shapes
            .iter()
            .filter(move |s| s.kind == kind && s.color.eq_ignore_ascii_case(color))
    }

    /// Everything that leaves the canvas, and every pair of texts whose ink overlaps: empty for
    /// a figure a paper can take.
    pub fn problems(&self) -> Vec<String> {
        let (w, h) = (self.width, self.height);
        let mut out = Vec::new();
        for t in &self.texts {
            if !t.bbox.inside(w, h, SLACK) {
                out.push(format!(
                    "text {:?} at {} leaves the {w}×{h} canvas",
                    t.text, t.bbox
                ));
            }
        }
        for s in &self.shapes {
            if !s.bbox.inside(w, h, SLACK) {
                out.push(format!(
                    "{:?} ({}) at {} leaves the {w}×{h} canvas",
                    s.kind, s.color, s.bbox
                ));
            }
        }
        for (i, a) in self.texts.iter().enumerate() {
            for b in &self.texts[i + 1..] {
                // Shrunk by the slack: glyphs of neighbouring labels may touch.
                if a.bbox.grow(-SLACK).overlap(&b.bbox.grow(-SLACK)) > 0.0 {
                    out.push(format!(
                        "text {:?} at {} overlaps {:?} at {}",
                        a.text, a.bbox, b.text, b.bbox
                    ));
                }
            }
        }
        out
    }
}

/// The value of attribute `name` in a tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest.as_bytes()[i - 1].is_ascii_whitespace();
        let after = &rest[i + name.len()..];
        if before_ok {
            if let Some(v) = after.strip_prefix("=\"") {
                return v.find('"').map(|e| &v[..e]);
            }
        }
        rest = &rest[i + name.len()..];
    }
    None
}

fn num(tag: &str, name: &str) -> Result<f64, SvgError> {
    let v = attr(tag, name).ok_or_else(|| SvgError(format!("<{tag}> has no `{name}`")))?;
    v.trim()
        .trim_end_matches("px")
        .parse()
        .map_err(|_| SvgError(format!("`{name}=\"{v}\"` is not a number")))
}

fn points(tag: &str) -> Result<Vec<(f64, f64)>, SvgError> {
    let v = attr(tag, "points").ok_or_else(|| SvgError("a shape without points".into()))?;
    v.split_whitespace()
        .map(|p| {
            let (x, y) = p
                .split_once(',')
                .ok_or_else(|| SvgError(format!("point `{p}`")))?;
            Ok((
                x.parse().map_err(|_| SvgError(format!("point `{p}`")))?,
                y.parse().map_err(|_| SvgError(format!("point `{p}`")))?,
            ))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `rotate(a, cx, cy)` of a `transform`.
fn rotation(tag: &str) -> Option<(f64, f64, f64)> {
    let t = attr(tag, "transform")?;
    let inner = t.strip_prefix("rotate(")?.strip_suffix(')')?;
    let v: Vec<f64> = inner
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    match v.as_slice() {
        [a, x, y] => Some((*a, *x, *y)),
        [a] => Some((*a, 0.0, 0.0)),
        _ => None,
    }
}

fn text_box(tag: &str, text: &str) -> Result<(BBox, f64), SvgError> {
    let x = num(tag, "x")?;
    let y = num(tag, "y")?;
    let em = num(tag, "font-size")?;
    let (l, t, r, b) = ink_box(text, em);
    let width = super::text::text_width(text, em);
    let dx = match attr(tag, "text-anchor").unwrap_or("start") {
        "middle" => -width / 2.0,
        "end" => -width,
        _ => 0.0,
    };
    let base = y + baseline_shift(attr(tag, "dy").unwrap_or("0"), em);
    let corners = [
        (x + dx + l, base + t),
        (x + dx + r, base + t),
        (x + dx + l, base + b),
        (x + dx + r, base + b),
    ];
    let corners: Vec<(f64, f64)> = match rotation(tag) {
        Some((a, cx, cy)) => {
            let (s, c) = a.to_radians().sin_cos();
            corners
                .iter()
                .map(|&(px, py)| {
                    let (dx, dy) = (px - cx, py - cy);
                    (cx + dx * c - dy * s, cy + dx * s + dy * c)
                })
                .collect()
        }
        None => corners.to_vec(),
    };
    let bbox = BBox::of_points(&corners).expect("four corners");
    Ok((bbox, em))
}

/// Reads what an SVG written by [`super::Figure::to_svg`] draws.
pub fn check_svg(svg: &str) -> Result<SvgContent, SvgError> {
    let root_at = svg
        .find("<svg")
        .ok_or_else(|| SvgError("no <svg> element".into()))?;
    let root_end = svg[root_at..]
        .find('>')
        .ok_or_else(|| SvgError("unterminated <svg>".into()))?;
    let root = &svg[root_at..root_at + root_end];
    let view = attr(root, "viewBox").ok_or_else(|| SvgError("no viewBox".into()))?;
    let v: Vec<f64> = view
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let [_, _, width, height] = v.as_slice() else {
        return Err(SvgError(format!("viewBox `{view}`")));
    };
    let mut out = SvgContent {
        width: *width,
        height: *height,
        texts: Vec::new(),
        shapes: Vec::new(),
    };
    let body = &svg[root_at + root_end..];
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let end = rest
            .find('>')
            .ok_or_else(|| SvgError("unterminated tag".into()))?;
        let tag = &rest[..end];
        let name = tag.split_whitespace().next().unwrap_or("");
        let color = |key: &str| attr(tag, key).unwrap_or("none").to_string();
        let stroke_pad = || {
            attr(tag, "stroke-width")
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(1.0)
                / 2.0
        };
        match name {
            "text" => {
                let close = rest[end..]
                    .find("</text>")
                    .ok_or_else(|| SvgError("unterminated <text>".into()))?;
                let text = unescape(rest[end + 1..end + close].trim());
                let (bbox, font_px) = text_box(tag, &text)?;
                out.texts.push(DrawnText {
                    text,
                    bbox,
                    font_px,
                });
                rest = &rest[end + close..];
                continue;
            }
            "rect" => {
                let (x, y, w, h) = (
                    num(tag, "x")?,
                    num(tag, "y")?,
                    num(tag, "width")?,
                    num(tag, "height")?,
                );
                let filled = attr(tag, "fill").is_some_and(|f| f != "none");
                let bbox = BBox::of_points(&[(x, y), (x + w, y + h)]).expect("two points");
                out.shapes.push(DrawnShape {
                    kind: ShapeKind::Rect,
                    bbox,
                    color: if filled {
                        color("fill")
                    } else {
                        color("stroke")
                    },
                    filled,
                });
            }
            "line" => {
                let pts = [
                    (num(tag, "x1")?, num(tag, "y1")?),
                    (num(tag, "x2")?, num(tag, "y2")?),
                ];
                let pad = stroke_pad();
                out.shapes.push(DrawnShape {
                    kind: ShapeKind::Line,
                    bbox: BBox::of_points(&pts).expect("two points").grow(pad),
                    color: color("stroke"),
                    filled: false,
                });
            }
            "polyline" | "polygon" => {
                let pts = points(tag)?;
                let Some(bbox) = BBox::of_points(&pts) else {
                    rest = &rest[end..];
                    continue;
                };
                let polygon = name == "polygon";
                out.shapes.push(DrawnShape {
                    kind: if polygon {
                        ShapeKind::Polygon
                    } else {
                        ShapeKind::Polyline
                    },
                    bbox: if polygon {
                        bbox
                    } else {
                        bbox.grow(stroke_pad())
                    },
                    color: if polygon {
                        color("fill")
                    } else {
                        color("stroke")
                    },
                    filled: polygon,
                });
            }
            "circle" => {
                let (cx, cy, r) = (num(tag, "cx")?, num(tag, "cy")?, num(tag, "r")?);
                let filled = attr(tag, "fill").is_some_and(|f| f != "none");
                out.shapes.push(DrawnShape {
                    kind: ShapeKind::Circle,
                    bbox: BBox {
                        x0: cx - r,
                        y0: cy - r,
                        x1: cx + r,
                        y1: cy + r,
                    },
                    color: if filled {
                        color("fill")
                    } else {
                        color("stroke")
                    },
                    filled,
                });
            }
            _ => {}
        }
        rest = &rest[end..];
    }
    Ok(out)
}

/// Everything wrong with a figure SVG written by [`super::Figure::to_svg`]: what
/// [`SvgContent::problems`] finds, plus every curve, bar, legend entry and panel title its
/// `<desc>` lists (see [`super::Figure::contents`]) that is not drawn inside the canvas.
/// Empty for a figure a paper can take. Shared with the end-to-end study test, which checks
/// every SVG of a report with it.
pub fn verify_svg(svg: &str) -> Vec<String> {
    let content = match check_svg(svg) {
        Ok(c) => c,
        Err(e) => return vec![e.to_string()],
    };
    let mut out = content.problems();
    let desc = svg
        .find("<desc>")
        .and_then(|a| {
            svg[a + 6..]
                .find("</desc>")
                .map(|b| unescape(&svg[a + 6..a + 6 + b]))
        })
        .unwrap_or_default();
    let mut want: Vec<(ShapeKind, String)> = Vec::new();
    for line in desc.lines() {
        if let Some(label) = line
            .strip_prefix("legend entry: ")
            .or_else(|| line.strip_prefix("panel title: "))
        {
            if !content.has_text(label) {
                out.push(format!("{line:?} is not drawn (whole) on the canvas"));
            }
        } else if let Some(c) = line.strip_prefix("series colour: ") {
            want.push((ShapeKind::Polyline, c.to_string()));
        } else if let Some(c) = line.strip_prefix("bar colour: ") {
            want.push((ShapeKind::Rect, c.to_string()));
        }
    }
    let mut counted: Vec<(ShapeKind, String, usize)> = Vec::new();
    for (kind, colour) in want {
        match counted
            .iter_mut()
            .find(|(k, c, _)| *k == kind && c.eq_ignore_ascii_case(&colour))
        {
            Some(entry) => entry.2 += 1,
            None => counted.push((kind, colour, 1)),
        }
    }
    for (kind, colour, n) in counted {
        let drawn = content
            .shapes_in(kind, &colour)
            .filter(|s| kind != ShapeKind::Rect || s.filled)
            .count();
        if drawn < n {
            out.push(format!(
                "{n} {} in {colour} expected, {drawn} drawn",
                if kind == ShapeKind::Rect {
                    "bars"
                } else {
                    "curves"
                }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_outside_the_canvas_and_overlapping_labels_are_found() {
        let svg = r##"<svg width="100" height="50" viewBox="0 0 100 50" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="100" height="50" opacity="1" fill="#FFFFFF" stroke="none"/>
<polyline fill="none" opacity="1" stroke="#0072B2" stroke-width="2" points="10,10 90,40 "/>
<text x="95" y="20" dy="0.5ex" text-anchor="start" font-family="DejaVu Sans" font-size="10" opacity="1" fill="#000000">
cut off
</text>
<text x="10" y="30" dy="0.5ex" text-anchor="start" font-family="DejaVu Sans" font-size="10" opacity="1" fill="#000000">
first label
</text>
<text x="20" y="31" dy="0.5ex" text-anchor="start" font-family="DejaVu Sans" font-size="10" opacity="1" fill="#000000">
second &amp; more
</text>
<rect x="80" y="45" width="30" height="10" opacity="1" fill="#D55E00" stroke="none"/>
</svg>"##;
        let c = check_svg(svg).unwrap();
        assert_eq!((c.width, c.height), (100.0, 50.0));
        assert_eq!(c.texts.len(), 3);
        assert!(c.has_text("second & more"));
        assert_eq!(c.shapes_in(ShapeKind::Polyline, "#0072b2").count(), 1);
        let p = c.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].contains("\"cut off\"") && p[0].contains("leaves"),
            "{p:?}"
        );
        assert!(p[1].contains("Rect (#D55E00)"), "{p:?}");
        assert!(
            p[2].contains("\"first label\"") && p[2].contains("overlaps"),
            "{p:?}"
        );
    }

    #[test]
    fn rotated_text_is_measured_rotated() {
        let svg = r##"<svg viewBox="0 0 100 200">
<text x="50" y="100" dy="0.5ex" text-anchor="middle" font-family="DejaVu Sans" font-size="10" opacity="1" fill="#000000" transform="rotate(270, 50, 100)">
a long rotated label
</text>
</svg>"##;
        let c = check_svg(svg).unwrap();
        let b = c.texts[0].bbox;
        assert!(b.y1 - b.y0 > 5.0 * (b.x1 - b.x0), "{b}");
        assert!(c.problems().is_empty());
    }
}
