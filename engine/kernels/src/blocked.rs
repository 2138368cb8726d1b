//! The blocked GEMM machinery of the SIMD paths: micro-kernel and packing
//! interfaces, the driver, the im2col packer of dense convolutions and the
//! helpers of the direct depthwise kernels. The scalar path does not use it
//! (the tests drive it on every architecture with a portable micro-kernel).
//!
//! See [`crate::gemm`] for the blocking scheme.

use crate::Act;
use crate::conv::ConvGeom;
use crate::gemm::{ALIGN_SLACK, Epilogue, KC, MatRef, NC_MAX, check_c, check_epi_scratch};
use crate::reference::{self, input_row, valid_cols};

/// Largest `MR` of any micro-kernel.
pub(crate) const MAX_MR: usize = 8;

/// Largest `MR × NR` of any micro-kernel (the stack tile for edges).
pub(crate) const MAX_TILE: usize = 128;

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

/// The blocked GEMM driver shared by the SIMD paths: [`crate::Kernels::sgemm`]
/// for `m, n, k > 0`, with `B` from any packer. Checks what the micro-kernel
/// reads and writes through pointers (`A`, `C`, bias, scratch); `B` is read by
/// the packer with bounds checks.
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
    assert!(m > 0 && n > 0 && k > 0);
    a.check(m, k, "A");
    check_c(m, n, c, rsc);
    check_epi_scratch(m, k, epi, scratch);
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
                // In bounds: i0 < m and p0 < k, checked against `a.data` above.
                let a_tile = a.data[i0 * a.rs + p0 * a.cs..].as_ptr();
                for (q, panel) in packed.chunks_exact(kc * U::NR).enumerate() {
                    let jq = j0 + q * U::NR;
                    let nr = U::NR.min(n - jq);
                    if mr == U::MR && nr == U::NR {
                        let c_tile = c[i0 * rsc + jq..].as_mut_ptr();
                        // SAFETY: rows i0..i0+mr of A and columns p0..p0+kc exist
                        // (checked: (m-1)*rs + (k-1)*cs < a.data.len()); `panel` has
                        // kc*NR elements; the full tile lies in C since
                        // (i0+MR-1)*rsc + jq+NR-1 <= (m-1)*rsc + n-1 < c.len(),
                        // and `c` is borrowed mutably here only through `c_tile`.
                        unsafe {
                            uk.tile(kc, a_tile, a.rs, a.cs, mr, panel.as_ptr(), c_tile, rsc, &te)
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

/// A dense convolution as GEMM on a SIMD path (slices already checked).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_dense<U: MicroKernel>(
    uk: U,
    g: &ConvGeom,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    act: Act,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (m, n, k) = (g.cout, g.out_h() * g.out_w(), g.cin * g.k * g.k);
    let a = MatRef {
        data: weight,
        rs: k,
        cs: 1,
    };
    let epi = Epilogue {
        bias: Some(bias),
        accumulate: false,
        act,
    };
    if g.k == 1 && g.stride == 1 {
        let b = MatRef {
            data: input,
            rs: g.h * g.w,
            cs: 1,
        };
        sgemm_blocked(uk, m, n, k, a, &b, out, n, epi, scratch);
    } else {
        sgemm_blocked(uk, m, n, k, a, &Im2col { g, input }, out, n, epi, scratch);
    }
}

/// The im2col matrix of a dense convolution, `[cin·k·k, out_h·out_w]`: row
/// `p = (ci·k + ky)·k + kx`, column `q = oy·out_w + ox` holds
/// `input[ci, oy·s + ky - pad, ox·s + kx - pad]`, or 0 in the padding.
pub(crate) struct Im2col<'a> {
    /// The geometry (dense).
    pub g: &'a ConvGeom,
    /// The CHW input.
    pub input: &'a [f32],
}

impl PackB for Im2col<'_> {
    fn pack(&self, nr: usize, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        let g = self.g;
        let (h, w, k, s, pad, ow) = (g.h, g.w, g.k, g.stride, g.pad(), g.out_w());
        let (kk, hw) = (k * k, h * w);
        for (q, panel) in dst[..nc.div_ceil(nr) * kc * nr]
            .chunks_exact_mut(kc * nr)
            .enumerate()
        {
            let jq = j0 + q * nr;
            let width = nr.min(j0 + nc - jq);
            // Split the panel's columns into runs of one output row each; for
            // every run and tap the valid input span is computed once and then
            // copied for every input channel of the block.
            let mut col = 0;
            while col < width {
                let (oy, ox0) = ((jq + col) / ow, (jq + col) % ow);
                let len = (ow - ox0).min(width - col);
                for tap in 0..kk {
                    // Rows p = ci*kk + tap with p0 <= p < p0 + kc.
                    let ci_lo = p0.saturating_sub(tap).div_ceil(kk);
                    let ci_hi = (p0 + kc).saturating_sub(tap).div_ceil(kk);
                    if ci_lo >= ci_hi {
                        continue;
                    }
                    let (ky, kx) = (tap / k, tap % k);
                    let iy = input_row(h, s, pad, oy, ky);
                    let (lo, hi) = valid_cols(w, s, pad, kx, ox0, ox0 + len);
                    for ci in ci_lo..ci_hi {
                        let p = ci * kk + tap - p0;
                        let run = &mut panel[p * nr + col..p * nr + col + len];
                        let Some(iy) = iy.filter(|_| lo < hi) else {
                            run.fill(0.0);
                            continue;
                        };
                        let (zl, zh) = (lo - ox0, hi - ox0);
                        run[..zl].fill(0.0);
                        run[zh..].fill(0.0);
                        let first = ci * hw + iy * w + lo * s + kx - pad;
                        if s == 1 {
                            run[zl..zh].copy_from_slice(&self.input[first..first + (zh - zl)]);
                        } else {
                            for (t, v) in run[zl..zh].iter_mut().enumerate() {
                                *v = self.input[first + t * s];
                            }
                        }
                    }
                }
                col += len;
            }
            if width < nr {
                for row in panel.chunks_exact_mut(nr) {
                    row[width..].fill(0.0);
                }
            }
        }
    }
}

/// One output row of one channel of a depthwise convolution.
pub(crate) struct DwRow<'a> {
    /// The geometry (depthwise).
    pub g: &'a ConvGeom,
    /// The channel's input plane, `h·w`.
    pub plane: &'a [f32],
    /// The channel's `k·k` taps.
    pub taps: &'a [f32],
    /// The channel's bias.
    pub bias: f32,
    /// The activation.
    pub act: Act,
    /// The output row.
    pub oy: usize,
}

impl DwRow<'_> {
    /// Output `ox` by the reference order (the border pixels of SIMD kernels).
    pub fn pixel(&self, ox: usize) -> f32 {
        let g = self.g;
        let sum = reference::dw_pixel(self.plane, self.taps, g.h, g.w, g.k, g.stride, self.oy, ox);
        self.act.apply(sum + self.bias)
    }
}

/// Columns where a depthwise SIMD block of `lanes` outputs, reading `span`
/// consecutive inputs from the first tap's column, may start: `x_lo..=x_hi`
/// with `ox·s >= pad` (no left padding) and
/// `ox·s + (k-1) - pad + span - 1 <= w - 1` (no right padding, no over-read);
/// `None` when there is none or the stride is above 2.
pub(crate) fn dw_vector_cols(g: &ConvGeom, lanes: usize, span: usize) -> (usize, Option<usize>) {
    let (s, pad, ow) = (g.stride, g.pad(), g.out_w());
    let x_lo = pad.div_ceil(s);
    let x_hi = (g.w + pad + 1)
        .checked_sub(g.k + span)
        .map(|top| (top / s).min(ow.saturating_sub(lanes)))
        .filter(|&x_hi| s <= 2 && ow >= lanes && x_hi >= x_lo);
    (x_lo, x_hi)
}
