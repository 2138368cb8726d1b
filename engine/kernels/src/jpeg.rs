//! JPEG decoding kernels, each bit-exact with the libjpeg-turbo routine it
//! names (`edgedetr-vision`'s decoder calls them to reproduce
//! `cv2.imdecode`):
//!
//! 1. [`Kernels::idct_islow_u8`]: dequantisation and the accurate integer
//!    IDCT (`jpeg_idct_islow`, jidctint.c) of one 8×8 block, with the
//!    output range limit;
//!    [`Kernels::idct_4x4_u8`] does the same at scale 1/2 (`jpeg_idct_4x4`,
//!    jidctred.c);
//! 2. [`Kernels::upsample_h2v1_fancy_u8`] and
//!    [`Kernels::upsample_h2v2_fancy_u8`]: libjpeg's "fancy" (triangle
//!    filter) chroma upsampling of one row (jdsample.c);
//! 3. [`Kernels::ycc_to_rgb_u8`]: `ycc_rgb_convert` (jdcolor.c) of one row.
//!
//! Exactness policy: all integer; every path gives the scalar reference's
//! bytes for every input. The IDCT works in wrapping 32-bit arithmetic (as
//! libjpeg's `int` workspace and its SIMD versions), which equals libjpeg's
//! C result for every block a real encoder produces.

use crate::Kernels;

/// `FIX(x)` of jidctint.c (`CONST_BITS = 13`).
pub const CONST_BITS: u32 = 13;
/// Extra precision of the IDCT's first pass.
pub const PASS1_BITS: u32 = 2;
const FIX_0_298631336: i32 = 2446;
const FIX_0_390180644: i32 = 3196;
const FIX_0_541196100: i32 = 4433;
const FIX_0_765366865: i32 = 6270;
const FIX_0_899976223: i32 = 7373;
const FIX_1_175875602: i32 = 9633;
const FIX_1_501321110: i32 = 12299;
const FIX_1_847759065: i32 = 15137;
const FIX_1_961570560: i32 = 16069;
const FIX_2_053119869: i32 = 16819;
const FIX_2_562915447: i32 = 20995;
const FIX_3_072711026: i32 = 25172;

/// `sample_range_limit + CENTERJSAMPLE` indexed by `x & 1023`: the IDCT's
/// output clamp, wrapping like libjpeg's table for absurd inputs.
pub fn range_limit(x: i32) -> u8 {
    let m = x & 1023;
    match m {
        0..=127 => (m + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        _ => (m - 896) as u8,
    }
}

fn descale(x: i32, n: u32) -> i32 {
    x.wrapping_add(1 << (n - 1)) >> n
}

/// The 1-D Loeffler–Ligtenberg–Moschytz IDCT of `jpeg_idct_islow` on eight
/// inputs, in wrapping 32-bit arithmetic; the outputs before the descale.
fn idct_1d(i: [i32; 8]) -> [i32; 8] {
    let (a, m) = (i32::wrapping_add, i32::wrapping_mul);
    let s = i32::wrapping_sub;
    // Even part.
    let z1 = m(a(i[2], i[6]), FIX_0_541196100);
    let tmp2 = s(z1, m(i[6], FIX_1_847759065));
    let tmp3 = a(z1, m(i[2], FIX_0_765366865));
    let tmp0 = a(i[0], i[4]).wrapping_shl(CONST_BITS);
    let tmp1 = s(i[0], i[4]).wrapping_shl(CONST_BITS);
    let (tmp10, tmp13) = (a(tmp0, tmp3), s(tmp0, tmp3));
    let (tmp11, tmp12) = (a(tmp1, tmp2), s(tmp1, tmp2));
    // Odd part.
    let (t0, t1, t2, t3) = (i[7], i[5], i[3], i[1]);
    let z1 = a(t0, t3);
    let z2 = a(t1, t2);
    let z3 = a(t0, t2);
    let z4 = a(t1, t3);
    let z5 = m(a(z3, z4), FIX_1_175875602);
    let t0 = m(t0, FIX_0_298631336);
    let t1 = m(t1, FIX_2_053119869);
    let t2 = m(t2, FIX_3_072711026);
    let t3 = m(t3, FIX_1_501321110);
    let z1 = m(z1, -FIX_0_899976223);
    let z2 = m(z2, -FIX_2_562915447);
    let z3 = a(m(z3, -FIX_1_961570560), z5);
    let z4 = a(m(z4, -FIX_0_390180644), z5);
    let t0 = a(a(t0, z1), z3);
    let t1 = a(a(t1, z2), z4);
    let t2 = a(a(t2, z2), z3);
    let t3 = a(a(t3, z1), z4);
    [
        a(tmp10, t3),
        a(tmp11, t2),
        a(tmp12, t1),
        a(tmp13, t0),
        s(tmp13, t0),
        s(tmp12, t1),
        s(tmp11, t2),
        s(tmp10, t3),
    ]
}

/// The scalar [`crate::Slot::IdctIslowU8`]: `out[r·stride + c]` for the
/// block `coef` (natural order) dequantised by `quant`.
pub(crate) fn idct_islow_u8(coef: &[i16; 64], quant: &[i16; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i32; 64];
    for col in 0..8 {
        let o = idct_1d(core::array::from_fn(|r| {
            i32::from(coef[r * 8 + col]) * i32::from(quant[r * 8 + col])
        }));
        for r in 0..8 {
            ws[r * 8 + col] = descale(o[r], CONST_BITS - PASS1_BITS);
        }
    }
    for row in 0..8 {
        let o = idct_1d(core::array::from_fn(|c| ws[row * 8 + c]));
        for (d, &x) in out[row * stride..row * stride + 8].iter_mut().zip(&o) {
            *d = range_limit(descale(x, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

// jidctred.c's constants of `jpeg_idct_4x4`: FIX(x) with CONST_BITS = 13.
pub(crate) const FIX_0_211164243: i32 = 1730;
pub(crate) const FIX_0_509795579: i32 = 4176;
pub(crate) const FIX_0_601344887: i32 = 4926;
pub(crate) const FIX_1_061594337: i32 = 8697;
pub(crate) const FIX_1_451774981: i32 = 11893;
pub(crate) const FIX_2_172734803: i32 = 17799;

/// `jpeg_idct_4x4`'s 1-D step: inputs 0, 1, 2, 3, 5, 6, 7 (4 is unused),
/// outputs 0..4 before the descale.
pub(crate) fn idct4_1d(i: [i32; 8]) -> [i32; 4] {
    let (a, s, m) = (i32::wrapping_add, i32::wrapping_sub, i32::wrapping_mul);
    let tmp0 = i[0].wrapping_shl(14);
    let tmp2 = a(m(i[2], FIX_1_847759065), m(i[6], -FIX_0_765366865));
    let (tmp10, tmp12) = (a(tmp0, tmp2), s(tmp0, tmp2));
    let (z1, z2, z3, z4) = (i[7], i[5], i[3], i[1]);
    let tmp0 = a(
        a(m(z1, -FIX_0_211164243), m(z2, FIX_1_451774981)),
        a(m(z3, -FIX_2_172734803), m(z4, FIX_1_061594337)),
    );
    let tmp2 = a(
        a(m(z1, -FIX_0_509795579), m(z2, -FIX_0_601344887)),
        a(m(z3, FIX_0_899976223), m(z4, FIX_2_562915447)),
    );
    [
        a(tmp10, tmp2),
        a(tmp12, tmp0),
        s(tmp12, tmp0),
        s(tmp10, tmp2),
    ]
}

/// The scalar [`crate::Slot::Idct4x4U8`] (`jpeg_idct_4x4`, scale 1/2): a
/// 4×4 block at `out[r·stride + c]`.
///
/// Like libjpeg, a column or row whose AC inputs are zero is its DC value
/// (`dc << 2` in the first pass, `range_limit((w + 16) >> 5)` in the
/// second): the same numbers as the full step while the DC is below 2^16,
/// where nothing wraps, so it is taken only then.
pub(crate) fn idct_4x4_u8(coef: &[i16; 64], q: &[i16; 64], out: &mut [u8], stride: usize) {
    let mut ws = [0i32; 32];
    for col in [0, 1, 2, 3, 5, 6, 7] {
        let dcq = i32::from(coef[col]) * i32::from(q[col]);
        if [1, 2, 3, 5, 6, 7].iter().all(|&r| coef[r * 8 + col] == 0)
            && dcq.unsigned_abs() < 1 << 16
        {
            for r in 0..4 {
                ws[r * 8 + col] = dcq << 2;
            }
            continue;
        }
        let o = idct4_1d(core::array::from_fn(|r| {
            i32::from(coef[r * 8 + col]) * i32::from(q[r * 8 + col])
        }));
        for (r, &v) in o.iter().enumerate() {
            ws[r * 8 + col] = descale(v, 12);
        }
    }
    for row in 0..4 {
        let w = &ws[row * 8..row * 8 + 8];
        let dst = &mut out[row * stride..row * stride + 4];
        if [1, 2, 3, 5, 6, 7].iter().all(|&c| w[c] == 0) && w[0].unsigned_abs() < 1 << 16 {
            dst.fill(range_limit(descale(w[0], 5)));
            continue;
        }
        let o = idct4_1d(core::array::from_fn(|c| w[c]));
        for (d, &v) in dst.iter_mut().zip(&o) {
            *d = range_limit(descale(v, 19));
        }
    }
}

/// `h2v1_fancy_upsample`'s outputs `2x, 2x + 1` for `x` in `from..to`.
pub(crate) fn h2v1_fancy_span(row: &[u8], out: &mut [u8], from: usize, to: usize) {
    let n = row.len();
    for x in from..to {
        let v = u32::from(row[x]) * 3;
        let l = u32::from(row[x.saturating_sub(1)]);
        let r = u32::from(row[(x + 1).min(n - 1)]);
        out[2 * x] = ((v + l + 1) >> 2) as u8;
        out[2 * x + 1] = ((v + r + 2) >> 2) as u8;
    }
}

/// The scalar [`crate::Slot::UpsampleH2v1FancyU8`] (`h2v1_fancy_upsample`).
pub(crate) fn upsample_h2v1_fancy_u8(row: &[u8], out: &mut [u8]) {
    let n = row.len();
    h2v1_fancy_span(row, out, 0, 1);
    if n > 2 {
        for (w, o) in row.windows(3).zip(out[2..2 * n - 2].chunks_exact_mut(2)) {
            let v = u32::from(w[1]) * 3;
            o[0] = ((v + u32::from(w[0]) + 1) >> 2) as u8;
            o[1] = ((v + u32::from(w[2]) + 2) >> 2) as u8;
        }
    }
    h2v1_fancy_span(row, out, (n - 1).max(1), n);
}

/// `h2v2_fancy_upsample`'s outputs `2x, 2x + 1` for `x` in `from..to`.
pub(crate) fn h2v2_fancy_span(near: &[u8], far: &[u8], out: &mut [u8], from: usize, to: usize) {
    let n = near.len();
    let cs = |x: usize| u32::from(near[x]) * 3 + u32::from(far[x]);
    for x in from..to {
        let c = cs(x) * 3;
        out[2 * x] = ((c + cs(x.saturating_sub(1)) + 8) >> 4) as u8;
        out[2 * x + 1] = ((c + cs((x + 1).min(n - 1)) + 7) >> 4) as u8;
    }
}

/// The scalar [`crate::Slot::UpsampleH2v2FancyU8`] (`h2v2_fancy_upsample`).
pub(crate) fn upsample_h2v2_fancy_u8(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    h2v2_fancy_span(near, far, out, 0, 1);
    if n > 2 {
        for ((a, b), o) in near
            .windows(3)
            .zip(far.windows(3))
            .zip(out[2..2 * n - 2].chunks_exact_mut(2))
        {
            let cs = |i: usize| u32::from(a[i]) * 3 + u32::from(b[i]);
            let c = cs(1) * 3;
            o[0] = ((c + cs(0) + 8) >> 4) as u8;
            o[1] = ((c + cs(2) + 7) >> 4) as u8;
        }
    }
    h2v2_fancy_span(near, far, out, (n - 1).max(1), n);
}

/// jdcolor.c's `SCALEBITS`.
const SCALEBITS: u32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);
/// `FIX(1.40200)`, `FIX(1.77200)`, `FIX(0.71414)`, `FIX(0.34414)`.
pub(crate) const YCC_FIX: [i32; 4] = [91881, 116130, 46802, 22554];

/// The scalar [`crate::Slot::YccToRgbU8`]: `build_ycc_rgb_table`'s entries
/// computed in place (they are the same integers).
pub(crate) fn ycc_to_rgb_u8(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    let [fr, fb, fgr, fgb] = YCC_FIX;
    for (((px, &y), &cb), &cr) in out.chunks_exact_mut(3).zip(y).zip(cb).zip(cr) {
        let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
        let r = y + ((fr * cr + ONE_HALF) >> SCALEBITS);
        let g = y + ((-fgr * cr - fgb * cb + ONE_HALF) >> SCALEBITS);
        let b = y + ((fb * cb + ONE_HALF) >> SCALEBITS);
        px[0] = r.clamp(0, 255) as u8;
        px[1] = g.clamp(0, 255) as u8;
        px[2] = b.clamp(0, 255) as u8;
    }
}

impl Kernels {
    /// `jpeg_idct_islow`: dequantises the 8×8 block `coef` (natural order) by
    /// `quant` (libjpeg's `ISLOW_MULT_TYPE`, a 16-bit quantiser), inverse-DCTs
    /// it and writes the range-limited samples to `out[r·stride + c]`.
    /// Panics unless `stride ≥ 8` and `out` holds `7·stride + 8` bytes.
    pub fn idct_islow_u8(
        &self,
        coef: &[i16; 64],
        quant: &[i16; 64],
        out: &mut [u8],
        stride: usize,
    ) {
        assert!(
            stride >= 8 && out.len() >= 7 * stride + 8,
            "idct_islow_u8: output too small"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.idct_islow_u8)(coef, quant, out, stride) }
    }

    /// `jpeg_idct_4x4` (jidctred.c; libjpeg's scale 1/2): dequantises the
    /// 8×8 block `coef` by `quant` and writes its 4×4 reduced inverse DCT,
    /// range-limited, to `out[r·stride + c]`. Panics unless `stride ≥ 4` and
    /// `out` holds `3·stride + 4` bytes.
    pub fn idct_4x4_u8(&self, coef: &[i16; 64], quant: &[i16; 64], out: &mut [u8], stride: usize) {
        assert!(
            stride >= 4 && out.len() >= 3 * stride + 4,
            "idct_4x4_u8: output too small"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.idct_4x4_u8)(coef, quant, out, stride) }
    }

    /// `h2v1_fancy_upsample` of one row of `n ≥ 1` samples into `2n`:
    /// `out[2x] = (3·r[x] + r[x−1] + 1) >> 2`, `out[2x+1] = (3·r[x] + r[x+1] + 2) >> 2`,
    /// the neighbours clamped to the row. Panics unless `out.len() == 2·row.len()`
    /// and the row is not empty.
    pub fn upsample_h2v1_fancy_u8(&self, row: &[u8], out: &mut [u8]) {
        assert!(
            !row.is_empty() && out.len() == 2 * row.len(),
            "upsample_h2v1_fancy_u8: bad lengths"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.upsample_h2v1_fancy_u8)(row, out) }
    }

    /// `h2v2_fancy_upsample` of one output row: with `c[x] = 3·near[x] + far[x]`
    /// (`near` the input row the output row lies in, `far` the adjacent one),
    /// `out[2x] = (3·c[x] + c[x−1] + 8) >> 4`, `out[2x+1] = (3·c[x] + c[x+1] + 7) >> 4`,
    /// neighbours clamped to the row. Panics unless `near` and `far` have the
    /// same length `n ≥ 1` and `out` has `2n`.
    pub fn upsample_h2v2_fancy_u8(&self, near: &[u8], far: &[u8], out: &mut [u8]) {
        assert!(
            !near.is_empty() && far.len() == near.len() && out.len() == 2 * near.len(),
            "upsample_h2v2_fancy_u8: bad lengths"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.upsample_h2v2_fancy_u8)(near, far, out) }
    }

    /// `ycc_rgb_convert` of one row: interleaved RGB from the `Y`, `Cb`, `Cr`
    /// samples, with libjpeg's fixed-point coefficients (`SCALEBITS = 16`).
    /// Panics unless the three rows have one length `n` and `out` has `3n`.
    pub fn ycc_to_rgb_u8(&self, y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
        assert!(
            cb.len() == y.len() && cr.len() == y.len() && out.len() == 3 * y.len(),
            "ycc_to_rgb_u8: bad lengths"
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.ycc_to_rgb_u8)(y, cb, cr, out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_limit_is_libjpegs_table() {
        assert_eq!(range_limit(0), 128);
        assert_eq!(range_limit(127), 255);
        assert_eq!(range_limit(300), 255);
        assert_eq!(range_limit(-128), 0);
        assert_eq!(range_limit(-300), 0);
        assert_eq!(range_limit(-1), 127);
    }

    /// A DC-only block is flat: `(dc·q·8 + 1024) >> 11 >> 3`, clamped
    /// (libjpeg's shortcut for zero AC columns and rows gives the same).
    #[test]
    fn dc_only_block_is_flat() {
        let mut coef = [0i16; 64];
        let mut q = [1i16; 64];
        for (dc, qv) in [(10i16, 16i16), (-50, 3), (0, 99), (1000, 80)] {
            coef[0] = dc;
            q[0] = qv;
            let mut out = [0u8; 64];
            Kernels::scalar().idct_islow_u8(&coef, &q, &mut out, 8);
            let v = i32::from(dc) * i32::from(qv);
            let want = range_limit(((v << 2) + 16) >> 5);
            assert!(out.iter().all(|&o| o == want), "{dc} {qv}");
        }
    }

    #[test]
    fn ycc_grey_is_grey() {
        let y = [0u8, 17, 128, 255];
        let c = [128u8; 4];
        let mut out = [0u8; 12];
        Kernels::scalar().ycc_to_rgb_u8(&y, &c, &c, &mut out);
        for (px, &y) in out.chunks_exact(3).zip(&y) {
            assert_eq!(px, [y, y, y]);
        }
    }
}
