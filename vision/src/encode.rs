//! Encoding RGB8 images as JPEG (annotated snapshots, MJPEG frames).

use alloc::vec::Vec;

/// Why an image could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// JPEG holds at most 65535 pixels per side.
    TooLarge {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
    /// The pixels are not `width·height·3` bytes.
    BadLength,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EncodeError::TooLarge { width, height } => write!(
                f,
                "a {width}x{height} image is too large for JPEG (65535 pixels per side)"
            ),
            EncodeError::BadLength => f.write_str("the pixels do not match the image size"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Encodes interleaved RGB8 pixels as a baseline JPEG of `quality` (1–100).
///
/// # Errors
/// [`EncodeError`] for sides above 65535 or a wrong pixel count.
pub fn encode_jpeg(
    rgb: &[u8],
    width: usize,
    height: usize,
    quality: u8,
) -> Result<Vec<u8>, EncodeError> {
    let too_large = EncodeError::TooLarge { width, height };
    let (w, h) = (
        u16::try_from(width).map_err(|_| too_large)?,
        u16::try_from(height).map_err(|_| too_large)?,
    );
    if width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(rgb.len()) {
        return Err(EncodeError::BadLength);
    }
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    // Writing into a Vec cannot fail; the sizes were checked above.
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|_| EncodeError::BadLength)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips_through_the_decoder() {
        let (w, h) = (17, 9);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 256) as u8).collect();
        let jpg = encode_jpeg(&rgb, w, h, 90).unwrap();
        let img = crate::image::decode(&jpg).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        assert_eq!(
            encode_jpeg(&rgb[1..], w, h, 90),
            Err(EncodeError::BadLength)
        );
        assert!(encode_jpeg(&[], 70000, 0, 90).is_err());
    }
}
