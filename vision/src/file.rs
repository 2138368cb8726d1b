//! Reading and writing image files (`std`).

use std::path::Path;

use crate::error::Error;
use crate::image::Image;

/// Reads and decodes a JPEG or PNG file ([`crate::decode`]).
///
/// # Errors
/// [`Error::Read`] for unreadable files, [`Error::Decode`] for undecodable
/// bytes.
pub fn load(path: &Path) -> Result<Image, Error> {
    let bytes = std::fs::read(path).map_err(Error::Read)?;
    Ok(crate::image::decode(&bytes)?)
}

/// Writes interleaved RGB8 pixels as a JPEG file of quality 90.
///
/// # Errors
/// A message for images JPEG cannot hold and files that cannot be written.
pub fn save_jpeg(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<(), String> {
    let jpg = crate::encode::encode_jpeg(rgb, width, height, 90)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, jpg).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
