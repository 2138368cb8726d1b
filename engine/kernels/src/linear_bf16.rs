//! A linear layer (a 1×1 convolution over a `[K, N]` token matrix) whose
//! weights are integers — the int8 per-channel weights of the decoder's and
//! AIFI's linears — and whose inputs are rounded to bfloat16:
//!
//! `y[r][j] = act(scale[r] · Σ_p w[r][p] · bf16(x[p][j]) + bias[r])`
//!
//! # Why
//! An integer of 8 bits is exact in bfloat16 (8 significant bits), and the
//! product of two bfloat16 values is exact in f32, so the only rounding
//! beyond f32 arithmetic is that of the inputs: a relative 2⁻⁹ per element,
//! far below the int8 weight quantisation these layers already carry
//! (2⁻⁸ of each channel's largest weight). On CPUs with bfloat16 tile or
//! dot-product instructions (AMX-BF16: 16 × 16 × 32 multiply-accumulates per
//! instruction) that buys the decoder's linears several times the f32 FMA
//! rate. Sessions use it only where a path provides it natively
//! ([`Kernels::linear_bf16_native`]); elsewhere the layers run in f32.
//!
//! # Exactness
//! Float: every path sums the exact products in f32 in its own order, within
//! the bound of `tests/equivalence.rs` (as the f32 GEMM). Rounding is
//! round-to-nearest-even on the bits ([`bf16_bits`]), the same on every path.

use crate::{Act, Kernels, OutPlanes};

/// The operands of one bfloat16 linear layer (the
/// [`crate::Slot::LinearBf16`] slot's argument).
#[derive(Clone, Copy, Debug)]
pub struct LinearBf16<'a> {
    /// Output rows (channels).
    pub m: usize,
    /// Columns (tokens).
    pub n: usize,
    /// Reduction depth (input channels).
    pub k: usize,
    /// `[m][k]` weights as bfloat16 bits (integers of at most 8 bits for the
    /// bound above; any bfloat16 values are computed the same way).
    pub weight: &'a [u16],
    /// Per output row: the factor applied to the sum (the weights' scale).
    pub scale: &'a [f32],
    /// Per output row: added after the scale.
    pub bias: &'a [f32],
    /// `[k][n]` inputs, row-major (a CHW token matrix).
    pub input: &'a [f32],
    /// Applied last.
    pub act: Act,
}

/// `x` rounded to bfloat16 (to nearest, ties to even), as its 16 bits. NaN
/// inputs give some NaN or infinity (activations are finite).
#[inline]
pub const fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bfloat16 bits.
#[inline]
pub const fn bf16_value(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Scratch bytes [`Kernels::linear_bf16`] needs for reduction depth `k` (the
/// same for every path): one packed block of 32 columns of bfloat16 pairs,
/// and a cache line of alignment.
pub const fn linear_bf16_scratch_len(k: usize) -> usize {
    32 * 2 * k.next_multiple_of(2) + 64
}

impl LinearBf16<'_> {
    /// Panics unless the operands and `out` (`[m][n]`) hold what the shape
    /// needs.
    fn check(&self, out: &OutPlanes<'_, f32>) {
        let (m, n, k) = (self.m, self.n, self.k);
        assert!(
            self.weight.len() >= m * k
                && self.scale.len() >= m
                && self.bias.len() >= m
                && self.input.len() >= k * n
                && (out.planes() >= m || n == 0)
                && out.n() == n,
            "linear_bf16: operands shorter than {m}x{k} . {k}x{n}"
        );
    }
}

impl Kernels {
    /// [`LinearBf16`] into `out` (`[m][n]`, row-major). Panics on short
    /// operands or scratch (at least [`linear_bf16_scratch_len`] bytes).
    pub fn linear_bf16(&self, a: &LinearBf16<'_>, out: &mut [f32], scratch: &mut [u8]) {
        self.linear_bf16_planes(a, &mut OutPlanes::new(out, a.n), scratch);
    }

    /// [`Kernels::linear_bf16`] for the columns `out.cols()` only (of every
    /// row): what one thread of several sharing the layer by columns runs.
    /// Any partition of the columns writes the same bits as the whole.
    /// Panics as [`Kernels::linear_bf16`] does, and unless `out` holds `m`
    /// rows of `n`.
    pub fn linear_bf16_planes(
        &self,
        a: &LinearBf16<'_>,
        out: &mut OutPlanes<'_, f32>,
        scratch: &mut [u8],
    ) {
        a.check(out);
        assert!(
            scratch.len() >= linear_bf16_scratch_len(a.k),
            "linear_bf16: scratch too short"
        );
        if a.m == 0 || out.cols().is_empty() {
            return;
        }
        // SAFETY: the table's contract (crate::table): the slot's path runs
        // on this CPU; the operands were checked above.
        unsafe { (self.slots.linear_bf16)(a, out, scratch) }
    }

    /// Whether this path computes [`Kernels::linear_bf16`] with its own
    /// instructions (not the portable loop): only then is it worth rounding
    /// a layer's inputs to bfloat16.
    pub fn linear_bf16_native(&self) -> bool {
        self.path.origin(crate::Slot::LinearBf16).name != "scalar"
    }
}

/// The portable [`crate::Slot::LinearBf16`]: the specification, sums in `p`
/// order.
///
/// # Safety
/// None beyond the slot's checks (a safe function in an `unsafe fn` slot).
pub(crate) unsafe fn linear_bf16_portable(
    a: &LinearBf16<'_>,
    out: &mut OutPlanes<'_, f32>,
    _: &mut [u8],
) {
    let (m, n, k) = (a.m, a.n, a.k);
    let cols = out.cols();
    for r in 0..m {
        let w = &a.weight[r * k..][..k];
        for (j, o) in cols.clone().zip(out.row(r, cols.start, cols.len())) {
            let mut s = 0.0f32;
            for (p, &wp) in w.iter().enumerate() {
                s += bf16_value(wp) * bf16_value(bf16_bits(a.input[p * n + j]));
            }
            *o = a.act.apply(a.scale[r] * s + a.bias[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to even.
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(bf16_bits(-2.5), 0xc020);
        for q in -128i32..=127 {
            assert_eq!(bf16_value(bf16_bits(q as f32)), q as f32, "{q} is exact");
        }
    }

    #[test]
    fn portable_matches_a_hand_computed_layer() {
        // 2 outputs, 2 tokens, k = 3.
        let w = [1.0f32, -2.0, 3.0, 0.5, 0.0, -1.0].map(bf16_bits);
        let x = [1.0f32, 2.0, 0.5, -1.0, 1.0 + 1.0 / 256.0, 4.0];
        let a = LinearBf16 {
            m: 2,
            n: 2,
            k: 3,
            weight: &w,
            scale: &[2.0, 1.0],
            bias: &[0.25, -1.0],
            input: &x,
            act: Act::Relu,
        };
        let mut out = [f32::NAN; 4];
        let mut scratch = [0u8; linear_bf16_scratch_len(3)];
        Kernels::scalar().linear_bf16(&a, &mut out, &mut scratch);
        // Token 0: x = (1, 0.5, 1 + 2^-8 → 1).
        // Row 0: 1 − 1 + 3 = 3 → 2·3 + 0.25. Row 1: 0.5 + 0 − 1 → −1.5 → 0.
        // Token 1: x = (2, −1, 4). Row 0: 2 + 2 + 12 = 16 → 32.25.
        // Row 1: 1 − 4 − 1 = −4 → 0.
        assert_eq!(out, [6.25, 32.25, 0.0, 0.0]);
    }
}
