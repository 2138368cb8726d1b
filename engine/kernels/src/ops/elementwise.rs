//! Element-wise f32 kernels: their scalar implementations (the
//! specification) and the checked [`Kernels`] methods that dispatch them.
//!
//! Every element is computed by the same IEEE operations in the same order on
//! every path (no fused multiply-add), so SIMD overrides must be bit-exact.

use crate::Act;
use crate::Kernels;
use crate::elementwise_i8::{check_upsample, upsample_nearest2x_copy};
use crate::table::Dims;

impl Kernels {
    /// `out = Σ_i coef[i]·inputs[i]`, summed in input order (see
    /// [`weighted_sum`]). Panics unless there are 1–4 inputs, as many
    /// coefficients, and every input has `out.len()` elements.
    pub fn weighted_sum_f32(&self, inputs: &[&[f32]], coef: &[f32], out: &mut [f32]) {
        assert!(
            (1..=4).contains(&inputs.len()) && inputs.len() == coef.len(),
            "weighted_sum_f32: 1 to 4 inputs and as many coefficients"
        );
        assert!(
            inputs.iter().all(|x| x.len() == out.len()),
            "weighted_sum_f32: length mismatch"
        );
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.weighted_sum_f32)(inputs, coef, out) }
    }

    /// `out = act(a + b)`. Panics unless the three lengths are equal.
    pub fn add_f32(&self, a: &[f32], b: &[f32], act: Act, out: &mut [f32]) {
        assert!(
            a.len() == out.len() && b.len() == out.len(),
            "add_f32: length mismatch"
        );
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.add_f32)(a, b, act, out) }
    }

    /// `out = act(x)` element by element. Panics unless the lengths are equal.
    pub fn act_f32(&self, act: Act, x: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), out.len(), "act_f32: length mismatch");
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.act_f32)(act, x, out) }
    }

    /// Nearest ×2 upsampling of an f32 `[c][h][w]` map. Panics unless
    /// `input.len() == c·h·w` and `out.len() == 4·c·h·w`.
    pub fn upsample2x_f32(&self, input: &[f32], dims: Dims, out: &mut [f32]) {
        check_upsample(input.len(), dims, out.len());
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.upsample2x_f32)(input, dims, out) }
    }
}

/// `out = act(x)` (the scalar [`crate::Slot::ActF32`]).
pub fn act(act: Act, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    for (o, &v) in out.iter_mut().zip(x) {
        *o = act.apply(v);
    }
}

/// The scalar [`crate::Slot::Upsample2xF32`].
pub(crate) fn upsample2x_slot(input: &[f32], (c, h, w): Dims, out: &mut [f32]) {
    upsample_nearest2x_copy(input, c, h, w, out);
}

/// `out = a + b`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == out.len() && b.len() == out.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `out = act(a + b)`.
pub fn add_act(a: &[f32], b: &[f32], act: Act, out: &mut [f32]) {
    add(a, b, out);
    act.apply_slice(out);
}

/// `out = Σ_i coef[i] · inputs[i]`, summed in input order, as torch stacks the
/// weighted maps and sums over the stack (BiFPN, SPEC.md §4.2).
pub fn weighted_sum(inputs: &[&[f32]], coef: &[f32], out: &mut [f32]) {
    assert!(!inputs.is_empty() && inputs.len() == coef.len());
    assert!(inputs.iter().all(|x| x.len() == out.len()));
    for (j, o) in out.iter_mut().enumerate() {
        let mut acc = coef[0] * inputs[0][j];
        for (x, &c) in inputs[1..].iter().zip(&coef[1..]) {
            acc += c * x[j];
        }
        *o = acc;
    }
}

/// Nearest ×2 upsampling of a `[C, H, W]` map: `out[c, i, j] = in[c, i/2, j/2]`.
pub fn upsample_nearest2x(input: &[f32], c: usize, h: usize, w: usize, out: &mut [f32]) {
    upsample_nearest2x_copy(input, c, h, w, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_sum_and_add() {
        let a = [1.0, 2.0, 3.0];
        let b = [10.0, 20.0, 30.0];
        let d = [100.0, 200.0, 300.0];
        let mut out = [0.0; 3];
        weighted_sum(&[&a, &b, &d], &[0.5, 0.25, 2.0], &mut out);
        assert_eq!(out, [203.0, 406.0, 609.0]);
        add(&a, &b, &mut out);
        assert_eq!(out, [11.0, 22.0, 33.0]);
        add_act(&[-1.0, 7.0, 3.0], &[0.0, 0.0, 0.0], Act::Relu6, &mut out);
        assert_eq!(out, [0.0, 6.0, 3.0]);
    }
}
