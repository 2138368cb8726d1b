//! x86_64 AVX2 + FMA3 kernels (Haswell and later, Zen and later).
//!
//! Every `#[target_feature]` function here is reachable only through an
//! [`Avx2Fma`] token, which [`Avx2Fma::new`] hands out after `cpuid` and
//! `xgetbv` confirm the CPU executes AVX2 and FMA and the OS saves YMM state.

use core::arch::x86_64::*;

use crate::Act;
use crate::Kernels;
use crate::blocked::{DwRow, MicroKernel, Tile, TileEpi};
use crate::caps::Caps;
use crate::conv::ConvF32;
use crate::conv_i8::{ConvI8, DotS8, NR};
use crate::gemm::Gemm;
use crate::planes::OutPlanes;
use crate::reference::input_row;
use crate::table::{SCALAR, declare_path};
use crate::winograd::WinogradF32;

declare_path! {
    /// AVX2 + FMA3 (Haswell and later, Zen and later): a 6×16 f32 GEMM
    /// micro-kernel, 8-wide depthwise f32 convolutions, and the int8
    /// convolutions built with AVX2 around a `vpmaddwd` dot product, and the
    /// JPEG kernels (`crate::x86_jpeg`).
    pub(crate) static AVX2_FMA = "avx2_fma", base Some(&SCALAR),
    available |caps: Caps| caps.avx2_fma && Avx2Fma::new().is_some(),
    {
        sgemm = avx2_fma_sgemm_f32,
        conv_f32 = avx2_fma_conv_f32,
        dwconv_f32 = avx2_fma_dwconv_f32,
        conv_i8 = avx2_conv_s8,
        dwconv_i8 = avx2_dwconv_s8,
        act_f32 = avx2_fma_act_f32,
        winograd_f32 = avx2_fma_winograd_f32,
        idct_islow_u8 = crate::x86_jpeg::avx2_idct_islow_u8,
        idct_4x4_u8 = crate::x86_jpeg::avx2_idct_4x4_u8,
        upsample_h2v1_fancy_u8 = crate::x86_jpeg::avx2_upsample_h2v1_fancy_u8,
        upsample_h2v2_fancy_u8 = crate::x86_jpeg::avx2_upsample_h2v2_fancy_u8,
        ycc_to_rgb_u8 = crate::x86_jpeg::avx2_ycc_to_rgb_u8,
    }
}

/// Proof that the CPU runs AVX2 and FMA3 (and the OS saves YMM registers).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2Fma(());

impl Avx2Fma {
    /// The token, if the CPU has the features.
    pub(crate) fn new() -> Option<Avx2Fma> {
        cpu_has_avx2_fma().then_some(Avx2Fma(()))
    }

    /// The token without a check.
    ///
    /// # Safety
    /// The CPU runs AVX2 and FMA (the contract of every slot this path
    /// installs: see `crate::table`).
    unsafe fn assume() -> Avx2Fma {
        Avx2Fma(())
    }
}

/// The [`crate::Slot::Sgemm`] of this path: the blocked GEMM with the 6×16
/// micro-kernel.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
unsafe fn avx2_fma_sgemm_f32(g: &Gemm<'_>, c: &mut [f32], scratch: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 and FMA.
    let t = unsafe { Avx2Fma::assume() };
    crate::blocked::sgemm_blocked(t, g, &g.b, c, scratch);
}

/// The [`crate::Slot::ConvF32`] of this path: im2col-packed GEMM.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
unsafe fn avx2_fma_conv_f32(a: &ConvF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 and FMA.
    let t = unsafe { Avx2Fma::assume() };
    crate::blocked::conv_dense(t, a, out, scratch);
}

/// The [`crate::Slot::WinogradF32`] of this path: the portable driver with
/// its transforms compiled for 8-lane registers.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_fma_winograd_f32(
    k: &Kernels,
    a: &WinogradF32<'_>,
    out: &mut OutPlanes<'_, f32>,
    scratch: &mut [f32],
) {
    crate::winograd::winograd_rows(k, a, out, scratch);
}

/// The [`crate::Slot::DwConvF32`] of this path.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
pub(crate) unsafe fn avx2_fma_dwconv_f32(a: &ConvF32<'_>, out: &mut [f32]) {
    // SAFETY: the caller guarantees AVX2 and FMA.
    unsafe { dwconv(a, out) }
}

/// The [`crate::Slot::ActF32`] of this path: [`act_ps`] 8 lanes at a time
/// (SiLU within 4 ulp of the scalar function, the others exact), the tail
/// through the scalar function.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, lengths checked.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_fma_act_f32(act: Act, x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: elements i..i + 8 of both slices exist (i + 8 <= n).
        unsafe {
            let v = act_ps(act, _mm256_loadu_ps(x.as_ptr().add(i)));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    for (o, &v) in out[i..n].iter_mut().zip(&x[i..n]) {
        *o = act.apply(v);
    }
}

/// The [`crate::Slot::ConvI8`] of this path: the portable dense int8
/// convolution compiled with AVX2, with [`avx2_dot_2x4_s8`] dot products.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_conv_s8(a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
    // SAFETY: the caller guarantees AVX2 and FMA.
    let t = unsafe { Avx2Fma::assume() };
    crate::conv_i8::conv_s8_dense(t, a, out, scratch);
}

/// The [`crate::Slot::DwConvI8`] of this path: the portable depthwise int8
/// convolution compiled with AVX2 (integer arithmetic: byte-identical).
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 and FMA run, operands checked.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_dwconv_s8(a: &ConvI8<'_>, out: &mut [i8]) {
    crate::conv_i8::conv_s8_depthwise(a, out);
}

impl DotS8 for Avx2Fma {
    #[inline(always)]
    fn dot_2x4(self, w0: &[i8], w1: &[i8], cols: &[u8], kb: usize) -> [[i32; NR]; 2] {
        assert!(
            kb.is_multiple_of(16) && w0.len() >= kb && w1.len() >= kb && cols.len() >= NR * kb,
            "dot_2x4: short operands"
        );
        // SAFETY: `self` proves AVX2; the lengths were checked above.
        unsafe { avx2_dot_2x4_s8(w0.as_ptr(), w1.as_ptr(), cols.as_ptr(), kb) }
    }
}

/// Two int8 weight rows against four packed int8 columns, 16 bytes of `k` at
/// a time: sign-extend to i16 (`vpmovsxbw`), multiply and add pairs into i32
/// (`vpmaddwd`: |2·128·128| fits, so exact), add up in wrapping i32, then
/// sum the eight lanes of each accumulator. Byte-identical to the portable sum.
///
/// # Safety
/// AVX2 must be available; `w0`, `w1` hold `kb` bytes and `cols` `4·kb`
/// bytes; `kb` is a multiple of 16.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_dot_2x4_s8(
    w0: *const i8,
    w1: *const i8,
    cols: *const u8,
    kb: usize,
) -> [[i32; NR]; 2] {
    let (mut acc0, mut acc1) = ([_mm256_setzero_si256(); NR], [_mm256_setzero_si256(); NR]);
    let mut k = 0;
    while k < kb {
        // SAFETY: k + 16 <= kb, within every operand (caller's contract).
        unsafe {
            let x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w0.add(k).cast()));
            let x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w1.add(k).cast()));
            for (t, (a0, a1)) in acc0.iter_mut().zip(acc1.iter_mut()).enumerate() {
                let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(cols.add(t * kb + k).cast()));
                *a0 = _mm256_add_epi32(*a0, _mm256_madd_epi16(x0, c));
                *a1 = _mm256_add_epi32(*a1, _mm256_madd_epi16(x1, c));
            }
        }
        k += 16;
    }
    [hsum4(acc0), hsum4(acc1)]
}

/// The lane sums of four i32 accumulators, in order (wrapping).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum4(a: [__m256i; NR]) -> [i32; NR] {
    let h01 = _mm256_hadd_epi32(a[0], a[1]);
    let h23 = _mm256_hadd_epi32(a[2], a[3]);
    let h = _mm256_hadd_epi32(h01, h23);
    // Each 128-bit half holds [s0, s1, s2, s3] of its lanes.
    let s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let mut out = [0i32; NR];
    // SAFETY: `out` is 16 writable bytes.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), s) };
    out
}

/// `cpuid` leaf 1 (FMA, AVX), `xgetbv` (XMM+YMM state enabled) and leaf 7
/// (AVX2): what `is_x86_feature_detected!` checks, without `std`.
fn cpu_has_avx2_fma() -> bool {
    const FMA: u32 = 1 << 12;
    const AVX: u32 = 1 << 28;
    const AVX2: u32 = 1 << 5;
    let Some((ecx1, l7)) = cpuid_with_os_state(0b110) else {
        return false;
    };
    ecx1 & (FMA | AVX) == FMA | AVX && l7.ebx & AVX2 != 0
}

/// `cpuid` leaf 1's ECX and leaf 7 (sub-leaf 0), when leaf 7 exists, the OS
/// enabled XSAVE (leaf 1's OSXSAVE) and `XCR0` has every bit of `state` set
/// (the register state the OS saves on a context switch).
pub(crate) fn cpuid_with_os_state(state: u64) -> Option<(u32, CpuidResult)> {
    const OSXSAVE: u32 = 1 << 27;
    // SAFETY: `cpuid` exists on every x86_64 CPU (the intrinsic is a safe
    // function on newer toolchains, hence the `allow`).
    #[allow(unused_unsafe)]
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return None;
    }
    // SAFETY: as above.
    #[allow(unused_unsafe)]
    let ecx = unsafe { __cpuid(1) }.ecx;
    if ecx & OSXSAVE == 0 {
        return None;
    }
    // SAFETY: OSXSAVE set means the OS enabled XSAVE, so XGETBV executes.
    let xcr0 = unsafe { _xgetbv(0) };
    if xcr0 & state != state {
        return None;
    }
    // SAFETY: as for leaf 0; leaf 7 exists (max_leaf >= 7).
    #[allow(unused_unsafe)]
    Some((ecx, unsafe { __cpuid_count(7, 0) }))
}

/// 6×16: 12 YMM accumulators, 2 for the `B` row and 1 broadcast of `A` (15 of
/// 16 registers). Each `k` step issues 12 FMAs against 2 loads and 6
/// broadcasts, so the two FMA ports of Haswell/Zen stay the bottleneck.
impl MicroKernel for Avx2Fma {
    const MR: usize = 6;
    const NR: usize = 16;
    const NC: usize = 128;

    unsafe fn tile(self, t: &Tile, epi: &TileEpi) {
        // SAFETY: `self` proves AVX2 and FMA; the pointer contract is the caller's.
        unsafe { avx2_fma_sgemm_f32_6x16(t, epi) }
    }
}

/// The 6×16 micro-kernel ([`MicroKernel::tile`]).
///
/// # Safety
/// The CPU has AVX2 and FMA, and the [`MicroKernel::tile`] contract holds.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_fma_sgemm_f32_6x16(t: &Tile, epi: &TileEpi) {
    let Tile {
        kc, cs, b, c, rsc, ..
    } = *t;
    let rows = t.rows::<6>();
    let mut acc = [_mm256_setzero_ps(); 12];
    let mut bp = b;
    let mut off = 0;
    for _ in 0..kc {
        // SAFETY: step p < kc of the panel: elements p*16..p*16+16 of `b`.
        let (b0, b1) = unsafe { (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8))) };
        for i in 0..6 {
            // SAFETY: row min(i, mr-1) < mr, column p < kc: readable.
            let ai = _mm256_set1_ps(unsafe { *rows[i].add(off) });
            acc[2 * i] = _mm256_fmadd_ps(ai, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm256_fmadd_ps(ai, b1, acc[2 * i + 1]);
        }
        bp = bp.wrapping_add(16);
        off += cs;
    }
    for i in 0..6 {
        let bias = _mm256_set1_ps(epi.bias[i]);
        let mut v0 = _mm256_add_ps(acc[2 * i], bias);
        let mut v1 = _mm256_add_ps(acc[2 * i + 1], bias);
        let cp = c.wrapping_add(i * rsc);
        if epi.load_c {
            // SAFETY: row i < MR, columns 0..16 of the tile are readable.
            unsafe {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cp));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cp.add(8)));
            }
        }
        if let Some(act) = epi.act {
            v0 = act_ps(act, v0);
            v1 = act_ps(act, v1);
        }
        // SAFETY: row i < MR, columns 0..16 of the tile are writable.
        unsafe {
            _mm256_storeu_ps(cp, v0);
            _mm256_storeu_ps(cp.add(8), v1);
        }
    }
}

/// The activation on 8 lanes: Relu/Relu6 exactly as [`Act::apply`] (NaN
/// stays NaN), Silu with [`exp_ps`] (within 4 ulp of the scalar one), Gelu and Sigmoid lane
/// by lane through the scalar function.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn act_ps(act: Act, v: __m256) -> __m256 {
    match act {
        Act::None => v,
        // MAXPS/MINPS return their second operand when either is NaN.
        Act::Relu => _mm256_max_ps(_mm256_setzero_ps(), v),
        Act::Relu6 => _mm256_min_ps(_mm256_set1_ps(6.0), _mm256_max_ps(_mm256_setzero_ps(), v)),
        Act::Silu => {
            let e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), v));
            _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0), e))
        }
        Act::Gelu | Act::Sigmoid => {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 elements.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            for x in &mut lanes {
                *x = act.apply(*x);
            }
            // SAFETY: as above.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        }
    }
}

/// Cephes `expf`'s polynomial: `e^r ≈ 1 + r + r²·P(r)` on `|r| ≤ ln2/2`,
/// `P`'s coefficients from the highest degree down (Horner).
pub(crate) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// `e^x` on 8 lanes (Cephes `expf`: `x = n·ln2 + r`, degree-6 polynomial for
/// `e^r`, `2^n` built in the exponent bits); `x` is clamped to `[-87, 88]`,
/// within 2 ulp there, `+∞` above `ln(f32::MAX)` (so `SiLU(−∞)` is NaN, as
/// torch's), NaN for NaN.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn exp_ps(x: __m256) -> __m256 {
    let overflow = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(88.722_84));
    // MAXPS/MINPS return their second operand when either is NaN.
    let x = _mm256_min_ps(
        _mm256_set1_ps(88.0),
        _mm256_max_ps(_mm256_set1_ps(-87.0), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut y = _mm256_set1_ps(EXP_POLY[0]);
    for coef in &EXP_POLY[1..] {
        y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(*coef));
    }
    let y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
    let y = _mm256_add_ps(y, _mm256_set1_ps(1.0));
    let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    let y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e)));
    _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), overflow)
}

/// Depthwise convolution, 8 output columns per vector: stride 1 loads them
/// directly, stride 2 loads 15 inputs in two overlapping vectors and keeps the
/// even ones. Four vectors (32 columns) are computed at once so four FMA
/// chains hide the FMA latency. Border columns (and strides above 2) use the
/// scalar reference pixel; vector blocks never read past the row.
#[target_feature(enable = "avx2,fma")]
fn dwconv(a: &ConvF32<'_>, out: &mut [f32]) {
    let span = 7 * a.g.stride + 1;
    let one = |row: &DwRow<'_>, ox, orow: &mut [f32]| dw_blocks::<1>(row, ox, orow);
    let four = |row: &DwRow<'_>, ox, orow: &mut [f32]| dw_blocks::<4>(row, ox, orow);
    crate::blocked::dw_rows::<8>(a, out, span, one, four);
}

/// `U` blocks of 8 depthwise outputs at columns `ox..ox + 8U` of one row
/// (`ox + 8(U-1)` is a valid vector start, see [`dw_vector_cols`]).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dw_blocks<const U: usize>(row: &DwRow<'_>, ox: usize, orow: &mut [f32]) {
    let (h, w, k, s, pad) = (row.g.h, row.g.w, row.g.k, row.g.stride, row.g.pad());
    let mut acc = [_mm256_setzero_ps(); U];
    for ky in 0..k {
        let Some(iy) = input_row(h, s, pad, row.oy, ky) else {
            continue;
        };
        let line = &row.plane[iy * w..(iy + 1) * w];
        for kx in 0..k {
            let wv = _mm256_set1_ps(row.taps[ky * k + kx]);
            let x = &line[ox * s + kx - pad..][..(8 * U - 1) * s + 1];
            for (u, acc) in acc.iter_mut().enumerate() {
                let xv = if s == 1 {
                    let x = &x[8 * u..8 * u + 8];
                    // SAFETY: `x` holds 8 elements.
                    unsafe { _mm256_loadu_ps(x.as_ptr()) }
                } else {
                    let x = &x[16 * u..16 * u + 15];
                    // SAFETY: `x` holds 15 elements: 0..8 and 7..15.
                    let (lo, hi) = unsafe {
                        (
                            _mm256_loadu_ps(x.as_ptr()),
                            _mm256_loadu_ps(x.as_ptr().add(7)),
                        )
                    };
                    // [x0 x2 x8 x10 | x4 x6 x12 x14] -> [x0 x2 x4 ... x14]
                    let even = _mm256_shuffle_ps::<0b11_01_10_00>(lo, hi);
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
                        even,
                    )))
                };
                *acc = _mm256_fmadd_ps(wv, xv, *acc);
            }
        }
    }
    let bv = _mm256_set1_ps(row.bias);
    for (u, acc) in acc.iter().enumerate() {
        let r = act_ps(row.act, _mm256_add_ps(*acc, bv));
        let dst = &mut orow[ox + 8 * u..ox + 8 * u + 8];
        // SAFETY: `dst` holds 8 elements.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), r) };
    }
}
