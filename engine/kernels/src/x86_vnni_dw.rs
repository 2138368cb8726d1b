//! The AVX-512 VNNI depthwise int8 convolution for stride 1: the output
//! plane as one flat run of pixels, 32 at a time, whatever the row width.
//!
//! With stride 1 and "same" padding, output pixel `p = y·w + x` reads input
//! `p + dy·w + dx` under tap `(dy, dx)`: 32 consecutive output pixels read
//! 32 consecutive input bytes per tap, one masked load (lanes whose tap falls
//! on the padding, or that lie past the plane, read `zp_in` and touch no
//! memory). The masks depend on the pixels only, so they are made once per
//! run of 32 pixels and used for every channel. The small planes of the
//! backbone (20 × 20, 10 × 10) fill every lane this way, where blocks of a
//! row left most of them idle.
//!
//! # Arithmetic
//! Taps go in pairs: the two taps' bytes widened to i16 and interleaved
//! (`vpunpck{l,h}wd`), then `vpdpwssd` adds `x₀·w₀ + x₁·w₁` to each i32
//! lane — exact, as every step of the reference. The interleave splits each
//! 128-bit lane's 8 pixels into 4 + 4; `vpackssdw` of the two requantised
//! halves puts them back in order. Byte-identical to
//! [`crate::conv_i8::conv_s8_depthwise`].
//!
//! # Stride 2
//! The pixels of one output row read every other byte of an input row: one
//! masked 64-byte load per tap (the even bytes enabled), whose i16 lanes'
//! low bytes are the taps (sign-extended by shifts). Runs are output rows
//! (up to 32 pixels per run), the masks per kernel column are the same for
//! every row, and a tap whose input row is padding reads `zp_in` in every
//! lane.

use core::arch::x86_64::*;

use crate::conv_i8::ConvI8;
use crate::x86_vnni::requant16_rq;

/// Largest kernel side (the model's are 3 and 5).
const MAX_K: usize = 7;
/// Output pixels per run.
const RUN: usize = 32;

/// Whether [`dwconv_s8_flat`] (stride 1) or [`dwconv_s8_rows_s2`] (stride
/// 2) handles `a`: depthwise, an odd kernel side up to 7 (the caller also
/// checks the vector epilogue covers the requantisation).
pub(crate) fn handles(a: &ConvI8<'_>) -> bool {
    let g = &a.g;
    g.groups == g.cin
        && g.cin == g.cout
        && (g.stride == 1 || g.stride == 2)
        && g.k % 2 == 1
        && g.k <= MAX_K
}

/// Accumulates `bias + Σ_t w[t]·x_t` for 32 pixels whose taps `load(t)`
/// gives as 32 i16 lanes, and requantises them to 32 bytes in pixel order
/// (module docs).
#[inline(always)]
fn dot_requant(
    taps: usize,
    wt: &[i8],
    bias: i32,
    mul: crate::quant::QMul,
    rq: &crate::conv_i8::Requant<'_>,
    load: impl Fn(usize) -> __m512i,
) -> __m256i {
    // SAFETY: inlined only into this module's functions, which enable
    // AVX-512 F, BW, VL and VNNI.
    unsafe {
        let mut lo = _mm512_set1_epi32(bias);
        let mut hi = lo;
        for t in (0..taps).step_by(2) {
            let x0 = load(t);
            let (x1, w1) = if t + 1 < taps {
                (load(t + 1), wt[t + 1])
            } else {
                (x0, 0)
            };
            let wp = _mm512_set1_epi32((wt[t] as i16 as u16 as i32) | ((w1 as i32) << 16));
            lo = _mm512_dpwssd_epi32(lo, _mm512_unpacklo_epi16(x0, x1), wp);
            hi = _mm512_dpwssd_epi32(hi, _mm512_unpackhi_epi16(x0, x1), wp);
        }
        let (m, e) = (
            _mm512_set1_epi32(mul.m),
            _mm512_set1_epi32(mul.shift.saturating_neg().clamp(0, 31)),
        );
        let q = _mm512_packs_epi32(requant16_rq(lo, m, e, rq), requant16_rq(hi, m, e, rq));
        _mm512_cvtepi16_epi8(q)
    }
}

/// Stores the first `o.len()` bytes of `bytes` (the `keep` lanes), through
/// the table if any.
#[inline(always)]
fn store(bytes: __m256i, keep: u32, lut: Option<&[i8; 256]>, o: &mut [i8]) {
    // SAFETY: inlined only into this module's functions (AVX-512 BW and VL
    // run); `keep` enables the `o.len()` bytes of `o` only.
    unsafe { _mm256_mask_storeu_epi8(o.as_mut_ptr(), keep, bytes) };
    if let Some(lut) = lut {
        for o in o.iter_mut() {
            *o = lut[(*o as i32 + 128) as usize];
        }
    }
}

/// The depthwise convolution of [`handles`] geometries (module docs).
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI run; `a` passed the slot's checks and
/// [`handles`]; [`crate::x86_vnni::requant16_covers`] holds for `a.rq`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(crate) unsafe fn dwconv_s8_flat(a: &ConvI8<'_>, out: &mut [i8]) {
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (h, w, k) = (g.h, g.w, g.k);
    let pad = (k / 2) as isize;
    let taps = k * k;
    let n = h * w;
    let mut off = [0isize; MAX_K * MAX_K];
    let mut dyx = [(0isize, 0isize); MAX_K * MAX_K];
    for t in 0..taps {
        let (dy, dx) = ((t / k) as isize - pad, (t % k) as isize - pad);
        dyx[t] = (dy, dx);
        off[t] = dy * w as isize + dx;
    }
    let zp8 = _mm256_set1_epi8(zp_in as i8);
    let mut masks = [0u32; MAX_K * MAX_K];
    for p0 in (0..n).step_by(RUN) {
        let len = RUN.min(n - p0);
        // Which lanes of each tap read the plane (the rest read zp_in).
        masks[..taps].fill(0);
        let (mut y, mut x) = (p0 / w, p0 % w);
        for j in 0..len {
            for t in 0..taps {
                let (iy, ix) = (y as isize + dyx[t].0, x as isize + dyx[t].1);
                if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                    masks[t] |= 1 << j;
                }
            }
            x += 1;
            if x == w {
                (x, y) = (0, y + 1);
            }
        }
        let keep = if len == RUN {
            u32::MAX
        } else {
            (1u32 << len) - 1
        };
        for c in 0..g.cout {
            let plane = input[c * n..][..n].as_ptr();
            // Tap t of lane 0: may lie outside the plane, only enabled lanes
            // are read (each inside it, by `masks`).
            let load = |t: usize| {
                let p = plane.wrapping_offset(p0 as isize + off[t]);
                // SAFETY: the masked load reads only the lanes of `masks[t]`,
                // whose input pixels lie in the plane (AVX-512 BW and VL run).
                let b = unsafe { _mm256_mask_loadu_epi8(zp8, masks[t], p) };
                _mm512_cvtepi8_epi16(b)
            };
            let wt = &weight[c * kpad..][..taps];
            let bytes = dot_requant(taps, wt, bias[c], rq.channel_mul(c), rq, load);
            store(bytes, keep, rq.lut, &mut out[c * n + p0..][..len]);
        }
    }
}

/// The stride-2 depthwise convolution of [`handles`] geometries (module
/// docs).
///
/// # Safety
/// As [`dwconv_s8_flat`], with stride 2.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
pub(crate) unsafe fn dwconv_s8_rows_s2(a: &ConvI8<'_>, out: &mut [i8]) {
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (h, w, k) = (g.h, g.w, g.k);
    let (oh, ow) = (g.out_h(), g.out_w());
    let pad = k / 2;
    let taps = k * k;
    let zp = _mm512_set1_epi8(zp_in as i8);
    for x0 in (0..ow).step_by(RUN) {
        let len = RUN.min(ow - x0);
        let keep = if len == RUN {
            u32::MAX
        } else {
            (1u32 << len) - 1
        };
        // Per kernel column: the even bytes (lane j at byte 2j) whose input
        // column 2(x0 + j) + kx − pad lies in the row.
        let mut cols = [0u64; MAX_K];
        for (kx, m) in cols.iter_mut().enumerate().take(k) {
            for j in 0..len {
                let ix = 2 * (x0 + j) + kx;
                if (pad..w + pad).contains(&ix) {
                    *m |= 1 << (2 * j);
                }
            }
        }
        for oy in 0..oh {
            // Per kernel row: the input row, if inside the plane.
            let mut rows = [None; MAX_K];
            for (ky, r) in rows.iter_mut().enumerate().take(k) {
                *r = (2 * oy + ky).checked_sub(pad).filter(|&iy| iy < h);
            }
            for c in 0..g.cout {
                let plane = input[c * h * w..][..h * w].as_ptr();
                let load = |t: usize| {
                    let (ky, kx) = (t / k, t % k);
                    let (mask, iy) = match rows[ky] {
                        Some(iy) => (cols[kx], iy),
                        None => (0, 0),
                    };
                    let p = plane.wrapping_offset((iy * w + 2 * x0 + kx) as isize - pad as isize);
                    // SAFETY: the masked load reads only the enabled bytes,
                    // each an input pixel of row iy inside the plane (AVX-512
                    // BW runs).
                    let v = unsafe { _mm512_mask_loadu_epi8(zp, mask, p) };
                    _mm512_srai_epi16::<8>(_mm512_slli_epi16::<8>(v))
                };
                let wt = &weight[c * kpad..][..taps];
                let bytes = dot_requant(taps, wt, bias[c], rq.channel_mul(c), rq, load);
                store(
                    bytes,
                    keep,
                    rq.lut,
                    &mut out[c * oh * ow + oy * ow + x0..][..len],
                );
            }
        }
    }
}
