//! x86_64 AVX-512 VNNI int8 kernels (Ice Lake, Sapphire Rapids, Zen 4 and
//! later): the dense int8 convolution's dot products with `vpdpbusd` on zmm
//! registers. Every other slot is the AVX2 path's.
//!
//! `vpdpbusd` multiplies *unsigned* bytes by signed bytes. The weights are
//! made unsigned on the fly (`w + 128`, a XOR with `0x80`), and the excess
//! `128·Σx` of each im2col column is subtracted after the dot product:
//! `Σ w·x = Σ (w + 128)·x − 128·Σ x`, exact in wrapping i32, so the result is
//! byte-identical to the reference on every input.
//!
//! Every `#[target_feature]` function here is reachable only through a
//! [`Vnni`] token, which [`Vnni::new`] hands out after `cpuid` and `xgetbv`
//! confirm AVX-512 F, BW, VL and VNNI and that the OS saves the ZMM state.

use core::arch::x86_64::*;

use crate::Act;
use crate::Kernels;
use crate::blocked::{MicroKernel, Tile, TileEpi};
use crate::caps::Caps;
use crate::conv::ConvF32;
use crate::conv_i8::{ConvI8, NB, Requant, dense_tile, pack_im2col_s8};
use crate::elementwise_i8::{MAX_SUM_INPUTS, SUM_LEFT_SHIFT, SumI8, sum_one};
use crate::gemm::Gemm;
use crate::ops::decoder::DeformGeom;
use crate::ops::norm::LayerNorm;
use crate::ops::select::TopK;
use crate::planes::OutPlanes;
use crate::quant::QMul;
use crate::reference::input_row;
use crate::table::declare_path;
use crate::winograd::WinogradF32;
use crate::x86::EXP_POLY;

declare_path! {
    /// AVX-512 VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later): the dense
    /// int8 convolution with a 4 × 4 `vpdpbusd` micro-kernel on zmm
    /// registers, the f32 GEMM and dense convolution with an 8 × 32 zmm FMA
    /// micro-kernel, the int8 weighted sums and depthwise convolutions 16
    /// lanes at a time; every other slot from `avx2_fma`.
    pub(crate) static AVX512_VNNI = "avx512_vnni", base Some(&crate::x86::AVX2_FMA),
    available |caps: Caps| caps.avx512_vnni && Vnni::new().is_some(),
    {
        sgemm = avx512_sgemm_f32,
        conv_f32 = avx512_conv_f32,
        conv_i8 = vnni_conv_s8,
        weighted_sum_i8 = avx512_weighted_sum_s8,
        dwconv_i8 = avx512_dwconv_s8,
        dwconv_f32 = avx512_dwconv_f32,
        softmax_cols = avx512_softmax_cols,
        softmax_groups = avx512_softmax_groups,
        deform_sample = avx512_deform_sample,
        layer_norm = avx512_layer_norm,
        topk_tokens = avx512_topk_tokens,
        winograd_f32 = avx512_winograd_f32,
    }
}

/// Output channels × im2col columns of the micro-kernel.
const MR: usize = 4;
/// Columns of the micro-kernel.
const NC: usize = 4;

/// Proof that the CPU runs AVX-512 F, BW, VL and VNNI (and the OS saves ZMM
/// state).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vnni(());

impl Vnni {
    /// The token, if the CPU has the features.
    pub(crate) fn new() -> Option<Vnni> {
        cpu_has_avx512_vnni().then_some(Vnni(()))
    }
}

/// `XCR0` bits of the register state AVX-512 needs the OS to save: XMM,
/// YMM, opmask and both ZMM components.
pub(crate) const ZMM_STATE: u64 = 0b1110_0110;

/// `xgetbv` (XMM, YMM, opmask and both ZMM state components enabled) and
/// leaf 7 (AVX-512 F, BW, VL, VNNI): what `is_x86_feature_detected!` checks,
/// without `std`.
fn cpu_has_avx512_vnni() -> bool {
    const AVX512F: u32 = 1 << 16;
    const AVX512BW: u32 = 1 << 30;
    const AVX512VL: u32 = 1 << 31;
    const AVX512VNNI: u32 = 1 << 11;
    let Some((_, l7)) = crate::x86::cpuid_with_os_state(ZMM_STATE) else {
        return false;
    };
    let ebx = AVX512F | AVX512BW | AVX512VL;
    l7.ebx & ebx == ebx && l7.ecx & AVX512VNNI != 0
}

/// The [`crate::Slot::ConvI8`] of this path: im2col tiles of [`NB`] pixels
/// (packed as on every path), each column's byte sum, then the 4 × 4
/// `vpdpbusd` micro-kernel over every block of output channels and columns
/// (tails reuse the last valid row or column and drop the extra sums), the
/// column correction, the bias and the requantising epilogue.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F, BW and VNNI run, operands
/// checked (dense geometry).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
pub(crate) unsafe fn vnni_conv_s8(a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
    if crate::x86_vnni_c4::handles(a) {
        // SAFETY: the path's features (AVX-512 VL included) run; `handles`
        // holds; the slot contract gives the scratch.
        return unsafe { crate::x86_vnni_c4::conv_s8_c4(a, out, scratch, None) };
    }
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (kb, _, tile) = dense_tile(g, scratch);
    let mut colsum = [0i32; NB];
    // The vector epilogue covers multipliers that shift right (all but
    // multipliers above 1) and output zero points that cannot overflow.
    let fast = requant16_covers(rq);
    let span = out.cols();
    for j0 in span.clone().step_by(NB) {
        let nb = NB.min(span.end - j0);
        let panel = &mut tile[..nb * kb];
        pack_im2col_s8(g, input, zp_in, j0, kb, panel);
        let panel = &*panel;
        for (s, col) in colsum.iter_mut().zip(panel.chunks_exact(kb)) {
            *s = col
                .iter()
                .fold(0i32, |s, &x| s.wrapping_add(x as i8 as i32));
        }
        for c0 in (0..g.cout).step_by(MR) {
            let rows = MR.min(g.cout - c0);
            let w: [&[i8]; MR] =
                core::array::from_fn(|r| &weight[(c0 + r.min(rows - 1)) * kpad..][..kb]);
            for t0 in (0..nb).step_by(NC) {
                let cols = NC.min(nb - t0);
                let c: [&[u8]; NC] =
                    core::array::from_fn(|t| &panel[(t0 + t.min(cols - 1)) * kb..][..kb]);
                // SAFETY: this function's target features are enabled; every
                // row and column holds `kb` bytes.
                let acc = unsafe { dot_4x4(&w, &c, kb) };
                if rows == MR && cols == NC && fast {
                    let muls: [QMul; MR] = core::array::from_fn(|r| rq.channel_mul(c0 + r));
                    let bias: [i32; MR] = core::array::from_fn(|r| bias[c0 + r]);
                    let corr: [i32; NC] =
                        core::array::from_fn(|t| colsum[t0 + t].wrapping_mul(128));
                    let y = epilogue_4x4(&acc, &bias, &muls, &corr, rq);
                    for (r, y) in y.iter().enumerate() {
                        let o = out.row(c0 + r, j0 + t0, NC);
                        match rq.lut {
                            Some(lut) => {
                                for (o, &v) in o.iter_mut().zip(y) {
                                    *o = lut[(v as i32 + 128) as usize];
                                }
                            }
                            None => o.copy_from_slice(y),
                        }
                    }
                    continue;
                }
                for (r, acc) in acc.iter().enumerate().take(rows) {
                    let co = c0 + r;
                    let (b, mul) = (bias[co], rq.channel_mul(co));
                    let o = out.row(co, j0 + t0, cols);
                    for (t, o) in o.iter_mut().enumerate() {
                        let corr = colsum[t0 + t].wrapping_mul(128);
                        *o = rq.apply_mul(mul, b.wrapping_add(acc[t].wrapping_sub(corr)));
                    }
                }
            }
        }
    }
}

/// `Σ_p (w_r[p] + 128)·c_t[p]` (wrapping i32) for 4 weight rows × 4 columns
/// of `kb` bytes each: 64 bytes of `k` per `vpdpbusd`, a masked load for the
/// last `kb mod 64` (masked bytes are zero in the columns, so they add
/// nothing), 16 zmm accumulators reduced at the end.
///
/// # Safety
/// AVX-512 F, BW and VNNI run; every slice holds at least `kb` bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_4x4(w: &[&[i8]; MR], c: &[&[u8]; NC], kb: usize) -> [[i32; NC]; MR] {
    debug_assert!(w.iter().all(|r| r.len() >= kb) && c.iter().all(|r| r.len() >= kb));
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut acc = [[_mm512_setzero_si512(); NC]; MR];
    let mut k = 0;
    while k + 64 <= kb {
        // SAFETY: k + 64 <= kb <= every operand's length.
        unsafe {
            let wv: [__m512i; MR] = core::array::from_fn(|r| {
                _mm512_xor_si512(_mm512_loadu_si512(w[r].as_ptr().add(k).cast()), flip)
            });
            for t in 0..NC {
                let cv = _mm512_loadu_si512(c[t].as_ptr().add(k).cast());
                for r in 0..MR {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wv[r], cv);
                }
            }
        }
        k += 64;
    }
    if k < kb {
        let mask: __mmask64 = (1u64 << (kb - k)) - 1;
        // SAFETY: the masked loads read only the `kb − k` bytes left.
        unsafe {
            let wv: [__m512i; MR] = core::array::from_fn(|r| {
                _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, w[r].as_ptr().add(k)), flip)
            });
            for t in 0..NC {
                let cv = _mm512_maskz_loadu_epi8(mask, c[t].as_ptr().add(k).cast());
                for r in 0..MR {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wv[r], cv);
                }
            }
        }
    }
    let mut sums = [[0i32; NC]; MR];
    for (s, a) in sums.iter_mut().zip(&acc) {
        for (s, &a) in s.iter_mut().zip(a) {
            *s = _mm512_reduce_add_epi32(a);
        }
    }
    sums
}

/// The requantising epilogue of a full 4 × 4 block, 16 lanes at once:
/// `clamp(zp_out + requant(bias[r] + acc[r][t] − corr[t], mul[r]), lo, hi)`
/// (the table, if any, is the caller's). Byte-identical to
/// [`Requant::apply`] for multipliers with `shift ≤ 0` and
/// `|zp_out| ≤ 2^24`: gemmlowp's `SaturatingRoundingDoublingHighMul` on
/// 64-bit products (even and odd lanes), then `RoundingDivideByPOT`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn epilogue_4x4(
    acc: &[[i32; NC]; MR],
    bias: &[i32; MR],
    mul: &[QMul; MR],
    corr: &[i32; NC],
    rq: &Requant<'_>,
) -> [[i8; NC]; MR] {
    let lane = |f: &dyn Fn(usize, usize) -> i32| -> __m512i {
        let v: [i32; 16] = core::array::from_fn(|i| f(i / NC, i % NC));
        // SAFETY: `v` holds 16 i32.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    };
    let x = lane(&|r, t| bias[r].wrapping_add(acc[r][t].wrapping_sub(corr[t])));
    let m = lane(&|r, _| mul[r].m);
    let e = lane(&|r, _| mul[r].shift.saturating_neg().clamp(0, 31));
    let y = requant16_rq(x, m, e, rq);
    let bytes: [i8; 16] = {
        let mut b = [0i8; 16];
        // SAFETY: `b` holds 16 bytes; every lane is within i8 after the clamp.
        unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(y)) };
        b
    };
    core::array::from_fn(|r| core::array::from_fn(|t| bytes[r * NC + t]))
}

/// The [`crate::Slot::Sgemm`] of this path: the blocked GEMM with the 8×32
/// zmm micro-kernel.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F, BW and VNNI run (the path's
/// availability), operands checked.
unsafe fn avx512_sgemm_f32(g: &Gemm<'_>, c: &mut [f32], scratch: &mut [f32]) {
    crate::blocked::sgemm_blocked(Vnni(()), g, &g.b, c, scratch);
}

/// The [`crate::Slot::ConvF32`] of this path: im2col-packed GEMM with the
/// 8×32 zmm micro-kernel.
///
/// # Safety
/// As for [`avx512_sgemm_f32`].
unsafe fn avx512_conv_f32(a: &ConvF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
    crate::blocked::conv_dense(Vnni(()), a, out, scratch);
}

/// 8×32: 16 zmm accumulators, 2 for the `B` row and 1 broadcast of `A`. Each
/// `k` step issues 16 FMAs against 2 loads and 8 broadcasts.
impl MicroKernel for Vnni {
    const MR: usize = 8;
    const NR: usize = 32;
    const NC: usize = 128;

    unsafe fn tile(self, t: &Tile, epi: &TileEpi) {
        // SAFETY: `self` proves AVX-512 F (and the AVX2/FMA the epilogue
        // uses); the pointer contract is the caller's.
        unsafe { avx512_sgemm_f32_8x32(t, epi) }
    }
}

/// The [`crate::Slot::WinogradF32`] of this path: the portable driver with
/// its transforms compiled for 16-lane registers (a 256-channel 40×40 layer
/// 7 % faster than with the SSE2 ones).
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F, AVX2 and FMA run, operands
/// checked.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_winograd_f32(
    k: &Kernels,
    a: &WinogradF32<'_>,
    out: &mut OutPlanes<'_, f32>,
    scratch: &mut [f32],
) {
    crate::winograd::winograd_rows(k, a, out, scratch);
}

/// The 8×32 f32 micro-kernel ([`MicroKernel::tile`]): the same FMA order
/// per element as the AVX2 one (one `k` after another), then the epilogue in
/// 8-lane halves with the AVX2 path's activation.
///
/// # Safety
/// AVX-512 F, AVX2 and FMA run; the pointer contract of [`MicroKernel::tile`].
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_sgemm_f32_8x32(t: &Tile, epi: &TileEpi) {
    let Tile {
        kc, cs, b, c, rsc, ..
    } = *t;
    let rows = t.rows::<8>();
    let mut acc = [_mm512_setzero_ps(); 16];
    let mut bp = b;
    let mut off = 0;
    for _ in 0..kc {
        // SAFETY: step p < kc of the panel: elements p*32..p*32+32 of `b`.
        let (b0, b1) = unsafe { (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16))) };
        for (i, row) in rows.iter().enumerate() {
            // SAFETY: row min(i, mr-1) < mr, column p < kc: readable.
            let ai = _mm512_set1_ps(unsafe { *row.add(off) });
            acc[2 * i] = _mm512_fmadd_ps(ai, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_ps(ai, b1, acc[2 * i + 1]);
        }
        bp = bp.wrapping_add(32);
        off += cs;
    }
    for (i, pair) in acc.chunks_exact(2).enumerate() {
        let bias = _mm256_set1_ps(epi.bias[i]);
        let cp = c.wrapping_add(i * rsc);
        for (h, &v) in pair.iter().enumerate() {
            let halves = [
                _mm512_castps512_ps256(v),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
            ];
            for (q, &x) in halves.iter().enumerate() {
                let p = cp.wrapping_add(16 * h + 8 * q);
                let mut x = _mm256_add_ps(x, bias);
                if epi.load_c {
                    // SAFETY: row i < MR, columns 0..32 of the tile are readable.
                    x = _mm256_add_ps(x, unsafe { _mm256_loadu_ps(p) });
                }
                if let Some(act) = epi.act {
                    x = crate::x86::act_ps(act, x);
                }
                // SAFETY: row i < MR, columns 0..32 of the tile are writable.
                unsafe { _mm256_storeu_ps(p, x) };
            }
        }
    }
}

/// The epilogue of 16 lanes before the table: [`requant16`], then
/// `clamp(zp_out + q, lo, hi)` (`q` is first brought into ±2^30: the clamp's
/// result is the same, and with `|zp_out| ≤ 2^24` the sum cannot overflow,
/// where the scalar rule saturates). Lanes fit in i8.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn requant16_out(
    x: __m512i,
    m: __m512i,
    e: __m512i,
    zp_out: i32,
    (lo, hi): (i32, i32),
) -> __m512i {
    let q = requant16(x, m, e);
    let q = _mm512_max_epi32(
        _mm512_min_epi32(q, _mm512_set1_epi32(1 << 30)),
        _mm512_set1_epi32(-(1 << 30)),
    );
    let y = _mm512_add_epi32(q, _mm512_set1_epi32(zp_out));
    _mm512_max_epi32(
        _mm512_min_epi32(y, _mm512_set1_epi32(hi)),
        _mm512_set1_epi32(lo),
    )
}

/// The output zero points [`requant16_out`] takes (the quantizer writes
/// int8 ones; beyond this the sum could overflow where the scalar rule
/// saturates).
pub(crate) const ZP_OUT_RANGE: core::ops::RangeInclusive<i32> = -(1 << 24)..=1 << 24;

/// Whether [`requant16_rq`] is byte-identical to the scalar epilogue of `rq`:
/// every multiplier shifts right and the output zero point is in
/// [`ZP_OUT_RANGE`] (otherwise kernels take the scalar rule).
pub(crate) fn requant16_covers(rq: &Requant<'_>) -> bool {
    rq.mul.iter().all(|m| m.shift <= 0) && ZP_OUT_RANGE.contains(&rq.zp_out)
}

/// [`requant16_out`] with a convolution's output zero point and clamps.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn requant16_rq(x: __m512i, m: __m512i, e: __m512i, rq: &Requant<'_>) -> __m512i {
    requant16_out(x, m, e, rq.zp_out, (rq.lo as i32, rq.hi as i32))
}

/// [`crate::quant::requant`] of 16 lanes whose multipliers shift right:
/// gemmlowp's `SaturatingRoundingDoublingHighMul(x, m)` on even and odd
/// 64-bit products, then `RoundingDivideByPOT` by `e` (each lane's
/// `−shift`, in `[0, 31]`). Byte-identical to the scalar rule for those
/// multipliers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn requant16(x: __m512i, m: __m512i, e: __m512i) -> __m512i {
    // SRDHM: (x·m + nudge) / 2^31, truncating, per 64-bit product.
    let high = |p: __m512i| -> __m512i {
        let neg = _mm512_cmplt_epi64_mask(p, _mm512_setzero_si512());
        let nudge = _mm512_mask_blend_epi64(
            neg,
            _mm512_set1_epi64(1 << 30),
            _mm512_set1_epi64(1 - (1 << 30)),
        );
        let v = _mm512_add_epi64(p, nudge);
        let vneg = _mm512_cmplt_epi64_mask(v, _mm512_setzero_si512());
        let bias = _mm512_maskz_mov_epi64(vneg, _mm512_set1_epi64((1 << 31) - 1));
        _mm512_srai_epi64::<31>(_mm512_add_epi64(v, bias))
    };
    let even = high(_mm512_mul_epi32(x, m));
    let odd = high(_mm512_mul_epi32(
        _mm512_srli_epi64::<32>(x),
        _mm512_srli_epi64::<32>(m),
    ));
    let mut h = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
    let sat = _mm512_cmpeq_epi32_mask(x, _mm512_set1_epi32(i32::MIN))
        & _mm512_cmpeq_epi32_mask(m, _mm512_set1_epi32(i32::MIN));
    h = _mm512_mask_mov_epi32(h, sat, _mm512_set1_epi32(i32::MAX));
    rounding_divide16(h, e)
}

/// `RoundingDivideByPOT(h, e)` per lane (`e` in `[0, 31]`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn rounding_divide16(h: __m512i, e: __m512i) -> __m512i {
    let one = _mm512_set1_epi32(1);
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
    let remainder = _mm512_and_si512(h, mask);
    let threshold = _mm512_mask_add_epi32(
        _mm512_srli_epi32::<1>(mask),
        _mm512_cmplt_epi32_mask(h, _mm512_setzero_si512()),
        _mm512_srli_epi32::<1>(mask),
        one,
    );
    let up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    _mm512_mask_add_epi32(_mm512_srav_epi32(h, e), up, _mm512_srav_epi32(h, e), one)
}

/// One input's term of the weighted sum, `requant(d·2^20, m)` per lane for
/// `d = q − zp` in `[−255, 255]` and a multiplier `m ≥ 0` that shifts right
/// by `e`, without 64-bit products: with `m = mh·2^11 + ml`,
/// `SRDHM(d·2^20, m)` is `d·mh + ((d·ml + 1024) >> 11)` for `d ≥ 0`, and
/// `d·mh + ((d·ml − 1024) >> 11) + 1` for `d < 0` (C's truncating division
/// of `d·m·2^20 + 1 − 2^30` by `2^31`); every product stays below 2^28.
/// Then `RoundingDivideByPOT` by `e`. Equal to the scalar rule for every
/// such `d` and `m` (tested exhaustively over `d`).
// The split at bit 11 is 31 − SUM_LEFT_SHIFT, the nudge 2^(30 − 20).
const _: () = assert!(SUM_LEFT_SHIFT == 20);
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn sum_term16(d: __m512i, mh: __m512i, ml: __m512i, e: __m512i) -> __m512i {
    let neg = _mm512_cmplt_epi32_mask(d, _mm512_setzero_si512());
    let nudge = _mm512_mask_blend_epi32(neg, _mm512_set1_epi32(1024), _mm512_set1_epi32(-1024));
    let low = _mm512_srai_epi32::<11>(_mm512_add_epi32(_mm512_mullo_epi32(d, ml), nudge));
    let h = _mm512_add_epi32(_mm512_mullo_epi32(d, mh), low);
    let h = _mm512_mask_add_epi32(h, neg, h, _mm512_set1_epi32(1));
    rounding_divide16(h, e)
}

/// The [`crate::Slot::WeightedSumI8`] of this path: 16 outputs of a row at a
/// time (upsampled inputs read 8 bytes and duplicate each; same-size maps as
/// one flat run), every inner and the outer requantisation with
/// [`requant16`], masked loads and stores for the last `w mod 16` of a row;
/// sums whose output multiplier shifts left element by element with the
/// scalar rule. Byte-identical to the scalar slot.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F and BW run, operands checked.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn avx512_weighted_sum_s8(a: &SumI8<'_>, out: &mut [i8]) {
    let (_, _, w) = a.dims;
    // The inner multipliers are at most 1/2 (the module's normalisation), so
    // they shift right, and not negative (`sum_term16`); an output multiplier
    // above 1 takes the scalar rule.
    // Output zero points beyond ±2^24 (never produced by the quantizer) too.
    let vector = a.out_mul.shift <= 0
        && a.params.iter().all(|p| p.mul.shift <= 0 && p.mul.m >= 0)
        && ZP_OUT_RANGE.contains(&a.zp_out);
    let up = |i: usize| a.upsampled >> i & 1 == 1;
    let (lo, hi) = (a.lo as i32, a.hi as i32);
    let splat = |v: i32| _mm512_set1_epi32(v);
    let e = |m: QMul| splat(m.shift.saturating_neg().clamp(0, 31));
    // 16 outputs of `rows` at `j` (the first `lanes` of them, masked).
    let vec16 = |rows: &[&[i8]], orow: &mut [i8], j: usize, lanes: usize| {
        let keep = first_lanes(lanes);
        let half = first_lanes(lanes.div_ceil(2));
        let mut acc = _mm512_setzero_si512();
        for (i, (row, p)) in rows.iter().zip(a.params).enumerate() {
            // SAFETY: the masked loads read `lanes` bytes at j (or
            // ⌈lanes/2⌉ at j/2 of a half-width row, j even), within the row.
            let bytes = unsafe {
                if up(i) {
                    let v = _mm_maskz_loadu_epi8(half, row.as_ptr().add(j / 2));
                    _mm_unpacklo_epi8(v, v)
                } else {
                    _mm_maskz_loadu_epi8(keep, row.as_ptr().add(j))
                }
            };
            let d = _mm512_sub_epi32(_mm512_cvtepi8_epi32(bytes), splat(p.zp));
            let (mh, ml) = (splat(p.mul.m >> 11), splat(p.mul.m & 2047));
            acc = _mm512_add_epi32(acc, sum_term16(d, mh, ml, e(p.mul)));
        }
        let v = requant16_out(acc, splat(a.out_mul.m), e(a.out_mul), a.zp_out, (lo, hi));
        // SAFETY: the mask enables the `lanes` bytes at j, within the row.
        unsafe { _mm_mask_storeu_epi8(orow.as_mut_ptr().add(j), keep, _mm512_cvtepi32_epi8(v)) };
    };
    if vector && a.upsampled == 0 {
        // Same-size maps: one flat run of c·h·w outputs.
        let n = out.len();
        for j in (0..n).step_by(16) {
            vec16(a.inputs, out, j, (n - j).min(16));
        }
        return;
    }
    let mut rows: [&[i8]; MAX_SUM_INPUTS] = [&[]; MAX_SUM_INPUTS];
    for (r, orow) in out.chunks_exact_mut(w.max(1)).enumerate() {
        let rows = a.input_rows(r, &mut rows);
        if vector {
            for j in (0..w).step_by(16) {
                vec16(rows, orow, j, (w - j).min(16));
            }
            continue;
        }
        for (jj, o) in orow.iter_mut().enumerate() {
            let qs = rows
                .iter()
                .enumerate()
                .map(|(i, row)| if up(i) { row[jj / 2] } else { row[jj] });
            *o = sum_one(qs, a.params, a.out_mul, a.zp_out, lo, hi);
        }
    }
}

/// The [`crate::Slot::DwConvI8`] of this path: strides 1 and 2 and kernels
/// up to 7 by [`crate::x86_vnni_dw`] (runs of 32 pixels, tap pairs by
/// `vpdpwssd`); other strides and kernels, multipliers above 1 and output
/// zero points beyond ±2^24 take the portable kernel. Byte-identical to it.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F, BW, VL and VNNI run,
/// operands checked.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
unsafe fn avx512_dwconv_s8(a: &ConvI8<'_>, out: &mut [i8]) {
    if !(crate::x86_vnni_dw::handles(a) && requant16_covers(&a.rq)) {
        return crate::conv_i8::conv_s8_depthwise(a, out);
    }
    // SAFETY: this function's features run; the slot checked `a`; `handles`
    // and the vector epilogue hold.
    unsafe {
        if a.g.stride == 1 {
            crate::x86_vnni_dw::dwconv_s8_flat(a, out)
        } else {
            crate::x86_vnni_dw::dwconv_s8_rows_s2(a, out)
        }
    }
}

/// The [`crate::Slot::SoftmaxCols`] of this path: 16 columns per zmm vector
/// (masked for the last `cols mod 16`), three passes down the rows as the
/// scalar kernel (the maximum; `e^(x − max)` by [`exp512`], stored and
/// summed in row order; the product with `1/sum`). Within the normalisation
/// bound of `tests/equivalence.rs` of it: only `exp` differs (2 ulp).
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs, `cols > 0` divides
/// `x.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_softmax_cols(x: &mut [f32], cols: usize) {
    let rows = x.len() / cols;
    let base = x.as_mut_ptr();
    for j0 in (0..cols).step_by(16) {
        let lanes = first_lanes((cols - j0).min(16));
        let at = |i: usize| base.wrapping_add(i * cols + j0);
        // Lanes j0..j0+w of row i < rows, w = min(16, cols − j0), lie in
        // `x`; masked-off lanes are not touched.
        let load = |i: usize| {
            // SAFETY: the lanes above, for the rows i < rows passed below.
            unsafe { _mm512_maskz_loadu_ps(lanes, at(i)) }
        };
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in 0..rows {
            max = _mm512_max_ps(max, load(i));
        }
        let mut sum = _mm512_setzero_ps();
        for i in 0..rows {
            let e = exp512(_mm512_sub_ps(load(i), max));
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(at(i), lanes, e) };
            sum = _mm512_add_ps(sum, e);
        }
        let inv = _mm512_div_ps(_mm512_set1_ps(1.0), sum);
        for i in 0..rows {
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(at(i), lanes, _mm512_mul_ps(load(i), inv)) };
        }
    }
}

/// The [`crate::Slot::SoftmaxGroups`] of this path: each group of `group`
/// channels is a `[group, t]` matrix whose columns are softmaxed
/// ([`avx512_softmax_cols`] on a copy).
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs, `group·t > 0` divides
/// `x.len() == out.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_softmax_groups(x: &[f32], group: usize, t: usize, out: &mut [f32]) {
    out.copy_from_slice(x);
    for g in out.chunks_exact_mut(group * t) {
        // SAFETY: this function's features; `t` divides the group's length.
        unsafe { avx512_softmax_cols(g, t) };
    }
}

/// `e^x` on 16 lanes: `x86::exp_ps`'s operations on zmm registers
/// (the same results lane for lane).
#[target_feature(enable = "avx512f")]
#[inline]
fn exp512(x: __m512) -> __m512 {
    let splat = _mm512_set1_ps;
    let overflow = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, splat(88.722_84));
    // VMAXPS/VMINPS return their second operand when either is NaN.
    let x = _mm512_min_ps(splat(88.0), _mm512_max_ps(splat(-87.0), x));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, splat(core::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, splat(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, splat(-2.121_944_4e-4), r);
    let mut y = splat(EXP_POLY[0]);
    for coef in &EXP_POLY[1..] {
        y = _mm512_fmadd_ps(y, r, splat(*coef));
    }
    let y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
    let y = _mm512_add_ps(y, splat(1.0));
    let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    let y = _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e)));
    _mm512_mask_blend_ps(overflow, y, splat(f32::INFINITY))
}

/// The [`crate::Slot::DeformSample`] of this path: 16 queries per zmm
/// vector. For each head, sample (level, point) and block of queries, the
/// four bilinear taps' indices and weights are formed once, with the scalar
/// kernel's operations (no FMA, the same values); then, for each channel of
/// the head, the taps are gathered from the channel's value row
/// (`vgatherdps`, taps outside the map masked off, as the scalar kernel skips
/// them) and `aw · Σ tap·weight` is added to the channel's output row,
/// contiguous over the queries. The sums run in the scalar kernel's order,
/// with FMA (within the sampling bound of `tests/equivalence.rs`). Maps of
/// more than `i32::MAX` tokens take the scalar kernel.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs, the geometry is
/// valid and the operands hold what it calls for.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_deform_sample(
    g: &DeformGeom,
    value: &[f32],
    loc: &[f32],
    aw: &[f32],
    out: &mut [f32],
) {
    let shapes = &g.shapes[..g.levels];
    if shapes.iter().any(|&(h, w)| h * w > i32::MAX as usize) {
        crate::ops::decoder::deform_sample(g, value, loc, aw, out);
        return;
    }
    let (q, n, d) = (g.queries, g.tokens(), g.channels / g.heads);
    out[..g.channels * q].fill(0.0);
    let splat = _mm512_set1_ps;
    let (zero, one, two) = (splat(0.0), splat(1.0), splat(2.0));
    // Pixel coordinate of a location on an axis of `size` pixels, as the
    // scalar kernel: ((2·loc − 1 + 1)·size − 1) / 2.
    let pixel = |l: __m512, size: __m512| {
        let g = _mm512_sub_ps(_mm512_mul_ps(two, l), one);
        _mm512_div_ps(
            _mm512_sub_ps(_mm512_mul_ps(_mm512_add_ps(g, one), size), one),
            two,
        )
    };
    let within = |v: __m512, size: __m512| {
        _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, zero) & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, size)
    };
    let floor =
        |v: __m512| _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v);
    let mut s = 0;
    for h in 0..g.heads {
        let mut start = 0;
        for &(lh, lw) in shapes {
            let (fw, fh) = (splat(lw as f32), splat(lh as f32));
            for _ in 0..g.points {
                for j in (0..q).step_by(16) {
                    let lanes = first_lanes((q - j).min(16));
                    let at = |x: &[f32], row: usize| {
                        let x = &x[row * q + j..][..(q - j).min(16)];
                        // SAFETY: the unmasked lanes are the elements of `x`.
                        unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr()) }
                    };
                    let (ix, iy) = (pixel(at(loc, 2 * s), fw), pixel(at(loc, 2 * s + 1), fh));
                    let w = at(aw, s);
                    let (x0, y0) = (floor(ix), floor(iy));
                    let (x1, y1) = (_mm512_add_ps(x0, one), _mm512_add_ps(y0, one));
                    let (ax0, ax1) = (_mm512_sub_ps(x1, ix), _mm512_sub_ps(ix, x0));
                    let (ay0, ay1) = (_mm512_sub_ps(y1, iy), _mm512_sub_ps(iy, y0));
                    let (in_x0, in_x1) = (within(x0, fw), within(x1, fw));
                    let (in_y0, in_y1) = (within(y0, fh) & lanes, within(y1, fh) & lanes);
                    let index = |x: __m512, y: __m512| {
                        let row = _mm512_mullo_epi32(
                            _mm512_cvttps_epi32(y),
                            _mm512_set1_epi32(lw as i32),
                        );
                        _mm512_add_epi32(row, _mm512_cvttps_epi32(x))
                    };
                    // The corners in the scalar kernel's order, with its weights.
                    let taps = [
                        (in_x0 & in_y0, index(x0, y0), _mm512_mul_ps(ax0, ay0)),
                        (in_x1 & in_y0, index(x1, y0), _mm512_mul_ps(ax1, ay0)),
                        (in_x0 & in_y1, index(x0, y1), _mm512_mul_ps(ax0, ay1)),
                        (in_x1 & in_y1, index(x1, y1), _mm512_mul_ps(ax1, ay1)),
                    ];
                    for ch in h * d..(h + 1) * d {
                        let row = value[ch * n + start..][..lh * lw].as_ptr();
                        let mut v = zero;
                        for &(inside, idx, tw) in &taps {
                            // SAFETY: the lanes in `inside` hold tap indices
                            // `ty·lw + tx` with 0 ≤ tx < lw, 0 ≤ ty < lh: within
                            // the level's `lh·lw` values at `row`.
                            let x =
                                unsafe { _mm512_mask_i32gather_ps::<4>(zero, inside, idx, row) };
                            v = _mm512_mask3_fmadd_ps(x, tw, v, inside);
                        }
                        let o = &mut out[ch * q + j..][..(q - j).min(16)];
                        // SAFETY: the unmasked lanes are the elements of `o`.
                        unsafe {
                            let acc = _mm512_maskz_loadu_ps(lanes, o.as_ptr());
                            _mm512_mask_storeu_ps(
                                o.as_mut_ptr(),
                                lanes,
                                _mm512_fmadd_ps(w, v, acc),
                            );
                        }
                    }
                }
                s += 1;
            }
            start += lh * lw;
        }
    }
}

/// The [`crate::Slot::LayerNorm`] of this path: 16 tokens at a time, each
/// token's moments in f64 lanes (two zmm of 8), channel after channel, then
/// the normalised f32 outputs. The same IEEE operations in the same order as
/// the scalar kernel (f32 residual sum, f64 moments, `1/sqrt` of the
/// correctly rounded square root, no FMA), so the same bits.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs; `x`, `residual` and
/// `out` hold `c·t` values, `gamma` and `beta` `c`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_layer_norm(a: &LayerNorm<'_>, out: &mut OutPlanes<'_, f32>) {
    let (c, t) = (a.c, a.t);
    let cf = _mm512_set1_pd(c as f64);
    let cols = out.cols();
    for t0 in cols.clone().step_by(16) {
        let w = (cols.end - t0).min(16);
        let lanes = first_lanes(w);
        let load = |x: &[f32], ch: usize| {
            let x = &x[ch * t + t0..][..w];
            // SAFETY: the unmasked lanes are the elements of `x`.
            unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr()) }
        };
        // Channel `ch` of the block's tokens, `x + residual` in f32, as two
        // halves of f64.
        let token_values = |ch: usize| {
            let mut v = load(a.x, ch);
            if let Some(r) = a.residual {
                v = _mm512_add_ps(v, load(r, ch));
            }
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            [
                _mm512_cvtps_pd(_mm512_castps512_ps256(v)),
                _mm512_cvtps_pd(hi),
            ]
        };
        let mut sum = [_mm512_setzero_pd(); 2];
        for ch in 0..c {
            let x = token_values(ch);
            for (s, x) in sum.iter_mut().zip(x) {
                *s = _mm512_add_pd(*s, x);
            }
        }
        let mean = sum.map(|s| _mm512_div_pd(s, cf));
        let mut var = [_mm512_setzero_pd(); 2];
        for ch in 0..c {
            let x = token_values(ch);
            for ((v, x), m) in var.iter_mut().zip(x).zip(mean) {
                let d = _mm512_sub_pd(x, m);
                *v = _mm512_add_pd(*v, _mm512_mul_pd(d, d));
            }
        }
        let eps = _mm512_set1_pd(a.eps as f64);
        let rstd = var.map(|v| {
            let root = _mm512_sqrt_pd(_mm512_add_pd(_mm512_div_pd(v, cf), eps));
            _mm512_div_pd(_mm512_set1_pd(1.0), root)
        });
        for ch in 0..c {
            let x = token_values(ch);
            let n = [0, 1]
                .map(|h| _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(x[h], mean[h]), rstd[h])));
            let n = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(n[0])),
                _mm256_castps_pd(n[1]),
            ));
            let y = _mm512_add_ps(
                _mm512_mul_ps(n, _mm512_set1_ps(a.gamma[ch])),
                _mm512_set1_ps(a.beta[ch]),
            );
            let o = out.row(ch, t0, w);
            // SAFETY: the unmasked lanes are the elements of `o`.
            unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr(), lanes, y) };
        }
    }
}

/// The [`crate::Slot::TopKTokens`] of this path: each token's maximum over
/// the channels 16 tokens at a time (rows read along the tokens; a NaN is
/// taken as the scalar kernel takes it, so the same maxima), then the scalar
/// kernel's streaming top-K in token order.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs; `c > 0` divides
/// `scores.len()`, `scratch` holds `idx.len()` values.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_topk_tokens(scores: &[f32], c: usize, idx: &mut [u32], scratch: &mut [f32]) {
    let n = scores.len() / c;
    let k = idx.len();
    let mut top = TopK::new(&mut scratch[..k], idx);
    for t0 in (0..n).step_by(16) {
        let w = (n - t0).min(16);
        let lanes = first_lanes(w);
        let load = |ch: usize| {
            let x = &scores[ch * n + t0..][..w];
            // SAFETY: the unmasked lanes are the elements of `x`.
            unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr()) }
        };
        let mut m = load(0);
        for ch in 1..c {
            let v = load(ch);
            // torch.max propagates NaN: v replaces m when v > m or v is NaN.
            let take =
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, m) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            m = _mm512_mask_blend_ps(take, m, v);
        }
        let mut maxima = [0f32; 16];
        // SAFETY: `maxima` holds 16 values.
        unsafe { _mm512_storeu_ps(maxima.as_mut_ptr(), m) };
        for (i, &s) in maxima[..w].iter().enumerate() {
            top.push(s, (t0 + i) as u32);
        }
    }
}

/// The [`crate::Slot::DwConvF32`] of this path: 16 output columns per zmm
/// vector, every tap a masked load (padding columns and lanes past the row
/// read as zero, and are never read), stride 2 as two masked loads whose
/// even lanes a two-table permute keeps. Rows of any width run in vectors,
/// so small maps (10 × 10 with 5 × 5 taps) have no scalar border; the taps
/// accumulate in the reference's order with FMA. Strides above 2 take the
/// base path's kernel.
///
/// # Safety
/// The slot contract (`crate::table`): AVX-512 F runs, operands checked.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_dwconv_f32(a: &ConvF32<'_>, out: &mut [f32]) {
    let g = &a.g;
    if g.stride > 2 {
        // SAFETY: the base path's features are this path's.
        return unsafe { crate::x86::avx2_fma_dwconv_f32(a, out) };
    }
    let (h, w, k, s, pad) = (g.h, g.w, g.k, g.stride, g.pad() as isize);
    let (oh, ow) = (g.out_h(), g.out_w());
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    // Of 16 consecutive columns from `base`, those at offsets `j < n` that
    // lie in the row (`0 ≤ base + j < w`).
    let cols = |base: isize, n: usize| -> u16 {
        let lo = (-base).clamp(0, 16) as usize;
        let hi = (w as isize - base).clamp(0, n as isize) as usize;
        first_lanes(hi) & !first_lanes(lo)
    };
    for c in 0..g.cout {
        let plane = &a.input[c * h * w..][..h * w];
        let taps = &a.weight[c * k * k..][..k * k];
        let bias = _mm512_set1_ps(a.bias[c]);
        for oy in 0..oh {
            let orow = &mut out[(c * oh + oy) * ow..][..ow];
            for ox in (0..ow).step_by(16) {
                let lanes = (ow - ox).min(16);
                let mut acc = _mm512_setzero_ps();
                for ky in 0..k {
                    let Some(iy) = input_row(h, s, g.pad(), oy, ky) else {
                        continue;
                    };
                    let line = plane[iy * w..][..w].as_ptr();
                    for kx in 0..k {
                        let wv = _mm512_set1_ps(taps[ky * k + kx]);
                        let base = (s * ox) as isize + kx as isize - pad;
                        // Both arms: the masks enable only lanes whose column
                        // lies in `line` (`cols`); `wrapping_offset` forms the
                        // addresses of the others without reading them.
                        let x = if s == 1 {
                            let m = cols(base, lanes);
                            // SAFETY: see above.
                            unsafe { _mm512_maskz_loadu_ps(m, line.wrapping_offset(base)) }
                        } else {
                            // Offset j of `lo` is column base + j (j even: the
                            // output's lane j/2); `hi` the 16 columns after.
                            const EVEN: u16 = 0x5555;
                            let m_lo = cols(base, 2 * lanes.min(8)) & EVEN;
                            let m_hi = cols(base + 16, 2 * lanes.saturating_sub(8)) & EVEN;
                            // SAFETY: see above.
                            unsafe {
                                let lo = _mm512_maskz_loadu_ps(m_lo, line.wrapping_offset(base));
                                let hi =
                                    _mm512_maskz_loadu_ps(m_hi, line.wrapping_offset(base + 16));
                                _mm512_permutex2var_ps(lo, even, hi)
                            }
                        };
                        acc = _mm512_fmadd_ps(wv, x, acc);
                    }
                }
                let y = act16(a.act, _mm512_add_ps(acc, bias));
                let keep = first_lanes(lanes);
                // SAFETY: the mask enables the `lanes` columns at ox, within the row.
                unsafe { _mm512_mask_storeu_ps(orow.as_mut_ptr().add(ox), keep, y) };
            }
        }
    }
}

/// `act(v)` on 16 lanes: ReLU and ReLU6 in vectors (NaN stays NaN, as in
/// `act_ps`), the others lane by lane through the scalar function. Written
/// here rather than calling the AVX2 `act_ps` twice: a second caller of that
/// function changed how LLVM compiled the 8 × 32 GEMM tile's epilogue (an
/// accumulator spilled inside its loop, 3× slower).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn act16(act: Act, v: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    match act {
        Act::None => v,
        // MAXPS/MINPS return their second operand when either is NaN.
        Act::Relu => _mm512_max_ps(zero, v),
        Act::Relu6 => _mm512_min_ps(_mm512_set1_ps(6.0), _mm512_max_ps(zero, v)),
        _ => {
            let mut lanes = [0.0f32; 16];
            // SAFETY: `lanes` holds 16 elements.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
            for x in &mut lanes {
                *x = act.apply(*x);
            }
            // SAFETY: as above.
            unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
        }
    }
}

/// The mask of the first `n ≤ 16` lanes of a 16-lane vector.
#[inline]
pub(crate) fn first_lanes(n: usize) -> __mmask16 {
    debug_assert!(n <= 16);
    ((1u32 << n) - 1) as u16
}
