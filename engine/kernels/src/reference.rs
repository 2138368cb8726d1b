//! The scalar reference kernels: the specification of every operation.
//!
//! Written as plain loops. Each output element is accumulated in f32, starting
//! from zero, adding `a·b` products (rounded multiply, then rounded add; no
//! fused multiply-add) in increasing reduction index; then the bias, then (for
//! GEMM with `accumulate`) the old value, then the activation ([`Act::apply`]).
//! Loops are ordered for locality (an output row or plane is the accumulator),
//! which does not change that per-element order. This is also the portable
//! path (`Kernels::scalar()`, and armv7 until stable Rust has its NEON).

use crate::Act;
use crate::conv::{ConvF32, ConvGeom};
use crate::gemm::Gemm;

/// Columns of `C` accumulated at once on the stack.
const CHUNK: usize = 64;

/// The reference sgemm, the scalar [`crate::Slot::Sgemm`] (arguments
/// checked by the caller; no scratch).
pub(crate) fn sgemm(gm: &Gemm<'_>, c: &mut [f32], _scratch: &mut [f32]) {
    let Gemm {
        m,
        n,
        k,
        a,
        b,
        rsc,
        epi,
    } = *gm;
    let mut acc = [0.0f32; CHUNK];
    for i in 0..m {
        for j0 in (0..n).step_by(CHUNK) {
            let acc = &mut acc[..CHUNK.min(n - j0)];
            acc.fill(0.0);
            for p in 0..k {
                let aip = a.at(i, p);
                if b.cs == 1 {
                    let row = &b.data[p * b.rs + j0..][..acc.len()];
                    for (s, &bv) in acc.iter_mut().zip(row) {
                        *s += aip * bv;
                    }
                } else {
                    for (jj, s) in acc.iter_mut().enumerate() {
                        *s += aip * b.at(p, j0 + jj);
                    }
                }
            }
            let out = &mut c[i * rsc + j0..][..acc.len()];
            for (o, &s) in out.iter_mut().zip(acc.iter()) {
                let mut v = s;
                if let Some(bias) = epi.bias {
                    v += bias[i];
                }
                if epi.accumulate {
                    v += *o;
                }
                *o = epi.act.apply(v);
            }
        }
    }
}

/// Output columns `ox` in `ox0..ox1` whose input column `ox*stride + kx - pad`
/// lies in `0..w`, as a sub-range of `ox0..ox1` (empty when none).
pub(crate) fn valid_cols(
    w: usize,
    stride: usize,
    pad: usize,
    kx: usize,
    ox0: usize,
    ox1: usize,
) -> (usize, usize) {
    // ox*stride >= pad - kx  and  ox*stride <= w - 1 + pad - kx.
    let lo = pad.saturating_sub(kx).div_ceil(stride);
    let hi = match (w + pad).checked_sub(kx + 1) {
        Some(top) => top / stride + 1,
        None => 0,
    };
    let (lo, hi) = (lo.max(ox0), hi.min(ox1));
    if lo < hi { (lo, hi) } else { (ox0, ox0) }
}

/// Input row of output row `oy` and kernel row `ky`, if it is not padding.
#[inline]
pub(crate) fn input_row(
    h: usize,
    stride: usize,
    pad: usize,
    oy: usize,
    ky: usize,
) -> Option<usize> {
    (oy * stride + ky).checked_sub(pad).filter(|&iy| iy < h)
}

/// The scalar [`crate::Slot::ConvF32`]: the reference convolution (arguments
/// checked by the caller; no scratch).
pub(crate) fn conv2d_f32_slot(a: &ConvF32<'_>, out: &mut [f32], _scratch: &mut [f32]) {
    conv2d_f32(&a.g, a.input, a.weight, a.bias, a.act, out);
}

/// The scalar [`crate::Slot::DwConvF32`]: the reference convolution.
pub(crate) fn dwconv_f32_slot(a: &ConvF32<'_>, out: &mut [f32]) {
    conv2d_f32(&a.g, a.input, a.weight, a.bias, a.act, out);
}

/// The reference convolution (dense or depthwise; arguments checked by the caller).
pub(crate) fn conv2d_f32(
    g: &ConvGeom,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    act: Act,
    out: &mut [f32],
) {
    let (h, w, k, s, pad) = (g.h, g.w, g.k, g.stride, g.pad());
    let (oh, ow) = (g.out_h(), g.out_w());
    let cpg = g.cin / g.groups;
    let opg = g.cout / g.groups;
    for co in 0..g.cout {
        let plane = &mut out[co * oh * ow..(co + 1) * oh * ow];
        plane.fill(0.0);
        for cig in 0..cpg {
            let ci = (co / opg) * cpg + cig;
            let inp = &input[ci * h * w..(ci + 1) * h * w];
            let taps = &weight[(co * cpg + cig) * k * k..][..k * k];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = taps[ky * k + kx];
                    let (lo, hi) = valid_cols(w, s, pad, kx, 0, ow);
                    if lo == hi {
                        continue;
                    }
                    for oy in 0..oh {
                        let Some(iy) = input_row(h, s, pad, oy, ky) else {
                            continue;
                        };
                        let orow = &mut plane[oy * ow + lo..oy * ow + hi];
                        let first = iy * w + lo * s + kx - pad;
                        if s == 1 {
                            for (o, &x) in orow.iter_mut().zip(&inp[first..first + (hi - lo)]) {
                                *o += wv * x;
                            }
                        } else {
                            for (t, o) in orow.iter_mut().enumerate() {
                                *o += wv * inp[first + t * s];
                            }
                        }
                    }
                }
            }
        }
        for v in plane {
            *v = act.apply(*v + bias[co]);
        }
    }
}

/// One depthwise output pixel (the sum only), by the reference order; the
/// border pixels of the SIMD depthwise kernels.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn dw_pixel(
    plane: &[f32],
    taps: &[f32],
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    oy: usize,
    ox: usize,
) -> f32 {
    let pad = (k - 1) / 2;
    let mut acc = 0.0f32;
    for ky in 0..k {
        let Some(iy) = input_row(h, s, pad, oy, ky) else {
            continue;
        };
        for kx in 0..k {
            if let Some(ix) = (ox * s + kx).checked_sub(pad).filter(|&ix| ix < w) {
                acc += taps[ky * k + kx] * plane[iy * w + ix];
            }
        }
    }
    acc
}
