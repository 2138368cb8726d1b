//! PNG decoding with the `png` crate (PNG is lossless, so any correct decoder
//! agrees with libpng), and OpenCV's `IMREAD_COLOR` conversions: palette and
//! low-bit grey expanded, 16-bit samples reduced to their high byte
//! (libpng's `png_set_strip_16`), alpha dropped without compositing, grey
//! replicated to RGB.

use crate::error::DecodeError;
use crate::image::{Image, Limits};

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

/// Refuses a `PLTE` chunk that is not 1 to 256 whole RGB entries: the `png`
/// crate (0.18) indexes past such a palette and panics while expanding it.
fn check_palette(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be32(bytes, at), bytes.get(at + 4..at + 8)) {
        if kind == b"PLTE" && (len == 0 || len > 768 || len % 3 != 0) {
            return Err(DecodeError::Corrupt("PNG palette is not whole RGB entries"));
        }
        if kind == b"IDAT" || kind == b"IEND" {
            break;
        }
        // Length, type, data, CRC.
        at = at.saturating_add(12).saturating_add(len as usize);
    }
    Ok(())
}

/// The big-endian u32 at `at`, if the bytes reach it.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Decodes PNG bytes to RGB8 (see the module docs). The header's size is
/// checked against `limits` before the image buffer is allocated, and the
/// decoder's own allocations (ancillary chunks) are bounded in proportion.
///
/// # Errors
/// [`DecodeError`] for invalid or truncated data, or an image above `limits`.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, DecodeError> {
    // The header's size first, from the bytes themselves: the `png` crate
    // may refuse a huge image with its own error (it does on 32-bit
    // targets, where the buffer size overflows), and the limit is ours.
    if let (Some(b"IHDR"), Some(w), Some(h)) = (bytes.get(12..16), be32(bytes, 16), be32(bytes, 20))
    {
        limits.check(u64::from(w), u64::from(h))?;
    }
    check_palette(bytes)?;
    // Bytes the `png` crate may allocate: the largest expanded image
    // (8 bytes per pixel before the 16-bit strip), at least 64 MiB.
    let budget = limits.max_pixels.saturating_mul(8).max(64 << 20);
    let png_limits = png::Limits {
        bytes: usize::try_from(budget).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), png_limits);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(error)?;
    let (w, h) = (reader.info().width, reader.info().height);
    limits.check(u64::from(w), u64::from(h))?;
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
    use crate::error::DecodeError;

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

    #[test]
    fn huge_declared_sizes_are_refused_before_allocating() {
        // An IHDR of 100000×100000 RGB8 and of 67×2303721481 grey+alpha,
        // followed by a tiny IDAT: refused from the header.
        for (w, h, color) in [(100_000u32, 100_000u32, 2u8), (67, 2_303_721_481, 4)] {
            let mut png = crate::image::PNG_MAGIC.to_vec();
            let mut ihdr = Vec::new();
            ihdr.extend(w.to_be_bytes());
            ihdr.extend(h.to_be_bytes());
            ihdr.extend([8, color, 0, 0, 0]);
            png.extend(chunk(b"IHDR", &ihdr));
            png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0, 0, 0, 0, 1]));
            png.extend(chunk(b"IEND", &[]));
            match crate::image::decode(&png) {
                Err(DecodeError::TooLarge { width, height, .. }) => {
                    assert_eq!((width, height), (w.into(), h.into()))
                }
                other => panic!("{w}x{h}: {other:?}"),
            }
        }
    }

    /// A PNG chunk with its CRC.
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        let mut crc = 0xffff_ffffu32;
        for &b in kind.iter().chain(data) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        c.extend((!crc).to_be_bytes());
        c
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
