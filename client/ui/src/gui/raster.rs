//! egui's triangles painted on the CPU, for PCs without OpenGL 2 (see
//! [`super::software`]): egui tessellates a frame into triangle meshes with a
//! colour and a texture coordinate at each vertex, clipped to rectangles; this
//! fills each triangle's pixels (pixel centres inside the triangle, shared
//! edges drawn once), interpolating colour and texture coordinate, samples the
//! texture (nearest or bilinear, as the texture asks), and blends the
//! premultiplied result over the picture, as egui's OpenGL painter does (in
//! gamma space).
//!
//! The picture is `0x00RRGGBB` words, top row first: what `softbuffer`
//! presents.

use std::collections::HashMap;

use eframe::egui;
use egui::epaint::textures::{TextureFilter, TexturesDelta};
use egui::epaint::{ClippedPrimitive, ImageData, Primitive};
use egui::{Color32, TextureId};

/// A frame that could not be painted.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    /// A mesh used a texture egui never sent (or already freed).
    #[error("a mesh uses the unknown texture {0:?}")]
    UnknownTexture(TextureId),
    /// A partial update of a texture egui never sent.
    #[error("an update of the unknown texture {0:?}")]
    UpdateOfUnknown(TextureId),
    /// A partial update that does not fit in its texture.
    #[error("an update of {size:?} at {pos:?} does not fit in texture {id:?} of {tex:?}")]
    UpdateOutside { id: TextureId, pos: [usize; 2], size: [usize; 2], tex: [usize; 2] },
    /// A mesh index past the end of its vertices.
    #[error("a mesh index {index} is past its {vertices} vertices")]
    BadIndex { index: u32, vertices: usize },
    /// egui asked for a paint callback (custom OpenGL drawing), which only a GPU painter has.
    #[error("a paint callback cannot be painted on the CPU")]
    Callback,
}

/// One texture: premultiplied RGBA, rows top to bottom.
struct Texture {
    size: [usize; 2],
    px: Vec<Color32>,
    linear: bool,
}

/// The textures egui has sent (font atlas, artwork), kept across frames.
#[derive(Default)]
pub struct Textures {
    map: HashMap<TextureId, Texture>,
}

impl Textures {
    /// Applies the uploads of a frame (before painting it) and takes them out
    /// of `delta`; what it leaves is the textures to free after painting.
    pub fn set(&mut self, delta: &mut TexturesDelta) -> Result<(), RasterError> {
        let set = std::mem::take(&mut delta.set);
        for (id, d) in set.iter().flat_map(|(id, ds)| ds.iter().map(move |d| (id, d))) {
            let ImageData::Color(image) = &d.image;
            let linear = d.options.magnification == TextureFilter::Linear;
            match d.pos {
                None => {
                    self.map.insert(*id, Texture { size: image.size, px: image.pixels.clone(), linear });
                }
                Some(pos) => {
                    let t = self.map.get_mut(id).ok_or(RasterError::UpdateOfUnknown(*id))?;
                    let [w, h] = image.size;
                    if pos[0] + w > t.size[0] || pos[1] + h > t.size[1] {
                        return Err(RasterError::UpdateOutside { id: *id, pos, size: image.size, tex: t.size });
                    }
                    for y in 0..h {
                        let dst = (pos[1] + y) * t.size[0] + pos[0];
                        t.px[dst..dst + w].copy_from_slice(&image.pixels[y * w..(y + 1) * w]);
                    }
                    t.linear = linear;
                }
            }
        }
        Ok(())
    }

    /// Drops the textures egui freed (`TexturesDelta::free`, after painting the frame).
    pub fn free(&mut self, ids: impl IntoIterator<Item = TextureId>) {
        for id in ids {
            self.map.remove(&id);
        }
    }
}

/// A picture to paint into: `width * height` words `0x00RRGGBB`.
pub struct Canvas<'a> {
    pub width: usize,
    pub height: usize,
    pub px: &'a mut [u32],
}

/// Paints `prims` (egui's tessellated frame, in points) at `ppp` pixels per
/// point over `canvas`, first filled with `background`.
pub fn paint(
    canvas: &mut Canvas<'_>,
    textures: &Textures,
    prims: &[ClippedPrimitive],
    ppp: f32,
    background: Color32,
) -> Result<(), RasterError> {
    let bg = u32::from(background.r()) << 16 | u32::from(background.g()) << 8 | u32::from(background.b());
    canvas.px.fill(bg);
    for p in prims {
        let mesh = match &p.primitive {
            Primitive::Mesh(m) => m,
            Primitive::Callback(_) => return Err(RasterError::Callback),
        };
        let tex = textures.map.get(&mesh.texture_id).ok_or(RasterError::UnknownTexture(mesh.texture_id))?;
        // The clip rectangle in whole pixels, within the canvas.
        let c = p.clip_rect;
        let clip = [
            (c.min.x * ppp).round().clamp(0.0, canvas.width as f32) as usize,
            (c.min.y * ppp).round().clamp(0.0, canvas.height as f32) as usize,
            (c.max.x * ppp).round().clamp(0.0, canvas.width as f32) as usize,
            (c.max.y * ppp).round().clamp(0.0, canvas.height as f32) as usize,
        ];
        if clip[0] >= clip[2] || clip[1] >= clip[3] {
            continue;
        }
        for tri in mesh.indices.chunks_exact(3) {
            let mut v = [&mesh.vertices[0]; 3];
            for (k, &i) in tri.iter().enumerate() {
                v[k] = mesh
                    .vertices
                    .get(i as usize)
                    .ok_or(RasterError::BadIndex { index: i, vertices: mesh.vertices.len() })?;
            }
            triangle(canvas, tex, clip, ppp, v);
        }
    }
    Ok(())
}

/// Whether the edge from `a` to `b` is a top or left edge of a triangle
/// wound with positive area (y down): pixel centres exactly on such an edge
/// belong to the triangle, those on the other edges to its neighbour.
fn top_left(a: [f32; 2], b: [f32; 2]) -> bool {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    (dy == 0.0 && dx < 0.0) || dy > 0.0
}

fn triangle(canvas: &mut Canvas<'_>, tex: &Texture, clip: [usize; 4], ppp: f32, v: [&egui::epaint::Vertex; 3]) {
    let mut p = v.map(|v| [v.pos.x * ppp, v.pos.y * ppp]);
    let mut v = v;
    let edge = |a: [f32; 2], b: [f32; 2], x: f32, y: f32| (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]);
    let mut area = edge(p[0], p[1], p[2][0], p[2][1]);
    if area == 0.0 || !area.is_finite() {
        return;
    }
    if area < 0.0 {
        p.swap(1, 2);
        v.swap(1, 2);
        area = -area;
    }
    let min_x = p.iter().map(|q| q[0]).fold(f32::INFINITY, f32::min);
    let max_x = p.iter().map(|q| q[0]).fold(f32::NEG_INFINITY, f32::max);
    let min_y = p.iter().map(|q| q[1]).fold(f32::INFINITY, f32::min);
    let max_y = p.iter().map(|q| q[1]).fold(f32::NEG_INFINITY, f32::max);
    // Pixels whose centre (x + 0.5) may be inside.
    let x0 = ((min_x - 0.5).ceil().max(clip[0] as f32)) as usize;
    let x1 = ((max_x - 0.5).floor() + 1.0).clamp(0.0, clip[2] as f32) as usize;
    let y0 = ((min_y - 0.5).ceil().max(clip[1] as f32)) as usize;
    let y1 = ((max_y - 0.5).floor() + 1.0).clamp(0.0, clip[3] as f32) as usize;
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    // Edge i is opposite vertex i; its weight is vertex i's.
    let edges = [(p[1], p[2]), (p[2], p[0]), (p[0], p[1])];
    let tl = edges.map(|(a, b)| top_left(a, b));
    let col = v.map(|v| {
        let c = v.color;
        [f32::from(c.r()), f32::from(c.g()), f32::from(c.b()), f32::from(c.a())]
    });
    let uv = v.map(|v| [v.uv.x, v.uv.y]);
    let white = tex_is_white_at(tex, uv);
    for y in y0..y1 {
        let py = y as f32 + 0.5;
        let row = y * canvas.width;
        for x in x0..x1 {
            let px = x as f32 + 0.5;
            let mut w = [0.0f32; 3];
            let mut inside = true;
            for i in 0..3 {
                let e = edge(edges[i].0, edges[i].1, px, py);
                if e < 0.0 || (e == 0.0 && !tl[i]) {
                    inside = false;
                    break;
                }
                w[i] = e / area;
            }
            if !inside {
                continue;
            }
            let mut c = [0.0f32; 4];
            for (k, ck) in c.iter_mut().enumerate() {
                *ck = w[0] * col[0][k] + w[1] * col[1][k] + w[2] * col[2][k];
            }
            if !white {
                let u = w[0] * uv[0][0] + w[1] * uv[1][0] + w[2] * uv[2][0];
                let t = w[0] * uv[0][1] + w[1] * uv[1][1] + w[2] * uv[2][1];
                let s = sample(tex, u, t);
                for k in 0..4 {
                    c[k] = c[k] * s[k] / 255.0;
                }
            }
            if c[3] <= 0.0 && c[0] <= 0.0 && c[1] <= 0.0 && c[2] <= 0.0 {
                continue;
            }
            let d = &mut canvas.px[row + x];
            let keep = 1.0 - (c[3] / 255.0).min(1.0);
            let blend = |src: f32, shift: u32| {
                let dst = ((*d >> shift) & 0xff) as f32;
                ((src + dst * keep).round().clamp(0.0, 255.0) as u32) << shift
            };
            *d = blend(c[0], 16) | blend(c[1], 8) | blend(c[2], 0);
        }
    }
}

/// Whether the three texture coordinates all fall on one opaque white texel
/// (egui's untextured shapes point at the white texel of the font atlas), so
/// the texture need not be sampled.
fn tex_is_white_at(tex: &Texture, uv: [[f32; 2]; 3]) -> bool {
    let texel = |u: f32, v: f32| {
        let x = (u * tex.size[0] as f32).floor().clamp(0.0, tex.size[0] as f32 - 1.0) as usize;
        let y = (v * tex.size[1] as f32).floor().clamp(0.0, tex.size[1] as f32 - 1.0) as usize;
        (x, y)
    };
    let first = texel(uv[0][0], uv[0][1]);
    let near_centre = |u: f32, v: f32| {
        let fx = u * tex.size[0] as f32 - first.0 as f32;
        let fy = v * tex.size[1] as f32 - first.1 as f32;
        (0.25..=0.75).contains(&fx) && (0.25..=0.75).contains(&fy)
    };
    uv.iter().all(|q| texel(q[0], q[1]) == first && near_centre(q[0], q[1]))
        && tex.px.get(first.1 * tex.size[0] + first.0) == Some(&Color32::WHITE)
}

/// The texel colour at `(u, v)` (0..1 over the texture), premultiplied.
fn sample(tex: &Texture, u: f32, v: f32) -> [f32; 4] {
    let [w, h] = tex.size;
    if w == 0 || h == 0 {
        return [0.0; 4];
    }
    let at = |x: usize, y: usize| {
        let c = tex.px[y * w + x];
        [f32::from(c.r()), f32::from(c.g()), f32::from(c.b()), f32::from(c.a())]
    };
    let (fx, fy) = (u * w as f32 - 0.5, v * h as f32 - 0.5);
    if !tex.linear {
        let x = (fx + 0.5).floor().clamp(0.0, (w - 1) as f32) as usize;
        let y = (fy + 0.5).floor().clamp(0.0, (h - 1) as f32) as usize;
        return at(x, y);
    }
    let (x0f, y0f) = (fx.floor(), fy.floor());
    let (ax, ay) = (fx - x0f, fy - y0f);
    let cx = |x: f32| x.clamp(0.0, (w - 1) as f32) as usize;
    let cy = |y: f32| y.clamp(0.0, (h - 1) as f32) as usize;
    let (x0, x1, y0, y1) = (cx(x0f), cx(x0f + 1.0), cy(y0f), cy(y0f + 1.0));
    let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    let mut out = [0.0; 4];
    for k in 0..4 {
        let top = a[k] + (b[k] - a[k]) * ax;
        let bottom = c[k] + (d[k] - c[k]) * ax;
        out[k] = top + (bottom - top) * ay;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::epaint::textures::TextureOptions;
    use egui::epaint::{ColorImage, ImageDelta, Mesh, Vertex};
    use egui::{pos2, Pos2, Rect};

    fn canvas_of(w: usize, h: usize) -> Vec<u32> {
        vec![0; w * h]
    }

    fn white_texture() -> Textures {
        let mut t = Textures::default();
        let mut delta = TexturesDelta::default();
        let img = ColorImage::new([1, 1], vec![Color32::WHITE]);
        delta.push(TextureId::default(), ImageDelta::full(img, TextureOptions::NEAREST));
        t.set(&mut delta).unwrap();
        t
    }

    fn rect_mesh(r: Rect, color: Color32, tex: TextureId, uv: Rect) -> Mesh {
        let mut m = Mesh::with_texture(tex);
        m.add_rect_with_uv(r, uv, color);
        m
    }

    fn prim(mesh: Mesh, clip: Rect) -> ClippedPrimitive {
        ClippedPrimitive { clip_rect: clip, primitive: Primitive::Mesh(mesh) }
    }

    fn run(w: usize, h: usize, t: &Textures, prims: &[ClippedPrimitive], ppp: f32) -> Vec<u32> {
        let mut px = canvas_of(w, h);
        let mut c = Canvas { width: w, height: h, px: &mut px };
        paint(&mut c, t, prims, ppp, Color32::from_rgb(10, 20, 30)).unwrap();
        px
    }

    #[test]
    fn a_rectangle_covers_exactly_its_pixels_and_shared_edges_once() {
        let t = white_texture();
        let all = Rect::from_min_max(Pos2::ZERO, pos2(8.0, 8.0));
        let uv = Rect::from_min_max(pos2(0.5, 0.5), pos2(0.5, 0.5));
        // Half-transparent red: a pixel blended twice (a shared diagonal) would be redder.
        let red = Color32::from_rgba_premultiplied(100, 0, 0, 128);
        let px = run(
            8,
            8,
            &t,
            &[prim(rect_mesh(Rect::from_min_max(pos2(2.0, 1.0), pos2(6.0, 4.0)), red, TextureId::default(), uv), all)],
            1.0,
        );
        let bg = 10 << 16 | 20 << 8 | 30;
        let keep = |c: u32| (c as f32 * (1.0 - 128.0 / 255.0)).round() as u32;
        let blended = (100 + keep(10)) << 16 | keep(20) << 8 | keep(30);
        for y in 0..8 {
            for x in 0..8 {
                let inside = (2..6).contains(&x) && (1..4).contains(&y);
                assert_eq!(px[y * 8 + x], if inside { blended } else { bg }, "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn clip_rectangles_and_pixels_per_point_apply() {
        let t = white_texture();
        let uv = Rect::from_min_max(pos2(0.5, 0.5), pos2(0.5, 0.5));
        let mesh = rect_mesh(Rect::from_min_max(Pos2::ZERO, pos2(4.0, 4.0)), Color32::WHITE, TextureId::default(), uv);
        // 4x4 points at 2 pixels per point, clipped to points 1..3 on x.
        let clip = Rect::from_min_max(pos2(1.0, 0.0), pos2(3.0, 4.0));
        let px = run(10, 10, &t, &[prim(mesh, clip)], 2.0);
        for y in 0..10 {
            for x in 0..10 {
                let inside = (2..6).contains(&x) && y < 8;
                assert_eq!(px[y * 10 + x] == 0xffffff, inside, "pixel {x},{y}");
            }
        }
    }

    #[test]
    fn textures_are_sampled_texel_for_texel_and_updated_in_part() {
        let mut t = white_texture();
        let id = TextureId::User(7);
        let colors: Vec<Color32> = (0..12).map(|i| Color32::from_rgb(i * 20, 255 - i * 20, i)).collect();
        let mut delta = TexturesDelta::default();
        delta.push(id, ImageDelta::full(ColorImage::new([4, 3], colors.clone()), TextureOptions::LINEAR));
        t.set(&mut delta).unwrap();
        // A patch over texel (1,1).
        let mut patch = TexturesDelta::default();
        let blue = Color32::from_rgb(0, 0, 255);
        patch.push(id, ImageDelta::partial([1, 1], ColorImage::new([1, 1], vec![blue]), TextureOptions::LINEAR));
        t.set(&mut patch).unwrap();
        let full_uv = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
        let mesh = rect_mesh(Rect::from_min_max(pos2(1.0, 1.0), pos2(5.0, 4.0)), Color32::WHITE, id, full_uv);
        let px = run(6, 5, &t, &[prim(mesh, Rect::EVERYTHING)], 1.0);
        for ty in 0..3 {
            for tx in 0..4 {
                let c = if (tx, ty) == (1, 1) { blue } else { colors[ty * 4 + tx] };
                let want = u32::from(c.r()) << 16 | u32::from(c.g()) << 8 | u32::from(c.b());
                assert_eq!(px[(ty + 1) * 6 + tx + 1], want, "texel {tx},{ty}");
            }
        }
        let mut bad = TexturesDelta::default();
        bad.push(id, ImageDelta::partial([3, 2], ColorImage::new([2, 1], vec![blue; 2]), TextureOptions::LINEAR));
        assert!(matches!(t.set(&mut bad), Err(RasterError::UpdateOutside { .. })));
    }

    #[test]
    fn unknown_textures_and_bad_indices_are_errors() {
        let t = white_texture();
        let mut px = canvas_of(2, 2);
        let mut c = Canvas { width: 2, height: 2, px: &mut px };
        let mesh = Mesh::with_texture(TextureId::User(99));
        let r = paint(&mut c, &t, &[prim(mesh, Rect::EVERYTHING)], 1.0, Color32::BLACK);
        assert!(matches!(r, Err(RasterError::UnknownTexture(_))));
        let mut mesh = Mesh::default();
        mesh.vertices.push(Vertex { pos: Pos2::ZERO, uv: Pos2::ZERO, color: Color32::WHITE });
        mesh.indices.extend([0, 1, 2]);
        let r = paint(&mut c, &t, &[prim(mesh, Rect::EVERYTHING)], 1.0, Color32::BLACK);
        assert!(matches!(r, Err(RasterError::BadIndex { index: 1, .. })));
    }

    /// A whole egui frame with text: the text's pixels differ from the
    /// background, and the frame paints without error.
    #[test]
    fn an_egui_frame_with_text_paints() {
        let ctx = egui::Context::default();
        let mut t = Textures::default();
        let input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, egui::vec2(200.0, 60.0))),
            ..Default::default()
        };
        let mut out = ctx.run_ui(input.clone(), |ui| {
            ui.label("Hello");
        });
        // Fonts arrive on the first pass; paint the second.
        t.set(&mut out.textures_delta).unwrap();
        out = ctx.run_ui(input, |ui| {
            ui.label("Hello");
        });
        t.set(&mut out.textures_delta).unwrap();
        let prims = ctx.tessellate(out.shapes, out.pixels_per_point);
        let bg = Color32::from_rgb(10, 20, 30);
        let mut px = canvas_of(200, 60);
        let mut c = Canvas { width: 200, height: 60, px: &mut px };
        paint(&mut c, &t, &prims, 1.0, bg).unwrap();
        t.free(std::mem::take(&mut out.textures_delta.free));
        let distinct: std::collections::BTreeSet<u32> = px.iter().copied().collect();
        assert!(distinct.len() > 5, "text gives shades of grey: {distinct:?}");
    }
}
