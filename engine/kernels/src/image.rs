//! Image kernels of ultralytics' `RTDETRPredictor` preprocessing, bit-exact
//! with OpenCV (`SPEC.md` §6): the scalar [`crate::Slot::ResizeRgb8`],
//! [`crate::Slot::HwcToChwU8`] and [`crate::Slot::HwcToChwF32`].
//!
//! ultralytics decodes the image to BGR `u8` (`cv2.imdecode`), stretches it to
//! S×S with `cv2.resize(img, (S, S), interpolation=cv2.INTER_LINEAR)` (no
//! letterbox; no resize at all when the image is already S×S), then turns it
//! into `[1, 3, S, S]` RGB `float32 / 255`. The two steps here reproduce that:
//!
//! 1. [`Kernels::resize_rgb8`]: OpenCV's `INTER_LINEAR` resize of 3-channel
//!    `u8` images, bit for bit (checked against opencv-python 5.0.0 on thousands
//!    of random sizes; the unit tests embed cv2 outputs).
//! 2. [`Kernels::hwc_to_chw_f32`]: HWC→CHW and `value / 255` in `f32`, exactly
//!    what numpy's `float32 / 255` gives. Models that take the u8 image (int8)
//!    skip the division: [`Kernels::hwc_to_chw_u8`] only reorders the resized
//!    bytes.
//!
//! **Channel order.** The edgedetr pipeline keeps images in **RGB** order from
//! decoding on (the CLI's decoder yields RGB, camera frames usually are RGB).
//! The resize treats the three channels independently with the same weights, so
//! resizing RGB and then reading it as RGB gives exactly the bytes that
//! resizing BGR and flipping to RGB gives; the BGR entry point exists for
//! sources that deliver BGR (OpenCV-style buffers).
//!
//! Nothing here allocates: the caller passes the output buffers and a scratch
//! slice of [`Resize::scratch_len`] `i32`s, which is `O(dw)`. The checked,
//! error-returning API over these kernels is `edgedetr_vision::preprocess`.
//!
//! ## How OpenCV's `u8` `INTER_LINEAR` resize computes (OpenCV 4.x/5.x, `resize.cpp`)
//! With `inv = dst / src` (in `f64`) and `scale = 1 / inv`, for each output
//! column `dx`: `fx = f32((dx + 0.5) * scale - 0.5)`, `sx = floor(fx)`,
//! `fx -= sx`; a negative `sx` becomes `sx = 0, fx = 0`; then, if
//! `sx + 1 >= src_w`, every column from this one on copies source column
//! `min(sx, src_w - 1)` (`fx = 0`). The weights are
//! `round_half_even((1 - fx) * 2048)` and `round_half_even(fx * 2048)` (11
//! fractional bits, computed in `f32`). The horizontal pass gives
//! `h = s[sx] * a0 + s[sx + 1] * a1` (or `s[sx] * 2048` in the right border) in
//! `i32`. Rows use the same formula for `sy` and `fy`, **without** clamping `fy`:
//! the two rows `sy` and `sy + 1` are clamped to the image instead, so a border
//! output row mixes one row with itself under weights that do not sum in one
//! step. The vertical pass is OpenCV's `u8` specialisation of `VResizeLinear`
//! (the same formula in its SIMD and scalar code):
//! `(((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2`.
//! An exact 2× reduction in both directions is not linear at all: OpenCV
//! switches to `INTER_AREA`, whose fast path averages each 2×2 block as
//! `(a + b + c + d + 2) >> 2`. Equal sizes are a plain copy.

use crate::Kernels;

/// Fractional bits of OpenCV's fixed-point resize weights
/// (`INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;
/// `1 << COEF_BITS`.
const COEF_ONE: i32 = 1 << COEF_BITS;
/// Channels of the interleaved images handled here.
const CN: usize = 3;

/// A resize of a 3-channel interleaved `u8` image from `sw×sh` to `dw×dh`
/// (the argument of the [`Slot::ResizeRgb8`](crate::Slot::ResizeRgb8) slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resize {
    /// Source width.
    pub sw: usize,
    /// Source height.
    pub sh: usize,
    /// Destination width.
    pub dw: usize,
    /// Destination height.
    pub dh: usize,
}

/// How a resize from `sw×sh` to `dw×dh` is carried out (OpenCV's dispatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// Same size: `src.copyTo(dst)`.
    Copy,
    /// Exactly half in both directions: the `INTER_AREA` fast path.
    Half,
    /// The general separable fixed-point bilinear resize.
    Linear,
}

fn method(sw: usize, sh: usize, dw: usize, dh: usize) -> Method {
    if sw == dw && sh == dh {
        Method::Copy
    } else if sw == 2 * dw && sh == 2 * dh {
        // OpenCV: is_area_fast && iscale_x == 2 && iscale_y == 2 turns
        // INTER_LINEAR into INTER_AREA; 1 / (dw / sw) is exactly 2.0 only here.
        Method::Half
    } else {
        Method::Linear
    }
}

impl Resize {
    /// OpenCV's choice of method for these sizes.
    fn method(&self) -> Method {
        method(self.sw, self.sh, self.dw, self.dh)
    }

    /// Number of `i32` scratch elements the resize needs: `9 * dw` for a real
    /// resize (column table and two intermediate rows), 0 when the sizes are
    /// equal or exactly halved. Independent of the source size and of `dh`.
    pub fn scratch_len(&self) -> usize {
        match self.method() {
            Method::Copy | Method::Half => 0,
            Method::Linear => self.dw.saturating_mul(3 + 2 * CN),
        }
    }

    /// Source bytes, `sw·sh·3` (`None` on overflow).
    pub fn src_len(&self) -> Option<usize> {
        self.sw.checked_mul(self.sh)?.checked_mul(CN)
    }

    /// Destination bytes, `dw·dh·3` (`None` on overflow).
    pub fn dst_len(&self) -> Option<usize> {
        self.dw.checked_mul(self.dh)?.checked_mul(CN)
    }
}

impl Kernels {
    /// Resizes a 3-channel interleaved (HWC) `u8` image from `sw×sh` to `dw×dh`
    /// exactly like `cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)`
    /// on a `uint8` array (bit-exact; channel order does not matter). Equal
    /// sizes copy the image.
    ///
    /// `src` holds `sw·sh·3` bytes, `dst` `dw·dh·3`, and `scratch` at least
    /// [`Resize::scratch_len`] `i32`s (overwritten). Panics on zero sizes,
    /// sides above 2^24, or slices of other lengths.
    pub fn resize_rgb8(&self, r: &Resize, src: &[u8], dst: &mut [u8], scratch: &mut [i32]) {
        assert!(
            [r.sw, r.sh, r.dw, r.dh]
                .iter()
                .all(|&s| (1..=MAX_SIDE).contains(&s)),
            "resize_rgb8: bad size {r:?}"
        );
        assert!(
            r.src_len() == Some(src.len())
                && r.dst_len() == Some(dst.len())
                && scratch.len() >= r.scratch_len(),
            "resize_rgb8: buffer sizes do not match {r:?}"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.resize_rgb8)(r, src, dst, scratch) }
    }

    /// Interleaved 3-channel `u8` → planar: `dst[c·plane + i] = src[3i + order[c]]`
    /// (`plane = dst.len() / 3`; `order` `[0, 1, 2]` keeps RGB, `[2, 1, 0]` turns
    /// BGR into RGB). Panics unless the lengths are equal multiples of 3 and
    /// every `order[c] < 3`.
    pub fn hwc_to_chw_u8(&self, src: &[u8], order: [usize; 3], dst: &mut [u8]) {
        check_convert(src.len(), order, dst.len());
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.hwc_to_chw_u8)(src, order, dst) }
    }

    /// [`Kernels::hwc_to_chw_u8`] with `value / 255` in `f32` (a true
    /// division, as numpy's `float32 / 255`).
    pub fn hwc_to_chw_f32(&self, src: &[u8], order: [usize; 3], dst: &mut [f32]) {
        check_convert(src.len(), order, dst.len());
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.hwc_to_chw_f32)(src, order, dst) }
    }
}

/// Largest width or height accepted: OpenCV computes coordinates in `int`
/// and `f32`, and a resize beyond this is outside anything it was checked on.
pub const MAX_SIDE: usize = 1 << 24;

/// Panics unless an HWC→CHW conversion's sizes fit.
fn check_convert(src: usize, order: [usize; 3], dst: usize) {
    assert!(
        src == dst && src.is_multiple_of(CN) && order.iter().all(|&c| c < CN),
        "hwc_to_chw: bad sizes or channel order"
    );
}

/// The scalar [`crate::Slot::ResizeRgb8`] (operands checked by the caller).
pub(crate) fn resize_rgb8(r: &Resize, src: &[u8], dst: &mut [u8], scratch: &mut [i32]) {
    match r.method() {
        Method::Copy => dst.copy_from_slice(src),
        Method::Half => resize_half(src, r.sw, dst, r.dw),
        Method::Linear => {
            let n = r.scratch_len();
            resize_linear(src, r.sw, r.sh, dst, r.dw, r.dh, &mut scratch[..n])
        }
    }
}

/// One output coordinate of OpenCV's linear resize: source index `s` and the
/// fractional offset `f` (in `f32`, as OpenCV computes it).
fn source_coord(d: usize, scale: f64) -> (i64, f32) {
    let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
    let s = libm::floorf(f);
    (s as i64, f - s)
}

/// OpenCV's `saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE)` for a weight
/// `w` in [0, 1]: `cvRound` rounds half to even.
fn fixed_weight(w: f32) -> i32 {
    libm::rintf(w * COEF_ONE as f32) as i32
}

/// Vertical step of OpenCV's `u8` linear resize (its `VResizeLinear`
/// specialisation; SIMD and scalar code agree on this formula).
#[inline]
fn vertical(b0: i32, b1: i32, h0: i32, h1: i32) -> u8 {
    let v = (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2;
    v.clamp(0, 255) as u8
}

/// OpenCV's `INTER_AREA` fast path for an exact 2× reduction: the rounded mean
/// of each 2×2 block, `(a + b + c + d + 2) >> 2`.
fn resize_half(src: &[u8], sw: usize, dst: &mut [u8], dw: usize) {
    let src_row = sw * CN;
    let dst_row = dw * CN;
    for (dy, out) in dst.chunks_exact_mut(dst_row).enumerate() {
        let r0 = &src[2 * dy * src_row..][..src_row];
        let r1 = &src[(2 * dy + 1) * src_row..][..src_row];
        for (dx, px) in out.chunks_exact_mut(CN).enumerate() {
            let i = 2 * dx * CN;
            for (c, o) in px.iter_mut().enumerate() {
                let sum = u32::from(r0[i + c])
                    + u32::from(r0[i + CN + c])
                    + u32::from(r1[i + c])
                    + u32::from(r1[i + CN + c]);
                *o = ((sum + 2) >> 2) as u8;
            }
        }
    }
}

/// Horizontal pass of one source row into `out` (`dw * 3` values, scaled by
/// 2048): two-tap for columns before `xmax`, a copy of the clamped column after.
fn horizontal(row: &[u8], xofs: &[i32], a0: &[i32], a1: &[i32], xmax: usize, out: &mut [i32]) {
    for (dx, px) in out.chunks_exact_mut(CN).enumerate() {
        let sx = xofs[dx] as usize * CN;
        if dx < xmax {
            let (w0, w1) = (a0[dx], a1[dx]);
            for (c, o) in px.iter_mut().enumerate() {
                *o = i32::from(row[sx + c]) * w0 + i32::from(row[sx + CN + c]) * w1;
            }
        } else {
            for (c, o) in px.iter_mut().enumerate() {
                *o = i32::from(row[sx + c]) * COEF_ONE;
            }
        }
    }
}

/// The general case: OpenCV's `resizeGeneric_` with `HResizeLinear` /
/// `VResizeLinear` for `u8`, one output row at a time, caching the two
/// horizontally resized source rows (OpenCV reuses them the same way; the
/// result does not depend on it).
fn resize_linear(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
    scratch: &mut [i32],
) {
    let (xofs, rest) = scratch.split_at_mut(dw);
    let (a0, rest) = rest.split_at_mut(dw);
    let (a1, rest) = rest.split_at_mut(dw);
    let (mut row0, mut row1) = rest.split_at_mut(dw * CN);

    // Column table (OpenCV: xofs, ialpha, xmax). Left clamp first, then the
    // right-border test on the clamped index, as OpenCV orders them.
    let scale_x = 1.0 / (dw as f64 / sw as f64);
    let mut xmax = dw;
    for dx in 0..dw {
        let (mut sx, mut fx) = source_coord(dx, scale_x);
        if sx < 0 {
            sx = 0;
            fx = 0.0;
        }
        if sx + 1 >= sw as i64 {
            xmax = xmax.min(dx);
            if sx >= sw as i64 - 1 {
                sx = sw as i64 - 1;
                fx = 0.0;
            }
        }
        xofs[dx] = sx as i32;
        a0[dx] = fixed_weight(1.0 - fx);
        a1[dx] = fixed_weight(fx);
    }

    // Rows: fy is not clamped; the two source rows are.
    let scale_y = 1.0 / (dh as f64 / sh as f64);
    let last = sh as i64 - 1;
    let src_row = sw * CN;
    // Source rows currently held in row0 / row1 (none yet).
    let (mut have0, mut have1) = (usize::MAX, usize::MAX);
    for (dy, out) in dst.chunks_exact_mut(dw * CN).enumerate() {
        let (sy, fy) = source_coord(dy, scale_y);
        let s0 = sy.clamp(0, last) as usize;
        let s1 = (sy + 1).clamp(0, last) as usize;
        let b0 = fixed_weight(1.0 - fy);
        let b1 = fixed_weight(fy);

        if have0 != s0 {
            if have1 == s0 {
                core::mem::swap(&mut row0, &mut row1);
                core::mem::swap(&mut have0, &mut have1);
            } else {
                horizontal(&src[s0 * src_row..][..src_row], xofs, a0, a1, xmax, row0);
                have0 = s0;
            }
        }
        if have1 != s1 {
            if s1 == s0 {
                row1.copy_from_slice(row0);
            } else {
                horizontal(&src[s1 * src_row..][..src_row], xofs, a0, a1, xmax, row1);
            }
            have1 = s1;
        }
        for ((o, &h0), &h1) in out.iter_mut().zip(row0.iter()).zip(row1.iter()) {
            *o = vertical(b0, b1, h0, h1);
        }
    }
}

/// The scalar [`crate::Slot::HwcToChwF32`]: `value / 255` through a table of
/// the 256 quotients.
pub(crate) fn hwc_to_chw_f32(src: &[u8], order: [usize; 3], dst: &mut [f32]) {
    let plane = dst.len() / CN;
    let mut lut = [0.0f32; 256];
    for (v, l) in lut.iter_mut().enumerate() {
        *l = v as f32 / 255.0;
    }
    for (c, out) in dst.chunks_exact_mut(plane.max(1)).enumerate() {
        let ch = order[c];
        for (o, px) in out.iter_mut().zip(src.chunks_exact(CN)) {
            *o = lut[usize::from(px[ch])];
        }
    }
}

/// The scalar [`crate::Slot::HwcToChwU8`].
pub(crate) fn hwc_to_chw_u8(src: &[u8], order: [usize; 3], dst: &mut [u8]) {
    let plane = dst.len() / CN;
    for (c, out) in dst.chunks_exact_mut(plane.max(1)).enumerate() {
        let ch = order[c];
        for (o, px) in out.iter_mut().zip(src.chunks_exact(CN)) {
            *o = px[ch];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The test image generator shared with the Python script that produced
    /// the expected bytes:
    /// ```python
    /// def lcg_image(w, h, seed):
    ///     x = seed; out = []
    ///     for _ in range(w*h*3):
    ///         x = (x * 1103515245 + 12345) % (1 << 31)
    ///         out.append((x >> 16) & 255)
    ///     return np.array(out, np.uint8).reshape(h, w, 3)
    /// ```
    fn lcg_image(w: usize, h: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..w * h * 3)
            .map(|_| {
                x = (x * 1_103_515_245 + 12_345) % (1 << 31);
                ((x >> 16) & 255) as u8
            })
            .collect()
    }

    fn resize(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
        let mut dst = vec![0u8; dw * dh * 3];
        let r = Resize { sw, sh, dw, dh };
        let mut scratch = vec![0i32; r.scratch_len()];
        Kernels::scalar().resize_rgb8(&r, src, &mut dst, &mut scratch);
        dst
    }

    // Expected outputs, made with opencv-python 5.0.0 (numpy 2.4) by:
    //   cv2.resize(lcg_image(sw, sh, seed), (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(-1)
    // for each (sw, sh, dw, dh, seed) listed in `CASES`.
    const CV_7X5_TO_3X4: [u8; 36] = [
        133, 90, 198, 223, 176, 224, 120, 79, 153, 121, 77, 101, 95, 132, 231, 174, 126, 131, 115,
        113, 49, 193, 219, 169, 105, 137, 176, 125, 141, 48, 220, 101, 196, 126, 109, 151,
    ];
    const CV_5X7_TO_13X11: [u8; 429] = [
        140, 33, 255, 138, 49, 252, 128, 127, 236, 118, 206, 221, 93, 232, 183, 58, 225, 130, 24,
        217, 78, 22, 191, 55, 20, 165, 32, 50, 130, 31, 127, 83, 62, 204, 36, 93, 220, 27, 99, 191,
        85, 142, 190, 95, 145, 183, 145, 163, 176, 196, 181, 161, 194, 178, 139, 158, 161, 117,
        121, 144, 95, 136, 94, 73, 152, 45, 69, 150, 38, 93, 121, 95, 117, 93, 152, 122, 87, 164,
        240, 146, 18, 239, 149, 29, 234, 166, 83, 230, 183, 137, 227, 148, 174, 226, 79, 199, 224,
        9, 224, 176, 74, 147, 128, 139, 70, 86, 174, 56, 52, 166, 136, 19, 159, 215, 12, 157, 232,
        154, 138, 105, 150, 142, 111, 131, 158, 139, 112, 175, 168, 125, 148, 190, 159, 90, 207,
        193, 33, 225, 130, 92, 185, 68, 152, 144, 36, 181, 126, 47, 165, 141, 58, 148, 156, 60,
        145, 159, 87, 153, 176, 86, 153, 173, 80, 154, 160, 75, 154, 147, 90, 126, 155, 120, 79,
        178, 150, 32, 200, 98, 100, 166, 45, 167, 131, 20, 194, 106, 35, 160, 95, 51, 125, 85, 54,
        118, 82, 35, 185, 236, 41, 179, 222, 69, 151, 155, 98, 122, 88, 107, 89, 83, 103, 51, 119,
        100, 14, 156, 75, 99, 105, 50, 185, 54, 31, 212, 20, 20, 152, 12, 9, 92, 5, 7, 80, 3, 53,
        68, 170, 54, 77, 162, 62, 121, 119, 71, 165, 76, 79, 158, 70, 87, 117, 88, 95, 77, 107,
        121, 80, 71, 147, 84, 36, 138, 96, 29, 76, 123, 67, 15, 150, 105, 3, 156, 112, 82, 25, 140,
        84, 36, 134, 93, 94, 105, 101, 152, 76, 110, 163, 69, 118, 143, 76, 126, 123, 83, 165, 90,
        65, 205, 58, 48, 199, 63, 56, 125, 125, 105, 50, 187, 153, 35, 200, 163, 126, 81, 157, 134,
        80, 152, 171, 73, 122, 209, 66, 92, 219, 83, 83, 212, 114, 88, 205, 146, 93, 208, 139, 97,
        211, 132, 101, 199, 139, 107, 162, 168, 120, 125, 196, 132, 118, 202, 135, 176, 170, 81,
        180, 167, 82, 198, 154, 86, 216, 142, 90, 226, 130, 87, 229, 119, 78, 233, 108, 70, 202,
        130, 100, 171, 152, 130, 142, 160, 146, 115, 146, 140, 88, 132, 133, 82, 129, 132, 213,
        237, 15, 213, 235, 21, 211, 225, 54, 210, 215, 87, 218, 179, 88, 232, 127, 68, 247, 75, 49,
        192, 118, 99, 137, 160, 149, 94, 168, 172, 71, 122, 154, 48, 77, 136, 43, 68, 133,
    ];
    const CV_1X1_TO_3X2: [u8; 18] = [
        83, 195, 125, 83, 195, 125, 83, 195, 125, 83, 195, 125, 83, 195, 125, 83, 195, 125,
    ];
    const CV_1X5_TO_4X3: [u8; 36] = [
        59, 83, 215, 59, 83, 215, 59, 83, 215, 59, 83, 215, 130, 149, 66, 130, 149, 66, 130, 149,
        66, 130, 149, 66, 130, 38, 109, 130, 38, 109, 130, 38, 109, 130, 38, 109,
    ];
    const CV_6X1_TO_2X3: [u8; 18] = [
        133, 209, 108, 253, 21, 233, 133, 209, 108, 253, 21, 233, 133, 209, 108, 253, 21, 233,
    ];
    const CV_3X3_TO_1X1: [u8; 3] = [94, 20, 107];
    const CV_27X36_TO_16X16: [u8; 768] = [
        102, 55, 84, 107, 25, 170, 145, 97, 112, 121, 134, 136, 83, 164, 88, 113, 167, 57, 136,
        188, 156, 160, 89, 147, 155, 184, 191, 162, 184, 76, 129, 169, 73, 156, 108, 147, 151, 147,
        134, 154, 57, 171, 152, 35, 147, 100, 159, 202, 110, 213, 109, 53, 61, 67, 155, 199, 163,
        179, 224, 17, 175, 97, 116, 99, 62, 130, 57, 176, 76, 96, 206, 179, 220, 197, 83, 120, 140,
        179, 130, 162, 119, 162, 56, 33, 55, 86, 196, 77, 111, 110, 108, 141, 122, 216, 181, 183,
        149, 183, 53, 41, 208, 76, 117, 222, 46, 231, 225, 216, 119, 228, 152, 102, 184, 74, 89,
        78, 63, 152, 154, 211, 144, 66, 148, 130, 61, 85, 188, 82, 100, 84, 72, 189, 113, 113, 117,
        155, 99, 146, 173, 129, 39, 41, 183, 115, 140, 75, 181, 78, 127, 86, 97, 106, 113, 126,
        100, 173, 148, 103, 45, 71, 96, 195, 194, 100, 173, 95, 127, 97, 190, 141, 114, 118, 84,
        157, 181, 78, 120, 149, 147, 151, 89, 146, 180, 153, 118, 118, 122, 196, 110, 132, 189,
        175, 167, 111, 86, 90, 111, 127, 113, 165, 106, 26, 146, 108, 80, 200, 72, 139, 161, 85,
        86, 81, 104, 172, 85, 148, 147, 141, 185, 186, 123, 119, 145, 98, 189, 152, 211, 143, 144,
        119, 89, 119, 184, 194, 161, 87, 86, 156, 169, 79, 87, 79, 190, 186, 145, 60, 157, 53, 105,
        62, 121, 120, 177, 66, 64, 57, 62, 141, 76, 142, 140, 108, 184, 197, 199, 68, 172, 192,
        199, 118, 176, 179, 30, 169, 93, 58, 76, 118, 224, 52, 68, 104, 87, 174, 186, 189, 219,
        119, 106, 138, 102, 164, 206, 135, 86, 210, 224, 52, 161, 142, 204, 227, 40, 53, 152, 78,
        152, 181, 166, 184, 162, 190, 44, 119, 188, 175, 174, 65, 66, 35, 190, 214, 33, 176, 128,
        200, 137, 208, 164, 154, 217, 158, 65, 75, 157, 171, 68, 122, 127, 59, 179, 189, 164, 92,
        127, 84, 171, 199, 104, 55, 146, 98, 187, 101, 131, 165, 101, 151, 169, 92, 193, 167, 101,
        180, 163, 97, 178, 136, 111, 178, 208, 68, 115, 126, 150, 227, 162, 119, 113, 104, 234,
        133, 169, 177, 193, 52, 60, 33, 171, 133, 202, 154, 41, 147, 113, 224, 108, 224, 35, 207,
        204, 162, 91, 106, 124, 106, 168, 175, 175, 136, 138, 121, 102, 89, 104, 77, 204, 216, 187,
        55, 117, 158, 88, 150, 78, 213, 75, 228, 152, 80, 156, 145, 60, 171, 135, 150, 88, 24, 210,
        116, 59, 126, 72, 119, 165, 165, 158, 106, 67, 160, 113, 123, 178, 82, 218, 121, 218, 137,
        175, 116, 182, 136, 138, 181, 109, 200, 24, 108, 202, 127, 91, 65, 104, 81, 133, 64, 90,
        30, 83, 178, 70, 172, 175, 222, 184, 106, 192, 153, 167, 95, 126, 112, 89, 34, 96, 169,
        117, 33, 133, 194, 161, 198, 137, 160, 65, 118, 82, 64, 159, 137, 66, 137, 112, 210, 107,
        64, 96, 88, 149, 60, 68, 30, 173, 219, 83, 96, 174, 207, 212, 127, 129, 127, 133, 64, 135,
        185, 143, 121, 96, 109, 67, 129, 84, 185, 99, 135, 195, 82, 139, 172, 61, 78, 140, 130, 34,
        154, 131, 124, 162, 86, 112, 197, 60, 128, 163, 101, 111, 175, 152, 114, 100, 51, 119, 134,
        114, 159, 150, 167, 120, 110, 63, 184, 100, 141, 61, 136, 159, 92, 32, 176, 216, 184, 180,
        149, 89, 156, 111, 141, 187, 106, 130, 123, 120, 102, 201, 137, 175, 166, 108, 100, 44,
        154, 79, 117, 169, 204, 178, 91, 123, 16, 148, 127, 117, 226, 82, 177, 170, 74, 104, 141,
        72, 167, 64, 211, 74, 107, 154, 98, 121, 198, 128, 86, 78, 145, 77, 113, 140, 113, 98, 133,
        107, 165, 193, 60, 91, 174, 183, 168, 164, 34, 176, 181, 113, 160, 152, 80, 48, 141, 164,
        93, 100, 125, 142, 193, 164, 205, 36, 133, 42, 112, 178, 209, 110, 176, 106, 39, 75, 78,
        180, 204, 47, 227, 21, 195, 95, 64, 110, 80, 158, 66, 50, 126, 106, 106, 200, 216, 50, 197,
        109, 196, 87, 177, 181, 89, 93, 146, 150, 101, 98, 52, 197, 85, 122, 159, 210, 66, 173,
        145, 110, 113, 122, 95, 143, 77, 135, 48, 157, 210, 117, 125, 206, 138, 137, 160, 114, 130,
        177, 109, 47, 166, 116, 131, 139, 166, 115, 114, 113, 160, 86, 231, 116, 79, 123, 172, 28,
        135, 100, 48,
    ];
    const CV_32X18_TO_16X16: [u8; 768] = [
        103, 203, 126, 136, 91, 62, 103, 136, 142, 151, 101, 91, 84, 104, 70, 148, 136, 89, 243,
        120, 113, 147, 179, 71, 136, 206, 223, 170, 102, 102, 71, 109, 34, 162, 107, 156, 155, 52,
        135, 114, 160, 159, 55, 183, 150, 129, 212, 144, 144, 121, 184, 108, 132, 160, 54, 163,
        127, 172, 69, 101, 128, 143, 76, 64, 150, 151, 143, 175, 221, 209, 110, 125, 190, 182, 152,
        139, 84, 118, 45, 136, 139, 132, 76, 169, 151, 111, 146, 95, 98, 137, 77, 145, 146, 154,
        119, 170, 159, 167, 113, 96, 147, 206, 130, 94, 82, 88, 155, 128, 103, 79, 91, 134, 167,
        158, 123, 181, 195, 104, 26, 153, 174, 103, 187, 39, 136, 156, 136, 161, 88, 151, 96, 114,
        194, 43, 121, 145, 53, 136, 55, 74, 123, 206, 147, 124, 130, 128, 172, 58, 208, 124, 134,
        81, 91, 98, 176, 167, 128, 72, 134, 139, 121, 163, 118, 171, 114, 94, 56, 152, 133, 58,
        172, 76, 137, 86, 151, 170, 151, 187, 179, 170, 154, 56, 207, 149, 98, 207, 98, 129, 158,
        180, 112, 52, 110, 100, 192, 70, 125, 79, 87, 85, 95, 132, 139, 73, 127, 93, 107, 124, 166,
        123, 156, 105, 53, 150, 112, 117, 160, 110, 120, 119, 137, 40, 110, 100, 164, 107, 165,
        159, 163, 71, 171, 208, 113, 164, 123, 135, 114, 183, 166, 118, 175, 116, 162, 123, 108,
        60, 67, 51, 83, 180, 79, 98, 177, 85, 87, 79, 161, 201, 138, 105, 89, 86, 141, 128, 156,
        119, 108, 68, 169, 95, 91, 158, 115, 76, 173, 71, 122, 121, 176, 134, 218, 84, 119, 126,
        66, 205, 168, 136, 115, 146, 125, 116, 140, 89, 103, 117, 93, 185, 157, 166, 92, 179, 119,
        143, 79, 149, 148, 139, 92, 74, 119, 131, 38, 148, 174, 169, 42, 168, 123, 98, 147, 140,
        86, 61, 117, 143, 164, 183, 153, 100, 146, 135, 100, 116, 198, 87, 55, 111, 105, 190, 110,
        90, 127, 130, 136, 109, 78, 36, 164, 95, 104, 147, 165, 148, 105, 129, 147, 121, 168, 54,
        154, 166, 91, 186, 188, 129, 138, 82, 208, 79, 98, 167, 184, 121, 100, 125, 109, 80, 75,
        74, 60, 119, 73, 190, 101, 179, 169, 190, 100, 144, 126, 178, 114, 43, 112, 187, 106, 107,
        82, 173, 48, 167, 61, 109, 103, 214, 135, 108, 198, 159, 209, 49, 83, 190, 132, 207, 165,
        151, 132, 198, 137, 133, 186, 188, 144, 233, 126, 72, 114, 100, 192, 78, 112, 235, 126,
        153, 95, 134, 89, 169, 91, 154, 118, 118, 220, 71, 117, 78, 132, 173, 132, 117, 127, 159,
        110, 75, 135, 62, 129, 101, 129, 105, 196, 103, 184, 86, 129, 139, 115, 191, 126, 177, 93,
        163, 158, 60, 93, 99, 158, 95, 167, 172, 143, 123, 133, 182, 86, 133, 106, 150, 112, 55,
        175, 162, 150, 127, 86, 153, 114, 145, 128, 128, 140, 125, 151, 139, 104, 154, 154, 72,
        128, 68, 158, 141, 167, 121, 170, 192, 178, 105, 128, 62, 96, 124, 124, 157, 114, 111, 137,
        133, 178, 112, 152, 219, 121, 104, 118, 172, 167, 123, 146, 109, 203, 102, 161, 96, 179,
        107, 119, 76, 107, 119, 108, 135, 27, 174, 158, 154, 158, 134, 178, 153, 137, 78, 107, 111,
        181, 178, 130, 104, 113, 113, 100, 173, 133, 115, 81, 144, 163, 158, 162, 204, 56, 113,
        130, 194, 163, 111, 89, 49, 175, 118, 197, 65, 214, 108, 137, 82, 59, 183, 130, 132, 80,
        174, 119, 97, 130, 118, 124, 200, 96, 109, 92, 95, 138, 192, 149, 174, 94, 91, 129, 193,
        96, 95, 165, 60, 87, 74, 106, 124, 55, 107, 133, 204, 133, 185, 82, 102, 55, 78, 227, 136,
        207, 92, 170, 133, 117, 130, 120, 162, 163, 142, 71, 155, 122, 142, 70, 182, 164, 116, 113,
        87, 127, 136, 129, 173, 117, 181, 113, 118, 124, 128, 137, 197, 100, 176, 73, 107, 172,
        151, 99, 104, 159, 156, 113, 63, 130, 186, 165, 193, 147, 157, 159, 131, 162, 84, 65, 106,
        209, 148, 101, 46, 130, 110, 86, 137, 111, 112, 191, 145, 90, 87, 119, 121, 137, 141, 57,
        121, 58, 172, 60, 97, 157, 111, 10, 132, 148, 92, 170, 154, 178, 78, 171, 156, 227, 142,
        139, 50, 142, 88, 70, 96, 147, 146, 75, 110, 176, 141, 154, 133, 152, 70, 121, 76, 186,
        135, 132, 111, 110, 122, 241, 185, 209, 143, 157, 87, 148, 40,
    ];
    const CV_8X6_TO_4X3: [u8; 36] = [
        187, 124, 177, 109, 146, 76, 106, 107, 210, 59, 114, 125, 111, 195, 188, 126, 102, 208, 78,
        136, 128, 150, 104, 100, 107, 130, 146, 121, 206, 108, 167, 68, 164, 85, 90, 106,
    ];
    const CV_9X4_TO_20X9: [u8; 540] = [
        191, 54, 237, 187, 88, 228, 175, 175, 205, 168, 243, 174, 180, 222, 105, 193, 201, 35, 216,
        151, 91, 239, 99, 154, 239, 61, 153, 229, 29, 128, 209, 16, 102, 181, 24, 77, 143, 50, 77,
        85, 126, 144, 31, 198, 206, 73, 193, 186, 116, 188, 166, 137, 212, 114, 154, 241, 55, 161,
        253, 32, 176, 57, 209, 171, 90, 205, 159, 176, 193, 150, 243, 175, 159, 221, 118, 167, 198,
        62, 196, 149, 112, 226, 99, 167, 224, 74, 154, 208, 57, 116, 187, 48, 93, 160, 45, 86, 131,
        61, 95, 93, 122, 145, 59, 180, 190, 79, 186, 172, 99, 191, 154, 127, 201, 111, 155, 213,
        63, 166, 217, 44, 136, 66, 135, 131, 98, 142, 116, 179, 162, 104, 243, 175, 100, 216, 155,
        97, 190, 135, 143, 145, 167, 192, 100, 201, 183, 106, 157, 152, 132, 83, 127, 131, 69, 106,
        103, 113, 97, 89, 146, 117, 111, 148, 134, 134, 149, 95, 167, 136, 56, 199, 122, 99, 173,
        103, 158, 135, 83, 182, 121, 75, 102, 79, 71, 96, 106, 88, 79, 176, 132, 64, 230, 171, 55,
        202, 184, 45, 173, 197, 99, 137, 215, 157, 100, 232, 144, 134, 162, 104, 194, 60, 77, 199,
        49, 62, 148, 132, 69, 110, 183, 134, 104, 151, 192, 101, 120, 106, 150, 107, 20, 199, 95,
        73, 144, 99, 154, 68, 107, 185, 38, 110, 105, 118, 81, 99, 120, 89, 84, 124, 111, 74, 126,
        134, 92, 114, 162, 111, 102, 190, 115, 99, 213, 118, 97, 236, 113, 126, 179, 106, 168, 93,
        99, 162, 64, 90, 107, 93, 89, 79, 123, 109, 118, 152, 125, 155, 177, 83, 148, 137, 40, 142,
        95, 60, 106, 119, 92, 63, 155, 105, 47, 170, 107, 157, 91, 102, 133, 90, 88, 73, 90, 84,
        23, 96, 130, 27, 139, 177, 30, 182, 130, 61, 211, 78, 93, 239, 82, 119, 197, 109, 142, 127,
        120, 124, 79, 118, 66, 55, 109, 48, 63, 83, 133, 153, 59, 209, 235, 60, 147, 165, 59, 85,
        96, 46, 67, 138, 31, 59, 203, 25, 56, 228, 156, 121, 140, 144, 102, 133, 113, 56, 114, 90,
        19, 102, 104, 33, 129, 119, 47, 155, 125, 62, 164, 131, 78, 171, 129, 112, 140, 125, 154,
        93, 120, 155, 69, 115, 117, 66, 112, 107, 83, 117, 170, 153, 121, 227, 215, 126, 163, 162,
        131, 99, 110, 108, 102, 150, 79, 117, 210, 67, 123, 233, 210, 73, 195, 191, 65, 181, 141,
        44, 144, 95, 30, 115, 69, 54, 120, 43, 77, 126, 117, 70, 110, 197, 60, 93, 187, 105, 73,
        143, 171, 51, 116, 196, 54, 107, 181, 84, 113, 179, 115, 158, 211, 152, 201, 239, 184, 206,
        182, 155, 210, 125, 126, 180, 146, 161, 142, 183, 210, 127, 198, 229, 231, 56, 216, 209,
        51, 199, 151, 40, 156, 97, 34, 119, 55, 61, 117, 14, 88, 115, 114, 72, 90, 222, 54, 64,
        209, 103, 47, 150, 178, 34, 115, 212, 49, 104, 205, 91, 114, 206, 127, 174, 227, 151, 231,
        244, 173, 236, 189, 152, 240, 134, 131, 207, 163, 165, 166, 208, 210, 150, 226, 228,
    ];
    const CV_2X2_TO_5X5: [u8; 75] = [
        133, 216, 107, 137, 210, 111, 152, 184, 128, 168, 158, 146, 172, 152, 150, 144, 211, 99,
        145, 204, 104, 150, 176, 128, 155, 148, 151, 157, 141, 157, 190, 191, 66, 180, 182, 78,
        143, 145, 126, 104, 108, 174, 95, 99, 187, 236, 171, 33, 215, 159, 51, 134, 113, 124, 54,
        67, 197, 33, 55, 216, 247, 166, 25, 224, 154, 45, 132, 105, 124, 41, 57, 203, 18, 45, 223,
    ];

    #[allow(clippy::type_complexity)]
    const CASES: &[(usize, usize, usize, usize, u64, &[u8])] = &[
        (7, 5, 3, 4, 1, &CV_7X5_TO_3X4),
        (5, 7, 13, 11, 2, &CV_5X7_TO_13X11),
        (1, 1, 3, 2, 3, &CV_1X1_TO_3X2),
        (1, 5, 4, 3, 4, &CV_1X5_TO_4X3),
        (6, 1, 2, 3, 5, &CV_6X1_TO_2X3),
        (3, 3, 1, 1, 6, &CV_3X3_TO_1X1),
        (27, 36, 16, 16, 7, &CV_27X36_TO_16X16),
        (32, 18, 16, 16, 8, &CV_32X18_TO_16X16),
        (8, 6, 4, 3, 9, &CV_8X6_TO_4X3),
        (9, 4, 20, 9, 10, &CV_9X4_TO_20X9),
        (2, 2, 5, 5, 11, &CV_2X2_TO_5X5),
    ];

    #[test]
    fn matches_cv2_resize() {
        for &(sw, sh, dw, dh, seed, want) in CASES {
            let src = lcg_image(sw, sh, seed);
            let got = resize(&src, sw, sh, dw, dh);
            assert_eq!(got, want, "{sw}x{sh} -> {dw}x{dh}");
        }
    }

    #[test]
    fn equal_sizes_copy() {
        let src = lcg_image(5, 4, 9);
        assert_eq!(resize(&src, 5, 4, 5, 4), src);
        let r = Resize {
            sw: 5,
            sh: 4,
            dw: 5,
            dh: 4,
        };
        assert_eq!(r.scratch_len(), 0);
    }

    #[test]
    fn constant_image_stays_constant() {
        // Any mix of equal values must give the value back (weights sum to 2048
        // and the border rows mix a row with itself).
        for &(sw, sh, dw, dh) in &[(3, 2, 11, 7), (13, 9, 4, 5), (1, 1, 6, 6), (640, 1, 3, 2)] {
            for v in [0u8, 1, 127, 254, 255] {
                let src = vec![v; sw * sh * 3];
                assert!(resize(&src, sw, sh, dw, dh).iter().all(|&o| o == v));
            }
        }
    }

    #[test]
    fn scratch_is_per_destination_column() {
        let r = |sw, sh, dw, dh| Resize { sw, sh, dw, dh }.scratch_len();
        assert_eq!(r(1080, 810, 640, 640), 9 * 640);
        assert_eq!(r(8, 6, 4, 3), 0);
        // A larger scratch is fine.
        let src = lcg_image(7, 5, 1);
        let mut dst = [0u8; 36];
        let mut scratch = [0i32; 100];
        let r = Resize {
            sw: 7,
            sh: 5,
            dw: 3,
            dh: 4,
        };
        Kernels::scalar().resize_rgb8(&r, &src, &mut dst, &mut scratch);
        assert_eq!(dst, CV_7X5_TO_3X4);
    }

    #[test]
    #[should_panic(expected = "resize_rgb8")]
    fn zero_sizes_panic() {
        let r = Resize {
            sw: 0,
            sh: 4,
            dw: 2,
            dh: 2,
        };
        Kernels::scalar().resize_rgb8(&r, &[], &mut [0; 12], &mut [0; 64]);
    }

    #[test]
    fn u8_conversion_is_the_f32_one_times_255() {
        let k = Kernels::scalar();
        // Every byte value, odd sizes (1x1 .. 16x17), both channel orders.
        for (w, h, seed) in [(1, 1, 3), (2, 1, 5), (3, 3, 7), (7, 5, 11), (16, 17, 13)] {
            let src = lcg_image(w, h, seed);
            let mut f = vec![0f32; 3 * w * h];
            let mut u = vec![0u8; 3 * w * h];
            for order in [[0, 1, 2], [2, 1, 0]] {
                k.hwc_to_chw_f32(&src, order, &mut f);
                k.hwc_to_chw_u8(&src, order, &mut u);
                for (&a, &b) in f.iter().zip(&u) {
                    assert_eq!((a * 255.0).round(), f32::from(b));
                    assert_eq!(a.to_bits(), (f32::from(b) / 255.0).to_bits());
                }
            }
        }
        let all: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
        let mut u = vec![0u8; all.len()];
        k.hwc_to_chw_u8(&all, [0, 1, 2], &mut u);
        // Planar RGB: the R plane first.
        assert_eq!(u[..3], [0, 1, 2]);
        assert_eq!(u[256..259], [255, 254, 253]);
    }

    #[test]
    fn conversion_matches_numpy() {
        // 2x1 image: BGR bytes of two pixels.
        let k = Kernels::scalar();
        let src = [0u8, 128, 255, 1, 2, 3];
        let mut out = [0f32; 6];
        k.hwc_to_chw_f32(&src, [2, 1, 0], &mut out);
        // R plane = source channel 2, G = 1, B = 0.
        let want = [255u8, 3, 128, 2, 0, 1].map(|v| v as f32 / 255.0);
        assert_eq!(out, want);
        k.hwc_to_chw_f32(&src, [0, 1, 2], &mut out);
        let want = [0u8, 1, 128, 2, 255, 3].map(|v| v as f32 / 255.0);
        assert_eq!(out, want);
        // np.float32(v) / 255 is a correctly rounded division (the f64
        // quotient rounded once to f32 is the same number); a multiply by the
        // rounded reciprocal 1/255 differs for 126 of the 256 values.
        for v in 0..=255u8 {
            let mut o = [0f32; 3];
            k.hwc_to_chw_f32(&[v, v, v], [0, 1, 2], &mut o);
            assert_eq!(o[0].to_bits(), ((f64::from(v) / 255.0) as f32).to_bits());
        }
    }
}
