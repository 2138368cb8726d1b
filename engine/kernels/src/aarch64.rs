//! aarch64 NEON kernels (Cortex-A53/A55/A72/A76, Orin's A78AE).
//!
//! NEON is baseline on the aarch64 targets this module is compiled for
//! (`target_feature = "neon"`), so its [`Neon`] token is free; the kernels
//! still carry `#[target_feature(enable = "neon")]` (the intrinsics ask for it)
//! and are reached through the token like every other path.

use core::arch::aarch64::*;

use crate::Act;
use crate::blocked::{DwRow, MicroKernel, Tile, TileEpi};
use crate::caps::Caps;
use crate::conv::ConvF32;
use crate::conv_i8::{ConvI8, Portable};
use crate::gemm::Gemm;
use crate::planes::OutPlanes;
use crate::reference::input_row;
use crate::table::{SCALAR, declare_path};

declare_path! {
    /// NEON (Armv8.0: Cortex-A53/A57/A72): an 8×8 f32 GEMM micro-kernel and
    /// 4-wide depthwise f32 convolutions. Its int8 kernels are the scalar
    /// path's portable ones, which LLVM vectorises with baseline NEON
    /// (`smull` + `saddw`). The JPEG kernels are `crate::aarch64_jpeg`'s.
    pub(crate) static NEON = "neon", base Some(&SCALAR),
    available |caps: Caps| caps.neon,
    {
        sgemm = neon_sgemm_f32,
        conv_f32 = neon_conv_f32,
        dwconv_f32 = neon_dwconv_f32,
        act_f32 = neon_act_f32,
        idct_islow_u8 = crate::aarch64_jpeg::neon_idct_islow_u8,
        idct_4x4_u8 = crate::aarch64_jpeg::neon_idct_4x4_u8,
        upsample_h2v1_fancy_u8 = crate::aarch64_jpeg::neon_upsample_h2v1_fancy_u8,
        upsample_h2v2_fancy_u8 = crate::aarch64_jpeg::neon_upsample_h2v2_fancy_u8,
        ycc_to_rgb_u8 = crate::aarch64_jpeg::neon_ycc_to_rgb_u8,
    }
}

declare_path! {
    /// NEON with the dot-product extension (Armv8.2+: A55/A76/A78): the NEON
    /// float kernels, and the portable int8 convolutions built with `dotprod`,
    /// where LLVM emits `sdot`.
    pub(crate) static NEON_DOTPROD = "neon_dotprod", base Some(&NEON),
    available |caps: Caps| caps.dotprod && Dotprod::new().is_some(),
    {
        conv_i8 = dotprod_conv_s8,
        dwconv_i8 = dotprod_dwconv_s8,
    }
}

/// Proof that NEON exists: compiled in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon(());

impl Neon {
    /// The token (NEON is a compile-time feature of this build).
    pub(crate) const fn new() -> Neon {
        Neon(())
    }
}

/// The [`crate::Slot::Sgemm`] of the NEON paths: the blocked GEMM with the
/// 8×8 micro-kernel.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in.
unsafe fn neon_sgemm_f32(g: &Gemm<'_>, c: &mut [f32], scratch: &mut [f32]) {
    crate::blocked::sgemm_blocked(Neon::new(), g, &g.b, c, scratch);
}

/// The [`crate::Slot::ActF32`] of the NEON paths: [`act_q`] 4 lanes at a
/// time (SiLU within 4 ulp of the scalar function, the others as
/// [`Act::apply`]), the tail through the scalar function.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in.
unsafe fn neon_act_f32(act: Act, x: &[f32], out: &mut [f32]) {
    let n = x.len().min(out.len());
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: NEON is compiled in; elements i..i + 4 of both slices
        // exist (i + 4 <= n).
        unsafe {
            let v = act_q(act, vld1q_f32(x.as_ptr().add(i)));
            vst1q_f32(out.as_mut_ptr().add(i), v);
        }
        i += 4;
    }
    for (o, &v) in out[i..n].iter_mut().zip(&x[i..n]) {
        *o = act.apply(v);
    }
}

/// The [`crate::Slot::ConvF32`] of the NEON paths: im2col-packed GEMM.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in.
unsafe fn neon_conv_f32(a: &ConvF32<'_>, out: &mut [f32], scratch: &mut [f32]) {
    crate::blocked::conv_dense(Neon::new(), a, out, scratch);
}

/// The [`crate::Slot::DwConvF32`] of the NEON paths.
///
/// # Safety
/// The slot contract (`crate::table`); NEON is compiled in.
unsafe fn neon_dwconv_f32(a: &ConvF32<'_>, out: &mut [f32]) {
    // SAFETY: NEON is compiled in (this module exists only then).
    unsafe { dwconv(a, out) }
}

/// Proof that the CPU has the dot-product extension (`SDOT`/`UDOT`, Armv8.2+):
/// compiled in (`target_feature = "dotprod"`) or, with `std`, detected at run
/// time. Without `std` and without the compile-time feature the path is not
/// reachable: a caller's claim alone never selects it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dotprod(());

impl Dotprod {
    /// The token, if the CPU has the feature.
    pub(crate) fn new() -> Option<Dotprod> {
        #[cfg(feature = "std")]
        let detected = std::arch::is_aarch64_feature_detected!("dotprod");
        #[cfg(not(feature = "std"))]
        let detected = cfg!(target_feature = "dotprod");
        detected.then_some(Dotprod(()))
    }
}

/// The [`crate::Slot::ConvI8`] of `neon_dotprod`: the portable dense int8
/// convolution auto-vectorised with `SDOT` (LLVM turns the `i8·i8 → i32`
/// dot products into `sdot v.4s, v.16b, v.16b`).
///
/// # Safety
/// The slot contract (`crate::table`): the CPU runs `SDOT`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod_conv_s8(a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
    crate::conv_i8::conv_s8_dense(Portable, a, out, scratch);
}

/// The [`crate::Slot::DwConvI8`] of `neon_dotprod`: the portable depthwise
/// int8 convolution built with the extension.
///
/// # Safety
/// The slot contract (`crate::table`): the CPU runs `SDOT`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn dotprod_dwconv_s8(a: &ConvI8<'_>, out: &mut [i8]) {
    crate::conv_i8::conv_s8_depthwise(a, out);
}

/// 8×8: 16 accumulators, 8 registers of `A` (4 consecutive `k` of each row,
/// one `LD1` when `cs == 1`, used lane by lane with `FMLA (by element)`), 2 for
/// the `B` row: 26 of 32 registers. Per 4 `k` steps: 64 FMAs against 16 loads,
/// which keeps the FMA pipes of an A72 (2×128-bit) or A76 busy.
impl MicroKernel for Neon {
    const MR: usize = 8;
    const NR: usize = 8;
    const NC: usize = 128;

    unsafe fn tile(self, t: &Tile, epi: &TileEpi) {
        // SAFETY: NEON is compiled in (`self` exists); the pointer contract
        // is the caller's.
        unsafe { neon_sgemm_f32_8x8(t, epi) }
    }
}

/// The 8×8 micro-kernel ([`MicroKernel::tile`]).
///
/// # Safety
/// The [`MicroKernel::tile`] contract holds.
#[target_feature(enable = "neon")]
unsafe fn neon_sgemm_f32_8x8(t: &Tile, epi: &TileEpi) {
    let Tile {
        kc, cs, b, c, rsc, ..
    } = *t;
    let rows = t.rows::<8>();
    let mut acc = [vdupq_n_f32(0.0); 16];
    let mut p = 0;
    if cs == 1 {
        while p + 4 <= kc {
            let mut av = [vdupq_n_f32(0.0); 8];
            for (v, r) in av.iter_mut().zip(rows) {
                // SAFETY: row < mr, columns p..p+4 <= kc (cs == 1): readable.
                *v = unsafe { vld1q_f32(r.add(p)) };
            }
            macro_rules! step {
                ($l:literal) => {{
                    let bp = b.wrapping_add((p + $l) * 8);
                    // SAFETY: step p + l < kc of the panel: 8 elements.
                    let (b0, b1) = unsafe { (vld1q_f32(bp), vld1q_f32(bp.add(4))) };
                    for i in 0..8 {
                        acc[2 * i] = vfmaq_laneq_f32::<$l>(acc[2 * i], b0, av[i]);
                        acc[2 * i + 1] = vfmaq_laneq_f32::<$l>(acc[2 * i + 1], b1, av[i]);
                    }
                }};
            }
            step!(0);
            step!(1);
            step!(2);
            step!(3);
            p += 4;
        }
    }
    while p < kc {
        let bp = b.wrapping_add(p * 8);
        // SAFETY: step p < kc of the panel: 8 elements.
        let (b0, b1) = unsafe { (vld1q_f32(bp), vld1q_f32(bp.add(4))) };
        for i in 0..8 {
            // SAFETY: row min(i, mr-1) < mr, column p < kc: readable.
            let ai = unsafe { *rows[i].add(p * cs) };
            acc[2 * i] = vfmaq_n_f32(acc[2 * i], b0, ai);
            acc[2 * i + 1] = vfmaq_n_f32(acc[2 * i + 1], b1, ai);
        }
        p += 1;
    }
    for i in 0..8 {
        let bias = vdupq_n_f32(epi.bias[i]);
        let mut v0 = vaddq_f32(acc[2 * i], bias);
        let mut v1 = vaddq_f32(acc[2 * i + 1], bias);
        let cp = c.wrapping_add(i * rsc);
        if epi.load_c {
            // SAFETY: row i < MR, columns 0..8 of the tile are readable.
            unsafe {
                v0 = vaddq_f32(v0, vld1q_f32(cp));
                v1 = vaddq_f32(v1, vld1q_f32(cp.add(4)));
            }
        }
        if let Some(act) = epi.act {
            v0 = act_q(act, v0);
            v1 = act_q(act, v1);
        }
        // SAFETY: row i < MR, columns 0..8 of the tile are writable.
        unsafe {
            vst1q_f32(cp, v0);
            vst1q_f32(cp.add(4), v1);
        }
    }
}

/// The activation on 4 lanes: Relu/Relu6 as [`Act::apply`] up to the sign of
/// zero (FMAX keeps NaN), Silu with [`exp_q`] (within 4 ulp of the scalar one), Sigmoid and
/// Gelu lane by lane through the scalar function.
#[target_feature(enable = "neon")]
#[inline]
fn act_q(act: Act, v: float32x4_t) -> float32x4_t {
    match act {
        Act::None => v,
        Act::Relu => vmaxq_f32(v, vdupq_n_f32(0.0)),
        Act::Relu6 => vminq_f32(vmaxq_f32(v, vdupq_n_f32(0.0)), vdupq_n_f32(6.0)),
        Act::Silu => {
            let e = exp_q(vnegq_f32(v));
            vdivq_f32(v, vaddq_f32(vdupq_n_f32(1.0), e))
        }
        Act::Gelu | Act::Sigmoid => {
            let mut lanes = [0.0f32; 4];
            // SAFETY: `lanes` holds 4 elements.
            unsafe { vst1q_f32(lanes.as_mut_ptr(), v) };
            for x in &mut lanes {
                *x = act.apply(*x);
            }
            // SAFETY: as above.
            unsafe { vld1q_f32(lanes.as_ptr()) }
        }
    }
}

/// `e^x` on 4 lanes (Cephes `expf`, as `x86::exp_ps`); `x` clamped to
/// `[-87, 88]`, `+∞` above `ln(f32::MAX)`.
#[target_feature(enable = "neon")]
#[inline]
fn exp_q(x: float32x4_t) -> float32x4_t {
    let overflow = vcgtq_f32(x, vdupq_n_f32(88.722_84));
    let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0)), vdupq_n_f32(88.0));
    let n = vrndnq_f32(vmulq_n_f32(x, core::f32::consts::LOG2_E));
    let r = vfmsq_f32(x, n, vdupq_n_f32(0.693_359_4));
    let r = vfmsq_f32(r, n, vdupq_n_f32(-2.121_944_4e-4));
    let mut y = vdupq_n_f32(1.987_569_1e-4);
    for coef in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        y = vfmaq_f32(vdupq_n_f32(coef), y, r);
    }
    let y = vfmaq_f32(r, y, vmulq_f32(r, r));
    let y = vaddq_f32(y, vdupq_n_f32(1.0));
    let e = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
    let y = vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32::<23>(e)));
    vbslq_f32(overflow, vdupq_n_f32(f32::INFINITY), y)
}

/// Depthwise convolution (`groups == cin == cout`), slices already checked:
/// 4 output columns per vector (stride 2 via `LD2`, which reads one element
/// past the last even one), four vectors at once so four FMA chains hide the
/// latency; border columns and strides above 2 use the scalar reference pixel;
/// vector blocks never read past the row.
#[target_feature(enable = "neon")]
fn dwconv(a: &ConvF32<'_>, out: &mut [f32]) {
    let span = 4 * a.g.stride;
    let one = |row: &DwRow<'_>, ox, orow: &mut [f32]| dw_blocks::<1>(row, ox, orow);
    let four = |row: &DwRow<'_>, ox, orow: &mut [f32]| dw_blocks::<4>(row, ox, orow);
    crate::blocked::dw_rows::<4>(a, out, span, one, four);
}

/// `U` blocks of 4 depthwise outputs at columns `ox..ox + 4U` of one row
/// (`ox + 4(U-1)` is a valid vector start, see [`dw_vector_cols`]).
#[target_feature(enable = "neon")]
#[inline]
fn dw_blocks<const U: usize>(row: &DwRow<'_>, ox: usize, orow: &mut [f32]) {
    let (h, w, k, s, pad) = (row.g.h, row.g.w, row.g.k, row.g.stride, row.g.pad());
    let mut acc = [vdupq_n_f32(0.0); U];
    for ky in 0..k {
        let Some(iy) = input_row(h, s, pad, row.oy, ky) else {
            continue;
        };
        let line = &row.plane[iy * w..(iy + 1) * w];
        for kx in 0..k {
            let wv = row.taps[ky * k + kx];
            let x = &line[ox * s + kx - pad..][..4 * U * s];
            for (u, acc) in acc.iter_mut().enumerate() {
                let xv = if s == 1 {
                    let x = &x[4 * u..4 * u + 4];
                    // SAFETY: `x` holds 4 elements.
                    unsafe { vld1q_f32(x.as_ptr()) }
                } else {
                    let x = &x[8 * u..8 * u + 8];
                    // SAFETY: `x` holds 8 elements.
                    unsafe { vld2q_f32(x.as_ptr()) }.0
                };
                *acc = vfmaq_n_f32(*acc, xv, wv);
            }
        }
    }
    let bv = vdupq_n_f32(row.bias);
    for (u, acc) in acc.iter().enumerate() {
        let r = act_q(row.act, vaddq_f32(*acc, bv));
        let dst = &mut orow[ox + 4 * u..ox + 4 * u + 4];
        // SAFETY: `dst` holds 4 elements.
        unsafe { vst1q_f32(dst.as_mut_ptr(), r) };
    }
}
