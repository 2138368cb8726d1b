//! Reading and writing image files (`std`).

use std::path::Path;

use crate::error::Error;
use crate::image::{Image, Limits};

/// Largest image file read, in bytes (1 GiB: far above any real JPEG or
/// PNG, so a file is never read whole just to be refused).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// [`load_with`] under the default [`Limits`].
///
/// # Errors
/// As [`load_with`].
pub fn load(path: &Path) -> Result<Image, Error> {
    load_with(path, &Limits::default())
}

/// Reads and decodes a JPEG or PNG file ([`crate::decode_with`]).
///
/// # Errors
/// [`Error::Read`] for unreadable files and files above [`MAX_FILE_BYTES`],
/// [`Error::Decode`] for undecodable bytes or images above `limits`.
pub fn load_with(path: &Path, limits: &Limits) -> Result<Image, Error> {
    let f = std::fs::File::open(path).map_err(Error::Read)?;
    let len = f.metadata().map_err(Error::Read)?.len();
    if len > MAX_FILE_BYTES {
        return Err(Error::Read(std::io::Error::other(format!(
            "{len} bytes is too large for an image (the limit is {MAX_FILE_BYTES})"
        ))));
    }
    // Bounded even where the length lies (pipes, device files).
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_FILE_BYTES), &mut bytes)
        .map_err(Error::Read)?;
    Ok(crate::image::decode_with(&bytes, limits)?)
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
