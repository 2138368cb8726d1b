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
/// JPEG), images above the decoder's pixel limit, and PNG without `std`.
pub fn decode(bytes: &[u8]) -> Result<Image, DecodeError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        crate::jpeg::decode(bytes)
    } else if bytes.starts_with(PNG_MAGIC) {
        #[cfg(feature = "std")]
        return crate::png::decode(bytes);
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
