//! x86_64 AMX (Sapphire Rapids, Emerald Rapids, Granite Rapids): the dense
//! int8 convolution's dot products as tile matrix multiplies (`tdpbsud`,
//! 16 × 16 × 64 multiply-accumulates per instruction, 8× the `vpdpbusd` zmm
//! rate of the same core), and the bfloat16 linear layer ([`LinearBf16`],
//! `tdpbf16ps`). Every other slot, and every shape the tiles do not fit, is
//! the AVX-512 VNNI path's (or the portable one's).
//!
//! # Layout
//! The tiles reuse the VNNI lanes-over-pixels convolution
//! ([`crate::x86_vnni_c4`]) unchanged: its packed tile of 32 output pixels,
//! `[K/4][32][4]` bytes `x + 128`, *is* AMX's "VNNI" layout of the `B`
//! operand — 16 rows of 4 taps per 64-byte chunk of `K`, 16 pixels × 4 bytes
//! per row — so the two pixel halves are two `B` tiles (row stride 128
//! bytes). The `A` tiles are 16 weight rows (output channels) × 64 bytes
//! read in place at the weights' row stride. Four `C` tiles hold 32 channels
//! × 32 pixels of i32 sums: 2 `A` + 2 `B` loads per 4 `tdpbsud`.
//!
//! # Arithmetic
//! `tdpbsud` multiplies signed bytes of `A` (the weights) by unsigned bytes
//! of `B` (`x + 128`) and accumulates in wrapping i32: the same sums as the
//! VNNI kernel's `vpdpbusd`, so the epilogue (bias − 128·Σw, requantisation,
//! table) is shared and the output byte-identical to the reference.
//!
//! # Operating system
//! Linux hands out the tile registers only to a process that asked for them
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`): [`Amx::new`] asks
//! once per process. Other systems get no AMX path.

use core::arch::asm;

use core::arch::x86_64::*;

use crate::caps::Caps;
use crate::conv_i8::ConvI8;
use crate::linear_bf16::LinearBf16;
use crate::planes::OutPlanes;
use crate::table::declare_path;

declare_path! {
    /// AMX (Sapphire Rapids and later Xeons): the dense int8 convolution's
    /// 32-channel blocks as tile multiplies on the AVX-512 VNNI
    /// convolution's packed pixels, and the bfloat16 linear layer; every
    /// other slot, and the channels, reductions and geometries the tiles do
    /// not fit, from `avx512_vnni`.
    pub(crate) static AVX512_AMX = "avx512_amx", base Some(&crate::x86_vnni::AVX512_VNNI),
    available |caps: Caps| caps.amx && Amx::new().is_some(),
    {
        conv_i8 = amx_conv_s8,
        linear_bf16 = amx_linear_bf16,
    }
}

/// Proof that the CPU has AMX-TILE, AMX-INT8 and AMX-BF16, the OS saves the tile
/// state, and this process may use it (with the AVX-512 VNNI features of
/// the base path).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Amx(());

impl Amx {
    /// The token, if the tiles are usable (asks the OS once per process).
    pub(crate) fn new() -> Option<Amx> {
        use core::sync::atomic::{AtomicU8, Ordering};
        // 0: not asked yet, 1: no, 2: yes.
        static USABLE: AtomicU8 = AtomicU8::new(0);
        let yes = match USABLE.load(Ordering::Relaxed) {
            0 => {
                let yes =
                    crate::x86_vnni::Vnni::new().is_some() && cpu_has_amx() && request_tile_data();
                USABLE.store(1 + u8::from(yes), Ordering::Relaxed);
                yes
            }
            v => v == 2,
        };
        yes.then_some(Amx(()))
    }
}

/// `XCR0` bits of the tile state (XTILECFG, XTILEDATA) the OS must save.
const TILE_STATE: u64 = (1 << 17) | (1 << 18);

/// `cpuid` leaf 7 EDX: AMX-BF16 (bit 22), AMX-TILE (bit 24) and AMX-INT8
/// (bit 25), with the tile state enabled in `XCR0`.
pub(crate) fn cpu_has_amx() -> bool {
    const AMX: u32 = (1 << 22) | (1 << 24) | (1 << 25);
    crate::x86::cpuid_with_os_state(crate::x86_vnni::ZMM_STATE | TILE_STATE)
        .is_some_and(|(_, l7)| l7.edx & AMX == AMX)
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`); `true` when granted (or already granted).
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: the `arch_prctl` system call with `ARCH_REQ_XCOMP_PERM` only
    // widens the register state this process may use; it reads and writes
    // no memory of ours. `syscall` clobbers rcx and r11 (declared) and
    // returns in rax.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// No AMX outside Linux (the permission request is Linux's).
#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// The [`crate::Slot::ConvI8`] of this path: the lanes-over-pixels
/// convolution with its 32-channel blocks on the tiles when [`handles`]
/// holds, the AVX-512 VNNI slot otherwise.
///
/// # Safety
/// The slot contract (`crate::table`): the path's features run (AMX usable:
/// the path is only installed after [`Amx::new`]), operands checked.
unsafe fn amx_conv_s8(a: &ConvI8<'_>, out: &mut OutPlanes<'_>, scratch: &mut [u8]) {
    match Amx::new() {
        Some(amx) if handles(a) => {
            // SAFETY: the slot contract; `handles` includes the VNNI
            // kernel's own `handles`.
            unsafe { crate::x86_vnni_c4::conv_s8_c4(a, out, scratch, Some(amx)) }
        }
        // SAFETY: the slot contract of the base path, whose features run.
        _ => unsafe { crate::x86_vnni::vnni_conv_s8(a, out, scratch) },
    }
}

/// Whether the tiles take `a`: the VNNI lanes-over-pixels geometries with a
/// reduction in whole 64-byte chunks (`weight_kpad(K)` a multiple of 64, so
/// the `A` tiles never read past a weight row's `K` padded taps) and at least
/// one block of 32 output channels.
pub(crate) fn handles(a: &ConvI8<'_>) -> bool {
    let kb = crate::conv_i8::weight_kpad(crate::conv_i8::conv_i8_reduction_len(&a.g));
    crate::x86_vnni_c4::handles(a) && kb.is_multiple_of(64) && a.g.cout >= 32
}

/// i32 sums of 32 output channels × 32 pixels, one 64-byte line per
/// 16 pixels (the `C` tiles' store layout).
#[repr(C, align(64))]
pub(crate) struct Acc32(pub [[i32; 32]; 32]);

/// The tile configuration (palette 1, all 8 tiles 16 rows × 64 bytes),
/// loaded while it lives and released (`tilerelease`) when dropped.
pub(crate) struct Tiles(());

/// The 64-byte `ldtilecfg` operand.
#[repr(C, align(64))]
struct TileCfg([u8; 64]);

/// The body of a 32 × 32 tile product: zero the four accumulators, run
/// `chunks` steps of `$op` (two `A` row tiles of stride `$ks` × two `B`
/// column tiles of one 2048-byte chunk), store them to `$acc`.
macro_rules! tile_dot_32x32 {
    ($op:literal, $w:expr, $ks:expr, $panel:expr, $chunks:expr, $acc:expr) => {{
        let (w, ks, panel): (*const u8, usize, *const u8) = ($w, $ks, $panel);
        // SAFETY: the caller's `Tiles` proves the tiles are configured on
        // this thread.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        let (w1, bs) = (w.wrapping_add(16 * ks), 128usize);
        for i in 0..$chunks {
            let (a0, a1) = (w.wrapping_add(64 * i), w1.wrapping_add(64 * i));
            let b0 = panel.wrapping_add(2048 * i);
            let b1 = b0.wrapping_add(64);
            // SAFETY: chunk i < chunks: 16 rows of 64 bytes at a0 and a1
            // (stride ks) lie in rows 0..32 of `w`, 16 rows of 64 bytes at
            // b0 and b1 (stride 128) in `panel` (the caller's contract); the
            // tiles are configured (16 × 64 bytes each).
            unsafe {
                asm!(
                    "tileloadd tmm4, [{a0} + {ks}*1]",
                    "tileloadd tmm6, [{b0} + {bs}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    "tileloadd tmm7, [{b1} + {bs}*1]",
                    concat!($op, " tmm1, tmm4, tmm7"),
                    "tileloadd tmm5, [{a1} + {ks}*1]",
                    concat!($op, " tmm2, tmm5, tmm6"),
                    concat!($op, " tmm3, tmm5, tmm7"),
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    b0 = in(reg) b0,
                    b1 = in(reg) b1,
                    ks = in(reg) ks,
                    bs = in(reg) bs,
                    options(nostack, readonly),
                );
            }
        }
        // SAFETY: the tiles are configured on this thread.
        unsafe { store_c($acc) };
    }};
}

impl Tiles {
    /// Configures the tiles of this thread.
    pub(crate) fn load(_: Amx) -> Tiles {
        let mut cfg = TileCfg([0; 64]);
        cfg.0[0] = 1; // palette 1
        for t in 0..8 {
            cfg.0[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            cfg.0[48 + t] = 16; // rows
        }
        // SAFETY: an `Amx` proves AMX-TILE runs and the OS granted the tile
        // state; `cfg` is a valid 64-byte palette-1 configuration.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        }
        Tiles(())
    }

    /// `acc = Σ_p w[r][p] · panel[p][j]` for rows `r < 32` of `w` (stride
    /// `kpad` bytes) and the 32 pixels `j` of a packed tile, over `chunks`
    /// chunks of 64 bytes of `K`.
    ///
    /// # Safety
    /// Every `w + r·kpad` (`r < 32`) is readable for `64·chunks` bytes;
    /// `panel` for `2048·chunks` (`16·chunks` rows of 128 bytes).
    #[inline]
    pub(crate) unsafe fn dot_32x32(
        &self,
        w: *const u8,
        kpad: usize,
        panel: *const u8,
        chunks: usize,
        acc: &mut Acc32,
    ) {
        tile_dot_32x32!("tdpbsud", w, kpad, panel, chunks, acc);
    }
}

impl Tiles {
    /// `acc = Σ_p w[r][p] · b[p][j]` in f32 for rows `r < 32` of bfloat16
    /// weights (stride `ws` bytes) and the 32 columns of a block packed by
    /// [`pack_bf16_pairs`], over `chunks` chunks of 32 `p`; `acc` receives
    /// f32 bits.
    ///
    /// # Safety
    /// Every `w + r·ws` (`r < 32`) is readable for `64·chunks` bytes;
    /// `panel` for `2048·chunks`.
    #[inline]
    unsafe fn dot_bf16_32x32(
        &self,
        w: *const u8,
        ws: usize,
        panel: *const u8,
        chunks: usize,
        acc: &mut Acc32,
    ) {
        tile_dot_32x32!("tdpbf16ps", w, ws, panel, chunks, acc);
    }
}

/// Stores the 4 `C` tiles into `acc` (rows 0..16 and 16..32, columns 0..16
/// and 16..32).
///
/// # Safety
/// The tiles are configured on this thread.
#[inline]
unsafe fn store_c(acc: &mut Acc32) {
    let c = acc.0.as_mut_ptr().cast::<i32>();
    // SAFETY: `acc` holds 32 rows of 128 bytes: tile 0 is rows 0..16,
    // columns 0..16; tile 1 columns 16..32; tiles 2 and 3 rows 16..32.
    unsafe {
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm2",
            "tilestored [{c3} + {s}*1], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16),
            c2 = in(reg) c.add(16 * 32),
            c3 = in(reg) c.add(16 * 32 + 16),
            s = in(reg) 128usize,
            options(nostack),
        );
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `load` (AMX runs); releasing
        // them returns the thread to the init state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// The [`crate::Slot::LinearBf16`] of this path: for `m` and `k` multiples
/// of 32, blocks of 32 columns packed as bfloat16 pairs (`[k/2][32][2]`, the
/// `B` tiles' layout; rounded on the bits as [`crate::bf16_bits`]), 32 rows
/// × 32 columns per block of 4 `C` tiles (`tdpbf16ps`, 32 `k` per
/// instruction), then scale, bias and activation 16 lanes at a time. Other
/// shapes take the portable loop.
///
/// # Safety
/// The slot contract (`crate::table`): the path's features run, operands
/// and scratch checked.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn amx_linear_bf16(a: &LinearBf16<'_>, out: &mut OutPlanes<'_, f32>, scratch: &mut [u8]) {
    let (m, n, k) = (a.m, a.n, a.k);
    let amx = match Amx::new() {
        Some(amx) if m.is_multiple_of(32) && k.is_multiple_of(32) => amx,
        // SAFETY: the slot contract.
        _ => return unsafe { crate::linear_bf16::linear_bf16_portable(a, out, scratch) },
    };
    let skip = scratch.as_ptr().align_offset(64).min(63);
    let packed = &mut scratch[skip..][..64 * k];
    let tiles = Tiles::load(amx);
    let mut acc = Acc32([[0; 32]; 32]);
    let cols = out.cols();
    for j0 in cols.clone().step_by(32) {
        let nb = 32.min(cols.end - j0);
        pack_bf16_pairs(a.input, n, k, j0, nb, packed);
        for r0 in (0..m).step_by(32) {
            // SAFETY: rows r0..r0 + 32 ≤ m of the weights hold k bf16 = 2k
            // bytes each (checked by the slot: weight.len() ≥ m·k), 64-byte
            // chunks k/32 of them; `packed` holds 64·k = 2048·(k/32) bytes.
            unsafe {
                tiles.dot_bf16_32x32(
                    a.weight[r0 * k..].as_ptr().cast(),
                    2 * k,
                    packed.as_ptr(),
                    k / 32,
                    &mut acc,
                )
            };
            let lanes = [
                crate::x86_vnni::first_lanes(nb.min(16)),
                crate::x86_vnni::first_lanes(nb.saturating_sub(16)),
            ];
            for (r, row) in acc.0.iter().enumerate() {
                let (scale, bias) = (
                    _mm512_set1_ps(a.scale[r0 + r]),
                    _mm512_set1_ps(a.bias[r0 + r]),
                );
                let o = out.row(r0 + r, j0, nb).as_mut_ptr();
                for (h, &mask) in lanes.iter().enumerate() {
                    // SAFETY: `row` holds 32 f32 (the C tiles store f32 bits).
                    let s = unsafe { _mm512_loadu_ps(row[16 * h..].as_ptr().cast()) };
                    let y = crate::x86_vnni::act16(a.act, _mm512_fmadd_ps(s, scale, bias));
                    // SAFETY: the mask enables columns 16h.. < nb of the
                    // row's `nb` outputs.
                    unsafe { _mm512_mask_storeu_ps(o.wrapping_add(16 * h), mask, y) };
                }
            }
        }
    }
}

/// Packs columns `j0..j0 + nb` of the `[k][n]` inputs as bfloat16 pairs:
/// row `q` of `packed` holds, for each of 32 columns, `(x[2q][j], x[2q+1][j])`
/// (16 bits each, the even row low); columns past `nb` are zero.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pack_bf16_pairs(x: &[f32], n: usize, k: usize, j0: usize, nb: usize, packed: &mut [u8]) {
    debug_assert!(packed.len() >= 64 * k && k.is_multiple_of(2) && x.len() >= k * n);
    let masks = [
        crate::x86_vnni::first_lanes(nb.min(16)),
        crate::x86_vnni::first_lanes(nb.saturating_sub(16)),
    ];
    // bf16 rounding on the bits: (b + 0x7fff + (b >> 16 & 1)) >> 16.
    let round = |v: __m512| {
        let b = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
        let b = _mm512_add_epi32(b, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
        _mm512_srli_epi32::<16>(b)
    };
    for q in 0..k / 2 {
        for (h, &mask) in masks.iter().enumerate() {
            let at = |p: usize| x[p * n + j0..].as_ptr().wrapping_add(16 * h);
            // SAFETY: the masks enable columns j0 + 16h + i < j0 + nb ≤ n of
            // rows 2q and 2q + 1 < k, inside `x`.
            let (e, o) = unsafe {
                (
                    _mm512_maskz_loadu_ps(mask, at(2 * q)),
                    _mm512_maskz_loadu_ps(mask, at(2 * q + 1)),
                )
            };
            let pair = _mm512_or_si512(round(e), _mm512_slli_epi32::<16>(round(o)));
            let dst = packed[128 * q + 64 * h..][..64].as_mut_ptr();
            // SAFETY: `dst` is valid for 64 bytes.
            unsafe { _mm512_storeu_si512(dst.cast(), pair) };
        }
    }
}
