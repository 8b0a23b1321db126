//! The screen's pixels as RDP bitmap updates: RDP 6.0 planar bitmaps (RLE,
//! IronRDP's encoder), in bands small enough for every viewer, each band one
//! fast-path update, split into fast-path fragments.

use ironrdp_core::{Encode as _, WriteCursor};
use ironrdp_graphics::rdp6::{BgrAChannels, BitmapStreamEncoder};
use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, CompressedDataHeader, Compression};
use ironrdp_pdu::fast_path::{EncryptionFlags, FastPathHeader, FastPathUpdatePdu, Fragmentation, UpdateCode};
use ironrdp_pdu::geometry::InclusiveRectangle;

use super::screen::Pixels;

/// Largest fast-path update payload in one fragment (MS-RDPBCGR 2.2.9.1.2.1).
const MAX_FRAGMENT: usize = 16_374;

/// Uncompressed bytes per band: the planar header counts them in 16 bits.
const BAND_BYTES: usize = 32 * 1024;

/// Errors while encoding.
#[derive(Debug, thiserror::Error)]
#[error("bitmap encoding: {0}")]
pub struct EncodeError(String);

/// Turns pixels into the bytes of fast-path bitmap updates.
pub struct Encoder {
    /// Widest update the viewer takes in one reassembled PDU
    /// (its Multifragment Update capability).
    max_update: usize,
    scratch: Vec<u8>,
    band: Vec<u8>,
}

impl Encoder {
    /// An encoder for a viewer that takes updates of up to `max_update` bytes.
    pub fn new(max_update: usize) -> Self {
        Self { max_update: max_update.max(MAX_FRAGMENT), scratch: Vec::new(), band: Vec::new() }
    }

    /// Appends to `out` the fast-path PDUs that paint `px`. The rectangle is
    /// widened to a multiple of 4 pixels (the planar encoder's rule) by
    /// repeating its last column.
    pub fn encode(&mut self, px: &Pixels, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let r = px.rect;
        if r.width == 0 || r.height == 0 {
            return Ok(());
        }
        let width = usize::from(r.width).div_ceil(4) * 4;
        let row = width * 4;
        // A band's uncompressed size fits in 16 bits and, compressed, in one update.
        let budget = BAND_BYTES.min(self.max_update.saturating_sub(64)).max(row);
        let band_rows = (budget / row).clamp(1, usize::from(r.height));
        let mut top = 0usize;
        while top < usize::from(r.height) {
            let rows = band_rows.min(usize::from(r.height) - top);
            self.fill_band(px, top, rows, width);
            // Planar worst case: 3 planes with an RLE header byte per 15 bytes, plus headers.
            self.scratch.resize(rows * width * 4 + 64, 0);
            let mut enc = BitmapStreamEncoder::new(width, rows);
            // Bottom-up rows, as bitmaps go on the wire.
            let pixels = self.band.chunks(row).rev().flat_map(|l| l.chunks(4));
            let len = enc
                .encode_pixels_stream::<_, BgrAChannels>(pixels, &mut self.scratch, true)
                .map_err(|e| EncodeError(format!("{e:?}")))?;
            let y = r.y + top as u16;
            let data = BitmapData {
                rectangle: InclusiveRectangle {
                    left: r.x,
                    top: y,
                    right: r.x + width as u16 - 1,
                    bottom: y + rows as u16 - 1,
                },
                width: width as u16,
                height: rows as u16,
                bits_per_pixel: 32,
                compression_flags: Compression::BITMAP_COMPRESSION,
                compressed_data_header: Some(CompressedDataHeader {
                    main_body_size: len as u16,
                    scan_width: width as u16,
                    uncompressed_size: (rows * row) as u16,
                }),
                bitmap_data: &self.scratch[..len],
            };
            let pdu = BitmapUpdateData { rectangles: vec![data] };
            let mut update = vec![0u8; pdu.size()];
            pdu.encode(&mut WriteCursor::new(&mut update)).map_err(|e| EncodeError(e.to_string()))?;
            fragments(UpdateCode::Bitmap, &update, out)?;
            top += rows;
        }
        Ok(())
    }

    /// Copies rows `top..top+rows` of `px` into `self.band`, `width` pixels
    /// each (the last pixel repeated past the rectangle's own width).
    fn fill_band(&mut self, px: &Pixels, top: usize, rows: usize, width: usize) {
        let own = usize::from(px.rect.width) * 4;
        self.band.clear();
        for y in top..top + rows {
            let line = &px.data[y * px.stride..y * px.stride + own];
            self.band.extend_from_slice(line);
            let last = [line[own - 4], line[own - 3], line[own - 2], line[own - 1]];
            for _ in usize::from(px.rect.width)..width {
                self.band.extend_from_slice(&last);
            }
        }
    }
}

/// Appends `data` as fast-path update PDUs of `code`, fragmented.
pub fn fragments(code: UpdateCode, data: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let chunks: Vec<&[u8]> = data.chunks(MAX_FRAGMENT).collect();
    let n = chunks.len();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let fragmentation = match (n, i) {
            (1, _) => Fragmentation::Single,
            (_, 0) => Fragmentation::First,
            (_, i) if i + 1 == n => Fragmentation::Last,
            _ => Fragmentation::Next,
        };
        let update = FastPathUpdatePdu {
            fragmentation,
            update_code: code,
            compression_flags: None,
            compression_type: None,
            data: chunk,
        };
        let header = FastPathHeader::new(EncryptionFlags::empty(), update.size());
        let start = out.len();
        out.resize(start + header.size() + update.size(), 0);
        let mut c = WriteCursor::new(&mut out[start..]);
        header.encode(&mut c).map_err(|e| EncodeError(e.to_string()))?;
        update.encode(&mut c).map_err(|e| EncodeError(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::screen::Rect;
    use ironrdp_core::{decode_cursor, ReadCursor};

    fn solid(w: u16, h: u16) -> Pixels {
        let mut data = Vec::new();
        for i in 0..u32::from(w) * u32::from(h) {
            data.extend_from_slice(&[(i % 251) as u8, 0x20, 0xC0, 0]);
        }
        Pixels { rect: Rect { x: 8, y: 16, width: w, height: h }, stride: usize::from(w) * 4, data }
    }

    /// Every PDU parses back, fragments are in order, and the bands cover the rectangle.
    #[test]
    fn bands_cover_the_rectangle_and_parse_back() {
        let px = solid(301, 250); // not a multiple of 4: widened to 304
        let mut out = Vec::new();
        Encoder::new(0x3F_0000).encode(&px, &mut out).unwrap();
        let mut c = ReadCursor::new(&out);
        let mut covered = 0u32;
        let mut whole = Vec::new();
        while !c.is_empty() {
            let _h: FastPathHeader = decode_cursor(&mut c).unwrap();
            let u: FastPathUpdatePdu<'_> = decode_cursor(&mut c).unwrap();
            assert!(u.data.len() <= MAX_FRAGMENT);
            whole.extend_from_slice(u.data);
            if matches!(u.fragmentation, Fragmentation::Single | Fragmentation::Last) {
                let b: BitmapUpdateData<'_> = ironrdp_core::decode(&whole).unwrap();
                for r in &b.rectangles {
                    assert_eq!(r.width, 304);
                    assert_eq!(r.rectangle.left, 8);
                    covered += u32::from(r.height);
                }
                whole.clear();
            }
        }
        assert_eq!(covered, 250);
        assert!(whole.is_empty(), "a fragment series was left open");
    }
}
