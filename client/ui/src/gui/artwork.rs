//! The brand's BMP artwork in the windows: decoded once, uploaded as egui
//! textures, and the icon as the window icon.

use eframe::egui;

/// Decodes a BMP (24 or 32 bits, as the builder checks) to an image.
pub fn decode_bmp(bytes: &[u8]) -> Result<egui::ColorImage, String> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Bmp).map_err(|e| e.to_string())?;
    let rgba = img.to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    Ok(egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw()))
}

/// The icon as window-icon data, or `None` if it does not decode.
pub fn icon_data(bytes: &[u8]) -> Option<egui::IconData> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Bmp).ok()?.to_rgba8();
    Some(egui::IconData { width: img.width(), height: img.height(), rgba: img.into_raw() })
}

/// The brand's artwork as textures of one context.
#[derive(Clone)]
pub struct Artwork {
    /// Header (150x57), shown at the top of both windows.
    pub header: Option<egui::TextureHandle>,
    /// Icon (32x32), shown beside the title.
    pub icon: Option<egui::TextureHandle>,
}

impl Artwork {
    /// Uploads the artwork of `brand` (once per context; later calls return the same textures).
    pub fn get(ctx: &egui::Context, brand: &super::BrandView) -> Artwork {
        let id = egui::Id::unique("thin_gui_artwork");
        if let Some(a) = ctx.data(|d| d.get_temp::<Artwork>(id)) {
            return a;
        }
        // Nearest filtering: the BMPs are shown at their own size and stay crisp.
        let load = |name: &str, bytes: &[u8]| match decode_bmp(bytes) {
            Ok(img) => Some(ctx.load_texture(name, img, egui::TextureOptions::NEAREST)),
            Err(e) => {
                tracing::warn!("artwork {name}: {e}");
                None
            }
        };
        let a = Artwork { header: load("brand-header", brand.header_bmp), icon: load("brand-icon", brand.icon_bmp) };
        ctx.data_mut(|d| d.insert_temp(id, a.clone()));
        a
    }
}

/// Shows a texture at its own pixel size.
pub fn show(ui: &mut egui::Ui, tex: &egui::TextureHandle) -> egui::Response {
    let ppp = ui.ctx().pixels_per_point();
    let [w, h] = tex.size();
    ui.add(egui::Image::new((tex.id(), egui::vec2(w as f32 / ppp, h as f32 / ppp))))
}

/// The header and title block both windows start with: header artwork, then
/// the icon and `title` on one line, then the system name.
pub fn title_block(ui: &mut egui::Ui, title: &str) {
    let brand = super::brand();
    let art = Artwork::get(ui.ctx(), &brand);
    if let Some(h) = &art.header {
        show(ui, h);
    }
    ui.horizontal(|ui| {
        if let Some(i) = &art.icon {
            show(ui, i);
        }
        ui.vertical(|ui| {
            ui.heading(title);
            ui.label(egui::RichText::new(brand.system).weak());
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_brand_artwork_decodes() {
        let b = crate::gui::brand();
        let h = decode_bmp(b.header_bmp).unwrap();
        assert_eq!(h.size, [150, 57]);
        let i = icon_data(b.icon_bmp).unwrap();
        assert_eq!((i.width, i.height, i.rgba.len()), (32, 32, 32 * 32 * 4));
        assert!(decode_bmp(b"not a bmp").is_err());
    }
}
