//! Image decoding and ultralytics-exact preprocessing for the CLI.
//!
//! [`load_rgb8`] decodes JPEG and PNG files to interleaved RGB `u8`, giving
//! the pixels `cv2.imdecode(buf, cv2.IMREAD_COLOR)` gives ultralytics (in RGB
//! rather than BGR order):
//! - JPEG: this crate's own decoder (`jpeg` submodule), which reproduces
//!   libjpeg-turbo — OpenCV's JPEG library — bit for bit, including OpenCV's
//!   EXIF orientation handling.
//! - PNG: the `png` crate (PNG is lossless, so any correct decoder agrees),
//!   with OpenCV's conversions: palette and low-bit grey expanded, 16-bit
//!   samples reduced to their high byte (libpng's `png_set_strip_16`), alpha
//!   dropped without compositing, grey replicated to RGB.
//!
//! [`preprocess_to_input`] then stretches the image to S×S and builds the
//! `[1, 3, S, S]` float input exactly as ultralytics' `RTDETRPredictor` does
//! (`edgedetr::preprocess`). For the reference images, decode + preprocess
//! reproduces the golden `input.npy` bit for bit. [`preprocess_to_input_u8`]
//! stops before the division by 255: the CHW u8 pixels that
//! `Session::set_input_u8` writes, which int8 models take as they are (no
//! float round trip).

mod jpeg;

use std::path::Path;

use std::borrow::Cow;

use edgedetr::preprocess::{
    PreprocessError, hwc_rgb_u8_to_chw_rgb_f32, hwc_rgb_u8_to_chw_rgb_u8, resize_linear_u8_cv,
    resize_scratch_len,
};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Reads and decodes a JPEG or PNG file to `(rgb, width, height)`: interleaved
/// RGB `u8`, `width * height * 3` bytes, after EXIF orientation (JPEG).
///
/// # Errors
/// A message naming the file for unreadable files, files that are neither
/// JPEG nor PNG, truncated or corrupt data, and unsupported variants
/// (arithmetic-coded, lossless, 12-bit or CMYK JPEG).
pub fn load_rgb8(path: &Path) -> Result<(Vec<u8>, usize, usize), String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
    decode_rgb8(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Decodes JPEG or PNG bytes (recognised by their signature) to
/// `(rgb, width, height)`; see [`load_rgb8`].
///
/// # Errors
/// As [`load_rgb8`], without the file name.
pub fn decode_rgb8(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let d = jpeg::decode(bytes)?;
        Ok((d.rgb, d.w, d.h))
    } else if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes)
    } else {
        Err("not a JPEG or PNG image".into())
    }
}

/// PNG → RGB8 with OpenCV's `IMREAD_COLOR` conversions.
fn decode_png(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let bad = |e: png::DecodingError| format!("invalid or truncated PNG: {e}");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader
        .output_buffer_size()
        .ok_or("PNG too large to decode")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (info.width as usize, info.height as usize);
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!(
            "unsupported PNG bit depth after expansion: {:?}",
            info.bit_depth
        ));
    }
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("PNG palette was not expanded".into()),
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
        return Err("invalid or truncated PNG".into());
    }
    Ok((rgb, w, h))
}

/// Turns a decoded `w×h` RGB image into the network input `[1, 3, s, s]`
/// (`out` holds `3 * s * s` floats) exactly as ultralytics' `RTDETRPredictor`:
/// stretch to `s×s` with OpenCV's `INTER_LINEAR` (no letterbox; no resize when
/// already `s×s`), CHW in RGB order, `value / 255` in `f32`.
///
/// # Errors
/// A message for zero sizes or buffers of the wrong length.
pub fn preprocess_to_input(
    rgb: &[u8],
    w: usize,
    h: usize,
    s: usize,
    out: &mut [f32],
) -> Result<(), String> {
    let resized = resize_to_input(rgb, w, h, s)?;
    hwc_rgb_u8_to_chw_rgb_f32(&resized, s, s, out).map_err(preprocess_err)
}

/// [`preprocess_to_input`] without the division by 255: the same resize, CHW
/// RGB `u8` pixels in `out` (`3 * s * s` bytes), so that
/// `out[i] as f32 / 255` is exactly [`preprocess_to_input`]'s `out[i]`. The
/// input of `Session::set_input_u8`, which int8 models read directly.
///
/// # Errors
/// A message for zero sizes or buffers of the wrong length.
pub fn preprocess_to_input_u8(
    rgb: &[u8],
    w: usize,
    h: usize,
    s: usize,
    out: &mut [u8],
) -> Result<(), String> {
    let resized = resize_to_input(rgb, w, h, s)?;
    hwc_rgb_u8_to_chw_rgb_u8(&resized, s, s, out).map_err(preprocess_err)
}

fn preprocess_err(e: PreprocessError) -> String {
    format!("preprocessing: {e}")
}

/// The `w×h` RGB image stretched to `s×s` RGB (itself when already `s×s`).
fn resize_to_input(rgb: &[u8], w: usize, h: usize, s: usize) -> Result<Cow<'_, [u8]>, String> {
    if w == s && h == s {
        return Ok(Cow::Borrowed(rgb));
    }
    let len = s
        .checked_mul(s)
        .and_then(|n| n.checked_mul(3))
        .ok_or("preprocessing: input size overflows")?;
    let mut resized = vec![0u8; len];
    let mut scratch = vec![0i32; resize_scratch_len(w, h, s, s)];
    resize_linear_u8_cv(rgb, w, h, &mut resized, s, s, &mut scratch).map_err(preprocess_err)?;
    Ok(Cow::Owned(resized))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_images_and_truncation() {
        assert!(
            decode_rgb8(b"hello world")
                .unwrap_err()
                .contains("not a JPEG or PNG")
        );
        assert!(decode_rgb8(&[]).is_err());
        // A JPEG cut after its SOI and a few header bytes.
        assert!(decode_rgb8(&[0xFF, 0xD8, 0xFF, 0xDB, 0x00]).is_err());
        assert!(decode_rgb8(&[0xFF, 0xD8, 0xFF]).is_err());
        // A PNG signature alone.
        assert!(decode_rgb8(PNG_MAGIC).unwrap_err().contains("PNG"));
    }

    #[test]
    fn png_gray_and_rgba_become_rgb() {
        fn encode(
            color: png::ColorType,
            depth: png::BitDepth,
            w: u32,
            h: u32,
            data: &[u8],
        ) -> Vec<u8> {
            let mut out = Vec::new();
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            let mut wr = enc.write_header().unwrap();
            wr.write_image_data(data).unwrap();
            wr.finish().unwrap();
            out
        }
        let gray = encode(
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            2,
            1,
            &[7, 200],
        );
        assert_eq!(
            decode_rgb8(&gray).unwrap(),
            (vec![7, 7, 7, 200, 200, 200], 2, 1)
        );
        let rgba = encode(
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            1,
            2,
            &[1, 2, 3, 0, 4, 5, 6, 255],
        );
        assert_eq!(decode_rgb8(&rgba).unwrap(), (vec![1, 2, 3, 4, 5, 6], 1, 2));
        // 16-bit: the high byte, as libpng's png_set_strip_16.
        let rgb16 = encode(
            png::ColorType::Rgb,
            png::BitDepth::Sixteen,
            1,
            1,
            &[1, 255, 2, 0, 254, 128],
        );
        assert_eq!(decode_rgb8(&rgb16).unwrap(), (vec![1, 2, 254], 1, 1));
        // Truncated PNG data.
        assert!(decode_rgb8(&rgba[..rgba.len() - 20]).is_err());
    }

    #[test]
    fn preprocess_checks_sizes() {
        let rgb = vec![0u8; 4 * 2 * 3];
        let mut out = vec![0f32; 3 * 3 * 3];
        preprocess_to_input(&rgb, 4, 2, 3, &mut out).unwrap();
        assert!(preprocess_to_input(&rgb, 4, 2, 3, &mut out[1..]).is_err());
        assert!(preprocess_to_input(&rgb, 0, 2, 3, &mut out).is_err());
        assert!(preprocess_to_input(&rgb[1..], 4, 2, 3, &mut out).is_err());
        let mut out = vec![0u8; 3 * 3 * 3];
        preprocess_to_input_u8(&rgb, 4, 2, 3, &mut out).unwrap();
        assert!(preprocess_to_input_u8(&rgb, 4, 2, 3, &mut out[1..]).is_err());
        assert!(preprocess_to_input_u8(&rgb, 0, 2, 3, &mut out).is_err());
        assert!(preprocess_to_input_u8(&rgb[1..], 4, 2, 3, &mut out).is_err());
        // Same-size input (no resize) also checks its length.
        assert!(preprocess_to_input_u8(&rgb[1..], 3, 3, 3, &mut out).is_err());
    }

    #[test]
    fn the_u8_input_is_the_f32_input_times_255() {
        let mut x = 7u32;
        let mut px = || {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        };
        for (w, h, s) in [
            (5, 3, 4),
            (13, 9, 32),
            (32, 32, 32),
            (40, 7, 32),
            (1, 1, 32),
        ] {
            let rgb: Vec<u8> = (0..w * h * 3).map(|_| px()).collect();
            let mut f = vec![0f32; 3 * s * s];
            let mut u = vec![0u8; 3 * s * s];
            preprocess_to_input(&rgb, w, h, s, &mut f).unwrap();
            preprocess_to_input_u8(&rgb, w, h, s, &mut u).unwrap();
            for (&a, &b) in f.iter().zip(&u) {
                assert_eq!((a * 255.0).round(), f32::from(b), "{w}x{h} -> {s}");
                assert_eq!(a.to_bits(), (f32::from(b) / 255.0).to_bits());
            }
        }
    }
}
