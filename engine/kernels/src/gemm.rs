//! fp32 GEMM with a fused epilogue: the workhorse of dense convolutions and
//! linear layers.
//!
//! `C = act(A·B + bias + C_old?)` where `A` is `m×k`, `B` is `k×n`, both read
//! through strides, and `C` is row-major with row stride `rsc`. Linear layers
//! are 1×1 convolutions over channel-major `[C, T]` token matrices, so `A` is a
//! weight tensor used in place from the model file (row-major `[cout, cin]`,
//! `rs = cin, cs = 1`) and `B` is an activation (`rs = T, cs = 1`).
//!
//! # How the SIMD paths compute it
//! `B` is packed, one block of `KC` rows × `NC` columns at a time, into the
//! caller's scratch as panels of `NR` columns (`[kc][NR]`, zero-padded past
//! `n`). A micro-kernel then computes `MR×NR` tiles of `C` in registers,
//! broadcasting `A` elements read directly through their strides (no repacking
//! of weights) against the packed panel. Rows past `m` in an edge tile repeat the
//! last valid row of `A` and are discarded; columns past `n` are zero and
//! discarded. When `k > KC` the partial sums of earlier blocks go through `C`;
//! the bias is added with the first block and the activation applied with the
//! last one.
//!
//! # Float agreement
//! Every path accumulates in f32 but in its own order (blocks of `KC`, fused
//! multiply-add). All paths agree with the exact result within
//! `(k + 2)·ε·(Σ|a||b| + |bias| + |C_old|)` before the activation (ε = 2⁻²³:
//! the classic `(k+1)·u` bound of f32 summation in any order, with a factor 2
//! of margin); `tests/equivalence.rs` checks every path against it.

use crate::Act;
use crate::Kernels;

/// Depth of one packed block of `B` (rows of `B`, columns of `A`).
///
/// 256 keeps one packed `NR`-column panel (16 KiB with `NR = 16`) and the `MR`
/// rows of `A` it meets (6 KiB) inside a 32 KiB L1 while the whole `KC×NC`
/// block (128 KiB) stays in L2 on every target core (Zen, Skylake, Cortex-A72
/// and later).
pub(crate) const KC: usize = 256;

/// Widest block of packed `B` columns any micro-kernel asks for.
pub(crate) const NC_MAX: usize = 128;

/// Extra scratch elements so the packed panels can start on a 64-byte line.
pub(crate) const ALIGN_SLACK: usize = 16;

/// A strided read-only matrix: element (i, j) at data[i*rs + j*cs].
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// The elements; only those reached by the strides are read.
    pub data: &'a [f32],
    /// Distance between rows.
    pub rs: usize,
    /// Distance between columns.
    pub cs: usize,
}

impl MatRef<'_> {
    /// Element `(i, j)`. Panics when it lies outside `data`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    /// Panics unless every element of the `rows × cols` view lies in `data`.
    pub(crate) fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1).checked_mul(self.rs).and_then(|r| {
            (cols - 1)
                .checked_mul(self.cs)
                .and_then(|c| r.checked_add(c))
        });
        assert!(
            matches!(last, Some(l) if l < self.data.len()),
            "sgemm: {what} ({rows}x{cols}, rs {}, cs {}) does not fit its {} elements",
            self.rs,
            self.cs,
            self.data.len()
        );
    }
}

/// What is done with each output element after the dot product.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Per-row (per output channel) bias, at least `m` elements.
    pub bias: Option<&'a [f32]>,
    /// Add the value already in `C` (a residual) before the activation.
    pub accumulate: bool,
    /// Activation applied last.
    pub act: Act,
}

/// f32 scratch elements sgemm needs for reduction depth k.
///
/// The same for every path, so a plan sized once works with any [`Kernels`].
pub fn sgemm_scratch_len(k: usize) -> usize {
    if k == 0 {
        0
    } else {
        KC.min(k) * NC_MAX + ALIGN_SLACK
    }
}

/// One GEMM: `C = act(A·B + bias + C_old?)`, `A` `m×k`, `B` `k×n` through
/// strides, `C` row-major with row stride `rsc` (the argument of the
/// [`Slot::Sgemm`](crate::Slot::Sgemm) slot).
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    /// Rows of `A` and `C`.
    pub m: usize,
    /// Columns of `B` and `C`.
    pub n: usize,
    /// Reduction depth.
    pub k: usize,
    /// `A`, `m×k`.
    pub a: MatRef<'a>,
    /// `B`, `k×n`.
    pub b: MatRef<'a>,
    /// Row stride of `C` (`>= n` when `m > 1`).
    pub rsc: usize,
    /// What is done with each output.
    pub epi: Epilogue<'a>,
}

impl Kernels {
    /// `C[i*rsc + j] = act( sum_p A(i,p)*B(p,j) + bias[i] + (if accumulate { C_old[i*rsc+j] } else 0) )`, i<m, j<n, p<k.
    ///
    /// `c` must hold the `m×n` view (`rsc >= n` when `m > 1`), `bias` at least
    /// `m` elements and `scratch` at least [`sgemm_scratch_len`]`(k)`. Elements
    /// of `c` outside the view are not touched. Panics when a slice is too short
    /// (a programmer error: shapes are validated when a model is loaded).
    pub fn sgemm(&self, g: &Gemm<'_>, c: &mut [f32], scratch: &mut [f32]) {
        g.a.check(g.m, g.k, "A");
        g.b.check(g.k, g.n, "B");
        check_c(g.m, g.n, c, g.rsc);
        check_epi_scratch(g.m, g.k, g.epi, scratch);
        if g.m == 0 || g.n == 0 {
            return;
        }
        if g.k == 0 {
            epilogue_only(g.m, g.n, c, g.rsc, g.epi);
            return;
        }
        // SAFETY: the table's contract (crate::table): the slot's path runs on
        // this CPU, and the operands were checked above (m, n, k > 0).
        unsafe { (self.slots.sgemm)(g, c, scratch) }
    }
}

/// Panics unless the `m×n` view of `C` with row stride `rsc` fits in `c`.
pub(crate) fn check_c(m: usize, n: usize, c: &[f32], rsc: usize) {
    if m > 0 && n > 0 {
        assert!(m == 1 || rsc >= n, "sgemm: rsc {rsc} < n {n}");
        let last = (m - 1).checked_mul(rsc).and_then(|r| r.checked_add(n - 1));
        assert!(
            matches!(last, Some(l) if l < c.len()),
            "sgemm: C ({m}x{n}, rsc {rsc}) does not fit its {} elements",
            c.len()
        );
    }
}

/// Panics unless the bias has `m` elements and the scratch is large enough.
pub(crate) fn check_epi_scratch(m: usize, k: usize, epi: Epilogue<'_>, scratch: &[f32]) {
    if let Some(bias) = epi.bias {
        assert!(bias.len() >= m, "sgemm: bias has {} < m = {m}", bias.len());
    }
    assert!(
        scratch.len() >= sgemm_scratch_len(k),
        "sgemm: scratch has {} < {} elements",
        scratch.len(),
        sgemm_scratch_len(k)
    );
}

/// `k == 0`: the sum is empty, only the epilogue remains.
fn epilogue_only(m: usize, n: usize, c: &mut [f32], rsc: usize, epi: Epilogue<'_>) {
    for i in 0..m {
        for v in &mut c[i * rsc..i * rsc + n] {
            let mut x = 0.0;
            if let Some(bias) = epi.bias {
                x += bias[i];
            }
            if epi.accumulate {
                x += *v;
            }
            *v = epi.act.apply(x);
        }
    }
}
