//! PNG decoding with the `png` crate (PNG is lossless, so any correct decoder
//! agrees with libpng), and OpenCV's `IMREAD_COLOR` conversions: palette and
//! low-bit grey expanded, 16-bit samples reduced to their high byte
//! (libpng's `png_set_strip_16`), alpha dropped without compositing, grey
//! replicated to RGB.

use crate::error::DecodeError;
use crate::image::Image;

/// What a `png` crate error means for the caller.
fn error(e: png::DecodingError) -> DecodeError {
    match e {
        png::DecodingError::IoError(_) => DecodeError::Truncated("invalid or truncated PNG"),
        png::DecodingError::LimitsExceeded => {
            DecodeError::Unsupported("PNG exceeds the decoder's memory limits")
        }
        _ => DecodeError::Corrupt("invalid or truncated PNG"),
    }
}

/// Decodes PNG bytes to RGB8 (see the module docs).
///
/// # Errors
/// [`DecodeError`] for invalid or truncated data.
pub fn decode(bytes: &[u8]) -> Result<Image, DecodeError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(error)?;
    let size = reader
        .output_buffer_size()
        .ok_or(DecodeError::Unsupported("PNG too large to decode"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(error)?;
    let (w, h) = (info.width as usize, info.height as usize);
    if info.bit_depth != png::BitDepth::Eight {
        return Err(DecodeError::Unsupported(
            "unsupported PNG bit depth after expansion",
        ));
    }
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(DecodeError::Corrupt("PNG palette was not expanded"));
        }
    };
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in buf.chunks_exact(info.line_size).take(h) {
        for px in row[..w * channels].chunks_exact(channels) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    }
    if rgb.len() != w * h * 3 {
        return Err(DecodeError::Truncated("invalid or truncated PNG"));
    }
    Ok(Image {
        rgb,
        width: w,
        height: h,
    })
}

#[cfg(test)]
mod tests {

    fn encode(color: png::ColorType, depth: png::BitDepth, w: u32, h: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    fn rgb(bytes: &[u8]) -> (Vec<u8>, usize, usize) {
        let i = crate::image::decode(bytes).unwrap();
        (i.rgb, i.width, i.height)
    }

    #[test]
    fn png_gray_and_rgba_become_rgb() {
        use png::{BitDepth, ColorType};
        let gray = encode(ColorType::Grayscale, BitDepth::Eight, 2, 1, &[7, 200]);
        assert_eq!(rgb(&gray), (vec![7, 7, 7, 200, 200, 200], 2, 1));
        let rgba = encode(
            ColorType::Rgba,
            BitDepth::Eight,
            1,
            2,
            &[1, 2, 3, 0, 4, 5, 6, 255],
        );
        assert_eq!(rgb(&rgba), (vec![1, 2, 3, 4, 5, 6], 1, 2));
        // 16-bit: the high byte, as libpng's png_set_strip_16.
        let rgb16 = encode(
            ColorType::Rgb,
            BitDepth::Sixteen,
            1,
            1,
            &[1, 255, 2, 0, 254, 128],
        );
        assert_eq!(rgb(&rgb16), (vec![1, 2, 254], 1, 1));
        // Truncated PNG data.
        assert!(crate::image::decode(&rgba[..rgba.len() - 20]).is_err());
    }
}
