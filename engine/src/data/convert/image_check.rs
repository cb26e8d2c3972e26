//! Checking image bytes before they go into a table. The reference stores whatever the file
//! holds; a truncated or foreign file then fails at training time. Here it is skipped and listed.

/// How much of each image is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageCheck {
    /// JPEG or PNG structure: the header with non-zero dimensions, every segment or chunk up to
    /// the image data, and the end marker (`FFD9` after the scan, `IEND`): catches truncated,
    /// empty and foreign files at the cost of a scan, not a decode.
    #[default]
    Structure,
    /// The structure check, then a full decode with the engine's decoder (what training
    /// will do), on all cores.
    Decode,
}

impl std::str::FromStr for ImageCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "structure" => Ok(Self::Structure),
            "decode" => Ok(Self::Decode),
            o => Err(format!(
                "unknown image check `{o}` (expected structure or decode)"
            )),
        }
    }
}

impl ImageCheck {
    pub fn name(self) -> &'static str {
        match self {
            Self::Structure => "structure",
            Self::Decode => "decode",
        }
    }
}

/// `Err(reason)` when the bytes are not an image the engine can read.
pub fn check_image(bytes: &[u8], check: ImageCheck) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg_structure(bytes)?;
    } else if bytes.starts_with(PNG_SIGNATURE) {
        png_structure(bytes)?;
    } else {
        return Err(foreign(bytes));
    }
    if check == ImageCheck::Decode {
        crate::data::transforms::decode_rgb(bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn foreign(bytes: &[u8]) -> String {
    match image::guess_format(bytes) {
        Ok(f) => format!("a {f:?} image, not JPEG or PNG (the engine decodes those two)"),
        Err(_) => "not a JPEG or PNG image".into(),
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Walks the JPEG segments from SOI to the first SOS, checks a frame header with non-zero
/// dimensions came first, then that an EOI marker follows the scan data.
fn jpeg_structure(b: &[u8]) -> Result<(), String> {
    let truncated = |at: usize| format!("truncated JPEG (headers end at byte {at} of {})", b.len());
    let mut pos = 2;
    let mut frame = false;
    loop {
        if b.get(pos) != Some(&0xFF) {
            return if pos >= b.len() {
                Err(truncated(pos))
            } else {
                Err(format!("corrupt JPEG: no marker at byte {pos}"))
            };
        }
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else {
            return Err(truncated(pos));
        };
        pos += 1;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 | 0xD9 => {
                return Err(format!(
                    "corrupt JPEG: marker FF{marker:02X} before the image data"
                ))
            }
            0xDA => {
                if !frame {
                    return Err("corrupt JPEG: image data before a frame header".into());
                }
                let scan = pos;
                return if b[scan..].windows(2).rev().any(|w| w == [0xFF, 0xD9]) {
                    Ok(())
                } else {
                    Err(format!(
                        "truncated JPEG: no end-of-image marker after the scan ({} bytes)",
                        b.len()
                    ))
                };
            }
            _ => {
                let len = be16(b, pos).ok_or_else(|| truncated(pos))?;
                if len < 2 {
                    return Err(format!("corrupt JPEG: segment length {len} at byte {pos}"));
                }
                // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
                if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
                    let (h, w) = (be16(b, pos + 3), be16(b, pos + 5));
                    match (h, w) {
                        (Some(h), Some(w)) if h > 0 && w > 0 => frame = true,
                        (Some(_), Some(_)) => {
                            return Err("corrupt JPEG: zero width or height".into())
                        }
                        _ => return Err(truncated(pos)),
                    }
                }
                pos += len;
                if pos > b.len() {
                    return Err(truncated(b.len()));
                }
            }
        }
    }
}

/// Walks the PNG chunks from IHDR to IEND.
fn png_structure(b: &[u8]) -> Result<(), String> {
    let mut pos = PNG_SIGNATURE.len();
    let mut first = true;
    loop {
        let (Some(len), Some(kind)) = (be32(b, pos), b.get(pos + 4..pos + 8)) else {
            return Err(format!("truncated PNG: no IEND chunk ({} bytes)", b.len()));
        };
        if first {
            if kind != b"IHDR" {
                return Err("corrupt PNG: the first chunk is not IHDR".into());
            }
            match (be32(b, pos + 8), be32(b, pos + 12)) {
                (Some(w), Some(h)) if w > 0 && h > 0 => {}
                _ => return Err("corrupt PNG: zero or missing dimensions".into()),
            }
            first = false;
        }
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| {
                format!(
                    "truncated PNG: a chunk runs past the end ({} bytes)",
                    b.len()
                )
            })?;
        if kind == b"IEND" {
            return Ok(());
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 7) as u8, 99]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn whole_images_pass_both_checks() {
        for bytes in [jpeg(17, 9), png(5, 11)] {
            assert_eq!(check_image(&bytes, ImageCheck::Structure), Ok(()));
            assert_eq!(check_image(&bytes, ImageCheck::Decode), Ok(()));
        }
        // Bytes after the end marker (some cameras pad files) are allowed.
        let mut padded = jpeg(8, 8);
        padded.extend_from_slice(&[0; 100]);
        assert_eq!(check_image(&padded, ImageCheck::Structure), Ok(()));
    }

    #[test]
    fn truncated_empty_and_foreign_files_fail() {
        let j = jpeg(32, 32);
        for cut in [1, 2, 10, j.len() / 2, j.len() - 2] {
            let err = check_image(&j[..cut], ImageCheck::Structure).unwrap_err();
            assert!(err.contains("JPEG"), "{cut}: {err}");
            assert!(check_image(&j[..cut], ImageCheck::Decode).is_err(), "{cut}");
        }
        let p = png(16, 16);
        for cut in [9, 20, p.len() - 5] {
            let err = check_image(&p[..cut], ImageCheck::Structure).unwrap_err();
            assert!(err.contains("PNG"), "{cut}: {err}");
        }
        assert_eq!(
            check_image(b"", ImageCheck::Structure).unwrap_err(),
            "empty file"
        );
        let err = check_image(b"GIF89a....", ImageCheck::Structure).unwrap_err();
        assert!(err.contains("Gif"), "{err}");
        let err = check_image(b"hello world", ImageCheck::Structure).unwrap_err();
        assert_eq!(err, "not a JPEG or PNG image");
    }
}
