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
//! `(k + 2)·ε·(Σ|a||b| + |bias| + |C_old|)` before the activation (ε = 2⁻²³),
//! which the tests check with margin; see the `tests` module.

use crate::Act;
use crate::dispatch::{Kernels, Path};

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
const ALIGN_SLACK: usize = 16;

/// Largest `MR` of any micro-kernel.
pub(crate) const MAX_MR: usize = 8;

/// Largest `MR × NR` of any micro-kernel (the stack tile for edges).
pub(crate) const MAX_TILE: usize = 128;

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
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| (cols - 1).checked_mul(self.cs).and_then(|c| r.checked_add(c)));
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
    KC.min(k) * NC_MAX + ALIGN_SLACK
}

impl Kernels {
    /// C[i*rsc + j] = act( sum_p A(i,p)*B(p,j) + bias[i] + (if accumulate { C_old[i*rsc+j] } else 0) ), i<m, j<n, p<k.
    ///
    /// `c` must hold the `m×n` view (`rsc >= n` when `m > 1`), `bias` at least
    /// `m` elements and `scratch` at least [`sgemm_scratch_len`]`(k)`. Elements
    /// of `c` outside the view are not touched. Panics when a slice is too short
    /// (a programmer error: shapes are validated when a model is loaded).
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: MatRef<'_>,
        b: MatRef<'_>,
        c: &mut [f32],
        rsc: usize,
        epi: Epilogue<'_>,
        scratch: &mut [f32],
    ) {
        check_sgemm(m, n, k, a, b, c, rsc, epi, scratch);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            epilogue_only(m, n, c, rsc, epi);
            return;
        }
        match self.path {
            Path::Scalar => crate::reference::sgemm(m, n, k, a, b, c, rsc, epi),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2Fma(t) => sgemm_blocked(t, m, n, k, a, &b, c, rsc, epi, scratch),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Path::Neon(t) => sgemm_blocked(t, m, n, k, a, &b, c, rsc, epi, scratch),
        }
    }
}

/// Asserts every slice of an sgemm call is long enough.
#[allow(clippy::too_many_arguments)]
fn check_sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &[f32],
    rsc: usize,
    epi: Epilogue<'_>,
    scratch: &[f32],
) {
    a.check(m, k, "A");
    b.check(k, n, "B");
    if m > 0 && n > 0 {
        assert!(m == 1 || rsc >= n, "sgemm: rsc {rsc} < n {n}");
        let last = (m - 1).checked_mul(rsc).and_then(|r| r.checked_add(n - 1));
        assert!(
            matches!(last, Some(l) if l < c.len()),
            "sgemm: C ({m}x{n}, rsc {rsc}) does not fit its {} elements",
            c.len()
        );
    }
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

/// What a micro-kernel does with its tile after the dot products.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TileEpi {
    /// Added to row `i` of the tile (zeros when there is no bias, or for a
    /// `KC` block after the first).
    pub bias: [f32; MAX_MR],
    /// Add the value found in `C` (a residual, or the partial sum of earlier
    /// `KC` blocks).
    pub load_c: bool,
    /// The activation, on the last `KC` block only.
    pub act: Option<Act>,
}

/// A register-blocked `MR×NR` fp32 micro-kernel of one SIMD path.
///
/// Implemented by the path's capability token, so holding the value proves
/// the instructions exist.
pub(crate) trait MicroKernel: Copy {
    /// Rows of a tile (≤ [`MAX_MR`]).
    const MR: usize;
    /// Columns of a tile (`MR·NR ≤ MAX_TILE`).
    const NR: usize;
    /// Columns of `B` packed per block: a multiple of `NR`, ≤ [`NC_MAX`].
    const NC: usize;

    /// Computes `C[i][j] = epi(Σ_p A(min(i, mr-1), p)·B[p][j], C[i][j])` for
    /// `i < MR, j < NR, p < kc`, with `A(i, p) = *a.add(i*rs + p*cs)`,
    /// `B[p][j] = *b.add(p*NR + j)` and `C[i][j] = *c.add(i*rsc + j)`.
    ///
    /// # Safety
    /// `1 ≤ mr ≤ MR`, `kc ≥ 1`; `a.add(i*rs + p*cs)` is readable for
    /// `i < mr, p < kc`; `b` is readable for `kc·NR` elements; `c.add(i*rsc + j)`
    /// is readable and writable for `i < MR, j < NR`, and no other reference
    /// to those elements is live.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        self,
        kc: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        mr: usize,
        b: *const f32,
        c: *mut f32,
        rsc: usize,
        epi: &TileEpi,
    );
}

/// A source of `B` that can be packed into `[kc][nr]` panels.
pub(crate) trait PackB {
    /// Packs rows `p0..p0+kc` and columns `j0..j0+nc` of `B` into
    /// `nc.div_ceil(nr)` panels: panel `q` holds `B(p0+p, j0+q*nr+jj)` at
    /// `dst[q*kc*nr + p*nr + jj]`, zero for columns at or past `j0+nc`.
    fn pack(&self, nr: usize, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]);
}

impl PackB for MatRef<'_> {
    fn pack(&self, nr: usize, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        for (q, panel) in dst[..nc.div_ceil(nr) * kc * nr]
            .chunks_exact_mut(kc * nr)
            .enumerate()
        {
            let jq = j0 + q * nr;
            let width = nr.min(j0 + nc - jq);
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                let base = (p0 + p) * self.rs + jq * self.cs;
                if self.cs == 1 {
                    row[..width].copy_from_slice(&self.data[base..base + width]);
                } else {
                    for (jj, v) in row[..width].iter_mut().enumerate() {
                        *v = self.data[base + jj * self.cs];
                    }
                }
                row[width..].fill(0.0);
            }
        }
    }
}

/// The part of `scratch` that starts on a 64-byte boundary.
fn aligned(scratch: &mut [f32]) -> &mut [f32] {
    let skip = scratch.as_ptr().align_offset(64).min(ALIGN_SLACK);
    &mut scratch[skip..]
}

/// The blocked GEMM driver shared by the SIMD paths. Arguments are checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_blocked<U: MicroKernel, B: PackB>(
    uk: U,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: &B,
    c: &mut [f32],
    rsc: usize,
    epi: Epilogue<'_>,
    scratch: &mut [f32],
) {
    debug_assert!(U::MR <= MAX_MR && U::MR * U::NR <= MAX_TILE);
    debug_assert!(U::NC % U::NR == 0 && U::NC <= NC_MAX);
    debug_assert!(m > 0 && n > 0 && k > 0);
    let buf = aligned(scratch);
    let mut j0 = 0;
    while j0 < n {
        let nc = U::NC.min(n - j0);
        let panels = nc.div_ceil(U::NR);
        let mut p0 = 0;
        while p0 < k {
            let kc = KC.min(k - p0);
            let packed = &mut buf[..panels * kc * U::NR];
            b.pack(U::NR, p0, kc, j0, nc, packed);
            let first = p0 == 0;
            let mut te = TileEpi {
                bias: [0.0; MAX_MR],
                load_c: !first || epi.accumulate,
                act: (p0 + kc == k).then_some(epi.act),
            };
            let mut i0 = 0;
            while i0 < m {
                let mr = U::MR.min(m - i0);
                if let (true, Some(bias)) = (first, epi.bias) {
                    for (r, t) in te.bias[..U::MR].iter_mut().enumerate() {
                        *t = bias[i0 + r.min(mr - 1)];
                    }
                }
                // In bounds: i0 < m and p0 < k, checked against `a.data` by `check_sgemm`.
                let a_tile = a.data[i0 * a.rs + p0 * a.cs..].as_ptr();
                for (q, panel) in packed.chunks_exact(kc * U::NR).enumerate() {
                    let jq = j0 + q * U::NR;
                    let nr = U::NR.min(n - jq);
                    if mr == U::MR && nr == U::NR {
                        let c_tile = c[i0 * rsc + jq..].as_mut_ptr();
                        // SAFETY: rows i0..i0+mr of A and columns p0..p0+kc exist
                        // (check_sgemm bounds (m-1)*rs + (k-1)*cs); `panel` has
                        // kc*NR elements; the full tile lies in C since
                        // (i0+MR-1)*rsc + jq+NR-1 <= (m-1)*rsc + n-1 < c.len(),
                        // and `c` is borrowed mutably here only through `c_tile`.
                        unsafe {
                            uk.tile(
                                kc,
                                a_tile,
                                a.rs,
                                a.cs,
                                mr,
                                panel.as_ptr(),
                                c_tile,
                                rsc,
                                &te,
                            )
                        };
                    } else {
                        let mut tmp = [0.0f32; MAX_TILE];
                        if te.load_c {
                            for r in 0..mr {
                                let src = &c[(i0 + r) * rsc + jq..][..nr];
                                tmp[r * U::NR..r * U::NR + nr].copy_from_slice(src);
                            }
                        }
                        // SAFETY: A and the panel as above; `tmp` holds
                        // MR*NR <= MAX_TILE elements at row stride NR.
                        unsafe {
                            uk.tile(
                                kc,
                                a_tile,
                                a.rs,
                                a.cs,
                                mr,
                                panel.as_ptr(),
                                tmp.as_mut_ptr(),
                                U::NR,
                                &te,
                            )
                        };
                        for r in 0..mr {
                            c[(i0 + r) * rsc + jq..][..nr]
                                .copy_from_slice(&tmp[r * U::NR..r * U::NR + nr]);
                        }
                    }
                }
                i0 += U::MR;
            }
            p0 += kc;
        }
        j0 += nc;
    }
}
