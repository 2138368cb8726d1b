//! NEON JPEG kernels ([`crate::jpeg`]), byte-identical to the scalar ones:
//! the same wrapping 32-bit integer operations, four lanes at a time (the
//! IDCT holds an 8×8 block as sixteen `int32x4` halves of rows). Written for
//! any Armv8.0 core (Cortex-A53/A72 and later); `vst2`/`vst3` interleave the
//! upsampled and RGB outputs.

use core::arch::aarch64::*;

use crate::jpeg::{CONST_BITS, PASS1_BITS, YCC_FIX};

/// `(x + 2^(N−1)) >> N` in each lane.
#[inline]
#[target_feature(enable = "neon")]
fn descale<const N: i32>(x: int32x4_t) -> int32x4_t {
    vshrq_n_s32::<N>(vaddq_s32(x, vdupq_n_s32(1 << (N - 1))))
}

/// `jpeg_idct_islow`'s 1-D IDCT in each of four lanes (wrapping i32).
#[inline]
#[target_feature(enable = "neon")]
fn idct_1d(i: [int32x4_t; 8]) -> [int32x4_t; 8] {
    let (a, s) = (vaddq_s32, vsubq_s32);
    let m = |v: int32x4_t, k: i32| vmulq_n_s32(v, k);
    let z1 = m(a(i[2], i[6]), 4433);
    let tmp2 = s(z1, m(i[6], 15137));
    let tmp3 = a(z1, m(i[2], 6270));
    let tmp0 = vshlq_n_s32::<{ CONST_BITS as i32 }>(a(i[0], i[4]));
    let tmp1 = vshlq_n_s32::<{ CONST_BITS as i32 }>(s(i[0], i[4]));
    let (tmp10, tmp13) = (a(tmp0, tmp3), s(tmp0, tmp3));
    let (tmp11, tmp12) = (a(tmp1, tmp2), s(tmp1, tmp2));
    let (t0, t1, t2, t3) = (i[7], i[5], i[3], i[1]);
    let z1 = a(t0, t3);
    let z2 = a(t1, t2);
    let z3 = a(t0, t2);
    let z4 = a(t1, t3);
    let z5 = m(a(z3, z4), 9633);
    let t0 = m(t0, 2446);
    let t1 = m(t1, 16819);
    let t2 = m(t2, 25172);
    let t3 = m(t3, 12299);
    let z1 = m(z1, -7373);
    let z2 = m(z2, -20995);
    let z3 = a(m(z3, -16069), z5);
    let z4 = a(m(z4, -3196), z5);
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

/// Transposes a 4×4 block of i32.
#[inline]
#[target_feature(enable = "neon")]
fn transpose4(r: [int32x4_t; 4]) -> [int32x4_t; 4] {
    let t0 = vreinterpretq_s64_s32(vtrn1q_s32(r[0], r[1]));
    let t1 = vreinterpretq_s64_s32(vtrn2q_s32(r[0], r[1]));
    let t2 = vreinterpretq_s64_s32(vtrn1q_s32(r[2], r[3]));
    let t3 = vreinterpretq_s64_s32(vtrn2q_s32(r[2], r[3]));
    [
        vreinterpretq_s32_s64(vtrn1q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn1q_s64(t1, t3)),
        vreinterpretq_s32_s64(vtrn2q_s64(t0, t2)),
        vreinterpretq_s32_s64(vtrn2q_s64(t1, t3)),
    ]
}

/// Transposes an 8×8 block held as (columns 0–3, columns 4–7) of each row.
#[inline]
#[target_feature(enable = "neon")]
fn transpose8(lo: [int32x4_t; 8], hi: [int32x4_t; 8]) -> ([int32x4_t; 8], [int32x4_t; 8]) {
    let a = transpose4([lo[0], lo[1], lo[2], lo[3]]);
    let b = transpose4([hi[0], hi[1], hi[2], hi[3]]);
    let c = transpose4([lo[4], lo[5], lo[6], lo[7]]);
    let d = transpose4([hi[4], hi[5], hi[6], hi[7]]);
    (
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]],
        [c[0], c[1], c[2], c[3], d[0], d[1], d[2], d[3]],
    )
}

/// libjpeg's `range_limit` in each lane (see the AVX2 version).
#[inline]
#[target_feature(enable = "neon")]
fn range_limit(x: int32x4_t) -> int32x4_t {
    let u = vandq_s32(vaddq_s32(x, vdupq_n_s32(128)), vdupq_n_s32(1023));
    let big = vreinterpretq_s32_u32(vcgtq_s32(u, vdupq_n_s32(639)));
    vbicq_s32(vminq_s32(u, vdupq_n_s32(255)), big)
}

/// `coef · quant` as i32, by rows: columns 0–3 of each row, then 4–7.
#[inline]
#[target_feature(enable = "neon")]
fn dequantize(coef: &[i16; 64], quant: &[i16; 64]) -> ([int32x4_t; 8], [int32x4_t; 8]) {
    let (mut lo, mut hi) = ([vdupq_n_s32(0); 8], [vdupq_n_s32(0); 8]);
    for r in 0..8 {
        // SAFETY: 8 i16 at row r of each 64-element array.
        let (c, q) = unsafe {
            (
                vld1q_s16(coef.as_ptr().add(8 * r)),
                vld1q_s16(quant.as_ptr().add(8 * r)),
            )
        };
        lo[r] = vmull_s16(vget_low_s16(c), vget_low_s16(q));
        hi[r] = vmull_high_s16(c, q);
    }
    (lo, hi)
}

/// The [`crate::Slot::IdctIslowU8`] of the NEON paths.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in; `out` holds
/// `7·stride + 8` bytes.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_idct_islow_u8(
    coef: &[i16; 64],
    quant: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    let (lo, hi) = dequantize(coef, quant);
    const P1: i32 = (CONST_BITS - PASS1_BITS) as i32;
    const P2: i32 = (CONST_BITS + PASS1_BITS + 3) as i32;
    let (lo, hi) = (
        idct_1d(lo).map(|v| descale::<P1>(v)),
        idct_1d(hi).map(|v| descale::<P1>(v)),
    );
    let (lo, hi) = transpose8(lo, hi);
    let (lo, hi) = (
        idct_1d(lo).map(|v| range_limit(descale::<P2>(v))),
        idct_1d(hi).map(|v| range_limit(descale::<P2>(v))),
    );
    let (lo, hi) = transpose8(lo, hi);
    for r in 0..8 {
        let v = vqmovun_s16(vcombine_s16(vqmovn_s32(lo[r]), vqmovn_s32(hi[r])));
        let dst = &mut out[r * stride..r * stride + 8];
        // SAFETY: `dst` is 8 writable bytes.
        unsafe { vst1_u8(dst.as_mut_ptr(), v) };
    }
}

/// 8 bytes at `p` as eight u16 lanes.
///
/// # Safety
/// `p` points at 8 readable bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load8(p: *const u8) -> uint16x8_t {
    // SAFETY: the caller's contract.
    vmovl_u8(unsafe { vld1_u8(p) })
}

/// The [`crate::Slot::UpsampleH2v1FancyU8`] of the NEON paths: eight input
/// samples at a time in u16 lanes, the row's ends by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in;
/// `out.len() == 2·row.len()`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_upsample_h2v1_fancy_u8(row: &[u8], out: &mut [u8]) {
    let n = row.len();
    let p = row.as_ptr();
    let mut x = 1;
    while x + 9 <= n {
        // SAFETY: x − 1 ≥ 0 and x + 8 < n: the loads stay in `row`; the
        // store writes out[2x..2x + 16] ⊂ out[..2n].
        unsafe {
            let c = load8(p.add(x));
            let v = vaddq_u16(c, vaddq_u16(c, c));
            let even =
                vshrn_n_u16::<2>(vaddq_u16(vaddq_u16(v, load8(p.add(x - 1))), vdupq_n_u16(1)));
            let odd =
                vshrn_n_u16::<2>(vaddq_u16(vaddq_u16(v, load8(p.add(x + 1))), vdupq_n_u16(2)));
            vst2_u8(out.as_mut_ptr().add(2 * x), uint8x8x2_t(even, odd));
        }
        x += 8;
    }
    crate::jpeg::h2v1_fancy_span(row, out, 0, 1.min(n));
    crate::jpeg::h2v1_fancy_span(row, out, x.max(1).min(n), n);
}

/// The [`crate::Slot::UpsampleH2v2FancyU8`] of the NEON paths: eight input
/// samples at a time in u16 lanes, the row's ends by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in; `far` as long
/// as `near`, `out` twice as long.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_upsample_h2v2_fancy_u8(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let (pn, pf) = (near.as_ptr(), far.as_ptr());
    let three = |v: uint16x8_t| vaddq_u16(v, vaddq_u16(v, v));
    let mut x = 1;
    while x + 9 <= n {
        // SAFETY: x − 1 ≥ 0 and x + 8 < n: the loads stay in both rows; the
        // store writes out[2x..2x + 16] ⊂ out[..2n].
        unsafe {
            let cs = |o: usize| vaddq_u16(three(load8(pn.add(o))), load8(pf.add(o)));
            let c = three(cs(x));
            let even = vshrn_n_u16::<4>(vaddq_u16(vaddq_u16(c, cs(x - 1)), vdupq_n_u16(8)));
            let odd = vshrn_n_u16::<4>(vaddq_u16(vaddq_u16(c, cs(x + 1)), vdupq_n_u16(7)));
            vst2_u8(out.as_mut_ptr().add(2 * x), uint8x8x2_t(even, odd));
        }
        x += 8;
    }
    crate::jpeg::h2v2_fancy_span(near, far, out, 0, 1.min(n));
    crate::jpeg::h2v2_fancy_span(near, far, out, x.max(1).min(n), n);
}

/// The [`crate::Slot::YccToRgbU8`] of the NEON paths: eight pixels at a
/// time in i32 lanes (the scalar formulas exactly), saturating narrows for
/// the clamp, `vst3` to interleave; the tail by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in; `cb`, `cr` as
/// long as `y`, `out` three times as long.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_ycc_to_rgb_u8(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    let n = y.len();
    let [fr, fb, fgr, fgb] = YCC_FIX;
    let half = vdupq_n_s32(1 << 15);
    let mut x = 0;
    while x + 8 <= n {
        // SAFETY: x + 8 ≤ n: 8 bytes of each input row, 24 of `out` at 3x.
        unsafe {
            let wide = |p: *const u8| vreinterpretq_s16_u16(vmovl_u8(vld1_u8(p)));
            let (yy, b, r) = (
                wide(y.as_ptr().add(x)),
                vsubq_s16(wide(cb.as_ptr().add(x)), vdupq_n_s16(128)),
                vsubq_s16(wide(cr.as_ptr().add(x)), vdupq_n_s16(128)),
            );
            // One channel for the low or high four pixels.
            let half4 = |yv: int16x4_t, bv: int16x4_t, rv: int16x4_t| {
                let (yv, bv, rv) = (vmovl_s16(yv), vmovl_s16(bv), vmovl_s16(rv));
                let rr = vaddq_s32(yv, vshrq_n_s32::<16>(vmlaq_n_s32(half, rv, fr)));
                let g = vmlsq_n_s32(vmlsq_n_s32(half, rv, fgr), bv, fgb);
                let gg = vaddq_s32(yv, vshrq_n_s32::<16>(g));
                let bb = vaddq_s32(yv, vshrq_n_s32::<16>(vmlaq_n_s32(half, bv, fb)));
                (rr, gg, bb)
            };
            let (r0, g0, b0) = half4(vget_low_s16(yy), vget_low_s16(b), vget_low_s16(r));
            let (r1, g1, b1) = half4(vget_high_s16(yy), vget_high_s16(b), vget_high_s16(r));
            let pack = |l: int32x4_t, h: int32x4_t| {
                vqmovun_s16(vcombine_s16(vqmovn_s32(l), vqmovn_s32(h)))
            };
            let rgb = uint8x8x3_t(pack(r0, r1), pack(g0, g1), pack(b0, b1));
            vst3_u8(out.as_mut_ptr().add(3 * x), rgb);
        }
        x += 8;
    }
    crate::jpeg::ycc_to_rgb_u8(&y[x..], &cb[x..], &cr[x..], &mut out[3 * x..]);
}

/// `jpeg_idct_4x4`'s 1-D step in each of four lanes (wrapping i32):
/// inputs 0, 1, 2, 3, 5, 6, 7, outputs 0..4 before the descale.
#[inline]
#[target_feature(enable = "neon")]
fn idct4_1d(i: [int32x4_t; 8]) -> [int32x4_t; 4] {
    use crate::jpeg::{
        FIX_0_211164243 as F0211, FIX_0_509795579 as F0509, FIX_0_601344887 as F0601,
        FIX_1_061594337 as F1061, FIX_1_451774981 as F1451, FIX_2_172734803 as F2172,
    };
    let (a, s) = (vaddq_s32, vsubq_s32);
    let m = |v: int32x4_t, k: i32| vmulq_n_s32(v, k);
    let tmp0 = vshlq_n_s32::<14>(i[0]);
    let tmp2 = a(m(i[2], 15137), m(i[6], -6270));
    let (tmp10, tmp12) = (a(tmp0, tmp2), s(tmp0, tmp2));
    let (z1, z2, z3, z4) = (i[7], i[5], i[3], i[1]);
    let tmp0 = a(
        a(m(z1, -F0211), m(z2, F1451)),
        a(m(z3, -F2172), m(z4, F1061)),
    );
    let tmp2 = a(
        a(m(z1, -F0509), m(z2, -F0601)),
        a(m(z3, 7373), m(z4, 20995)),
    );
    [
        a(tmp10, tmp2),
        a(tmp12, tmp0),
        s(tmp12, tmp0),
        s(tmp10, tmp2),
    ]
}

/// The [`crate::Slot::Idct4x4U8`] of the NEON paths: the first pass on the
/// two 4-column halves of the block, the second on the four rows as lanes
/// after a transpose, a transpose back and saturating narrows.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in; `out` holds
/// `3·stride + 4` bytes.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn neon_idct_4x4_u8(
    coef: &[i16; 64],
    quant: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    let (lo, hi) = dequantize(coef, quant);
    let (wl, wh) = (
        idct4_1d(lo).map(|v| descale::<12>(v)),
        idct4_1d(hi).map(|v| descale::<12>(v)),
    );
    let (cl, ch) = (transpose4(wl), transpose4(wh));
    let cols = [cl[0], cl[1], cl[2], cl[3], ch[0], ch[1], ch[2], ch[3]];
    let r = transpose4(idct4_1d(cols).map(|v| range_limit(descale::<19>(v))));
    let narrow = |a: int32x4_t, b: int32x4_t| vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    let v = vcombine_u8(
        vqmovun_s16(narrow(r[0], r[1])),
        vqmovun_s16(narrow(r[2], r[3])),
    );
    let mut bytes = [0u8; 16];
    // SAFETY: `bytes` holds 16 writable bytes.
    unsafe { vst1q_u8(bytes.as_mut_ptr(), v) };
    for (row, src) in bytes.chunks_exact(4).enumerate() {
        out[row * stride..row * stride + 4].copy_from_slice(src);
    }
}
