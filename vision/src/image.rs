//! [`Image`]: a decoded RGB8 picture, and [`decode`], which recognises JPEG
//! and PNG bytes by their signature.

use alloc::vec::Vec;

use crate::error::DecodeError;

/// The signature of a PNG file.
pub const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// An interleaved RGB8 image: `width * height * 3` bytes, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The pixels, `R, G, B` per pixel.
    pub rgb: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Bounds on what the decoders accept. Images are untrusted input: a header
/// of a few bytes can declare a picture of billions of pixels, so every
/// decoder checks the declared size against the limit before it allocates
/// anything in proportion to it, and refuses it with
/// [`DecodeError::TooLarge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most pixels (width × height) an image may have.
    pub max_pixels: u64,
}

impl Limits {
    /// The default pixel limit, 2^26 (67 megapixels: 8192×8192, or a 48 MP
    /// phone photo): a decode then needs at most about 0.6 GB. OpenCV's
    /// default, 2^30, would let a 1 KB file ask for 12 GB.
    pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;

    /// `Ok` when a `width × height` image is within the limit.
    ///
    /// # Errors
    /// [`DecodeError::TooLarge`] otherwise.
    pub fn check(&self, width: u64, height: u64) -> Result<(), DecodeError> {
        match width.checked_mul(height) {
            Some(n) if n <= self.max_pixels => Ok(()),
            _ => Err(DecodeError::TooLarge {
                width,
                height,
                limit: self.max_pixels,
            }),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: Limits::DEFAULT_MAX_PIXELS,
        }
    }
}

/// [`decode_with`] under the default [`Limits`].
///
/// # Errors
/// As [`decode_with`].
pub fn decode(bytes: &[u8]) -> Result<Image, DecodeError> {
    decode_with(bytes, &Limits::default())
}

/// Decodes JPEG or PNG bytes (recognised by their signature) to RGB8, giving
/// the pixels `cv2.imdecode(buf, cv2.IMREAD_COLOR)` gives ultralytics (in RGB
/// rather than BGR order):
/// - JPEG: [`crate::jpeg`], which reproduces libjpeg-turbo (OpenCV's JPEG
///   library) bit for bit, including OpenCV's EXIF orientation handling;
/// - PNG (feature `std`): [`crate::png`], with OpenCV's conversions.
///
/// # Errors
/// [`DecodeError`] for bytes that are neither format, truncated or corrupt
/// data, unsupported variants (arithmetic-coded, lossless, 12-bit or CMYK
/// JPEG), images above `limits`, and PNG without `std`.
pub fn decode_with(bytes: &[u8], limits: &Limits) -> Result<Image, DecodeError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        crate::jpeg::decode(bytes, limits)
    } else if bytes.starts_with(PNG_MAGIC) {
        #[cfg(feature = "std")]
        return crate::png::decode(bytes, limits);
        #[cfg(not(feature = "std"))]
        let _ = limits;
        #[cfg(not(feature = "std"))]
        Err(DecodeError::Unsupported(
            "PNG decoding needs the `std` feature",
        ))
    } else {
        Err(DecodeError::NotAnImage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_images_and_truncation() {
        assert_eq!(decode(b"hello world"), Err(DecodeError::NotAnImage));
        assert!(
            decode(b"hello world")
                .unwrap_err()
                .to_string()
                .contains("not a JPEG or PNG")
        );
        assert!(decode(&[]).is_err());
        // A JPEG cut after its SOI and a few header bytes.
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xDB, 0x00]).is_err());
        assert!(decode(&[0xFF, 0xD8, 0xFF]).is_err());
        // A PNG signature alone.
        assert!(decode(PNG_MAGIC).unwrap_err().to_string().contains("PNG"));
    }
}
