//! int8 element-wise kernels: TFLite-style quantized weighted sums (residual
//! adds, BiFPN-style fusions), nearest ×2 upsampling, and the image input
//! conversion. Integer-only, hence bit-exact on every architecture.
//!
//! # Weighted sum
//! For inputs `i < n` (1 to [`MAX_SUM_INPUTS`]), with
//! `real_i = s_i·(q_i − zp_i)` and `real_out = Σ_i coef_i·real_i`,
//!
//! `out = clamp(zp_out + requant(Σ_i requant((q_i − zp_i)·2^20, mul_i), out_mul), lo, hi)`
//!
//! ([`requant`] is the rounding rule of [`crate::quant`]). The multipliers are
//! normalised by `S = 2·max_j(coef_j·s_j)`:
//!
//! `mul_i = coef_i·s_i / S` (≤ ½), `out_mul = S / (2^20·s_out)`,
//!
//! so the inner terms keep about 20 fractional bits and their sum is at most
//! `n·255·2^19 < 2^31` for `n ≤ 4`: it cannot overflow. [`weighted_sum_params`]
//! computes them (host-side).

use crate::Kernels;
use crate::quant::{QMul, quantize_multiplier, requant};
use crate::table::Dims;

/// Left shift applied to `q − zp` before the input multipliers (TFLite's
/// `left_shift` of quantized add).
pub const SUM_LEFT_SHIFT: u32 = 20;

/// Most inputs of one [`weighted_sum_i8`] (the overflow bound of the module docs).
pub const MAX_SUM_INPUTS: usize = 4;

/// Quantisation of one input of a weighted sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SumInput {
    /// The input's zero point, in `[−128, 127]`.
    pub zp: i32,
    /// `coef_i·s_i / (2·max_j coef_j·s_j)`.
    pub mul: QMul,
}

/// The parameters of a weighted sum (host-side, no allocation): fills
/// `params_out[i] = SumInput { zp: zps[i], mul: quantize_multiplier(coef_i·s_i / S) }`
/// and returns `out_mul = quantize_multiplier(S / (2^20·out_scale))`, with
/// `S = 2·max_j(coef_j·s_j)`.
///
/// Coefficients and scales must be finite and non-negative (a zero
/// coefficient gives a zero multiplier; all zero give all-zero multipliers, so
/// the sum is `zp_out`). Panics when the slices are not all of the same
/// length `n ∈ 1..=4`, on a negative or non-finite coefficient or scale, a
/// non-positive `out_scale`, or a zero point outside `[−128, 127]`.
pub fn weighted_sum_params(
    coefs: &[f64],
    in_scales: &[f64],
    zps: &[i32],
    out_scale: f64,
    params_out: &mut [SumInput],
) -> QMul {
    let n = coefs.len();
    assert!(
        (1..=MAX_SUM_INPUTS).contains(&n)
            && in_scales.len() == n
            && zps.len() == n
            && params_out.len() == n,
        "weighted_sum_params: need 1 to {MAX_SUM_INPUTS} inputs, equal lengths"
    );
    assert!(
        out_scale > 0.0 && out_scale.is_finite(),
        "weighted_sum_params: out_scale {out_scale}"
    );
    let mut top = 0.0f64;
    for (&c, &s) in coefs.iter().zip(in_scales) {
        assert!(
            c >= 0.0 && s >= 0.0 && c.is_finite() && s.is_finite(),
            "weighted_sum_params: coefficient {c} or scale {s} is negative or not finite"
        );
        top = top.max(c * s);
    }
    for &zp in zps {
        assert!(
            (-128..=127).contains(&zp),
            "weighted_sum_params: zero point {zp}"
        );
    }
    if top == 0.0 {
        params_out.iter_mut().zip(zps).for_each(|(p, &zp)| {
            *p = SumInput {
                zp,
                mul: QMul::ZERO,
            }
        });
        return QMul::ZERO;
    }
    let norm = 2.0 * top;
    for ((p, (&c, &s)), &zp) in params_out
        .iter_mut()
        .zip(coefs.iter().zip(in_scales))
        .zip(zps)
    {
        *p = SumInput {
            zp,
            mul: quantize_multiplier(c * s / norm),
        };
    }
    quantize_multiplier(norm / ((1u64 << SUM_LEFT_SHIFT) as f64 * out_scale))
}

/// The quantized weighted sum of the module docs, element by element:
/// `out[j] = clamp(zp_out + requant(Σ_i requant((inputs[i][j] − zp_i)·2^20, mul_i), out_mul), lo, hi)`,
/// the inner terms summed in input order.
///
/// Panics unless `1 ≤ inputs.len() ≤ 4`, `params.len() == inputs.len()`,
/// every input has `out.len()` elements, every `zp_i ∈ [−128, 127]` and
/// `lo ≤ hi`.
pub fn weighted_sum_i8(
    inputs: &[&[i8]],
    params: &[SumInput],
    out_mul: QMul,
    zp_out: i32,
    lo: i8,
    hi: i8,
    out: &mut [i8],
) {
    check_sum("weighted_sum_i8", inputs.len(), params, lo, hi);
    assert!(
        inputs.iter().all(|x| x.len() == out.len()),
        "weighted_sum_i8: length mismatch"
    );
    let (lo, hi) = (lo as i32, hi as i32);
    for (j, o) in out.iter_mut().enumerate() {
        *o = sum_one(inputs.iter().map(|x| x[j]), params, out_mul, zp_out, lo, hi);
    }
}

/// The checks shared by the weighted sums: `n ∈ 1..=4` inputs and as many
/// params, int8 zero points, `lo ≤ hi`.
fn check_sum(what: &str, n: usize, params: &[SumInput], lo: i8, hi: i8) {
    assert!(
        (1..=MAX_SUM_INPUTS).contains(&n) && params.len() == n,
        "{what}: need 1 to {MAX_SUM_INPUTS} inputs and as many params"
    );
    assert!(
        params.iter().all(|p| (-128..=127).contains(&p.zp)),
        "{what}: zero point outside [-128, 127]"
    );
    assert!(lo <= hi, "{what}: lo {lo} > hi {hi}");
}

/// One output of the weighted sum from its inputs' values, in input order.
#[inline]
pub(crate) fn sum_one(
    qs: impl Iterator<Item = i8>,
    params: &[SumInput],
    out_mul: QMul,
    zp_out: i32,
    lo: i32,
    hi: i32,
) -> i8 {
    let mut acc = 0i32;
    for (q, p) in qs.zip(params) {
        // |q − zp| ≤ 255, so the shift stays below 2^28.
        let shifted = (q as i32 - p.zp) << SUM_LEFT_SHIFT;
        acc = acc.wrapping_add(requant(shifted, p.mul));
    }
    zp_out.saturating_add(requant(acc, out_mul)).clamp(lo, hi) as i8
}

/// The operands of an int8 weighted sum over `[c][h][w]` maps (the argument
/// of the [`Slot::WeightedSumI8`](crate::Slot::WeightedSumI8) slot): inputs
/// whose bit is set in `upsampled` are half-size maps `[c][h/2][w/2]` read
/// through nearest ×2 upsampling (`x[ch][i/2][j/2]`): the BiFPN's upsample and
/// weighted sum fused, byte-identical to [`upsample_nearest2x_i8`] followed by
/// [`weighted_sum_i8`], without the upsampled map.
#[derive(Clone, Copy, Debug)]
pub struct SumI8<'a> {
    /// 1 to [`MAX_SUM_INPUTS`] inputs.
    pub inputs: &'a [&'a [i8]],
    /// Bit `i` set: input `i` is read ×2-upsampled.
    pub upsampled: u32,
    /// `(c, h, w)` of the output.
    pub dims: (usize, usize, usize),
    /// One per input.
    pub params: &'a [SumInput],
    /// The output multiplier.
    pub out_mul: QMul,
    /// The output zero point.
    pub zp_out: i32,
    /// Lower clamp.
    pub lo: i8,
    /// Upper clamp (`lo ≤ hi`).
    pub hi: i8,
}

impl<'a> SumI8<'a> {
    /// The input rows output row `r` (channel `r / h`, row `r % h`) reads,
    /// in input order: `w` values, or `w / 2` of an upsampled input.
    #[inline(always)]
    pub(crate) fn input_rows<'r>(
        &self,
        r: usize,
        rows: &'r mut [&'a [i8]; MAX_SUM_INPUTS],
    ) -> &'r [&'a [i8]] {
        let (_, h, w) = self.dims;
        let (ch, y) = (r / h, r % h);
        for (i, (d, x)) in rows.iter_mut().zip(self.inputs).enumerate() {
            *d = if self.upsampled >> i & 1 == 1 {
                &x[(ch * (h / 2) + y / 2) * (w / 2)..][..w / 2]
            } else {
                &x[r * w..][..w]
            };
        }
        &rows[..self.inputs.len()]
    }

    /// Panics unless the operands fit together (see [`Kernels::weighted_sum_i8`]).
    fn check(&self, out: &[i8]) {
        let n = self.inputs.len();
        let (c, h, w) = self.dims;
        check_sum("weighted_sum_i8", n, self.params, self.lo, self.hi);
        let up = self.upsampled;
        assert!(
            up >> n == 0 && (up == 0 || (h % 2 == 0 && w % 2 == 0)),
            "weighted_sum_i8: bad upsampling mask {up:#b} for {n} inputs of {h}x{w}"
        );
        let len = c * h * w;
        assert!(
            out.len() == len
                && self
                    .inputs
                    .iter()
                    .enumerate()
                    .all(|(i, x)| x.len() == if up >> i & 1 == 1 { len / 4 } else { len }),
            "weighted_sum_i8: length mismatch"
        );
    }
}

impl Kernels {
    /// The quantized weighted sum of the module docs over maps, some read
    /// ×2-upsampled ([`SumI8`]). Panics unless `1 ≤ inputs.len() ≤ 4`,
    /// `params.len() == inputs.len()`, every `zp_i ∈ [−128, 127]`, `lo ≤ hi`,
    /// `upsampled` has no bit at or above `inputs.len()`, `h` and `w` are even
    /// when it has one, each input holds `c·h·w` (or `c·h·w/4` when
    /// upsampled) values and `out` holds `c·h·w`.
    pub fn weighted_sum_i8(&self, a: &SumI8<'_>, out: &mut [i8]) {
        a.check(out);
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.weighted_sum_i8)(a, out) }
    }

    /// Nearest ×2 upsampling of an int8 `[c][h][w]` map. Panics unless
    /// `input.len() == c·h·w` and `out.len() == 4·c·h·w`.
    pub fn upsample2x_i8(&self, input: &[i8], dims: Dims, out: &mut [i8]) {
        check_upsample(input.len(), dims, out.len());
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.upsample2x_i8)(input, dims, out) }
    }

    /// The u8 image as int8 with scale 1/255 and zero point −128:
    /// `dst[i] = src[i] − 128`. Panics if the lengths differ.
    pub fn u8_to_i8(&self, src: &[u8], dst: &mut [i8]) {
        assert_eq!(src.len(), dst.len(), "u8_to_i8: length mismatch");
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.u8_to_i8)(src, dst) }
    }
}

/// Panics unless `input_len == c·h·w` and `out_len == 4·c·h·w`.
pub(crate) fn check_upsample(input_len: usize, (c, h, w): Dims, out_len: usize) {
    let n = c.checked_mul(h).and_then(|x| x.checked_mul(w));
    assert!(
        n == Some(input_len) && n.and_then(|n| n.checked_mul(4)) == Some(out_len),
        "upsample2x: length mismatch"
    );
}

/// The scalar [`crate::Slot::WeightedSumI8`] (operands checked by the caller).
pub(crate) fn weighted_sum_i8_slot(a: &SumI8<'_>, out: &mut [i8]) {
    if a.upsampled == 0 {
        weighted_sum_i8(a.inputs, a.params, a.out_mul, a.zp_out, a.lo, a.hi, out);
        return;
    }
    let (_, _, w) = a.dims;
    let up = |i: usize| a.upsampled >> i & 1 == 1;
    let (lo, hi) = (a.lo as i32, a.hi as i32);
    let mut rows: [&[i8]; MAX_SUM_INPUTS] = [&[]; MAX_SUM_INPUTS];
    for (r, orow) in out.chunks_exact_mut(w).enumerate() {
        let rows = a.input_rows(r, &mut rows);
        for (j, o) in orow.iter_mut().enumerate() {
            let qs = rows
                .iter()
                .enumerate()
                .map(|(i, row)| if up(i) { row[j / 2] } else { row[j] });
            *o = sum_one(qs, a.params, a.out_mul, a.zp_out, lo, hi);
        }
    }
}

/// The scalar [`crate::Slot::Upsample2xI8`].
pub(crate) fn upsample2x_i8_slot(input: &[i8], (c, h, w): Dims, out: &mut [i8]) {
    upsample_nearest2x_copy(input, c, h, w, out);
}

/// Nearest ×2 upsampling of a `[c][h][w]` map of any `Copy` element:
/// `out[ch][i][j] = input[ch][i/2][j/2]`. Panics unless
/// `input.len() == c·h·w` and `out.len() == 4·c·h·w`.
pub fn upsample_nearest2x_copy<T: Copy>(input: &[T], c: usize, h: usize, w: usize, out: &mut [T]) {
    assert!(
        input.len() == c * h * w && out.len() == 4 * c * h * w,
        "upsample_nearest2x: length mismatch"
    );
    if w == 0 || h == 0 {
        return;
    }
    let ow = 2 * w;
    for (plane_in, plane_out) in input
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(4 * h * w))
    {
        for (row_in, rows_out) in plane_in
            .chunks_exact(w)
            .zip(plane_out.chunks_exact_mut(2 * ow))
        {
            let (r0, r1) = rows_out.split_at_mut(ow);
            for (pair, &v) in r0.chunks_exact_mut(2).zip(row_in) {
                pair[0] = v;
                pair[1] = v;
            }
            r1.copy_from_slice(r0);
        }
    }
}

/// Nearest ×2 upsampling of an int8 `[c][h][w]` map (a byte copy; the
/// quantisation is unchanged). See [`upsample_nearest2x_copy`].
pub fn upsample_nearest2x_i8(input: &[i8], c: usize, h: usize, w: usize, out: &mut [i8]) {
    upsample_nearest2x_copy(input, c, h, w, out);
}

/// An 8-bit image to int8 with scale 1/255 and zero point −128:
/// `dst[i] = src[i] − 128`, i.e. `real = (q + 128)/255 = v/255`. Panics if
/// the lengths differ.
pub fn u8_to_i8_image(src: &[u8], dst: &mut [i8]) {
    assert_eq!(src.len(), dst.len(), "u8_to_i8_image: length mismatch");
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = (v ^ 0x80) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The written-out rule in i128 (the reference of `weighted_sum_i8`).
    fn sum_ref(qs: &[i8], params: &[SumInput], out_mul: QMul, zp_out: i32, lo: i8, hi: i8) -> i8 {
        let rq = |x: i128, m: QMul| -> i128 {
            // Positive shifts do not occur for normalised inputs (mul ≤ ½) but
            // may for out_mul; the written-out gemmlowp rule.
            let s = m.shift.clamp(-31, 31);
            let x = (x << s.max(0)).clamp(i32::MIN as i128, i32::MAX as i128);
            let hi32 = (x * m.m as i128 + (1 << 30)).div_euclid(1 << 31);
            let e = (-s).max(0) as u32;
            let d = 1i128 << e;
            let mag = (hi32.abs() + d / 2) / d;
            if hi32 < 0 { -mag } else { mag }
        };
        let mut acc = 0i128;
        for (&q, p) in qs.iter().zip(params) {
            acc += rq(((q as i32 - p.zp) as i128) << 20, p.mul);
        }
        (zp_out as i128 + rq(acc, out_mul)).clamp(lo as i128, hi as i128) as i8
    }

    /// A xorshift64 generator.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    #[test]
    fn weighted_sum_matches_rule_and_reals() {
        let mut next = xorshift(0x1234_5678_9abc_def0u64);
        for case in 0..200 {
            let n = 1 + case % 4;
            let coefs: Vec<f64> = (0..n).map(|_| (next() % 1000) as f64 / 400.0).collect();
            let scales: Vec<f64> = (0..n)
                .map(|_| 0.001 + (next() % 1000) as f64 / 20000.0)
                .collect();
            let zps: Vec<i32> = (0..n)
                .map(|i| match (case + i) % 5 {
                    0 => -128,
                    1 => 127,
                    _ => (next() % 256) as i32 - 128,
                })
                .collect();
            let out_scale = 0.002 + (next() % 1000) as f64 / 10000.0;
            let zp_out = (next() % 256) as i32 - 128;
            let mut params = vec![SumInput::default(); n];
            let out_mul = weighted_sum_params(&coefs, &scales, &zps, out_scale, &mut params);
            let len = 1 + (next() % 100) as usize;
            let data: Vec<Vec<i8>> = (0..n)
                .map(|_| (0..len).map(|_| next() as i8).collect())
                .collect();
            let refs: Vec<&[i8]> = data.iter().map(|d| d.as_slice()).collect();
            let (lo, hi) = if case % 3 == 0 {
                (-128, 127)
            } else {
                (-20, 90)
            };
            let mut out = vec![0i8; len];
            weighted_sum_i8(&refs, &params, out_mul, zp_out, lo, hi, &mut out);
            for j in 0..len {
                let qs: Vec<i8> = data.iter().map(|d| d[j]).collect();
                assert_eq!(out[j], sum_ref(&qs, &params, out_mul, zp_out, lo, hi));
                // Close to the real-valued sum: within 1 LSB (+ rounding of the
                // 20-bit fractions and the multipliers).
                let real: f64 = (0..n)
                    .map(|i| coefs[i] * scales[i] * (qs[i] as i32 - zps[i]) as f64)
                    .sum();
                let want = (real / out_scale + zp_out as f64).clamp(lo as f64, hi as f64);
                assert!(
                    (out[j] as f64 - want).abs() <= 0.5 + 1e-3 + 1e-6 * want.abs(),
                    "case {case} j {j}: {} vs {want}",
                    out[j]
                );
            }
        }
    }

    #[test]
    fn fused_upsampling_equals_upsample_then_sum() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        for case in 0..60 {
            let n = 1 + case % 4;
            let (c, h, w) = (
                1 + (next() % 3) as usize,
                2 * (1 + (next() % 5) as usize),
                2 * (1 + (next() % 7) as usize),
            );
            let mask = (next() as u32) & ((1 << n) - 1);
            let coefs: Vec<f64> = (0..n).map(|_| (next() % 1000) as f64 / 400.0).collect();
            let scales: Vec<f64> = (0..n)
                .map(|_| 0.01 + (next() % 100) as f64 / 2000.0)
                .collect();
            let zps: Vec<i32> = (0..n).map(|_| (next() % 256) as i32 - 128).collect();
            let mut params = vec![SumInput::default(); n];
            let out_mul = weighted_sum_params(&coefs, &scales, &zps, 0.05, &mut params);
            let len = c * h * w;
            let data: Vec<Vec<i8>> = (0..n)
                .map(|i| {
                    let m = if mask >> i & 1 == 1 { len / 4 } else { len };
                    (0..m).map(|_| next() as i8).collect()
                })
                .collect();
            // The unfused graph: upsample the masked inputs, then sum.
            let full: Vec<Vec<i8>> = data
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    if mask >> i & 1 == 1 {
                        let mut u = vec![0i8; len];
                        upsample_nearest2x_i8(d, c, h / 2, w / 2, &mut u);
                        u
                    } else {
                        d.clone()
                    }
                })
                .collect();
            let full_refs: Vec<&[i8]> = full.iter().map(|d| d.as_slice()).collect();
            let mut want = vec![0i8; len];
            weighted_sum_i8(&full_refs, &params, out_mul, 3, -100, 120, &mut want);
            let refs: Vec<&[i8]> = data.iter().map(|d| d.as_slice()).collect();
            let mut got = vec![0i8; len];
            let a = SumI8 {
                inputs: &refs,
                upsampled: mask,
                dims: (c, h, w),
                params: &params,
                out_mul,
                zp_out: 3,
                lo: -100,
                hi: 120,
            };
            Kernels::scalar().weighted_sum_i8(&a, &mut got);
            assert_eq!(got, want, "case {case}: mask {mask:#b} {c}x{h}x{w}");
        }
    }

    #[test]
    #[should_panic(expected = "bad upsampling mask")]
    fn fused_upsampling_needs_even_sizes() {
        let p = [SumInput::default(); 2];
        let x = [0i8; 15];
        let y = [0i8; 4];
        let mut out = [0i8; 15];
        let a = SumI8 {
            inputs: &[&x, &y],
            upsampled: 0b10,
            dims: (1, 3, 5),
            params: &p,
            out_mul: QMul::default(),
            zp_out: 0,
            lo: -128,
            hi: 127,
        };
        Kernels::scalar().weighted_sum_i8(&a, &mut out);
    }

    #[test]
    fn weighted_sum_params_edges() {
        let mut p = [SumInput::default(); 2];
        let m = weighted_sum_params(&[0.0, 0.0], &[0.1, 0.2], &[3, -4], 0.5, &mut p);
        assert_eq!(m, QMul::ZERO);
        assert_eq!(
            p[0],
            SumInput {
                zp: 3,
                mul: QMul::ZERO
            }
        );
        let mut out = [9i8; 3];
        weighted_sum_i8(&[&[1, 2, 3], &[4, 5, 6]], &p, m, 17, -128, 127, &mut out);
        assert_eq!(out, [17; 3]);
        // A plain residual add with equal scales: mul_i = ½, out_mul = 2·s/(2^20·s).
        let m = weighted_sum_params(&[1.0, 1.0], &[0.5, 0.5], &[0, 0], 0.5, &mut p);
        assert_eq!(
            p[0].mul,
            QMul {
                m: 1 << 30,
                shift: 0
            }
        );
        weighted_sum_i8(
            &[&[1, -100, 127], &[2, -100, 127]],
            &p,
            m,
            0,
            -128,
            127,
            &mut out,
        );
        assert_eq!(out, [3, -128, 127]);
        weighted_sum_i8(
            &[&[1, -100, 127], &[2, -100, 127]],
            &p,
            m,
            0,
            -5,
            5,
            &mut out,
        );
        assert_eq!(out, [3, -5, 5]);
    }

    #[test]
    fn upsample_and_image() {
        for &(c, h, w) in &[(1, 1, 1), (2, 3, 5), (3, 4, 1), (1, 0, 3)] {
            let input: Vec<i8> = (0..c * h * w).map(|i| i as i8).collect();
            let mut out = vec![0i8; 4 * c * h * w];
            upsample_nearest2x_i8(&input, c, h, w, &mut out);
            for ch in 0..c {
                for i in 0..2 * h {
                    for j in 0..2 * w {
                        assert_eq!(
                            out[ch * 4 * h * w + i * 2 * w + j],
                            input[ch * h * w + (i / 2) * w + j / 2]
                        );
                    }
                }
            }
        }
        let src: Vec<u8> = (0..=255).collect();
        let mut dst = vec![0i8; 256];
        u8_to_i8_image(&src, &mut dst);
        for (v, q) in src.iter().zip(&dst) {
            assert_eq!(*q as i32, *v as i32 - 128);
        }
    }
}
