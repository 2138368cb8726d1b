//! Winograd F(4×4, 3×3) for dense 3×3 stride-1 f32 convolutions.
//!
//! A 4×4 block of outputs of one channel pair is `Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A`
//! where `g` is the 3×3 kernel and `d` the 6×6 input patch around the block
//! (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2016; interpolation points 0, ±1, ±2, ∞, the matrices of ncnn and NNPACK).
//! Summed over input channels, the element-wise products become 36
//! independent GEMMs, one per position `ξ` of the 6×6 transformed tile:
//! `M_ξ[Cout][T] = U_ξ[Cout][Cin] · V_ξ[Cin][T]` over `T` tiles. They run
//! through [`Kernels::sgemm`], so every SIMD path's GEMM serves here too: 36
//! products per 4×4 outputs and input channel instead of 144.
//!
//! # Steps
//! 1. [`winograd_f43_weights`], once per session: `U[ξ][Cout][Cin]` from the
//!    `[Cout][Cin][3][3]` weights (f64 arithmetic, one rounding to f32).
//! 2. [`Kernels::winograd_f43_f32`], per frame, for blocks of
//!    [`WINO_TILES`] output tiles (row-major over the `⌈h/4⌉×⌈w/4⌉` tiles;
//!    the tiles on the right and bottom edges are partial: their input is
//!    the convolution's zero padding and their outputs past the edge are
//!    never written):
//!    the input transform `Bᵀ·d·B` of every channel into `V[36][Cin][T]`,
//!    then per block of at most [`WINO_CO_BLOCK`] output channels the 36
//!    GEMMs into `M[36][co][T]` and the output transform `Aᵀ·m·A`, plus bias
//!    and the activation (the path's [`Kernels::act_f32`]), into the CHW
//!    output. The transforms run over 16 tiles at once on fixed-size arrays
//!    (LLVM vectorises them on every target).
//!
//! # Float agreement
//! The transforms scale values up (`‖Bᵀ‖∞ = 10`, `‖G‖∞ = ½`, `‖Aᵀ‖∞ = 19`),
//! so the rounding error is larger than the direct convolution's: each
//! output is within
//! `(cin + 16)·ε·100·¼·361·Σ_ci max|d_ci|·max|g_co,ci| + 8·ε·|bias|`
//! of the exact convolution (before the activation; ε = 2⁻²³): the GEMM's
//! `(k + 2)·ε·Σ|u·v|` bound with `|v| ≤ 100·max|d|` and `|u| ≤ ¼·max|g|`,
//! carried through `Aᵀ·A` (row sums 19, so ×361), and the transforms' own
//! roundings (a few ε of the same magnitudes) inside the 16 of margin.
//! `tests/winograd.rs` checks every path against it; on the model's real
//! layers the error is far below it (the bound is for the worst case).

use crate::Act;
use crate::Kernels;
use crate::OutPlanes;
use crate::conv::ConvGeom;
use crate::gemm::{Epilogue, Gemm, MatRef, sgemm_scratch_len};

/// Output tiles per block: the columns of the 36 GEMMs. Each `U_ξ` row
/// block is reused over 32 tiles (one 32-column panel of the AVX-512
/// micro-kernel, two of AVX2's); `V` is `36·Cin·32` f32 (1.2 MB at 256
/// channels). Measured on AVX-512 at 256 channels, 80×80: 16 tiles is far
/// slower, 64 no faster.
pub const WINO_TILES: usize = 32;

/// Output channels per block of GEMMs and output transforms (the rows of
/// `M` held at once). The GEMM packs `V_ξ` once per block, so one block of
/// all 256 channels of the neck beats four of 64 (repacking was 8% of the
/// time).
pub const WINO_CO_BLOCK: usize = 256;

/// Tiles per transform batch (the lanes of the transforms' arrays).
const L: usize = 16;

/// Elements a 64-byte alignment of a scratch part can skip.
const SLACK: usize = 16;

/// Whether the Winograd kernel computes convolution `g`: a supported dense
/// 3×3 stride-1 geometry.
pub fn winograd_f43_fits(g: &ConvGeom) -> bool {
    g.is_supported() && g.groups == 1 && g.k == 3 && g.stride == 1
}

/// f32 elements of `U`, the transformed weights: `36·cout·cin`.
pub fn winograd_f43_weights_len(g: &ConvGeom) -> usize {
    36 * g.cout * g.cin
}

/// f32 scratch elements [`Kernels::winograd_f43_f32`] needs for `g` (the
/// same for every path): `V` (`36·cin·WINO_TILES`), one channel block of
/// `M` (`36·min(cout, WINO_CO_BLOCK)·WINO_TILES`), the GEMM's packing
/// scratch ([`sgemm_scratch_len`]`(cin)`), and 64-byte alignment slack.
pub fn winograd_f43_scratch_len(g: &ConvGeom) -> usize {
    let v = 36 * g.cin * WINO_TILES;
    let m = 36 * g.cout.min(WINO_CO_BLOCK) * WINO_TILES;
    v + m + sgemm_scratch_len(g.cin) + 3 * SLACK
}

/// `G` of F(4, 3): the weight transform (6×3).
const G: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Transforms `[cout][cin][3][3]` weights into `u` = `U[36][cout][cin]`,
/// `U_ξ = (G·g·Gᵀ)[ξ / 6][ξ % 6]`, in f64 with one rounding to f32.
///
/// Panics unless `g` fits ([`winograd_f43_fits`]), `weight` holds
/// `g.weight_len()` and `u` [`winograd_f43_weights_len`] elements (a
/// programmer error: the loader validates shapes).
pub fn winograd_f43_weights(g: &ConvGeom, weight: &[f32], u: &mut [f32]) {
    let weight = &weight[..g.weight_len()];
    winograd_f43_weights_with(
        g,
        |co, ci| {
            let mut k = [0f32; 9];
            k.copy_from_slice(&weight[(co * g.cin + ci) * 9..][..9]);
            k
        },
        u,
    );
}

/// [`winograd_f43_weights`] with the 3×3 kernel of each `(co, ci)` pair
/// from `taps(co, ci)` (row-major): for weights stored in another type,
/// expanded nine at a time rather than into a whole f32 copy.
///
/// Panics unless `g` fits and `u` holds [`winograd_f43_weights_len`]
/// elements.
pub fn winograd_f43_weights_with(
    g: &ConvGeom,
    mut taps: impl FnMut(usize, usize) -> [f32; 9],
    u: &mut [f32],
) {
    assert!(winograd_f43_fits(g), "winograd: unsupported geometry {g:?}");
    let (cin, cout) = (g.cin, g.cout);
    let u = &mut u[..winograd_f43_weights_len(g)];
    for co in 0..cout {
        for ci in 0..cin {
            let k = taps(co, ci);
            // t = G·g (6×3), then t·Gᵀ (6×6).
            let mut t = [[0f64; 3]; 6];
            for (ti, gi) in t.iter_mut().zip(&G) {
                for (b, tb) in ti.iter_mut().enumerate() {
                    *tb = (0..3).map(|a| gi[a] * k[a * 3 + b] as f64).sum();
                }
            }
            for (i, ti) in t.iter().enumerate() {
                for (j, gj) in G.iter().enumerate() {
                    let v: f64 = (0..3).map(|b| ti[b] * gj[b]).sum();
                    u[((i * 6 + j) * cout + co) * cin + ci] = v as f32;
                }
            }
        }
    }
}

/// The operands of [`Kernels::winograd_f43_f32`]: a dense 3×3 stride-1
/// convolution with weights transformed by [`winograd_f43_weights`], of which
/// the output channels `co_start..co_end` are computed.
#[derive(Clone, Copy, Debug)]
pub struct WinogradF32<'a> {
    /// The whole convolution's geometry ([`winograd_f43_fits`]).
    pub g: ConvGeom,
    /// The CHW input, `cin·h·w`.
    pub input: &'a [f32],
    /// The transformed weights, `U[36][cout][cin]` of every output channel.
    pub u: &'a [f32],
    /// One bias per output channel (all `cout` of them).
    pub bias: &'a [f32],
    /// The activation applied last.
    pub act: Act,
    /// First output channel computed.
    pub co_start: usize,
    /// One past the last output channel computed.
    pub co_end: usize,
}

/// `dst[di[i]] = (Bᵀ·x)[i]` for the column (or row) `x = src[si[..]]` of six
/// lane vectors (written into place: returning arrays costs memcpy calls).
#[inline(always)]
fn bt6(src: &[[f32; L]], si: [usize; 6], dst: &mut [[f32; L]], di: [usize; 6]) {
    for l in 0..L {
        let [x0, x1, x2, x3, x4, x5] = si.map(|i| src[i][l]);
        dst[di[0]][l] = 4.0 * x0 - 5.0 * x2 + x4;
        dst[di[1]][l] = (x4 + x3) - 4.0 * (x1 + x2);
        dst[di[2]][l] = (x4 - x3) + 4.0 * (x1 - x2);
        dst[di[3]][l] = (x4 - x2) + 2.0 * (x3 - x1);
        dst[di[4]][l] = (x4 - x2) - 2.0 * (x3 - x1);
        dst[di[5]][l] = 4.0 * x1 - 5.0 * x3 + x5;
    }
}

/// `dst[di[i]] = (Aᵀ·x)[i] + add` for the column (or row) `x = src[si[..]]`
/// of six lane vectors.
#[inline(always)]
fn at6(src: &[[f32; L]], si: [usize; 6], dst: &mut [[f32; L]], di: [usize; 4], add: f32) {
    for l in 0..L {
        let [x0, x1, x2, x3, x4, x5] = si.map(|i| src[i][l]);
        let (s12, d12, s34, d34) = (x1 + x2, x1 - x2, x3 + x4, x3 - x4);
        dst[di[0]][l] = (x0 + s12 + s34) + add;
        dst[di[1]][l] = (d12 + 2.0 * d34) + add;
        dst[di[2]][l] = (s12 + 4.0 * s34) + add;
        dst[di[3]][l] = (d12 + 8.0 * d34 + x5) + add;
    }
}

/// Indices `[base, base + step, …]` of six lane vectors.
#[inline(always)]
fn six(base: usize, step: usize) -> [usize; 6] {
    core::array::from_fn(|i| base + i * step)
}

/// `Bᵀ·d·B` of 16 patches `d[r·6 + c][lane]`, in place (`t` is scratch).
#[inline(always)]
fn input_transform(d: &mut [[f32; L]; 36], t: &mut [[f32; L]; 36]) {
    for c in 0..6 {
        bt6(d, six(c, 6), t, six(c, 6));
    }
    for i in 0..6 {
        bt6(t, six(i * 6, 1), d, six(i * 6, 1));
    }
}

/// `Aᵀ·m·A + bias` of 16 transformed tiles `m[ξ][lane]` into
/// `y[i·4 + j][lane]` (`t` is scratch).
#[inline(always)]
fn output_transform(m: &[[f32; L]; 36], bias: f32, t: &mut [[f32; L]; 24], y: &mut [[f32; L]; 16]) {
    for c in 0..6 {
        at6(m, six(c, 6), t, [c, 6 + c, 12 + c, 18 + c], 0.0);
    }
    for i in 0..4 {
        at6(
            t,
            six(i * 6, 1),
            y,
            core::array::from_fn(|j| i * 4 + j),
            bias,
        );
    }
}

/// The tile grid of `g`: `(tiles across, tiles in all)`.
fn tile_grid(g: &ConvGeom) -> (usize, usize) {
    let tw = g.w.div_ceil(4);
    (tw, g.h.div_ceil(4) * tw)
}

/// Splits `scratch` into 64-byte aligned `V`, `M` and GEMM scratch.
fn split_scratch<'s>(g: &ConvGeom, scratch: &'s mut [f32]) -> [&'s mut [f32]; 3] {
    let lens = [
        36 * g.cin * WINO_TILES,
        36 * g.cout.min(WINO_CO_BLOCK) * WINO_TILES,
        sgemm_scratch_len(g.cin) + SLACK,
    ];
    let mut rest = scratch;
    let mut parts: [&'s mut [f32]; 3] = [&mut [], &mut [], &mut []];
    for (p, len) in parts.iter_mut().zip(lens) {
        let skip = rest.as_ptr().align_offset(64).min(SLACK);
        let (a, b) = core::mem::take(&mut rest)[skip..].split_at_mut(len);
        *p = a;
        rest = b;
    }
    parts
}

/// The input transform of tiles `t0..t0 + nt` of every input channel into
/// `v[ξ][ci][WINO_TILES]`.
#[inline(always)]
fn transform_input(g: &ConvGeom, input: &[f32], t0: usize, nt: usize, v: &mut [f32]) {
    let (tw, _) = tile_grid(g);
    let (h, w, cin) = (g.h, g.w, g.cin);
    let mut d = [[0f32; L]; 36];
    let mut tmp = [[0f32; L]; 36];
    for ci in 0..cin {
        let plane = &input[ci * h * w..(ci + 1) * h * w];
        for b in (0..nt).step_by(L) {
            let lanes = L.min(nt - b);
            for lane in 0..L {
                if lane >= lanes {
                    for row in d.iter_mut() {
                        row[lane] = 0.0;
                    }
                    continue;
                }
                let t = t0 + b + lane;
                let (y0, x0) = ((t / tw) * 4, (t % tw) * 4);
                // The patch covers rows y0-1..y0+5 and columns x0-1..x0+5.
                if y0 >= 1 && x0 >= 1 && y0 + 5 <= h && x0 + 5 <= w {
                    for r in 0..6 {
                        let src = &plane[(y0 - 1 + r) * w + x0 - 1..][..6];
                        for (c, &s) in src.iter().enumerate() {
                            d[r * 6 + c][lane] = s;
                        }
                    }
                } else {
                    for r in 0..6 {
                        let y = (y0 + r).wrapping_sub(1);
                        for c in 0..6 {
                            let x = (x0 + c).wrapping_sub(1);
                            d[r * 6 + c][lane] = if y < h && x < w {
                                plane[y * w + x]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            input_transform(&mut d, &mut tmp);
            for (xi, dx) in d.iter().enumerate() {
                let dst = &mut v[(xi * cin + ci) * WINO_TILES + b..];
                if lanes == L {
                    // A fixed-size copy: vector moves, not a memcpy call.
                    dst[..L].copy_from_slice(dx);
                } else {
                    dst[..lanes].copy_from_slice(&dx[..lanes]);
                }
            }
        }
    }
}

impl Kernels {
    /// out = act(conv3×3(input, weight) + bias) for output channels
    /// `co_start..co_end` of a dense 3×3 stride-1 convolution, by Winograd
    /// F(4×4, 3×3) (module docs) with the weights `U` of
    /// [`winograd_f43_weights`]; `out` holds those channels' planes
    /// (`(co_end − co_start)·h·w`, CHW).
    ///
    /// `scratch` holds at least [`winograd_f43_scratch_len`] elements. Panics
    /// on a geometry that does not fit, an empty or out-of-range channel
    /// range, or a short slice (programmer errors: the loader validates
    /// shapes).
    pub fn winograd_f43_f32(&self, a: &WinogradF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
        let hw = a.g.h * a.g.w;
        assert!(
            out.len() >= a.co_end.saturating_sub(a.co_start) * hw,
            "winograd: out too short"
        );
        self.winograd_f43_f32_planes(a, &mut OutPlanes::new(out, hw), scratch);
    }

    /// [`Kernels::winograd_f43_f32`] of the output rows `out.cols()` only
    /// (of every channel's plane; whole rows of 4×4 tiles: `out.cols()`
    /// starts at a multiple of `4·w` and ends at one or at `h·w`): what one
    /// thread of several sharing the convolution by rows runs. Any
    /// partition into tile rows writes the same bits as the whole. Panics as
    /// [`Kernels::winograd_f43_f32`] does, and on columns that are not
    /// whole tile rows.
    pub fn winograd_f43_f32_planes(
        &self,
        a: &WinogradF32<'_>,
        out: &mut OutPlanes<'_, f32>,
        scratch: &mut [f32],
    ) {
        let g = &a.g;
        assert!(winograd_f43_fits(g), "winograd: unsupported geometry {g:?}");
        assert!(
            a.co_start < a.co_end && a.co_end <= g.cout,
            "winograd: bad channel range"
        );
        let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
        let hw = h * w;
        assert!(a.input.len() >= cin * hw, "winograd: input too short");
        assert!(
            a.u.len() >= winograd_f43_weights_len(g),
            "winograd: weights too short"
        );
        assert!(a.bias.len() >= cout, "winograd: bias too short");
        assert!(
            out.planes() >= a.co_end - a.co_start && out.n() == hw,
            "winograd: out too short"
        );
        assert!(
            scratch.len() >= winograd_f43_scratch_len(g),
            "winograd: scratch too short"
        );
        let cols = out.cols();
        let row_px = 4 * w;
        assert!(
            [cols.start, cols.end]
                .iter()
                .all(|&c| c.is_multiple_of(row_px) || c == hw),
            "winograd: columns {cols:?} are not whole rows of tiles"
        );
        if cols.is_empty() {
            return;
        }
        // SAFETY: the table's contract (crate::table): the slot's path runs
        // on this CPU, and the operands were checked above.
        unsafe { (self.slots.winograd_f32)(self, a, out, scratch) }
    }
}

/// The portable [`crate::Slot::WinogradF32`]: [`winograd_rows`] compiled for
/// the target's baseline vector width.
///
/// # Safety
/// None beyond the slot contract (`crate::table`): operands checked by
/// [`Kernels::winograd_f43_f32_planes`].
pub(crate) unsafe fn winograd_portable(
    k: &Kernels,
    a: &WinogradF32<'_>,
    out: &mut OutPlanes<'_, f32>,
    scratch: &mut [f32],
) {
    winograd_rows(k, a, out, scratch);
}

/// The body of [`Kernels::winograd_f43_f32_planes`] after its checks (a
/// non-empty range of whole tile rows): the input transform, the 36 GEMMs
/// (`k`'s [`Kernels::sgemm`]) and the output transform with `k`'s
/// activation. Inlined into each path's slot so that the transforms are
/// vectorised for that path's registers (on x86_64 the portable build only
/// has SSE2).
#[inline(always)]
pub(crate) fn winograd_rows(
    k: &Kernels,
    a: &WinogradF32<'_>,
    out: &mut OutPlanes<'_, f32>,
    scratch: &mut [f32],
) {
    let g = &a.g;
    let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
    let cols = out.cols();
    let row_px = 4 * w;
    let [v, m, gs] = split_scratch(g, scratch);
    let (tw, _) = tile_grid(g);
    let (first, end) = (cols.start / row_px * tw, cols.end.div_ceil(row_px) * tw);
    // Rows of each M_ξ.
    let mb = cout.min(WINO_CO_BLOCK);
    let mut ms = [[0f32; L]; 36];
    let mut tmp = [[0f32; L]; 24];
    let mut y = [[0f32; L]; 16];
    let mut ya = [0f32; 16 * L];
    for t0 in (first..end).step_by(WINO_TILES) {
        let nt = WINO_TILES.min(end - t0);
        transform_input(g, a.input, t0, nt, v);
        for cb in (a.co_start..a.co_end).step_by(WINO_CO_BLOCK) {
            let nco = WINO_CO_BLOCK.min(a.co_end - cb);
            for xi in 0..36 {
                let gm = Gemm {
                    m: nco,
                    n: nt,
                    k: cin,
                    a: MatRef {
                        data: &a.u[(xi * cout + cb) * cin..][..nco * cin],
                        rs: cin,
                        cs: 1,
                    },
                    b: MatRef {
                        data: &v[xi * cin * WINO_TILES..][..cin * WINO_TILES],
                        rs: WINO_TILES,
                        cs: 1,
                    },
                    rsc: WINO_TILES,
                    epi: Epilogue {
                        bias: None,
                        accumulate: false,
                        act: Act::None,
                    },
                };
                let c = &mut m[xi * mb * WINO_TILES..][..nco * WINO_TILES];
                k.sgemm(&gm, c, gs);
            }
            for co in 0..nco {
                let bias = a.bias[cb + co];
                let plane = cb + co - a.co_start;
                for b in (0..nt).step_by(L) {
                    let lanes = L.min(nt - b);
                    for (xi, mx) in ms.iter_mut().enumerate() {
                        let src = &m[(xi * mb + co) * WINO_TILES + b..];
                        if lanes == L {
                            mx.copy_from_slice(&src[..L]);
                        } else {
                            mx[..lanes].copy_from_slice(&src[..lanes]);
                        }
                    }
                    output_transform(&ms, bias, &mut tmp, &mut y);
                    let ya_in = y.as_flattened();
                    if a.act == Act::None {
                        ya.copy_from_slice(ya_in);
                    } else {
                        k.act_f32(a.act, ya_in, &mut ya);
                    }
                    for lane in 0..lanes {
                        let t = t0 + b + lane;
                        let (y0, x0) = ((t / tw) * 4, (t % tw) * 4);
                        let (rows, cols) = (4.min(h - y0), 4.min(w - x0));
                        for i in 0..rows {
                            let dst = out.row(plane, (y0 + i) * w + x0, cols);
                            for (j, d) in dst.iter_mut().enumerate() {
                                *d = ya[(i * 4 + j) * L + lane];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transforms of a tile against the matrices written out.
    #[test]
    fn one_tile_matches_the_matrices() {
        // A 4x4 image, 1 channel in and out: one tile; compare with a direct
        // 3x3 convolution in f64.
        let g = ConvGeom::new(1, 4, 4, 1, 3, 1, 1);
        let input: [f32; 16] = core::array::from_fn(|i| (i as f32 * 0.37).sin());
        let weight: [f32; 9] = core::array::from_fn(|i| (i as f32 * 1.3).cos());
        let mut u = [0f32; 36];
        winograd_f43_weights(&g, &weight, &mut u);
        let mut scratch = std::vec![f32::NAN; winograd_f43_scratch_len(&g)];
        let mut out = [0f32; 16];
        let a = WinogradF32 {
            g,
            input: &input,
            u: &u,
            bias: &[0.5],
            act: Act::None,
            co_start: 0,
            co_end: 1,
        };
        Kernels::scalar().winograd_f43_f32(&a, &mut out, &mut scratch);
        for y in 0..4 {
            for x in 0..4 {
                let mut want = 0.5f64;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((y + ky) as isize - 1, (x + kx) as isize - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            want +=
                                input[(iy * 4 + ix) as usize] as f64 * weight[ky * 3 + kx] as f64;
                        }
                    }
                }
                let got = out[y * 4 + x] as f64;
                assert!((got - want).abs() < 1e-5, "({y},{x}): {got} vs {want}");
            }
        }
    }

    #[test]
    fn scratch_formula() {
        let g = ConvGeom::new(256, 80, 80, 256, 3, 1, 1);
        assert!(winograd_f43_fits(&g));
        assert!(!winograd_f43_fits(&ConvGeom { stride: 2, ..g }));
        assert!(!winograd_f43_fits(&ConvGeom { k: 1, ..g }));
        assert!(!winograd_f43_fits(&ConvGeom { groups: 256, ..g }));
        assert_eq!(
            winograd_f43_scratch_len(&g),
            36 * 256 * 32 + 36 * 256 * 32 + sgemm_scratch_len(256) + 48
        );
    }
}
