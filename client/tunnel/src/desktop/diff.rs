//! What changed between two captures of a screen that reports no damage of
//! its own (Windows' GDI): the frames are compared in square tiles, the
//! changed tiles of a row of tiles are joined into runs, runs with the same
//! columns in consecutive rows into rectangles, and those are merged as
//! damage is ([`super::screen::merge`]).

use super::screen::{merge, Rect};

/// The side of a tile, in pixels.
pub const TILE: usize = 64;

/// The changed rectangles between `prev` and `next`, two captures of a
/// `width` x `height` screen at 4 bytes per pixel, rows `stride` bytes apart.
///
/// # Panics
/// When a buffer is shorter than `height` rows of `stride` bytes or a row
/// shorter than `width` pixels.
pub fn changed(prev: &[u8], next: &[u8], width: u16, height: u16, stride: usize) -> Vec<Rect> {
    let (w, h) = (usize::from(width), usize::from(height));
    assert!(stride >= w * 4 && prev.len() >= h * stride && next.len() >= h * stride, "frame smaller than its size");
    let cols = w.div_ceil(TILE);
    let c = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
    // Rectangles whose last row of tiles is the previous one (they may grow).
    let mut growing: Vec<Rect> = Vec::new();
    let mut done = Vec::new();
    let mut dirty = vec![false; cols];
    for y0 in (0..h).step_by(TILE) {
        let y1 = (y0 + TILE).min(h);
        dirty.fill(false);
        for y in y0..y1 {
            let (a, b) = (&prev[y * stride..y * stride + w * 4], &next[y * stride..y * stride + w * 4]);
            if a == b {
                continue;
            }
            for (tx, d) in dirty.iter_mut().enumerate().filter(|(_, d)| !**d) {
                let (x0, x1) = (tx * TILE * 4, ((tx + 1) * TILE).min(w) * 4);
                *d = a[x0..x1] != b[x0..x1];
            }
        }
        let mut next_growing = Vec::new();
        let mut tx = 0;
        while tx < cols {
            if !dirty[tx] {
                tx += 1;
                continue;
            }
            let start = tx;
            while tx < cols && dirty[tx] {
                tx += 1;
            }
            let (x, x_end) = (start * TILE, (tx * TILE).min(w));
            let rows = c(y1 - y0);
            match growing.iter().position(|r| usize::from(r.x) == x && usize::from(r.width) == x_end - x) {
                Some(i) => {
                    let mut r = growing.swap_remove(i);
                    r.height += rows;
                    next_growing.push(r);
                }
                None => next_growing.push(Rect { x: c(x), y: c(y0), width: c(x_end - x), height: rows }),
            }
        }
        done.append(&mut growing);
        growing = next_growing;
    }
    done.append(&mut growing);
    done.sort_by_key(|r| (r.y, r.x));
    merge(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize) -> Vec<u8> {
        vec![0x20; w * h * 4]
    }

    fn poke(f: &mut [u8], w: usize, x: usize, y: usize) {
        f[(y * w + x) * 4] ^= 0xff;
    }

    #[test]
    fn nothing_changed_is_nothing() {
        let f = frame(300, 200);
        assert!(changed(&f, &f, 300, 200, 1200).is_empty());
    }

    #[test]
    fn one_pixel_gives_its_tile_clipped_to_the_screen() {
        let a = frame(300, 200);
        let mut b = a.clone();
        poke(&mut b, 300, 299, 199);
        assert_eq!(changed(&a, &b, 300, 200, 1200), vec![Rect { x: 256, y: 192, width: 44, height: 8 }]);
        let mut b = a.clone();
        poke(&mut b, 300, 70, 3);
        assert_eq!(changed(&a, &b, 300, 200, 1200), vec![Rect { x: 64, y: 0, width: 64, height: 64 }]);
    }

    #[test]
    fn a_block_of_tiles_is_one_rectangle_and_far_ones_stay_apart() {
        let (w, h) = (640, 480);
        let a = frame(w, h);
        let mut b = a.clone();
        // A change spanning tiles (1..3) x (1..3): one 192 x 192 rectangle.
        for y in 100..180 {
            for x in 100..180 {
                poke(&mut b, w, x, y);
            }
        }
        poke(&mut b, w, 639, 479);
        assert_eq!(
            changed(&a, &b, w as u16, h as u16, w * 4),
            vec![Rect { x: 64, y: 64, width: 128, height: 128 }, Rect { x: 576, y: 448, width: 64, height: 32 }]
        );
    }

    #[test]
    fn a_padded_stride_is_respected() {
        let (w, h, stride) = (100, 10, 512);
        let a = vec![0u8; stride * h];
        let mut b = a.clone();
        // Bytes past the row's pixels are not the screen's.
        b[stride - 1] = 1;
        assert!(changed(&a, &b, w as u16, h as u16, stride).is_empty());
        b[stride + 4 * 99] = 1;
        assert_eq!(changed(&a, &b, w as u16, h as u16, stride), vec![Rect { x: 64, y: 0, width: 36, height: 10 }]);
    }
}
