//! Artwork slots (BMP files of fixed size) and the Windows icon made from one.

use crate::error::{Error, Problem, Result};
use std::path::Path;

/// One artwork file the apps and installers use.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// File name inside the artwork folder.
    pub file: &'static str,
    /// Required width and height in pixels.
    pub size: (u32, u32),
    /// Where it appears.
    pub used_for: &'static str,
}

/// Every slot.
pub const SLOTS: [Slot; 2] = [
    Slot { file: "header.bmp", size: (150, 57), used_for: "installer header and app banner" },
    Slot { file: "icon.bmp", size: (32, 32), used_for: "app and installer icon" },
];

/// Checks every slot in `dir`; `shown` is the folder as printed.
pub fn check(dir: &Path, shown: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    for slot in SLOTS {
        let name = format!("{shown}/{}", slot.file);
        let fix = format!("save a {}x{} BMP image ({}) as {name}", slot.size.0, slot.size.1, slot.used_for);
        let bytes = match std::fs::read(dir.join(slot.file)) {
            Ok(b) => b,
            Err(e) => {
                out.push(Problem::field(&name, &format!("artwork.{}", slot.file), format!("cannot read: {e}"), fix));
                continue;
            }
        };
        if !bytes.starts_with(b"BM") {
            out.push(Problem::field(&name, &format!("artwork.{}", slot.file), "not a BMP file", fix));
            continue;
        }
        match image::load_from_memory_with_format(&bytes, image::ImageFormat::Bmp) {
            Err(e) => out.push(Problem::field(
                &name,
                &format!("artwork.{}", slot.file),
                format!("BMP does not decode: {e}"),
                fix,
            )),
            Ok(img) if (img.width(), img.height()) != slot.size => out.push(Problem::field(
                &name,
                &format!("artwork.{}", slot.file),
                format!("is {}x{}, the slot needs {}x{}", img.width(), img.height(), slot.size.0, slot.size.1),
                fix,
            )),
            Ok(_) => {}
        }
    }
    out
}

/// A Windows `.ico` (16, 32 and 48 pixels) made from `icon.bmp`.
pub fn make_ico(icon_bmp: &Path) -> Result<Vec<u8>> {
    use image::codecs::ico::{IcoEncoder, IcoFrame};
    let img = image::open(icon_bmp)
        .map_err(|e| Error::Tool { tool: "image".into(), msg: format!("{}: {e}", icon_bmp.display()) })?
        .to_rgba8();
    let mut frames = Vec::new();
    for s in [16u32, 32, 48] {
        let r = image::imageops::resize(&img, s, s, image::imageops::FilterType::Triangle);
        let f = IcoFrame::as_png(r.as_raw(), s, s, image::ExtendedColorType::Rgba8)
            .map_err(|e| Error::Tool { tool: "image".into(), msg: e.to_string() })?;
        frames.push(f);
    }
    let mut out = Vec::new();
    IcoEncoder::new(&mut out)
        .encode_images(&frames)
        .map_err(|e| Error::Tool { tool: "image".into(), msg: e.to_string() })?;
    Ok(out)
}
