//! The AVX-512 VNNI dense int8 convolution for strides 1 and 2: lanes over
//! output pixels, weights broadcast, no horizontal sums.
//!
//! # Layout
//! A tile of [`NB`] (32) consecutive output pixels is packed into the
//! caller's scratch as `[K/4][32][4]` bytes: for every group of 4
//! consecutive taps `p` (the weight row's order), the 4 tap bytes of pixel 0,
//! then of pixel 1, … — so one 64-byte load holds 16 pixels × 4 taps, the
//! unsigned operand of `vpdpbusd`, and the signed operand is the 4 weight
//! bytes `w[c][p..p+4]` broadcast to every lane. Each accumulator lane is one
//! output pixel of one channel: 16 consecutive bytes of the CHW output, so
//! the epilogue stores vectors and needs no reduction across lanes.
//!
//! With stride 1 and "same" padding the input byte under tap `(ci, ky, kx)`
//! of output pixel `p` is `input[ci·h·w + p + (ky − pad)·w + (kx − pad)]`:
//! consecutive pixels read consecutive bytes, so a tap's 32 bytes are one
//! masked load (pixels whose tap falls on the padding, or past the tile's
//! last pixel, take `zp_in`; masked-out bytes are never read). With stride 2
//! the pixels of one output row read every other byte: one masked 64-byte
//! load per output row the tile spans (the even bytes), narrowed with
//! `vpmovwb`.
//!
//! # Arithmetic
//! The packed bytes are `x + 128` (unsigned), so the dot product is
//! `Σ w·(x + 128) = Σ w·x + 128·Σ w`; the kernel subtracts `128·Σ w[c]`
//! (the row sum over the whole padded row: pad bytes are zero) from the
//! bias. Every step is exact in wrapping i32, so the result is byte-identical
//! to [`crate::conv_i8::reference_conv2d_i8`].

use core::arch::x86_64::*;

use crate::conv_i8::{ConvI8, NB, Requant, conv_i8_reduction_len, dense_tile};
use crate::planes::OutPlanes;
use crate::quant::QMul;
use crate::x86_amx::{Acc32, Amx, Tiles};

/// The largest kernel side the packer's tap table holds.
const MAX_K: usize = 7;
/// Output channels per micro-kernel block (12 × 2 zmm accumulators).
const MR: usize = 12;
/// The most output channels one call handles (its row sums live on the stack).
const MAX_COUT: usize = 2048;
/// The most output rows a tile of stride-2 pixels spans (rows of ≥ 8).
const MAX_SEGS: usize = 5;

/// Whether [`conv_s8_c4`] handles `a`: dense, a kernel side up to 7, at
/// least one full tile of pixels, at most 2048 channels, and stride 1 or
/// stride 2 with output rows of at least 8 pixels (a tile then spans at most
/// [`MAX_SEGS`] rows).
pub(crate) fn handles(a: &ConvI8<'_>) -> bool {
    let g = &a.g;
    g.groups == 1
        && g.k <= MAX_K
        && g.k % 2 == 1
        && (g.stride == 1 || (g.stride == 2 && g.out_w() >= 8))
        && g.out_h() * g.out_w() >= NB
        && g.cout <= MAX_COUT
}

/// Whether the CPU has AVX-512 VBMI (the 256-entry byte table in 3
/// instructions): `cpuid` leaf 7, ECX bit 1, asked once (`cpuid` traps to
/// the hypervisor in a VM: microseconds, too slow for every convolution).
fn has_vbmi() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    // 0: not asked yet, 1: no, 2: yes.
    static VBMI: AtomicU8 = AtomicU8::new(0);
    match VBMI.load(Ordering::Relaxed) {
        0 => {
            let yes = crate::x86::cpuid_with_os_state(crate::x86_vnni::ZMM_STATE)
                .is_some_and(|(_, l7)| l7.ecx & (1 << 1) != 0);
            VBMI.store(1 + u8::from(yes), Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// The dense int8 convolution of [`handles`] geometries (module docs), with
/// its blocks of 32 output channels on AMX tiles when `amx` is given
/// (`crate::x86_amx`: then `a` also passed `crate::x86_amx::handles`).
///
/// # Safety
/// AVX-512 F, BW, VL and VNNI run; `a` passed the slot's checks and
/// [`handles`]; `scratch` holds [`crate::conv_i8_scratch_len`] bytes.
pub(crate) unsafe fn conv_s8_c4(
    a: &ConvI8<'_>,
    out: &mut OutPlanes<'_>,
    scratch: &mut [u8],
    amx: Option<Amx>,
) {
    debug_assert!(amx.is_none() || crate::x86_amx::handles(a));
    // SAFETY: the caller's features (and VBMI where `has_vbmi`).
    unsafe {
        if a.rq.lut.is_some() && has_vbmi() {
            conv_s8_c4_vbmi(a, out, scratch, amx)
        } else {
            conv_s8_c4_plain(a, out, scratch, amx)
        }
    }
}

/// [`conv_c4`] with the table looked up by VBMI's byte permute, inlined.
///
/// # Safety
/// As [`conv_s8_c4`], and AVX-512 VBMI runs.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2")]
unsafe fn conv_s8_c4_vbmi(
    a: &ConvI8<'_>,
    out: &mut OutPlanes<'_>,
    scratch: &mut [u8],
    amx: Option<Amx>,
) {
    // SAFETY: the caller's contract, VBMI included.
    unsafe { conv_c4::<true>(a, out, scratch, amx) }
}

/// [`conv_c4`] with the table, if any, looked up byte by byte.
///
/// # Safety
/// As [`conv_s8_c4`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
unsafe fn conv_s8_c4_plain(
    a: &ConvI8<'_>,
    out: &mut OutPlanes<'_>,
    scratch: &mut [u8],
    amx: Option<Amx>,
) {
    // SAFETY: the caller's contract.
    unsafe { conv_c4::<false>(a, out, scratch, amx) }
}

/// The convolution's loops over tiles of [`NB`] (32) pixels and blocks of
/// [`MR`] channels, inlined into a caller with the features (and with VBMI
/// when `VBMI`). A 64-pixel tile (6 × 4 accumulators, twice the scratch the
/// files plan) measured within 3 % of this 12 × 2 one.
///
/// With `amx`, the first `⌊cout/32⌋·32` channels go through the tiles
/// (32 × 32 sums per block, stored and then requantised like the VNNI
/// accumulators), the rest through the 12 × 32 `vpdpbusd` block.
///
/// # Safety
/// As [`conv_s8_c4`]; VBMI runs when `VBMI`.
#[inline(always)]
unsafe fn conv_c4<const VBMI: bool>(
    a: &ConvI8<'_>,
    out: &mut OutPlanes<'_>,
    scratch: &mut [u8],
    amx: Option<Amx>,
) {
    let (g, input, zp_in, weight, kpad, bias, rq) = a.parts();
    let (kb, n, panel) = dense_tile(g, scratch);
    let quads = conv_i8_reduction_len(g).div_ceil(4);
    debug_assert!(n >= NB && panel.len() == NB * kb && quads * 4 <= kb);
    // bias − 128·Σw per channel.
    let mut badj = [0i32; MAX_COUT];
    for (c, b) in badj.iter_mut().enumerate().take(g.cout) {
        let s = weight[c * kpad..][..kb]
            .iter()
            .fold(0i32, |s, &w| s.wrapping_add(w as i32));
        *b = bias[c].wrapping_sub(s.wrapping_mul(128));
    }
    let fast = crate::x86_vnni::requant16_covers(rq);
    let lut = match rq.lut {
        // SAFETY: AVX-512 F runs.
        Some(t) if VBMI => Some(unsafe { Lut::new(t) }),
        _ => None,
    };
    let taps = Taps::new(g);
    let tiles = amx.map(Tiles::load);
    let tile_rows = if tiles.is_some() { g.cout / 32 * 32 } else { 0 };
    let mut acc32 = Acc32([[0; 32]; 32]);
    let epi = Epi {
        badj: &badj,
        rq,
        lut: lut.as_ref(),
        fast,
    };
    let cols = out.cols();
    for j0 in cols.clone().step_by(NB) {
        let nb = NB.min(cols.end - j0);
        // SAFETY: the features run; `panel` holds 32·kb ≥ 128·quads bytes;
        // `taps` describes `g`, whose input `input` is.
        unsafe { pack_tile(&taps, input, zp_in, j0, nb, quads, panel) };
        if let Some(t) = &tiles {
            for c0 in (0..tile_rows).step_by(32) {
                // SAFETY: rows c0..c0 + 32 ≤ cout of `weight` hold kpad ≥ kb
                // bytes each, kb = 64·(kb/64) (`x86_amx::handles`); `panel`
                // holds 32·kb = 2048·(kb/64) bytes; the tiles are configured.
                unsafe {
                    t.dot_32x32(
                        weight[c0 * kpad..].as_ptr().cast(),
                        kpad,
                        panel.as_ptr(),
                        kb / 64,
                        &mut acc32,
                    )
                };
                for (r, row) in acc32.0.iter().enumerate() {
                    // SAFETY: each row holds 32 i32.
                    let acc = unsafe {
                        [
                            _mm512_loadu_si512(row.as_ptr().cast()),
                            _mm512_loadu_si512(row[16..].as_ptr().cast()),
                        ]
                    };
                    // SAFETY: the features run (VBMI with a `Lut`).
                    unsafe { epi.store_row(c0 + r, &acc, out.row(c0 + r, j0, nb)) };
                }
            }
        }
        for c0 in (tile_rows..g.cout).step_by(MR) {
            let rows = MR.min(g.cout - c0);
            let w: [*const u8; MR] = core::array::from_fn(|r| {
                weight[(c0 + r.min(rows - 1)) * kpad..][..quads * 4]
                    .as_ptr()
                    .cast()
            });
            // SAFETY: every row holds 4·quads bytes, the panel 128·quads.
            let acc = unsafe { dot_12x32(&w, panel.as_ptr(), quads) };
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let c = c0 + r;
                // SAFETY: the features run (VBMI with a `Lut`).
                unsafe { epi.store_row(c, acc, out.row(c, j0, nb)) };
            }
        }
    }
}

/// What the epilogue of one channel's 32 pixels needs.
struct Epi<'a> {
    /// `bias − 128·Σw` per channel.
    badj: &'a [i32; MAX_COUT],
    rq: &'a Requant<'a>,
    lut: Option<&'a Lut>,
    /// [`crate::x86_vnni::requant16_covers`].
    fast: bool,
}

impl Epi<'_> {
    /// Requantises the sums of channel `c` (2 × 16 pixels) into `o` (its
    /// first `o.len()` ≤ 32 pixels).
    ///
    /// # Safety
    /// AVX-512 F, BW and VL run (and VBMI when `lut` is given).
    #[inline(always)]
    unsafe fn store_row(&self, c: usize, acc: &[__m512i; 2], o: &mut [i8]) {
        let mul = self.rq.channel_mul(c);
        for (v, &acc) in acc.iter().enumerate() {
            let lanes = o.len().saturating_sub(16 * v).min(16);
            if lanes == 0 {
                break;
            }
            let o = &mut o[16 * v..][..lanes];
            // SAFETY: the caller's features; `o` holds `lanes` ≤ 16 bytes.
            unsafe {
                if self.fast {
                    store16(acc, self.badj[c], mul, self.rq, self.lut, o);
                } else {
                    store16_scalar(acc, self.badj[c], mul, self.rq, o);
                }
            }
        }
    }
}

/// Per tap `(ky, kx)` of the kernel window: where it reads relative to the
/// output pixel.
struct Taps {
    /// Stride 1: `(ky − pad)·w + (kx − pad)`, the offset in the input plane.
    off: [isize; MAX_K * MAX_K],
    /// `(ky − pad, kx − pad)`.
    dyx: [(isize, isize); MAX_K * MAX_K],
    /// Taps per input channel (`k²`).
    per_ci: usize,
    h: usize,
    w: usize,
    cin: usize,
    stride: usize,
    ow: usize,
}

/// One stride-2 load: a byte offset in the plane for lane 0 (lane `j` reads
/// `off + 2j`) and the mask of the even bytes it reads.
#[derive(Clone, Copy, Default)]
struct SegLoad {
    off: isize,
    mask: u64,
}

impl Taps {
    fn new(g: &crate::conv::ConvGeom) -> Taps {
        let (k, pad) = (g.k, g.pad() as isize);
        let mut t = Taps {
            off: [0; MAX_K * MAX_K],
            dyx: [(0, 0); MAX_K * MAX_K],
            per_ci: k * k,
            h: g.h,
            w: g.w,
            cin: g.cin,
            stride: g.stride,
            ow: g.out_w(),
        };
        for i in 0..k * k {
            let (dy, dx) = ((i / k) as isize - pad, (i % k) as isize - pad);
            t.dyx[i] = (dy, dx);
            t.off[i] = dy * g.w as isize + dx;
        }
        t
    }

    /// The input coordinates tap `i` of output pixel `(y, x)` reads, if
    /// inside the image.
    fn reads(&self, i: usize, y: usize, x: usize) -> Option<(usize, usize)> {
        let (dy, dx) = self.dyx[i];
        let iy = (self.stride * y) as isize + dy;
        let ix = (self.stride * x) as isize + dx;
        ((0..self.h as isize).contains(&iy) && (0..self.w as isize).contains(&ix))
            .then_some((iy as usize, ix as usize))
    }

    /// Stride 1: the 32-bit mask of the pixels `j0 + j` (`j < nb`) whose tap
    /// `i` reads the input (not the padding).
    fn mask(&self, i: usize, j0: usize, nb: usize) -> u32 {
        let mut m = 0u32;
        let (mut y, mut x) = (j0 / self.ow, j0 % self.ow);
        for j in 0..nb {
            if self.reads(i, y, x).is_some() {
                m |= 1 << j;
            }
            x += 1;
            if x == self.ow {
                (x, y) = (0, y + 1);
            }
        }
        m
    }

    /// Stride 2: the loads of tap `i` for pixels `j0..j0 + nb`, one per
    /// output row the tile spans (at most [`MAX_SEGS`]).
    fn seg_loads(&self, i: usize, j0: usize, nb: usize, out: &mut [SegLoad; MAX_SEGS]) -> usize {
        let (mut y, mut x) = (j0 / self.ow, j0 % self.ow);
        let mut j = 0;
        let mut segs = 0;
        while j < nb {
            let len = (self.ow - x).min(nb - j);
            let mut load = SegLoad::default();
            for t in 0..len {
                if let Some((iy, ix)) = self.reads(i, y, x + t) {
                    let at = (iy * self.w + ix) as isize;
                    // Lane j + t reads off + 2(j + t) = at.
                    load.off = at - 2 * (j + t) as isize;
                    load.mask |= 1 << (2 * (j + t));
                }
            }
            if load.mask != 0 {
                out[segs] = load;
                segs += 1;
            }
            (j, x, y) = (j + len, 0, y + 1);
        }
        segs
    }
}

/// Packs the tile of pixels `j0..j0 + nb` as `quads` groups of
/// `[32 pixels][4 taps]` bytes `x + 128` (module docs); taps past `K` and
/// pixels past `nb` hold `zp_in + 128`.
///
/// # Safety
/// AVX-512 F, BW and VL run; `panel` holds `128·quads` bytes; `taps` is the
/// geometry of `input`, a `[cin][h][w]` map; `j0 + nb ≤ out_h·out_w`,
/// `nb ≤ 32`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn pack_tile(
    taps: &Taps,
    input: &[i8],
    zp_in: i32,
    j0: usize,
    nb: usize,
    quads: usize,
    panel: &mut [u8],
) {
    debug_assert!(panel.len() >= 128 * quads);
    debug_assert!(input.len() >= taps.cin * taps.h * taps.w);
    let mut masks = [0u32; MAX_K * MAX_K];
    let mut segs = [[SegLoad::default(); MAX_SEGS]; MAX_K * MAX_K];
    let mut nsegs = [0usize; MAX_K * MAX_K];
    for i in 0..taps.per_ci {
        if taps.stride == 1 {
            masks[i] = taps.mask(i, j0, nb);
        } else {
            nsegs[i] = taps.seg_loads(i, j0, nb, &mut segs[i]);
        }
    }
    let zp = _mm256_set1_epi8(zp_in as i8);
    let zp64 = _mm512_set1_epi8(zp_in as i8);
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut quad = [zp; 4];
    let mut filled = 0;
    let mut dst = panel.as_mut_ptr();
    let plane_len = taps.h * taps.w;
    for ci in 0..taps.cin {
        let plane = input[ci * plane_len..][..plane_len].as_ptr();
        for i in 0..taps.per_ci {
            quad[filled] = if taps.stride == 1 {
                // The tile's first pixel in plane `ci` (j0 < out_h·out_w = h·w).
                let base = plane.wrapping_add(j0);
                // SAFETY: the masked load reads only the bytes of set mask
                // bits, pixels whose tap lies inside plane `ci`
                // (Taps::mask), so every byte read is in `input`;
                // `wrapping_offset` forms the address without asserting that
                // the unread ones are.
                unsafe {
                    _mm256_mask_loadu_epi8(zp, masks[i], base.wrapping_offset(taps.off[i]).cast())
                }
            } else {
                let mut v = zp64;
                for s in &segs[i][..nsegs[i]] {
                    // SAFETY: as above: the set bits are the bytes
                    // `off + 2j` that Taps::seg_loads found inside the plane.
                    v = unsafe {
                        _mm512_mask_loadu_epi8(v, s.mask, plane.wrapping_offset(s.off).cast())
                    };
                }
                // Byte j = byte 2j of the load.
                _mm512_cvtepi16_epi8(v)
            };
            filled += 1;
            if filled == 4 {
                // SAFETY: `dst` has 128 bytes left (one per quad, quads in total).
                unsafe {
                    store_quad(&quad, flip, dst);
                    dst = dst.add(128);
                }
                filled = 0;
            }
        }
    }
    if filled > 0 {
        quad[filled..].fill(zp);
        // SAFETY: as above, the last quad.
        unsafe { store_quad(&quad, flip, dst) };
    }
}

/// Interleaves 4 tap vectors of 32 pixels into 128 bytes `[pixel][tap]`,
/// each byte XOR 0x80.
///
/// # Safety
/// AVX2 runs; `dst` is valid for 128 bytes of writes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_quad(q: &[__m256i; 4], flip: __m256i, dst: *mut u8) {
    let v: [__m256i; 4] = core::array::from_fn(|i| _mm256_xor_si256(q[i], flip));
    // Within each 128-bit lane: pairs, then quads of taps per pixel.
    let (a, b) = (
        _mm256_unpacklo_epi8(v[0], v[1]),
        _mm256_unpackhi_epi8(v[0], v[1]),
    );
    let (c, d) = (
        _mm256_unpacklo_epi8(v[2], v[3]),
        _mm256_unpackhi_epi8(v[2], v[3]),
    );
    let e0 = _mm256_unpacklo_epi16(a, c); // pixels 0-3 | 16-19
    let e1 = _mm256_unpackhi_epi16(a, c); // 4-7 | 20-23
    let e2 = _mm256_unpacklo_epi16(b, d); // 8-11 | 24-27
    let e3 = _mm256_unpackhi_epi16(b, d); // 12-15 | 28-31
    let o = [
        _mm256_permute2x128_si256::<0x20>(e0, e1),
        _mm256_permute2x128_si256::<0x20>(e2, e3),
        _mm256_permute2x128_si256::<0x31>(e0, e1),
        _mm256_permute2x128_si256::<0x31>(e2, e3),
    ];
    for (i, o) in o.iter().enumerate() {
        // SAFETY: `dst` is valid for 128 bytes.
        unsafe { _mm256_storeu_si256(dst.add(32 * i).cast(), *o) };
    }
}

/// `Σ_q w_r[q] · panel[q]` for [`MR`] (12) weight rows and the tile's 2 ×
/// 16 pixels: per group of 4 taps, 2 panel loads, 12 broadcasts and 24
/// `vpdpbusd`.
///
/// # Safety
/// AVX-512 F and VNNI run; every `w[r]` is valid for `4·quads` bytes and
/// `panel` for `128·quads`.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn dot_12x32(w: &[*const u8; MR], panel: *const u8, quads: usize) -> [[__m512i; 2]; MR] {
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    for q in 0..quads {
        // SAFETY: q < quads: 128 bytes of panel and 4 bytes of every row.
        unsafe {
            let x0 = _mm512_loadu_si512(panel.add(128 * q).cast());
            let x1 = _mm512_loadu_si512(panel.add(128 * q + 64).cast());
            for r in 0..MR {
                let wb = _mm512_set1_epi32(w[r].add(4 * q).cast::<i32>().read_unaligned());
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x0, wb);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x1, wb);
            }
        }
    }
    acc
}

/// A 256-entry byte table in 4 zmm registers, looked up 64 bytes at a time
/// with VBMI's two-table byte permute.
struct Lut([__m512i; 4]);

impl Lut {
    #[target_feature(enable = "avx512f")]
    fn new(t: &[i8; 256]) -> Lut {
        // SAFETY: `t` holds 4 × 64 bytes.
        Lut(core::array::from_fn(|i| unsafe {
            _mm512_loadu_si512(t[64 * i..].as_ptr().cast())
        }))
    }

    /// `t[y + 128]` for every byte `y` of `y`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
    fn apply(&self, y: __m512i) -> __m512i {
        let idx = _mm512_xor_si512(y, _mm512_set1_epi8(i8::MIN));
        let lo = _mm512_permutex2var_epi8(self.0[0], idx, self.0[1]);
        let hi = _mm512_permutex2var_epi8(self.0[2], idx, self.0[3]);
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi)
    }
}

/// Requantises 16 accumulators of one channel (plus `badj`, multiplier
/// `mul` shifting right) and stores the first `o.len()` bytes, through the
/// table if any.
///
/// # Safety
/// AVX-512 F, BW and VL run (and VBMI when `lut` is given); `o.len() ≤ 16`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn store16(
    acc: __m512i,
    badj: i32,
    mul: QMul,
    rq: &Requant<'_>,
    lut: Option<&Lut>,
    o: &mut [i8],
) {
    let y = crate::x86_vnni::requant16_rq(
        _mm512_add_epi32(acc, _mm512_set1_epi32(badj)),
        _mm512_set1_epi32(mul.m),
        _mm512_set1_epi32(mul.shift.saturating_neg().clamp(0, 31)),
        rq,
    );
    let mut b = _mm512_cvtepi32_epi8(y);
    let mask = crate::x86_vnni::first_lanes(o.len());
    match (lut, rq.lut) {
        (Some(l), _) => {
            // SAFETY: a `Lut` is only made when VBMI runs.
            b = _mm512_castsi512_si128(unsafe { l.apply(_mm512_castsi128_si512(b)) });
            // SAFETY: the mask covers `o.len()` bytes.
            unsafe { _mm_mask_storeu_epi8(o.as_mut_ptr(), mask, b) };
        }
        (None, Some(t)) => {
            let mut bytes = [0i8; 16];
            // SAFETY: `bytes` holds 16 bytes.
            unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), b) };
            for (o, &v) in o.iter_mut().zip(&bytes) {
                *o = t[(v as i32 + 128) as usize];
            }
        }
        // SAFETY: the mask covers `o.len()` bytes.
        (None, None) => unsafe { _mm_mask_storeu_epi8(o.as_mut_ptr(), mask, b) },
    }
}

/// [`store16`] for any multiplier and output zero point: the scalar
/// epilogue of each lane.
///
/// # Safety
/// AVX-512 F runs; `o.len() ≤ 16`.
#[target_feature(enable = "avx512f")]
unsafe fn store16_scalar(acc: __m512i, badj: i32, mul: QMul, rq: &Requant<'_>, o: &mut [i8]) {
    let mut s = [0i32; 16];
    // SAFETY: `s` holds 16 i32.
    unsafe { _mm512_storeu_si512(s.as_mut_ptr().cast(), acc) };
    for (o, &s) in o.iter_mut().zip(&s) {
        *o = rq.apply_mul(mul, s.wrapping_add(badj));
    }
}
