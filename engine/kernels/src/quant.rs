//! Integer-only requantisation (gemmlowp / TFLite fixed point) and the
//! f32 ⇄ int8 conversions at the edges of the quantized graph.
//!
//! # Quantisation scheme
//! - weights: int8 per output channel, symmetric, `real = s_w[c]·q_w`,
//!   `q_w ∈ [-127, 127]`;
//! - activations: int8 per tensor with a zero point, `real = s·(q − zp)`,
//!   `q ∈ [-128, 127]`;
//! - biases: int32 in the accumulator's scale `s_in·s_w[c]`.
//!
//! # The one rounding rule of the integer paths
//! A real multiplier `M > 0` is stored as a [`QMul`] `{m, shift}` with
//! `M ≈ m·2^(shift−31)` and `m ∈ [2^30, 2^31)`. [`requant`]`(x, q)` computes,
//! exactly as gemmlowp's `MultiplyByQuantizedMultiplier`:
//!
//! 1. `x' = x·2^max(shift, 0)`, saturated to the i32 range;
//! 2. `y = SaturatingRoundingDoublingHighMul(x', m) = ⌊(x'·m + 2^30) / 2^31⌋`
//!    (ties toward +∞; saturates only for `x' = m = −2^31`), which is what the
//!    NEON `SQRDMULH` instruction computes;
//! 3. `RoundingDivideByPOT(y, max(−shift, 0))`: `y / 2^e` rounded to nearest,
//!    ties away from zero.
//!
//! Every step is integer arithmetic on i32/i64, so the result is the same on
//! every architecture; the two roundings put it within ±1 of
//! `round(x·m·2^(shift−31))` (the first rounding is at a resolution of
//! `2^−e` of the result, `e = −shift`: with the shifts of real layers, `e ≥ 8`,
//! it differs from the correctly rounded product only within `2^−(e+1)` of a
//! tie; on tiny values with `e = 1` it shows, e.g. `¼·1 → 1`). The only floating-point code is host-side
//! ([`quantize_multiplier`], [`lut_from_fn`]) or at the graph's edges
//! ([`quantize_f32`], [`dequantize`]): single IEEE-754 binary32 multiplies and
//! an exact rounding to an integer. Rust never contracts `a·b + c` into a fused
//! multiply-add, and every supported target (x86_64 SSE, aarch64, armv7 VFP,
//! Cortex-M FPU) rounds binary32 operations correctly, so those are bit-exact
//! across architectures too.

/// A real multiplier in fixed point: `real ≈ m·2^(shift−31)`.
///
/// `m ∈ [2^30, 2^31)` and `shift ∈ [−31, 31]` for a non-zero multiplier, both
/// zero for a zero multiplier ([`QMul::ZERO`], also the `Default`).
/// [`quantize_multiplier`] builds one from a real number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct QMul {
    /// The Q0.31 mantissa, in `[2^30, 2^31)` (or 0).
    pub m: i32,
    /// The power of two: positive shifts left, negative rounds right.
    pub shift: i32,
}

/// Views `[m, shift]` pairs (as a model file stores them) as multipliers;
/// a trailing odd element is ignored.
pub fn qmuls_from_pairs(v: &[i32]) -> &[QMul] {
    const _: () = assert!(core::mem::size_of::<QMul>() == 8 && core::mem::align_of::<QMul>() == 4);
    // SAFETY: `QMul` is `#[repr(C)]` with two `i32` fields (size 8, align 4, no
    // padding), every bit pattern is valid, and `v.len() / 2` pairs lie inside `v`.
    unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<QMul>(), v.len() / 2) }
}

impl QMul {
    /// The zero multiplier: [`requant`] returns 0 for every input.
    pub const ZERO: QMul = QMul { m: 0, shift: 0 };

    /// The real number the multiplier stands for, `m·2^(shift−31)` (host-side
    /// diagnostics and tests).
    pub fn to_f64(self) -> f64 {
        let mut x = self.m as f64;
        let mut e = self.shift - 31;
        // Powers of two by repeated scaling: exact, no libm needed.
        while e > 0 {
            x *= 2.0;
            e -= 1;
        }
        while e < 0 {
            x *= 0.5;
            e += 1;
        }
        x
    }
}

/// Smallest shift [`requant`] honours (`RoundingDivideByPOT` by at most 31).
pub const QMUL_MIN_SHIFT: i32 = -31;
/// Largest shift [`requant`] honours (a left shift by 31 saturates any non-zero input).
pub const QMUL_MAX_SHIFT: i32 = 31;

/// The fixed-point form of a real multiplier (host-side; the quantizer's
/// single source of multipliers).
///
/// The mantissa is rounded to nearest from the exact binary64 value (pure
/// integer arithmetic on its bits, so the result does not depend on the host).
/// Representable range: `2^−32 ≤ real ≤ (2^31 − 1)·1` (shift −31 to 31):
/// - `real < 2^−32`, zero, negative, NaN, or a binary64 subnormal give
///   [`QMul::ZERO`] (for a positive `real < 2^−32`, `|x·real| < 0.5` for every
///   i32 `x`, so the exact product rounds to zero anyway);
/// - `real` at or above `2^31` (or +∞) clamps to the largest multiplier,
///   `{m: 2^31 − 1, shift: 31}`.
///
/// Never panics.
pub fn quantize_multiplier(real: f64) -> QMul {
    // Not (real > 0): zero, negatives and NaN.
    if real.is_nan() || real <= 0.0 {
        return QMul::ZERO;
    }
    const MAX: QMul = QMul {
        m: i32::MAX,
        shift: QMUL_MAX_SHIFT,
    };
    if real.is_infinite() {
        return MAX;
    }
    let bits = real.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal binary64: far below 2^-32.
        return QMul::ZERO;
    }
    // real = mant·2^(biased − 1075), mant ∈ [2^52, 2^53)
    //      = (mant/2^53)·2^(biased − 1022), mant/2^53 ∈ [0.5, 1).
    let mant = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let mut shift = biased - 1022;
    // m = round(mant / 2^22), ties away from zero (mant > 0).
    let mut m = (mant + (1u64 << 21)) >> 22;
    if m == 1u64 << 31 {
        m = 1u64 << 30;
        shift += 1;
    }
    if shift < QMUL_MIN_SHIFT {
        QMul::ZERO
    } else if shift > QMUL_MAX_SHIFT {
        MAX
    } else {
        QMul { m: m as i32, shift }
    }
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `⌊(a·b + 2^30) / 2^31⌋`
/// (the high half of the doubled product, rounded half toward +∞), saturated
/// to `i32::MAX` for `a = b = −2^31`. Same as the NEON `SQRDMULH`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Truncating division, as in C++.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties
/// away from zero; `exponent` is clamped to `[0, 31]`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31) as u32;
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> e) + (remainder > threshold) as i32
}

/// `x·2^left`, saturated to the i32 range (`left` clamped to `[0, 32]`).
#[inline]
fn saturating_shl(x: i32, left: i32) -> i32 {
    if left <= 0 {
        return x;
    }
    let wide = (x as i64) << left.min(32);
    wide.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// `x·M` in fixed point, the rounding rule of this module (see the module
/// docs): `RoundingDivideByPOT(SRDHM(sat(x·2^max(shift,0)), m), max(−shift,0))`.
///
/// `shift` is clamped to `[−31, 31]`; the left shift saturates (gemmlowp
/// leaves its overflow undefined; [`quantize_multiplier`] only produces a
/// positive shift for multipliers above 1, where the quantizer's ranges keep
/// it from overflowing). Within ±1 of `round(x·m·2^(shift−31))` whenever
/// `x·2^max(shift, 0)` fits in i32.
#[inline]
pub fn requant(acc: i32, q: QMul) -> i32 {
    let shift = q.shift.clamp(QMUL_MIN_SHIFT, QMUL_MAX_SHIFT);
    let x = saturating_shl(acc, shift);
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, q.m), -shift)
}

/// Rounds half away from zero to an integer, saturated to the i64 range;
/// NaN gives 0. Exact (no floating-point rounding happens here).
#[inline]
fn round_half_away(y: f32) -> i64 {
    // At or above 2^23 every binary32 is an integer (and NaN/∞ take the
    // saturating `as`: NaN → 0).
    if y.is_nan() || y.abs() >= 8_388_608.0 {
        return y as i64;
    }
    let t = y as i32; // truncation toward zero
    // t is y with its fractional bits cleared, so y − t is exact.
    let frac = y - t as f32;
    let r = if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    };
    r as i64
}

/// `clamp(round(x·inv_scale) + zp, −128, 127)`: one binary32 multiply, then
/// rounding half away from zero (exact), then the zero point, added exactly.
/// NaN maps to `zp` (clamped); ±∞ to the clamp bounds. Bit-exact on every
/// architecture.
#[inline]
pub fn quantize_f32(x: f32, inv_scale: f32, zp: i32) -> i8 {
    let r = round_half_away(x * inv_scale);
    r.saturating_add(zp as i64).clamp(-128, 127) as i8
}

/// `(q − zp) as f32 · scale` (exact integer, one binary32 multiply).
#[inline]
pub fn dequantize(q: i8, scale: f32, zp: i32) -> f32 {
    (q as i32).wrapping_sub(zp) as f32 * scale
}

/// [`quantize_f32`] of every element. Panics if the lengths differ.
pub fn quantize_f32_slice(src: &[f32], inv_scale: f32, zp: i32, dst: &mut [i8]) {
    assert_eq!(src.len(), dst.len(), "quantize_f32_slice: length mismatch");
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = quantize_f32(x, inv_scale, zp);
    }
}

/// [`dequantize`] of every element. Panics if the lengths differ.
pub fn dequantize_slice(src: &[i8], scale: f32, zp: i32, dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "dequantize_slice: length mismatch");
    for (d, &q) in dst.iter_mut().zip(src) {
        *d = dequantize(q, scale, zp);
    }
}

impl crate::Kernels {
    /// [`quantize_f32`] of every element. Panics if the lengths differ.
    pub fn quantize(&self, src: &[f32], inv_scale: f32, zp: i32, dst: &mut [i8]) {
        assert_eq!(src.len(), dst.len(), "quantize: length mismatch");
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.quantize)(src, inv_scale, zp, dst) }
    }

    /// [`dequantize`] of every element. Panics if the lengths differ.
    pub fn dequantize(&self, src: &[i8], scale: f32, zp: i32, dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len(), "dequantize: length mismatch");
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.dequantize)(src, scale, zp, dst) }
    }
}

/// Fills a 256-entry int8 lookup table for an element-wise function (host
/// side): `lut[q + 128] = quantize_f32(f(dequantize(q, in_scale, in_zp)),
/// out_inv_scale, out_zp)` for every `q ∈ [−128, 127]`. Used as
/// [`Requant::lut`](crate::conv_i8::Requant::lut) (e.g. SiLU after a
/// convolution, with the convolution's output quantisation as `in_*`).
pub fn lut_from_fn(
    in_scale: f32,
    in_zp: i32,
    out_inv_scale: f32,
    out_zp: i32,
    f: impl Fn(f32) -> f32,
    lut: &mut [i8; 256],
) {
    for (i, e) in lut.iter_mut().enumerate() {
        let q = (i as i32 - 128) as i8;
        *e = quantize_f32(f(dequantize(q, in_scale, in_zp)), out_inv_scale, out_zp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::Rng;

    /// Mostly full-range, sometimes small or extreme.
    trait I32s {
        fn i32(&mut self) -> i32;
    }

    impl I32s for Rng {
        fn i32(&mut self) -> i32 {
            // Mostly full-range, sometimes small or extreme.
            match self.next() % 4 {
                0 => (self.next() as i32) >> (self.next() % 31),
                1 => [i32::MIN, i32::MIN + 1, i32::MAX, -1, 0, 1][(self.next() % 6) as usize],
                _ => self.next() as i32,
            }
        }
    }

    const N: usize = if cfg!(target_arch = "x86_64") {
        400_000
    } else {
        40_000
    };

    /// floor(a / 2^e) and the exact "round half away from zero" of a / 2^e, in i128.
    fn div_pot_away(a: i128, e: u32) -> i128 {
        let d = 1i128 << e;
        let mag = (a.abs() + d / 2) / d;
        if a < 0 { -mag } else { mag }
    }

    /// The written-out reference of the rule, on i128 without gemmlowp's tricks.
    fn requant_ref(acc: i32, q: QMul) -> i32 {
        let shift = q.shift.clamp(-31, 31);
        let x = ((acc as i128) << shift.max(0)).clamp(i32::MIN as i128, i32::MAX as i128);
        let prod = x * q.m as i128;
        // floor((prod + 2^30) / 2^31), saturated.
        let hi = (prod + (1 << 30)).div_euclid(1 << 31);
        let hi = hi.clamp(i32::MIN as i128, i32::MAX as i128);
        div_pot_away(hi, (-shift).max(0) as u32) as i32
    }

    #[test]
    fn srdhm_is_floor_of_half_up() {
        let mut r = Rng(1);
        for _ in 0..N {
            let (a, b) = (r.i32(), r.i32());
            let want = ((a as i128 * b as i128 + (1 << 30)) >> 31).min(i32::MAX as i128) as i32;
            assert_eq!(saturating_rounding_doubling_high_mul(a, b), want, "{a} {b}");
        }
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        // Ties: +1.5 → 2, −1.5 → −1, −0.5 → 0 (half toward +∞).
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
    }

    #[test]
    fn divide_by_pot_rounds_half_away() {
        let mut r = Rng(2);
        for _ in 0..N {
            let x = r.i32();
            let e = (r.next() % 32) as i32;
            assert_eq!(
                rounding_divide_by_pot(x, e) as i128,
                div_pot_away(x as i128, e as u32),
                "{x} {e}"
            );
        }
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(7, -3), 7);
        assert_eq!(rounding_divide_by_pot(7, 99), 0);
    }

    #[test]
    fn requant_matches_written_out_rule_and_exact_value() {
        let mut r = Rng(3);
        for _ in 0..N {
            let acc = r.i32();
            let q = QMul {
                m: ((1u32 << 30) | (r.next() as u32 & 0x3fff_ffff)) as i32,
                shift: (r.next() % 64) as i32 - 33,
            };
            let got = requant(acc, q);
            assert_eq!(got, requant_ref(acc, q), "{acc} {q:?}");
            // Within ±1 of the exactly rounded product when nothing saturates.
            let s = q.shift.clamp(-31, 31);
            let shifted = (acc as i128) << s.max(0);
            if shifted.abs() < (1i128 << 31) {
                let exact = div_pot_away(acc as i128 * q.m as i128, (31 - s) as u32);
                assert!(
                    (got as i128 - exact).abs() <= 1,
                    "{acc} {q:?}: {got} vs {exact}"
                );
            }
        }
        assert_eq!(requant(12345, QMul::ZERO), 0);
        assert_eq!(requant(i32::MIN, QMul::ZERO), 0);
    }

    #[test]
    fn quantize_multiplier_round_trips() {
        let mut r = Rng(4);
        for _ in 0..N / 4 {
            // Log-uniform in [2^-34, 2^33].
            let e = (r.next() % 67) as i32 - 34;
            let f = 1.0 + (r.next() >> 11) as f64 / (1u64 << 53) as f64;
            let real = f * (2.0f64).powi(e);
            let q = quantize_multiplier(real);
            if real < 2.0f64.powi(-32) {
                // Zero, unless the mantissa rounds up onto 2^-32 itself.
                let least = QMul {
                    m: 1 << 30,
                    shift: -31,
                };
                assert!(q == QMul::ZERO || q == least, "{real}");
                continue;
            }
            if real >= 2.0f64.powi(31) {
                assert_eq!(
                    q,
                    QMul {
                        m: i32::MAX,
                        shift: 31
                    },
                    "{real}"
                );
                continue;
            }
            assert!(q.m >= 1 << 30, "{real} {q:?}");
            assert!((-31..=31).contains(&q.shift), "{real} {q:?}");
            let back = q.to_f64();
            assert!(
                ((back - real) / real).abs() <= 2.0f64.powi(-31),
                "{real} {back}"
            );
            // requant agrees with the float product within 1 + the relative error.
            let acc = r.i32() >> (r.next() % 31);
            let exact = acc as f64 * real;
            if exact.abs() < 2.0e9 && q.shift <= 0 {
                let got = requant(acc, q) as f64;
                assert!(
                    (got - exact).abs() <= 1.0 + exact.abs() * 2.0f64.powi(-30),
                    "{acc} {real}: {got} vs {exact}"
                );
            }
        }
        assert_eq!(quantize_multiplier(0.0), QMul::ZERO);
        assert_eq!(quantize_multiplier(-1.0), QMul::ZERO);
        assert_eq!(quantize_multiplier(f64::NAN), QMul::ZERO);
        assert_eq!(quantize_multiplier(1e-300), QMul::ZERO);
        assert_eq!(quantize_multiplier(5e-324), QMul::ZERO);
        assert_eq!(
            quantize_multiplier(f64::INFINITY),
            QMul {
                m: i32::MAX,
                shift: 31
            }
        );
        assert_eq!(
            quantize_multiplier(0.5),
            QMul {
                m: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(1.0),
            QMul {
                m: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(
            quantize_multiplier(2.0f64.powi(-32)),
            QMul {
                m: 1 << 30,
                shift: -31
            }
        );
        // Rounds up into the next binade.
        assert_eq!(
            quantize_multiplier(1.0 - 2.0f64.powi(-40)),
            QMul {
                m: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(requant(1000, quantize_multiplier(0.25)), 250);
        assert_eq!(requant(-1002, quantize_multiplier(0.25)), -251); // −250.5 → −251
        assert_eq!(requant(3, quantize_multiplier(3.0)), 9);
        // 4.0 = 0.5·2^3: the left shift saturates first, then the mantissa
        // halves the saturated value (gemmlowp's order; an overflowing product
        // is not meaningful, the quantizer keeps products in range).
        assert_eq!(requant(1 << 30, quantize_multiplier(4.0)), 1 << 30);
        assert_eq!(requant(-(1 << 30), quantize_multiplier(4.0)), -(1 << 30));
    }

    #[test]
    fn quantize_rounds_half_away_and_clamps() {
        let inv = 1.0;
        assert_eq!(quantize_f32(0.5, inv, 0), 1);
        assert_eq!(quantize_f32(-0.5, inv, 0), -1);
        assert_eq!(quantize_f32(0.499_999_97, inv, 0), 0);
        assert_eq!(quantize_f32(-0.499_999_97, inv, 0), 0);
        assert_eq!(quantize_f32(1.5, inv, 0), 2);
        assert_eq!(quantize_f32(2.5, inv, 0), 3);
        assert_eq!(quantize_f32(-2.5, inv, 0), -3);
        assert_eq!(quantize_f32(126.6, inv, 0), 127);
        assert_eq!(quantize_f32(1e30, inv, 0), 127);
        assert_eq!(quantize_f32(f32::INFINITY, inv, -5), 127);
        assert_eq!(quantize_f32(f32::NEG_INFINITY, inv, 100), -128);
        assert_eq!(quantize_f32(f32::NAN, inv, 7), 7);
        assert_eq!(quantize_f32(0.0, inv, -128), -128);
        assert_eq!(quantize_f32(3.0, 0.5, -128), -126);
        assert_eq!(quantize_f32(1e10, 1.0, i32::MIN), 127); // 1e10 − 2^31 > 127
        assert_eq!(quantize_f32(-3e9, 1.0, i32::MAX), -128);
        assert_eq!(quantize_f32(-2_147_483_520.0, 1.0, i32::MAX), 127);
        assert_eq!(quantize_f32(-2_147_483_648.0, 1.0, i32::MAX), -1);
        assert_eq!(quantize_f32(8388609.0, 1.0, -8388609), 0);
        // Against an f64 model of the same rule on a sweep.
        let mut r = Rng(5);
        for _ in 0..N / 4 {
            let x =
                f32::from_bits((r.next() as u32 & 0x43ff_ffff) ^ (r.next() as u32 & 0x8000_0000));
            let inv = 0.37f32;
            let zp = (r.next() % 256) as i32 - 128;
            let y = (x * inv) as f64;
            let want = (y.abs() + 0.5).floor().copysign(y) + zp as f64;
            let want = want.clamp(-128.0, 127.0) as i8;
            assert_eq!(quantize_f32(x, inv, zp), want, "{x}");
        }
        for q in -128..=127i32 {
            let q = q as i8;
            for zp in [-128, -3, 0, 5, 127] {
                let x = dequantize(q, 0.125, zp);
                assert_eq!(x, (q as i32 - zp) as f32 * 0.125);
                assert_eq!(quantize_f32(x, 8.0, zp), q);
            }
        }
        let src = [0.1f32, -0.3, 0.26];
        let mut q = [0i8; 3];
        quantize_f32_slice(&src, 10.0, 1, &mut q);
        assert_eq!(q, [2, -2, 4]);
        let mut back = [0f32; 3];
        dequantize_slice(&q, 0.5, 1, &mut back);
        assert_eq!(back, [0.5, -1.5, 1.5]);
    }

    #[test]
    fn lut_tabulates_the_function() {
        let mut lut = [0i8; 256];
        lut_from_fn(0.1, 3, 10.0, -2, |x| x * 0.5, &mut lut);
        for q in -128..=127i32 {
            let x = (q - 3) as f32 * 0.1;
            assert_eq!(lut[(q + 128) as usize], quantize_f32(x * 0.5, 10.0, -2));
        }
        lut_from_fn(1.0, 0, 1.0, 0, |x| x, &mut lut);
        assert!(
            lut.iter()
                .enumerate()
                .all(|(i, &v)| v as i32 == i as i32 - 128)
        );
    }
}
