//! The blocked GEMM machinery of the SIMD paths: micro-kernel and packing
//! interfaces, the driver, the im2col packer of dense convolutions and the
//! helpers of the direct depthwise kernels. The scalar path does not use it
//! (the tests drive it on every architecture with a portable micro-kernel).
//!
//! See [`crate::gemm`] for the blocking scheme.

use crate::Act;
use crate::conv::{ConvF32, ConvGeom};
use crate::gemm::{ALIGN_SLACK, Epilogue, Gemm, KC, MatRef, NC_MAX, check_c, check_epi_scratch};
use crate::reference::{self, input_row, valid_cols};

/// Largest `MR` of any micro-kernel.
pub(crate) const MAX_MR: usize = 8;

/// Largest `MR × NR` of any micro-kernel (the stack tile for edges).
pub(crate) const MAX_TILE: usize = 256;

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
    /// `B[p][j] = *b.add(p*NR + j)` and `C[i][j] = *c.add(i*rsc + j)` (the
    /// fields of `t`).
    ///
    /// # Safety
    /// `1 ≤ mr ≤ MR`, `kc ≥ 1`; `a.add(i*rs + p*cs)` is readable for
    /// `i < mr, p < kc`; `b` is readable for `kc·NR` elements; `c.add(i*rsc + j)`
    /// is readable and writable for `i < MR, j < NR`, and no other reference
    /// to those elements is live.
    unsafe fn tile(self, t: &Tile, epi: &TileEpi);
}

/// The operands of one micro-kernel call ([`MicroKernel::tile`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    /// Reduction depth of this block.
    pub kc: usize,
    /// `A(0, 0)` of the tile.
    pub a: *const f32,
    /// Row stride of `A`.
    pub rs: usize,
    /// Column stride of `A`.
    pub cs: usize,
    /// Valid rows (`1..=MR`); rows past it repeat the last one.
    pub mr: usize,
    /// The packed `[kc][NR]` panel of `B`.
    pub b: *const f32,
    /// `C(0, 0)` of the tile.
    pub c: *mut f32,
    /// Row stride of `C`.
    pub rsc: usize,
}

impl Tile {
    /// The start of each of the `N` rows of `A` a kernel reads: row `i` for
    /// `i < mr`, the last valid row after it.
    #[inline(always)]
    pub fn rows<const N: usize>(&self) -> [*const f32; N] {
        core::array::from_fn(|i| self.a.wrapping_add(i.min(self.mr - 1) * self.rs))
    }
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
/// for `m, n, k > 0`, with `B` from any packer (`g.b` is ignored). Checks
/// what the micro-kernel reads and writes through pointers (`A`, `C`, bias,
/// scratch); `B` is read by the packer with bounds checks.
pub(crate) fn sgemm_blocked<U: MicroKernel, B: PackB>(
    uk: U,
    g: &Gemm<'_>,
    b: &B,
    c: &mut [f32],
    scratch: &mut [f32],
) {
    let Gemm {
        m,
        n,
        k,
        a,
        rsc,
        epi,
        ..
    } = *g;
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
            // Panel outer, row blocks inner: one packed panel (`kc × NR`)
            // stays in L1 while every block of `MR` rows of `A` passes it
            // (the same arithmetic per element in any order).
            for (q, panel) in packed.chunks_exact(kc * U::NR).enumerate() {
                let jq = j0 + q * U::NR;
                let nr = U::NR.min(n - jq);
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
                    let tile = |c, rsc| Tile {
                        kc,
                        a: a_tile,
                        rs: a.rs,
                        cs: a.cs,
                        mr,
                        b: panel.as_ptr(),
                        c,
                        rsc,
                    };
                    if mr == U::MR && nr == U::NR {
                        let c_tile = c[i0 * rsc + jq..].as_mut_ptr();
                        // SAFETY: rows i0..i0+mr of A and columns p0..p0+kc exist
                        // (checked: (m-1)*rs + (k-1)*cs < a.data.len()); `panel` has
                        // kc*NR elements; the full tile lies in C since
                        // (i0+MR-1)*rsc + jq+NR-1 <= (m-1)*rsc + n-1 < c.len(),
                        // and `c` is borrowed mutably here only through `c_tile`.
                        unsafe { uk.tile(&tile(c_tile, rsc), &te) };
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
                        unsafe { uk.tile(&tile(tmp.as_mut_ptr(), U::NR), &te) };
                        for r in 0..mr {
                            c[(i0 + r) * rsc + jq..][..nr]
                                .copy_from_slice(&tmp[r * U::NR..r * U::NR + nr]);
                        }
                    }
                    i0 += U::MR;
                }
            }
            p0 += kc;
        }
        j0 += nc;
    }
}

/// A dense convolution as GEMM on a SIMD path (operands already checked).
pub(crate) fn conv_dense<U: MicroKernel>(
    uk: U,
    c: &ConvF32<'_>,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let g = &c.g;
    let (m, n, k) = (g.cout, g.out_h() * g.out_w(), g.cin * g.k * g.k);
    let b = MatRef {
        data: c.input,
        rs: g.h * g.w,
        cs: 1,
    };
    let gemm = Gemm {
        m,
        n,
        k,
        a: MatRef {
            data: c.weight,
            rs: k,
            cs: 1,
        },
        b,
        rsc: n,
        epi: Epilogue {
            bias: Some(c.bias),
            accumulate: false,
            act: c.act,
        },
    };
    if g.k == 1 && g.stride == 1 {
        sgemm_blocked(uk, &gemm, &b, out, scratch);
    } else {
        let im2col = Im2col { g, input: c.input };
        sgemm_blocked(uk, &gemm, &im2col, out, scratch);
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

/// The depthwise convolution loop the SIMD paths share: every output row of
/// every channel, border columns (and strides above 2) by the scalar
/// reference pixel, the interior in vector blocks of `LANES` columns, four
/// at a time (`four`) so four FMA chains hide the latency, then one at a time
/// (`one`); the last block may overlap the one before it, recomputing the
/// same values. `span` is the inputs a block reads from its first tap's
/// column (see [`dw_vector_cols`]); blocks never read past the row.
#[inline(always)]
pub(crate) fn dw_rows<const LANES: usize>(
    a: &ConvF32<'_>,
    out: &mut [f32],
    span: usize,
    one: impl Fn(&DwRow<'_>, usize, &mut [f32]),
    four: impl Fn(&DwRow<'_>, usize, &mut [f32]),
) {
    let g = &a.g;
    let (oh, ow, kk, hw) = (g.out_h(), g.out_w(), g.k * g.k, g.h * g.w);
    let (x_lo, x_hi) = dw_vector_cols(g, LANES, span);
    for c in 0..g.cin {
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
            let row = DwRow {
                g,
                plane: &a.input[c * hw..(c + 1) * hw],
                taps: &a.weight[c * kk..(c + 1) * kk],
                bias: a.bias[c],
                act: a.act,
                oy,
            };
            let Some(x_hi) = x_hi else {
                (0..ow).for_each(|ox| orow[ox] = row.pixel(ox));
                continue;
            };
            (0..x_lo).for_each(|ox| orow[ox] = row.pixel(ox));
            (x_hi + LANES..ow).for_each(|ox| orow[ox] = row.pixel(ox));
            let mut ox = x_lo;
            while ox + 3 * LANES <= x_hi {
                four(&row, ox, orow);
                ox += 4 * LANES;
            }
            while ox < x_hi {
                one(&row, ox, orow);
                ox += LANES;
            }
            if ox < x_hi + LANES {
                one(&row, x_hi, orow);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    use std::vec;
    use std::vec::Vec;

    /// A portable micro-kernel with odd tile sizes: the driver and the
    /// packers on every architecture, armv7 included.
    #[derive(Clone, Copy)]
    struct OddTile;

    impl MicroKernel for OddTile {
        const MR: usize = 3;
        const NR: usize = 5;
        const NC: usize = 10;

        unsafe fn tile(self, t: &Tile, epi: &TileEpi) {
            for i in 0..Self::MR {
                for j in 0..Self::NR {
                    let mut acc = 0.0f32;
                    for p in 0..t.kc {
                        let row = i.min(t.mr - 1) * t.rs;
                        // SAFETY: the MicroKernel contract.
                        acc += unsafe { *t.a.add(row + p * t.cs) * *t.b.add(p * Self::NR + j) };
                    }
                    let mut v = acc + epi.bias[i];
                    // SAFETY: the MicroKernel contract.
                    let cp = unsafe { t.c.add(i * t.rsc + j) };
                    if epi.load_c {
                        // SAFETY: as above.
                        v += unsafe { *cp };
                    }
                    if let Some(act) = epi.act {
                        v = act.apply(v);
                    }
                    // SAFETY: as above.
                    unsafe { *cp = v };
                }
            }
        }
    }

    fn values(r: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| r.f32()).collect()
    }

    /// `got` within the any-order f32 summation bound of the exact `(want,
    /// magnitude)` over depth `d` (see `tests/equivalence.rs`).
    fn close(got: f32, (want, mag): (f64, f64), d: usize) -> bool {
        let eps = f32::EPSILON as f64;
        (got as f64 - want).abs() <= 1.2 * ((d as f64 + 2.0) * eps * mag + eps * want.abs()) + 1e-30
    }

    /// Tiles at every edge (m, n not multiples of MR, NR, NC) and depths
    /// across `KC` blocks, against the exact sums.
    #[test]
    fn blocked_driver_with_odd_tiles() {
        let mut r = Rng(0x5EED_0003);
        for case in 0..60 {
            let (m, n, k) = (1 + r.below(13), 1 + r.below(37), 1 + r.below(3 * KC));
            let transposed = case % 2 == 1;
            let a = values(&mut r, m * k);
            let (rs, cs) = if transposed { (1, m) } else { (k, 1) };
            let b = values(&mut r, k * n);
            let bias = values(&mut r, m);
            let rsc = n + case % 3;
            let g = Gemm {
                m,
                n,
                k,
                a: MatRef { data: &a, rs, cs },
                b: MatRef {
                    data: &b,
                    rs: n,
                    cs: 1,
                },
                rsc,
                epi: Epilogue {
                    bias: Some(&bias),
                    accumulate: false,
                    act: Act::None,
                },
            };
            let mut c = vec![f32::NAN; (m - 1) * rsc + n];
            let mut scratch = vec![f32::NAN; crate::sgemm_scratch_len(k)];
            sgemm_blocked(OddTile, &g, &g.b, &mut c, &mut scratch);
            for i in 0..m {
                for j in 0..n {
                    let terms = (0..k).map(|p| g.a.at(i, p) as f64 * g.b.at(p, j) as f64);
                    let want = terms.clone().sum::<f64>() + bias[i] as f64;
                    let mag = terms.map(f64::abs).sum::<f64>() + bias[i].abs() as f64;
                    let got = c[i * rsc + j];
                    assert!(
                        close(got, (want, mag), k),
                        "{m}x{n}x{k} [{i}][{j}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The dense convolution (im2col packing included) through the driver.
    #[test]
    fn conv_dense_with_odd_tiles() {
        let mut r = Rng(0x5EED_0004);
        for _ in 0..40 {
            let g = ConvGeom {
                cin: 1 + r.below(6),
                h: 1 + r.below(12),
                w: 1 + r.below(12),
                cout: 1 + r.below(7),
                k: r.pick(&[1, 3, 5]),
                stride: r.pick(&[1, 2, 3]),
                groups: 1,
            };
            let (input, weight, bias) = (
                values(&mut r, g.cin * g.h * g.w),
                values(&mut r, g.weight_len()),
                values(&mut r, g.cout),
            );
            let a = ConvF32 {
                g,
                input: &input,
                weight: &weight,
                bias: &bias,
                act: Act::None,
            };
            let n = g.cout * g.out_h() * g.out_w();
            let (mut got, mut want) = (vec![0f32; n], vec![0f32; n]);
            conv_dense(OddTile, &a, &mut got, &mut vec![0f32; g.scratch_len()]);
            reference::conv2d_f32(&g, &input, &weight, &bias, Act::None, &mut want);
            let depth = g.cin * g.k * g.k;
            for (i, (&x, &y)) in got.iter().zip(&want).enumerate() {
                // Both are within the bound of the exact sum; compare them with twice it.
                let mag = depth as f64 * 2.0;
                assert!(
                    close(x, (y as f64, 2.0 * mag), depth),
                    "{g:?} [{i}]: {x} vs {y}"
                );
            }
        }
    }

    /// The im2col packer against im2col written out, for random blocks.
    #[test]
    fn im2col_packs_the_im2col_matrix() {
        let mut r = Rng(0x5EED_0005);
        for _ in 0..300 {
            let g = ConvGeom {
                cin: 1 + r.below(5),
                h: 1 + r.below(10),
                w: 1 + r.below(10),
                cout: 1,
                k: r.pick(&[1, 3, 5]),
                stride: r.pick(&[1, 2, 3]),
                groups: 1,
            };
            let input = values(&mut r, g.cin * g.h * g.w);
            let (kdim, ndim) = (g.cin * g.k * g.k, g.out_h() * g.out_w());
            let pad = g.pad() as isize;
            let naive = |p: usize, q: usize| -> f32 {
                let (ci, ky, kx) = (p / (g.k * g.k), p / g.k % g.k, p % g.k);
                let (oy, ox) = (q / g.out_w(), q % g.out_w());
                let iy = (oy * g.stride + ky) as isize - pad;
                let ix = (ox * g.stride + kx) as isize - pad;
                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                    0.0
                } else {
                    input[(ci * g.h + iy as usize) * g.w + ix as usize]
                }
            };
            let nr = r.pick(&[1, 4, 5, 8, 16]);
            let p0 = r.below(kdim);
            let kc = 1 + r.below(kdim - p0);
            let j0 = r.below(ndim);
            let nc = 1 + r.below(ndim - j0);
            let mut dst = vec![f32::NAN; nc.div_ceil(nr) * kc * nr];
            let im2col = Im2col {
                g: &g,
                input: &input,
            };
            im2col.pack(nr, p0, kc, j0, nc, &mut dst);
            for (idx, &v) in dst.iter().enumerate() {
                let (q, p, jj) = (idx / (kc * nr), idx / nr % kc, idx % nr);
                let col = j0 + q * nr + jj;
                let want = if col < j0 + nc {
                    naive(p0 + p, col)
                } else {
                    0.0
                };
                assert_eq!(v.to_bits(), want.to_bits(), "{g:?} p {} col {col}", p0 + p);
            }
        }
    }
}
