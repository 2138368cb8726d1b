//! ultralytics' `RTDETRPredictor` preprocessing, bit-exact with OpenCV
//! (`SPEC.md` §6), as checked calls of the kernel table's image slots.
//!
//! ultralytics decodes the image to BGR `u8` (`cv2.imdecode`), stretches it to
//! S×S with `cv2.resize(img, (S, S), interpolation=cv2.INTER_LINEAR)` (no
//! letterbox; no resize at all when the image is already S×S), then turns it
//! into `[1, 3, S, S]` RGB `float32 / 255`. The two steps here reproduce that
//! (`edgedetr_kernels::image` states the arithmetic):
//!
//! 1. [`resize`]: OpenCV's `INTER_LINEAR` resize of 3-channel `u8` images,
//!    bit for bit.
//! 2. [`hwc_to_chw`]: HWC→CHW and `value / 255` in `f32`, exactly what
//!    numpy's `float32 / 255` gives. Models that take the u8 image (int8)
//!    skip the division: into `u8` it only reorders the resized bytes, then
//!    `Session::set_input_u8` writes them.
//!
//! **Channel order.** The edgedetr pipeline keeps images in **RGB** order from
//! decoding on. The resize treats the three channels independently with the
//! same weights, so resizing RGB and then reading it as RGB gives exactly the
//! bytes that resizing BGR and flipping to RGB gives; [`Order::Bgr`] serves
//! sources that deliver BGR (OpenCV-style buffers).
//!
//! Nothing here allocates: the caller passes the output buffers and a scratch
//! slice of [`Resize::scratch_len`] `i32`s, which is `O(dw)`.

use edgedetr_kernels::image::MAX_SIDE;
pub use edgedetr_kernels::{Kernels, Resize};

use crate::error::PreprocessError;

/// Channels of the interleaved images handled here.
const CN: usize = 3;

/// The channel order of an interleaved source image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Red, green, blue (what the decoders give).
    Rgb,
    /// Blue, green, red (OpenCV's order).
    Bgr,
}

impl Order {
    /// The source channel of each RGB output channel.
    const fn sources(self) -> [usize; 3] {
        match self {
            Order::Rgb => [0, 1, 2],
            Order::Bgr => [2, 1, 0],
        }
    }
}

/// `w * h * 3`, or an error for zero or overflowing sizes.
pub fn image_len(w: usize, h: usize) -> Result<usize, PreprocessError> {
    if w == 0 || h == 0 {
        return Err(PreprocessError::ZeroSize);
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(PreprocessError::TooLarge);
    }
    w.checked_mul(h)
        .and_then(|n| n.checked_mul(CN))
        .ok_or(PreprocessError::TooLarge)
}

/// Checks source and destination lengths against the expected ones.
fn check_lens(
    src_len: usize,
    src_given: usize,
    dst_len: usize,
    dst_given: usize,
) -> Result<(), PreprocessError> {
    if src_given != src_len {
        return Err(PreprocessError::SrcLen {
            expected: src_len,
            given: src_given,
        });
    }
    if dst_given != dst_len {
        return Err(PreprocessError::DstLen {
            expected: dst_len,
            given: dst_given,
        });
    }
    Ok(())
}

/// Resizes a 3-channel interleaved (HWC) `u8` image exactly like
/// `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)` on a `uint8`
/// array (bit-exact; channel order does not matter). Equal sizes copy.
///
/// `src` holds `sw * sh * 3` bytes, `dst` `dw * dh * 3`, and `scratch` at
/// least [`Resize::scratch_len`] `i32`s (its contents are overwritten).
/// Allocates nothing.
///
/// # Errors
/// [`PreprocessError`] for a zero size, slices of the wrong length, too small
/// a scratch, or sides above 2^24.
pub fn resize(
    k: &Kernels,
    r: &Resize,
    src: &[u8],
    dst: &mut [u8],
    scratch: &mut [i32],
) -> Result<(), PreprocessError> {
    check_lens(
        image_len(r.sw, r.sh)?,
        src.len(),
        image_len(r.dw, r.dh)?,
        dst.len(),
    )?;
    let needed = r.scratch_len();
    if scratch.len() < needed {
        return Err(PreprocessError::ScratchTooSmall {
            needed,
            given: scratch.len(),
        });
    }
    k.resize_rgb8(r, src, dst, scratch);
    Ok(())
}

/// A planar output element of [`hwc_to_chw`]: `u8` (the pixels, the
/// input of a u8-input, int8, model through `Session::set_input_u8`) or
/// `f32` (`v / 255`, a true division as numpy's `float32 / 255`).
pub trait Plane: Copy {
    /// Converts through the kernel table's slot for this element.
    fn convert(k: &Kernels, src: &[u8], order: [usize; 3], dst: &mut [Self]);
}

impl Plane for u8 {
    fn convert(k: &Kernels, src: &[u8], order: [usize; 3], dst: &mut [u8]) {
        k.hwc_to_chw_u8(src, order, dst);
    }
}

impl Plane for f32 {
    fn convert(k: &Kernels, src: &[u8], order: [usize; 3], dst: &mut [f32]) {
        k.hwc_to_chw_f32(src, order, dst);
    }
}

/// Converts a `w×h` interleaved `u8` image in channel order `order` into the
/// network input layout: planar CHW in **RGB** order, `u8` pixels or `f32`
/// `v / 255` ([`Plane`]). `dst` holds `3 * w * h` values (`[1, 3, h, w]`
/// flattened). Matches ultralytics' `im[..., ::-1].transpose(2, 0, 1)` then
/// `float32 / 255` exactly; an int8 model's `u8` input means the same values.
///
/// # Errors
/// [`PreprocessError`] for a zero size or slices of the wrong length.
pub fn hwc_to_chw<T: Plane>(
    k: &Kernels,
    src: &[u8],
    (w, h): (usize, usize),
    order: Order,
    dst: &mut [T],
) -> Result<(), PreprocessError> {
    let len = image_len(w, h)?;
    check_lens(len, src.len(), len, dst.len())?;
    T::convert(k, src, order.sources(), dst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sizes_are_errors() {
        let k = Kernels::scalar();
        let src: Vec<u8> = (0..48).collect();
        let mut dst = vec![0u8; 12];
        let mut scratch = vec![0i32; 64];
        let rz = |sw, sh, dw, dh| Resize { sw, sh, dw, dh };
        let r = |r: Resize, src: &[u8], dst: &mut [u8], s: &mut [i32]| resize(&k, &r, src, dst, s);
        assert_eq!(
            r(rz(0, 4, 2, 2), &src, &mut dst, &mut scratch),
            Err(PreprocessError::ZeroSize)
        );
        assert_eq!(
            r(rz(4, 4, 2, 0), &src, &mut dst, &mut scratch),
            Err(PreprocessError::ZeroSize)
        );
        assert_eq!(
            r(rz(4, 4, 2, 2), &src[1..], &mut dst, &mut scratch),
            Err(PreprocessError::SrcLen {
                expected: 48,
                given: 47
            })
        );
        assert_eq!(
            r(rz(4, 4, 3, 2), &src, &mut dst, &mut scratch),
            Err(PreprocessError::DstLen {
                expected: 18,
                given: 12
            })
        );
        assert_eq!(
            r(rz(4, 4, 3, 1), &src, &mut dst[..9], &mut scratch[..2]),
            Err(PreprocessError::ScratchTooSmall {
                needed: 27,
                given: 2
            })
        );
        assert_eq!(
            r(rz(usize::MAX, 1, 2, 2), &src, &mut dst, &mut scratch),
            Err(PreprocessError::TooLarge)
        );
        let mut out = vec![0f32; 48];
        assert!(hwc_to_chw(&k, &src, (4, 4), Order::Rgb, &mut out[1..]).is_err());
        assert!(hwc_to_chw(&k, &src, (4, 0), Order::Bgr, &mut out).is_err());
        assert!(hwc_to_chw(&k, &src, (4, 3), Order::Bgr, &mut out).is_err());
        let mut u = [0u8; 48];
        assert_eq!(
            hwc_to_chw(&k, &src, (4, 4), Order::Rgb, &mut u[1..]),
            Err(PreprocessError::DstLen {
                expected: 48,
                given: 47
            })
        );
        // Display works for every variant.
        let e = PreprocessError::ScratchTooSmall {
            needed: 1,
            given: 0,
        };
        assert!(format!("{e}").contains("scratch"));
    }

    #[test]
    fn orders_pick_the_channels() {
        // 2x1 image: BGR bytes of two pixels.
        let src = [0u8, 128, 255, 1, 2, 3];
        let mut out = [0f32; 6];
        hwc_to_chw(&Kernels::scalar(), &src, (2, 1), Order::Bgr, &mut out).unwrap();
        // R plane = source channel 2, G = 1, B = 0.
        let want = [255u8, 3, 128, 2, 0, 1].map(|v| v as f32 / 255.0);
        assert_eq!(out, want);
    }
}
