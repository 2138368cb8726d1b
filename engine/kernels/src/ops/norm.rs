//! Normalisations: layer norm over the channels of each token, softmax.

use crate::{Kernels, OutPlanes};

/// The operands of a layer normalisation over the channels of each token of a
/// channel-major `[C, T]` matrix (the argument of the
/// [`Slot::LayerNorm`](crate::Slot::LayerNorm) slot): see
/// [`layer_norm_channels`].
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm<'a> {
    /// `x`, `[C, T]`.
    pub x: &'a [f32],
    /// A residual added to `x` first (`x + residual`, formed in f32).
    pub residual: Option<&'a [f32]>,
    /// Channels.
    pub c: usize,
    /// Tokens.
    pub t: usize,
    /// `C` scales.
    pub gamma: &'a [f32],
    /// `C` offsets.
    pub beta: &'a [f32],
    /// Added to the variance.
    pub eps: f32,
}

impl Kernels {
    /// Layer normalisation ([`layer_norm_channels`]). Panics unless `x`,
    /// `residual` and `out` hold `c·t` values and `gamma`, `beta` `c`.
    pub fn layer_norm(&self, a: &LayerNorm<'_>, out: &mut [f32]) {
        assert!(out.len() == a.c * a.t, "layer_norm: length mismatch");
        self.layer_norm_planes(a, &mut OutPlanes::new(out, a.t));
    }

    /// [`Kernels::layer_norm`] of the tokens `out.cols()` only (columns of
    /// the `[C, T]` output): what one thread of several sharing the layer by
    /// tokens runs; any partition of the tokens writes the same bits as the
    /// whole. Panics unless `out` holds `c` rows of `t` and the operands as
    /// [`Kernels::layer_norm`] wants.
    pub fn layer_norm_planes(&self, a: &LayerNorm<'_>, out: &mut OutPlanes<'_, f32>) {
        let n = a.c * a.t;
        assert!(
            a.x.len() == n
                && (out.planes() == a.c || a.t == 0)
                && out.n() == a.t
                && a.gamma.len() == a.c
                && a.beta.len() == a.c
                && a.residual.is_none_or(|r| r.len() == n),
            "layer_norm: length mismatch"
        );
        if out.cols().is_empty() {
            return;
        }
        // SAFETY: the table's contract (crate::table); lengths checked above.
        unsafe { (self.slots.layer_norm)(a, out) }
    }

    /// Softmax down each column of the row-major `[rows, cols]` matrix `x`, in
    /// place ([`softmax_columns`]). Panics unless `cols > 0` divides `x.len()`.
    pub fn softmax_cols(&self, x: &mut [f32], cols: usize) {
        assert!(
            cols > 0 && x.len().is_multiple_of(cols),
            "softmax_cols: rows of {cols} do not tile {} values",
            x.len()
        );
        // SAFETY: the table's contract (crate::table); sizes checked above.
        unsafe { (self.slots.softmax_cols)(x, cols) }
    }
}

/// The scalar [`crate::Slot::LayerNorm`]: [`layer_norm_channels`] of the
/// tokens `out.cols()`.
pub(crate) fn layer_norm(a: &LayerNorm<'_>, out: &mut OutPlanes<'_, f32>) {
    let (c, t) = (a.c, a.t);
    let x = |ch: usize, tok: usize| -> f32 {
        let i = ch * t + tok;
        match a.residual {
            Some(r) => a.x[i] + r[i],
            None => a.x[i],
        }
    };
    for tok in out.cols() {
        let (mean, rstd) = moments(c, |ch| x(ch, tok), a.eps);
        for ch in 0..c {
            let n = ((x(ch, tok) as f64 - mean) * rstd) as f32;
            out.row(ch, tok, 1)[0] = n * a.gamma[ch] + a.beta[ch];
        }
    }
}

/// A token's mean and `1/sqrt(σ² + eps)` over its `c` values `x(ch)`, in f64.
fn moments(c: usize, x: impl Fn(usize) -> f32, eps: f32) -> (f64, f64) {
    let mut sum = 0f64;
    for ch in 0..c {
        sum += x(ch) as f64;
    }
    let mean = sum / c as f64;
    let mut var = 0f64;
    for ch in 0..c {
        let d = x(ch) as f64 - mean;
        var += d * d;
    }
    var /= c as f64;
    (mean, 1.0 / libm::sqrt(var + eps as f64))
}

/// Columns one pass of [`softmax_columns`] keeps on the stack.
const COL_BLOCK: usize = 16;

/// Softmax down each column of the row-major `[rows, cols]` matrix `x`, in
/// place (the scalar [`crate::Slot::SoftmaxCols`]): column `j`, the values
/// `x[i·cols + j]` for `i < rows`, becomes exactly what [`softmax_in_place`]
/// makes of it (the same operations in the same order), computed for
/// 16 columns at a time, row after row, so the matrix is read
/// along its rows. `cols > 0` must divide `x.len()`.
pub fn softmax_columns(x: &mut [f32], cols: usize) {
    for j0 in (0..cols).step_by(COL_BLOCK) {
        let w = COL_BLOCK.min(cols - j0);
        let mut max = [f32::NEG_INFINITY; COL_BLOCK];
        for row in x.chunks_exact(cols) {
            for (m, &v) in max.iter_mut().zip(&row[j0..j0 + w]) {
                *m = m.max(v);
            }
        }
        let mut sum = [0f32; COL_BLOCK];
        for row in x.chunks_exact_mut(cols) {
            for ((v, s), &m) in row[j0..j0 + w].iter_mut().zip(&mut sum).zip(&max) {
                *v = libm::expf(*v - m);
                *s += *v;
            }
        }
        let inv = sum.map(|s| 1.0 / s);
        for row in x.chunks_exact_mut(cols) {
            for (v, &inv) in row[j0..j0 + w].iter_mut().zip(&inv) {
                *v *= inv;
            }
        }
    }
}

/// Layer normalisation of each token of a channel-major `[C, T]` matrix over its
/// C channels (biased variance, SPEC.md §2):
/// `out[c, t] = (x[c, t] − μ_t) / sqrt(σ²_t + eps) · gamma[c] + beta[c]`, where
/// `x = a + b` when a residual `b` is given (the f32 sum is formed first, as torch
/// does). Moments are accumulated in f64.
#[allow(clippy::too_many_arguments)] // a kernel signature: slices, sizes, parameters
pub fn layer_norm_channels(
    a: &[f32],
    residual: Option<&[f32]>,
    c: usize,
    t: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    out: &mut [f32],
) {
    assert!(a.len() == c * t && out.len() == c * t && gamma.len() == c && beta.len() == c);
    if let Some(r) = residual {
        assert!(r.len() == c * t);
    }
    let x = |ch: usize, tok: usize| -> f32 {
        let i = ch * t + tok;
        match residual {
            Some(r) => a[i] + r[i],
            None => a[i],
        }
    };
    for tok in 0..t {
        let (mean, rstd) = moments(c, |ch| x(ch, tok), eps);
        for ch in 0..c {
            let n = ((x(ch, tok) as f64 - mean) * rstd) as f32;
            out[ch * t + tok] = n * gamma[ch] + beta[ch];
        }
    }
}

/// Softmax of one row in place: `exp(x − max) / Σ exp(x − max)`.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_of_known_tokens() {
        // C = 4, T = 2; token 0 = [1,2,3,4], token 1 = [2,2,2,2].
        let a = [1.0, 2.0, 2.0, 2.0, 3.0, 2.0, 4.0, 2.0];
        let mut out = [0.0; 8];
        layer_norm_channels(&a, None, 4, 2, &[1.0; 4], &[0.5; 4], 1e-5, &mut out);
        let s = 1.0 / (1.25f32 + 1e-5).sqrt();
        let want = [
            -1.5 * s + 0.5,
            0.5,
            -0.5 * s + 0.5,
            0.5,
            0.5 * s + 0.5,
            0.5,
            1.5 * s + 0.5,
            0.5,
        ];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{o} vs {w}");
        }
        let mut with_res = [0.0; 8];
        layer_norm_channels(
            &[0.0; 8],
            Some(&a),
            4,
            2,
            &[1.0; 4],
            &[0.5; 4],
            1e-5,
            &mut with_res,
        );
        assert_eq!(out, with_res);
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut r = [1.0, 2.0, 3.0, -1e30];
        softmax_in_place(&mut r);
        let e = [(-2f32).exp(), (-1f32).exp(), 1.0];
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((r[i] - e[i] / s).abs() < 1e-7);
        }
        assert_eq!(r[3], 0.0);
    }

    /// Each column of `softmax_columns` is `softmax_in_place` of that column,
    /// bit for bit, for widths around the column block.
    #[test]
    fn softmax_columns_is_softmax_of_each_column() {
        let mut r = crate::testing::Rng(0x50F7);
        for (rows, cols) in [(1, 1), (3, 1), (1, 17), (5, 16), (7, 33), (300, 20)] {
            let x: std::vec::Vec<f32> = (0..rows * cols).map(|_| r.f32() * 20.0).collect();
            let mut got = x.clone();
            softmax_columns(&mut got, cols);
            for j in 0..cols {
                let mut col: std::vec::Vec<f32> = (0..rows).map(|i| x[i * cols + j]).collect();
                softmax_in_place(&mut col);
                for (i, want) in col.iter().enumerate() {
                    assert_eq!(got[i * cols + j].to_bits(), want.to_bits(), "{rows}x{cols}");
                }
            }
        }
    }
}
