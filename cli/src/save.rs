//! Writing annotated images.

use std::path::Path;

/// Writes an RGB8 image as a JPEG (quality 90).
pub fn save_jpeg(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<(), String> {
    let (w, h) = (
        u16::try_from(width)
            .map_err(|_| format!("{}: image too wide to save as JPEG", path.display()))?,
        u16::try_from(height)
            .map_err(|_| format!("{}: image too tall to save as JPEG", path.display()))?,
    );
    let enc = jpeg_encoder::Encoder::new_file(path, 90)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
