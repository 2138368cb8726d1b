//! int8 2-D convolution over channel-major (CHW, batch 1) tensors, with an
//! integer-only requantising epilogue.
//!
//! # The contract with the quantizer
//! For output channel `c`, output pixel `(oy, ox)` and a reduction over
//! `K = (cin/groups)·k·k` taps, the kernel computes the int32 accumulator
//!
//! `acc = bias[c] + Σ_{p<K} weight[c·kpad + p] · x_p`
//!
//! where `x_p` is the input byte under tap `p` (tap order: input channel of the
//! group, then kernel row, then kernel column, as in the fp32 weight layout),
//! and **`x_p = zp_in` for taps that fall on the padding** (the real value
//! zero). The zero-point correction is *not* applied by the kernel: the
//! quantizer folds it into the bias,
//!
//! `bias[c] = round(b_real[c] / (s_in·s_w[c])) − zp_in · Σ_{p<K} weight[c, p]`,
//!
//! so that `acc = Σ w·(x − zp_in) + round(b/(s_in·s_w))` is the accumulator of
//! the real-valued convolution in the scale `s_in·s_w[c]`. The sum is exact in
//! int32 when `|bias| + K·128·128 < 2^31` (K < 131 072 for any bias of a
//! realistic layer); beyond that it wraps (two's complement), identically on
//! every path. The epilogue ([`Requant`]) then gives
//!
//! `y = clamp(zp_out + requant(acc, mul[c]), lo, hi)`, then `y = lut[y + 128]`
//! when a table is given,
//!
//! with `mul[c] = quantize_multiplier(s_in·s_w[c] / s_out)` (see
//! [`crate::quant`] for the rounding rule).
//!
//! # Layouts
//! - `input`: `[cin][h][w]` int8, zero point `zp_in ∈ [−128, 127]`;
//! - `weight`: row-major `[cout][kpad]`, row `c` holding the `K` taps of output
//!   channel `c` then `kpad − K` zero bytes. `kpad` is a multiple of 16 and at
//!   least `K` ([`weight_kpad`]`(K)` is the natural choice), so SIMD kernels can
//!   run 16-byte dot-product chunks over whole rows; when `kpad` is a multiple
//!   of 64 and the weight blob starts on a 64-byte boundary, every row does
//!   too. The pad bytes must be zero (a kernel may include them in its dot
//!   products; the scalar kernels pair them with zeros anyway);
//! - dense (`groups == 1`): `K = cin·k·k`; depthwise (`groups == cin == cout`):
//!   `K = k·k`, one row per channel;
//! - `out`: `[cout][out_h][out_w]` int8.
//!
//! # Kernels
//! [`reference_conv2d_i8`] is the specification, a direct loop nest.
//! [`Kernels::conv2d_i8`] runs portable kernels written for
//! auto-vectorisation, compiled once per path: the AVX2 path builds them with
//! AVX2 enabled and replaces the dense dot products by a hand-written
//! `vpmaddwd` micro-kernel (2 weight rows × 4 columns; 5–6× the portable
//! build on 3×3 256→256), the `neon_dotprod` path builds them with the
//! dot-product extension, where LLVM emits `SDOT`. Dense convolutions run
//! as an integer GEMM over tiles of [`NB`] output pixels packed im2col-style into the caller's scratch as `[pixel][kpad']`
//! byte columns (`kpad' = weight_kpad(K)`, zero-padded), so the inner loop is
//! an `i8·i8 → i32` dot product over contiguous bytes that compilers
//! vectorise; depthwise convolutions as a direct row kernel. Integer sums are
//! associative (also when they wrap), so both are byte-identical to the
//! reference, which the tests check on every architecture.

use crate::Kernels;
use crate::conv::ConvGeom;
use crate::planes::OutPlanes;
use crate::quant::{QMul, requant};
use crate::reference::{input_row, valid_cols};

/// Weight rows are padded to a multiple of this many bytes.
pub const KPAD_ALIGN: usize = 16;

/// Output pixels (im2col columns) per packed tile of the dense kernel.
pub const NB: usize = 32;

/// Alignment of the packed tile inside the scratch (bytes).
const SCRATCH_ALIGN: usize = 64;

/// Columns of the dense micro-kernel (dot products sharing one weight row).
pub(crate) const NR: usize = 4;

/// Output columns a depthwise row accumulates at once on the stack.
const DW_ROW: usize = 64;

/// `k` rounded up to a multiple of [`KPAD_ALIGN`] (16): the row length of an
/// int8 weight matrix with reduction depth `k`.
pub const fn weight_kpad(k: usize) -> usize {
    k.div_ceil(KPAD_ALIGN) * KPAD_ALIGN
}

/// Reduction depth `K = (cin/groups)·k·k` of a convolution.
pub const fn conv_i8_reduction_len(g: &ConvGeom) -> usize {
    let cpg = match g.cin.checked_div(g.groups) {
        Some(c) => c,
        None => 0,
    };
    cpg * g.k * g.k
}

/// Scratch bytes [`Kernels::conv2d_i8`] needs: one packed tile of
/// `min(NB, out_h·out_w)` columns of [`weight_kpad`]`(K)` bytes, plus 63 bytes
/// to align it to a cache line, for dense convolutions; 0 for depthwise ones.
/// The same for every path.
pub fn conv_i8_scratch_len(g: &ConvGeom) -> usize {
    if g.groups != 1 {
        return 0;
    }
    let cols = NB.min(g.out_h() * g.out_w());
    cols * weight_kpad(conv_i8_reduction_len(g)) + SCRATCH_ALIGN - 1
}

/// The requantising epilogue of an int8 kernel:
/// `y = clamp(zp_out + requant(acc, mul[c]), lo, hi)`, then `y = lut[y + 128]`
/// when `lut` is given.
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// Multipliers per output channel, or a single one for every channel.
    pub mul: &'a [QMul],
    /// Output zero point (any i32; the sum saturates before the clamp).
    pub zp_out: i32,
    /// Lower clamp (e.g. `zp_out` for a fused ReLU, −128 for none).
    pub lo: i8,
    /// Upper clamp (`lo ≤ hi`).
    pub hi: i8,
    /// A 256-entry table applied last, indexed by `y + 128` (a per-layer
    /// activation such as SiLU, see [`crate::quant::lut_from_fn`]).
    pub lut: Option<&'a [i8; 256]>,
}

impl Requant<'_> {
    /// The multiplier of output channel `c` (`mul[0]` when there is one).
    #[inline]
    pub fn channel_mul(&self, c: usize) -> QMul {
        if self.mul.len() == 1 {
            self.mul[0]
        } else {
            self.mul[c]
        }
    }

    /// The epilogue of one accumulator of output channel `c` (the reference
    /// of every int8 epilogue).
    #[inline]
    pub fn apply(&self, c: usize, acc: i32) -> i8 {
        self.apply_mul(self.channel_mul(c), acc)
    }

    /// The epilogue with the channel's multiplier already looked up.
    #[inline]
    pub(crate) fn apply_mul(&self, mul: QMul, acc: i32) -> i8 {
        let y = self
            .zp_out
            .saturating_add(requant(acc, mul))
            .clamp(self.lo as i32, self.hi as i32) as i8;
        match self.lut {
            Some(t) => t[(y as i32 + 128) as usize],
            None => y,
        }
    }

    /// Panics unless there are 1 or at least `cout` multipliers and `lo ≤ hi`.
    fn check(&self, cout: usize, what: &str) {
        assert!(
            self.mul.len() == 1 || self.mul.len() >= cout,
            "{what}: {} multipliers for {cout} channels",
            self.mul.len()
        );
        assert!(
            self.lo <= self.hi,
            "{what}: lo {} > hi {}",
            self.lo,
            self.hi
        );
    }
}

/// The operands of an int8 convolution (the argument of the
/// [`Slot::ConvI8`](crate::Slot::ConvI8) and
/// [`Slot::DwConvI8`](crate::Slot::DwConvI8) slots; see the module docs for
/// the layouts and the arithmetic).
#[derive(Clone, Copy, Debug)]
pub struct ConvI8<'a> {
    /// The geometry.
    pub g: ConvGeom,
    /// The CHW int8 input.
    pub input: &'a [i8],
    /// The input's zero point, in `[−128, 127]` (what padding taps read).
    pub zp_in: i32,
    /// `[cout][kpad]` int8 weights, pad bytes zero.
    pub weight: &'a [i8],
    /// Weight row length: a multiple of 16, at least `K`.
    pub kpad: usize,
    /// `cout` int32 biases (the input zero point folded in).
    pub bias: &'a [i32],
    /// The requantising epilogue.
    pub rq: Requant<'a>,
}

impl ConvI8<'_> {
    /// Every operand, by reference where large.
    #[inline(always)]
    #[allow(clippy::type_complexity)] // the struct's fields, in order
    pub(crate) fn parts(&self) -> (&ConvGeom, &[i8], i32, &[i8], usize, &[i32], &Requant<'_>) {
        let a = self;
        (&a.g, a.input, a.zp_in, a.weight, a.kpad, a.bias, &a.rq)
    }

    /// Asserts every operand (programmer errors: the loader validates shapes).
    pub fn check(&self, what: &str, out: &[i8]) {
        self.check_operands(what);
        let g = &self.g;
        assert!(
            out.len() >= g.cout * g.out_h() * g.out_w(),
            "{what}: out too short"
        );
    }

    /// Asserts every operand but the output.
    fn check_operands(&self, what: &str) {
        let g = &self.g;
        assert!(g.is_supported(), "{what}: unsupported geometry {g:?}");
        assert!(
            (-128..=127).contains(&self.zp_in),
            "{what}: zp_in {} is not an int8",
            self.zp_in
        );
        let kk = conv_i8_reduction_len(g);
        assert!(
            self.kpad >= kk && self.kpad.is_multiple_of(KPAD_ALIGN),
            "{what}: kpad {} is not a multiple of {KPAD_ALIGN} at least K = {kk}",
            self.kpad
        );
        assert!(
            self.input.len() >= g.cin * g.h * g.w,
            "{what}: input too short"
        );
        let wlen = g.cout.checked_mul(self.kpad);
        assert!(
            matches!(wlen, Some(l) if self.weight.len() >= l),
            "{what}: weight too short"
        );
        assert!(self.bias.len() >= g.cout, "{what}: bias too short");
        self.rq.check(g.cout, what);
    }
}

/// The specification of the int8 convolution: a direct loop nest over output
/// channel, output row, output column, input channel of the group, kernel row
/// and kernel column; padding taps read `zp_in`; the accumulator starts at
/// `bias[c]` and adds products with wrapping i32 arithmetic; then
/// [`Requant::apply`]. Operands as for [`Kernels::conv2d_i8`] (no scratch).
pub fn reference_conv2d_i8(a: &ConvI8<'_>, out: &mut [i8]) {
    a.check("reference_conv2d_i8", out);
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (h, w, k, s, pad) = (g.h, g.w, g.k, g.stride, g.pad());
    let (oh, ow) = (g.out_h(), g.out_w());
    let cpg = g.cin / g.groups;
    let opg = g.cout / g.groups;
    for co in 0..g.cout {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias[co];
                for cig in 0..cpg {
                    let ci = (co / opg) * cpg + cig;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky).checked_sub(pad).filter(|&y| y < h);
                            let ix = (ox * s + kx).checked_sub(pad).filter(|&x| x < w);
                            let x = match (iy, ix) {
                                (Some(iy), Some(ix)) => input[(ci * h + iy) * w + ix] as i32,
                                _ => zp_in,
                            };
                            let wv = weight[co * kpad + (cig * k + ky) * k + kx] as i32;
                            acc = acc.wrapping_add(wv * x);
                        }
                    }
                }
                out[(co * oh + oy) * ow + ox] = rq.apply(co, acc);
            }
        }
    }
}

impl Kernels {
    /// `out = requant(bias + conv(input, weight))`, the int8 convolution of
    /// the module docs (padding taps read `zp_in`; the quantizer has folded
    /// `−zp_in·Σw` into `bias`), dense or depthwise: [`Kernels::conv_i8`] or
    /// [`Kernels::dwconv_i8`].
    pub fn conv2d_i8(&self, a: &ConvI8<'_>, out: &mut [i8], scratch: &mut [u8]) {
        if a.g.is_depthwise() {
            self.dwconv_i8(a, out);
        } else {
            self.conv_i8(a, out, scratch);
        }
    }

    /// The dense (`groups == 1`) int8 convolution.
    ///
    /// `input` holds at least `cin·h·w` bytes, `weight` at least `cout·kpad`
    /// (`kpad` a multiple of 16, at least `K`, pad bytes zero), `bias` at least
    /// `cout` values, `rq.mul` one or at least `cout` multipliers, `out` at
    /// least `cout·out_h·out_w` bytes and `scratch` at least
    /// [`conv_i8_scratch_len`] bytes (any alignment). Byte-identical to
    /// [`reference_conv2d_i8`] on every path and architecture. Panics on an
    /// unsupported or depthwise geometry, a `zp_in` outside `[−128, 127]`,
    /// `rq.lo > rq.hi` or a short slice.
    pub fn conv_i8(&self, a: &ConvI8<'_>, out: &mut [i8], scratch: &mut [u8]) {
        a.check("conv_i8", out);
        let n = a.g.out_h() * a.g.out_w();
        self.conv_i8_planes(a, &mut OutPlanes::new(out, n), scratch);
    }

    /// [`Kernels::conv_i8`] for the output pixels `out.cols()` only (of
    /// every channel): what one thread of several sharing a convolution by
    /// pixels runs. Any partition of the pixels writes the same bytes as the
    /// whole convolution. Panics as [`Kernels::conv_i8`] does, and unless
    /// `out` holds at least `cout` planes of `out_h·out_w` elements.
    pub fn conv_i8_planes(&self, a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
        a.check_operands("conv_i8");
        assert!(!a.g.is_depthwise(), "conv_i8: depthwise geometry");
        assert!(
            out.planes() >= a.g.cout && out.n() == a.g.out_h() * a.g.out_w(),
            "conv_i8: out holds {} planes of {}, not {} of {}",
            out.planes(),
            out.n(),
            a.g.cout,
            a.g.out_h() * a.g.out_w()
        );
        assert!(
            scratch.len() >= conv_i8_scratch_len(&a.g),
            "conv_i8: scratch has {} < {} bytes",
            scratch.len(),
            conv_i8_scratch_len(&a.g)
        );
        if out.cols().is_empty() {
            return;
        }
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.conv_i8)(a, out, scratch) }
    }

    /// The depthwise (`groups == cin == cout`, one channel included) int8
    /// convolution; operands as for [`Kernels::conv_i8`], no scratch.
    pub fn dwconv_i8(&self, a: &ConvI8<'_>, out: &mut [i8]) {
        a.check("dwconv_i8", out);
        assert!(
            a.g.groups == a.g.cin && a.g.cin == a.g.cout,
            "dwconv_i8: not a depthwise geometry"
        );
        // SAFETY: the table's contract (crate::table); operands checked above.
        unsafe { (self.slots.dwconv_i8)(a, out) }
    }
}

/// The scalar [`crate::Slot::ConvI8`]: the portable dense kernel.
pub(crate) fn portable_conv_i8(a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
    conv_s8_dense(Portable, a, out, scratch);
}

/// The scalar [`crate::Slot::DwConvI8`]: the portable depthwise kernel.
pub(crate) fn portable_dwconv_i8(a: &ConvI8<'_>, out: &mut [i8]) {
    conv_s8_depthwise(a, out);
}

/// The int8 dot products of the dense convolution: `kb`-byte rows (`kb` a
/// multiple of 16) of weights against packed im2col columns.
pub(crate) trait DotS8: Copy {
    /// `[Σ_p w0[p]·c_t[p], Σ_p w1[p]·c_t[p]]` for the four columns
    /// `c_t = cols[t·kb..][..kb]`, in wrapping i32.
    fn dot_2x4(self, w0: &[i8], w1: &[i8], cols: &[u8], kb: usize) -> [[i32; NR]; 2];
}

/// The portable dot products (auto-vectorised by each path's build).
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl DotS8 for Portable {
    #[inline(always)]
    fn dot_2x4(self, w0: &[i8], w1: &[i8], cols: &[u8], kb: usize) -> [[i32; NR]; 2] {
        dot_2x4_s8(w0, w1, cols, kb)
    }
}

/// Dense int8 convolution: im2col tiles of `NB` pixels, then the `2×NR`
/// dot-product micro-kernel `dot` per pair of weight rows (the portable `1×NR`
/// one for an odd last row, `1×1` for a tile's last columns); operands
/// checked by the caller. Inlined into each path's build of it.
#[inline(always)]
pub(crate) fn conv_s8_dense(
    dot: impl DotS8,
    a: &ConvI8<'_>,
    out: &mut OutPlanes<'_>,
    scratch: &mut [u8],
) {
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (kb, _, tile) = dense_tile(g, scratch);
    let span = out.cols();
    for j0 in span.clone().step_by(NB) {
        let nb = NB.min(span.end - j0);
        let panel = &mut tile[..nb * kb];
        pack_im2col_s8(g, input, zp_in, j0, kb, panel);
        let panel = &*panel;
        // Two weight rows at a time share every column load.
        let mut co = 0;
        while co + 2 <= g.cout {
            let (w0, w1) = (&weight[co * kpad..][..kb], &weight[(co + 1) * kpad..][..kb]);
            let (b0, m0) = (bias[co], rq.channel_mul(co));
            let (b1, m1) = (bias[co + 1], rq.channel_mul(co + 1));
            let (o0, o1) = out.rows2(co, j0, nb);
            let mut cols = panel.chunks_exact(NR * kb);
            let mut outs = o0.chunks_exact_mut(NR).zip(o1.chunks_exact_mut(NR));
            for (cb, (ob0, ob1)) in (&mut cols).zip(&mut outs) {
                let [acc0, acc1] = dot.dot_2x4(w0, w1, cb, kb);
                for (o, a) in ob0.iter_mut().zip(acc0) {
                    *o = rq.apply_mul(m0, b0.wrapping_add(a));
                }
                for (o, a) in ob1.iter_mut().zip(acc1) {
                    *o = rq.apply_mul(m1, b1.wrapping_add(a));
                }
            }
            let done = nb / NR * NR;
            for (col, j) in cols.remainder().chunks_exact(kb).zip(done..nb) {
                o0[j] = rq.apply_mul(m0, b0.wrapping_add(dot_1x1_s8(w0, col)));
                o1[j] = rq.apply_mul(m1, b1.wrapping_add(dot_1x1_s8(w1, col)));
            }
            co += 2;
        }
        if co < g.cout {
            let wrow = &weight[co * kpad..][..kb];
            let (b, mul) = (bias[co], rq.channel_mul(co));
            let orow = out.row(co, j0, nb);
            let mut cols = panel.chunks_exact(NR * kb);
            let mut outs = orow.chunks_exact_mut(NR);
            for (cb, ob) in (&mut cols).zip(&mut outs) {
                let acc = dot_1x4_s8(wrow, cb, kb);
                for (o, a) in ob.iter_mut().zip(acc) {
                    *o = rq.apply_mul(mul, b.wrapping_add(a));
                }
            }
            for (col, o) in cols.remainder().chunks_exact(kb).zip(outs.into_remainder()) {
                *o = rq.apply_mul(mul, b.wrapping_add(dot_1x1_s8(wrow, col)));
            }
        }
    }
}

/// The dense kernels' tile: the packed row length `kb`, the output pixels
/// `n`, and the cache-line-aligned part of `scratch` that holds one tile of
/// `min(NB, n)` packed columns (scratch sized by [`conv_i8_scratch_len`]).
#[inline(always)]
pub(crate) fn dense_tile<'s>(g: &ConvGeom, scratch: &'s mut [u8]) -> (usize, usize, &'s mut [u8]) {
    let kb = weight_kpad(conv_i8_reduction_len(g));
    let n = g.out_h() * g.out_w();
    let off = match scratch.as_ptr().align_offset(SCRATCH_ALIGN) {
        o if o < SCRATCH_ALIGN => o,
        _ => 0,
    };
    (kb, n, &mut scratch[off..off + NB.min(n) * kb])
}

/// Packs im2col columns `j0..j0 + dst.len()/kb` (output pixels in raster
/// order) as `kb`-byte rows of `dst`: the `K` taps in weight order, padding taps
/// `zp_in`, then zeros up to `kb`.
#[inline(always)]
pub(crate) fn pack_im2col_s8(
    g: &ConvGeom,
    input: &[i8],
    zp_in: i32,
    j0: usize,
    kb: usize,
    dst: &mut [u8],
) {
    let (h, w, k, s, pad) = (g.h, g.w, g.k, g.stride, g.pad());
    let ow = g.out_w();
    let kk = conv_i8_reduction_len(g);
    let zp = zp_in as i8 as u8;
    for (jj, col) in dst.chunks_exact_mut(kb).enumerate() {
        let p = j0 + jj;
        let (y0, x0) = ((p / ow) * s, (p % ow) * s); // top-left tap, padded coordinates
        let (col, tail) = col.split_at_mut(kk);
        tail.fill(0);
        let interior = y0 >= pad && y0 + k <= h + pad && x0 >= pad && x0 + k <= w + pad;
        for (ci, taps) in col.chunks_exact_mut(k * k).enumerate() {
            let plane = &input[ci * h * w..][..h * w];
            for (ky, row) in taps.chunks_exact_mut(k).enumerate() {
                if interior {
                    let src = &plane[(y0 + ky - pad) * w + x0 - pad..][..k];
                    for (d, &x) in row.iter_mut().zip(src) {
                        *d = x as u8;
                    }
                    continue;
                }
                match (y0 + ky).checked_sub(pad).filter(|&iy| iy < h) {
                    None => row.fill(zp),
                    Some(iy) => {
                        for (kx, d) in row.iter_mut().enumerate() {
                            *d = match (x0 + kx).checked_sub(pad).filter(|&ix| ix < w) {
                                Some(ix) => plane[iy * w + ix] as u8,
                                None => zp,
                            };
                        }
                    }
                }
            }
        }
    }
}

/// `Σ_p w[p]·b_j[p]` for the `NR = 4` packed columns `b_j = cols[j·kb..][..kb]`.
///
/// Written for auto-vectorisation: four independent `i8·i8 → i32` sum
/// reductions over the same bytes of `w` in one plain indexed loop, which
/// LLVM vectorises along `k` (SSE2 widening multiplies on baseline x86_64,
/// `smull` + `saddw` on aarch64, `sdot` with the dot-product extension; the
/// AVX2 path has its own `vpmaddwd` kernel); about 2.5× faster than explicit
/// 16-byte chunking with lane arrays when it was written.
#[inline(always)]
fn dot_1x4_s8(w: &[i8], cols: &[u8], kb: usize) -> [i32; NR] {
    let w = &w[..kb];
    let (b0, rest) = cols.split_at(kb);
    let (b1, rest) = rest.split_at(kb);
    let (b2, b3) = rest.split_at(kb);
    let (b0, b1, b2, b3) = (&b0[..kb], &b1[..kb], &b2[..kb], &b3[..kb]);
    let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
    for i in 0..kb {
        let x = w[i] as i32;
        s0 = s0.wrapping_add(x * (b0[i] as i8) as i32);
        s1 = s1.wrapping_add(x * (b1[i] as i8) as i32);
        s2 = s2.wrapping_add(x * (b2[i] as i8) as i32);
        s3 = s3.wrapping_add(x * (b3[i] as i8) as i32);
    }
    [s0, s1, s2, s3]
}

/// [`dot_1x4_s8`] for two weight rows `w0`, `w1` over the same four columns:
/// eight independent sums, each column byte loaded once for both rows.
#[inline(always)]
fn dot_2x4_s8(w0: &[i8], w1: &[i8], cols: &[u8], kb: usize) -> [[i32; NR]; 2] {
    let (w0, w1) = (&w0[..kb], &w1[..kb]);
    let (b0, rest) = cols.split_at(kb);
    let (b1, rest) = rest.split_at(kb);
    let (b2, b3) = rest.split_at(kb);
    let (b0, b1, b2, b3) = (&b0[..kb], &b1[..kb], &b2[..kb], &b3[..kb]);
    let mut s = [[0i32; NR]; 2];
    for i in 0..kb {
        let (x, y) = (w0[i] as i32, w1[i] as i32);
        let c = [
            b0[i] as i8 as i32,
            b1[i] as i8 as i32,
            b2[i] as i8 as i32,
            b3[i] as i8 as i32,
        ];
        for t in 0..NR {
            s[0][t] = s[0][t].wrapping_add(x * c[t]);
            s[1][t] = s[1][t].wrapping_add(y * c[t]);
        }
    }
    s
}

/// `Σ_p w[p]·b[p]` over one packed column (the tail of a tile).
#[inline(always)]
fn dot_1x1_s8(w: &[i8], b: &[u8]) -> i32 {
    w.iter().zip(b).fold(0i32, |s, (&x, &y)| {
        s.wrapping_add(x as i32 * (y as i8) as i32)
    })
}

/// Depthwise int8 convolution, one output row segment at a time:
/// `acc = bias + zp_in·Σw + Σ_valid taps w·(x − zp_in)` (the reference sum
/// regrouped, exact in wrapping i32), rows and columns of padding skipped.
/// Inlined into each path's build of it.
#[inline(always)]
pub(crate) fn conv_s8_depthwise(a: &ConvI8<'_>, out: &mut [i8]) {
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (h, w, k, s, pad) = (g.h, g.w, g.k, g.stride, g.pad());
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut acc = [0i32; DW_ROW];
    for c in 0..g.cout {
        let taps = &weight[c * kpad..][..k * k];
        let wsum = taps.iter().fold(0i32, |a, &t| a.wrapping_add(t as i32));
        let base = bias[c].wrapping_add(zp_in.wrapping_mul(wsum));
        let mul = rq.channel_mul(c);
        let plane = &input[c * h * w..][..h * w];
        let oplane = &mut out[c * oh * ow..][..oh * ow];
        for oy in 0..oh {
            for ox0 in (0..ow).step_by(DW_ROW) {
                let ox1 = (ox0 + DW_ROW).min(ow);
                let acc = &mut acc[..ox1 - ox0];
                acc.fill(base);
                for ky in 0..k {
                    let Some(iy) = input_row(h, s, pad, oy, ky) else {
                        continue;
                    };
                    let irow = &plane[iy * w..][..w];
                    for kx in 0..k {
                        let wv = taps[ky * k + kx] as i32;
                        let (lo, hi) = valid_cols(w, s, pad, kx, ox0, ox1);
                        if lo == hi {
                            continue;
                        }
                        let a = &mut acc[lo - ox0..hi - ox0];
                        let first = lo * s + kx - pad;
                        if s == 1 {
                            for (a, &x) in a.iter_mut().zip(&irow[first..first + (hi - lo)]) {
                                *a = a.wrapping_add(wv * (x as i32 - zp_in));
                            }
                        } else {
                            for (a, &x) in a.iter_mut().zip(irow[first..].iter().step_by(s)) {
                                *a = a.wrapping_add(wv * (x as i32 - zp_in));
                            }
                        }
                    }
                }
                for (o, &a) in oplane[oy * ow + ox0..oy * ow + ox1]
                    .iter_mut()
                    .zip(acc.iter())
                {
                    *o = rq.apply_mul(mul, a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_multiplier;

    #[test]
    fn requant_epilogue_clamps_then_looks_up() {
        let mul = [quantize_multiplier(0.5), quantize_multiplier(2.0)];
        let mut lut = [0i8; 256];
        lut.iter_mut()
            .enumerate()
            .for_each(|(i, e)| *e = (255 - i as i32 - 128) as i8);
        let rq = Requant {
            mul: &mul,
            zp_out: -10,
            lo: -20,
            hi: 30,
            lut: None,
        };
        assert_eq!(rq.channel_mul(1), mul[1]);
        assert_eq!(rq.apply(0, 41), -10 + 21); // 20.5 → 21 (half away from zero)
        assert_eq!(rq.apply(1, 41), 30); // 72 clamps to hi
        assert_eq!(rq.apply(0, -100), -20); // −60 clamps to lo
        assert_eq!(rq.apply(1, i32::MIN), -20);
        let with_lut = Requant {
            lut: Some(&lut),
            ..rq
        };
        assert_eq!(with_lut.apply(0, 41), lut[(11 + 128) as usize]);
        assert_eq!(with_lut.apply(0, 41), -12);
        // One multiplier serves every channel; zp_out saturates before the clamp.
        let one = [quantize_multiplier(1.0)];
        let rq = Requant {
            mul: &one,
            zp_out: i32::MAX,
            lo: -128,
            hi: 127,
            lut: None,
        };
        assert_eq!(rq.apply(5, i32::MAX), 127);
        assert_eq!(rq.apply(7, 0), 127);
        let rq = Requant {
            zp_out: i32::MIN,
            ..rq
        };
        assert_eq!(rq.apply(7, 1000), -128);
    }

    #[test]
    fn im2col_columns_follow_the_weight_order() {
        // 2 channels 3×4, 3×3 stride 2: output 2×2; zp 7 on the padding.
        let g = ConvGeom::new(2, 3, 4, 1, 3, 2, 1);
        let input: [i8; 24] = core::array::from_fn(|i| i as i8 + 20);
        let kb = weight_kpad(18);
        let mut dst = [0xffu8; 4 * 32];
        pack_im2col_s8(&g, &input, 7, 0, kb, &mut dst);
        for (p, col) in dst.chunks_exact(kb).enumerate() {
            let (oy, ox) = (p / 2, p % 2);
            for ci in 0..2 {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        let want = if (0..3).contains(&iy) && (0..4).contains(&ix) {
                            input[ci * 12 + iy as usize * 4 + ix as usize]
                        } else {
                            7
                        };
                        assert_eq!(col[ci * 9 + ky * 3 + kx] as i8, want, "{p} {ci} {ky} {kx}");
                    }
                }
            }
            assert!(col[18..].iter().all(|&b| b == 0));
        }
        // The dot products over a tile.
        let w: [i8; 32] = core::array::from_fn(|i| if i < 18 { i as i8 - 9 } else { 0 });
        let dots = dot_1x4_s8(&w, &dst, kb);
        for (j, d) in dots.iter().enumerate() {
            let col = &dst[j * kb..][..kb];
            let want: i32 = w
                .iter()
                .zip(col)
                .map(|(&a, &b)| a as i32 * b as i8 as i32)
                .sum();
            assert_eq!(*d, want);
            assert_eq!(dot_1x1_s8(&w, col), want);
        }
    }
}
