//! AVX2 JPEG kernels ([`crate::jpeg`]), byte-identical to the scalar ones:
//! the same wrapping 32-bit integer operations, eight lanes at a time.
//! Written for any AVX2 core (Haswell and later, Zen and later): the IDCT
//! keeps one 8×8 block in sixteen YMM registers (one row of eight columns
//! per register), so no tile choice is involved.

use core::arch::x86_64::*;

use crate::jpeg::{CONST_BITS, PASS1_BITS, YCC_FIX};

/// `x + (1 << (n − 1)) >> n` in each lane.
#[inline]
#[target_feature(enable = "avx2")]
fn descale<const N: i32>(x: __m256i) -> __m256i {
    _mm256_srai_epi32::<N>(_mm256_add_epi32(x, _mm256_set1_epi32(1 << (N - 1))))
}

/// `jpeg_idct_islow`'s 1-D IDCT in each of eight lanes (wrapping i32).
#[inline]
#[target_feature(enable = "avx2")]
fn idct_1d(i: [__m256i; 8]) -> [__m256i; 8] {
    let c = |v: i32| _mm256_set1_epi32(v);
    let (a, s, m) = (_mm256_add_epi32, _mm256_sub_epi32, _mm256_mullo_epi32);
    let z1 = m(a(i[2], i[6]), c(4433));
    let tmp2 = s(z1, m(i[6], c(15137)));
    let tmp3 = a(z1, m(i[2], c(6270)));
    let tmp0 = _mm256_slli_epi32::<{ CONST_BITS as i32 }>(a(i[0], i[4]));
    let tmp1 = _mm256_slli_epi32::<{ CONST_BITS as i32 }>(s(i[0], i[4]));
    let (tmp10, tmp13) = (a(tmp0, tmp3), s(tmp0, tmp3));
    let (tmp11, tmp12) = (a(tmp1, tmp2), s(tmp1, tmp2));
    let (t0, t1, t2, t3) = (i[7], i[5], i[3], i[1]);
    let z1 = a(t0, t3);
    let z2 = a(t1, t2);
    let z3 = a(t0, t2);
    let z4 = a(t1, t3);
    let z5 = m(a(z3, z4), c(9633));
    let t0 = m(t0, c(2446));
    let t1 = m(t1, c(16819));
    let t2 = m(t2, c(25172));
    let t3 = m(t3, c(12299));
    let z1 = m(z1, c(-7373));
    let z2 = m(z2, c(-20995));
    let z3 = a(m(z3, c(-16069)), z5);
    let z4 = a(m(z4, c(-3196)), z5);
    let t0 = a(a(t0, z1), z3);
    let t1 = a(a(t1, z2), z4);
    let t2 = a(a(t2, z2), z3);
    let t3 = a(a(t3, z1), z4);
    [
        a(tmp10, t3),
        a(tmp11, t2),
        a(tmp12, t1),
        a(tmp13, t0),
        s(tmp13, t0),
        s(tmp12, t1),
        s(tmp11, t2),
        s(tmp10, t3),
    ]
}

/// Transposes an 8×8 matrix of i32 held as eight rows.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
    let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
    let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

/// libjpeg's `range_limit` (`x & 1023` through its table) in each lane:
/// with `u = (x + 128) & 1023`, `u` below 256, 255 below 640, else 0.
#[inline]
#[target_feature(enable = "avx2")]
fn range_limit(x: __m256i) -> __m256i {
    let u = _mm256_and_si256(
        _mm256_add_epi32(x, _mm256_set1_epi32(128)),
        _mm256_set1_epi32(1023),
    );
    let big = _mm256_cmpgt_epi32(u, _mm256_set1_epi32(639));
    _mm256_andnot_si256(big, _mm256_min_epi32(u, _mm256_set1_epi32(255)))
}

/// `coef · quant` as i32, one row of 8 per register.
#[inline]
#[target_feature(enable = "avx2")]
fn dequantize(coef: &[i16; 64], quant: &[i16; 64]) -> [__m256i; 8] {
    core::array::from_fn(|r| {
        // SAFETY: 8 i16 (16 bytes) at row r of each 64-element array.
        let (c, q) = unsafe {
            (
                _mm_loadu_si128(coef.as_ptr().add(8 * r).cast()),
                _mm_loadu_si128(quant.as_ptr().add(8 * r).cast()),
            )
        };
        _mm256_mullo_epi32(_mm256_cvtepi16_epi32(c), _mm256_cvtepi16_epi32(q))
    })
}

/// The [`crate::Slot::IdctIslowU8`] of the AVX2 path: both passes on eight
/// lanes, a transpose between them and one before packing the rows.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 runs; `out` holds
/// `7·stride + 8` bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_idct_islow_u8(
    coef: &[i16; 64],
    quant: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    let rows = dequantize(coef, quant);
    const P1: i32 = (CONST_BITS - PASS1_BITS) as i32;
    const P2: i32 = (CONST_BITS + PASS1_BITS + 3) as i32;
    let ws = idct_1d(rows).map(|v| descale::<P1>(v));
    let cols = idct_1d(transpose8(ws)).map(|v| range_limit(descale::<P2>(v)));
    let r = transpose8(cols);
    // Rows as bytes: [r0 c0-3, r1 c0-3, r2.., r3.. | r0 c4-7, ..] per pair
    // of packs, then gathered row by row.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let lo = _mm256_packus_epi16(
        _mm256_packs_epi32(r[0], r[1]),
        _mm256_packs_epi32(r[2], r[3]),
    );
    let hi = _mm256_packus_epi16(
        _mm256_packs_epi32(r[4], r[5]),
        _mm256_packs_epi32(r[6], r[7]),
    );
    let mut bytes = [0u8; 64];
    // SAFETY: `bytes` holds 64 writable bytes.
    unsafe {
        _mm256_storeu_si256(
            bytes.as_mut_ptr().cast(),
            _mm256_permutevar8x32_epi32(lo, order),
        );
        _mm256_storeu_si256(
            bytes.as_mut_ptr().add(32).cast(),
            _mm256_permutevar8x32_epi32(hi, order),
        );
    }
    for (row, src) in bytes.chunks_exact(8).enumerate() {
        out[row * stride..row * stride + 8].copy_from_slice(src);
    }
}

/// 16 bytes at `p` as sixteen u16 lanes.
///
/// # Safety
/// `p` points at 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16(p: *const u8) -> __m256i {
    // SAFETY: the caller's contract.
    _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
}

/// The [`crate::Slot::UpsampleH2v1FancyU8`] of the AVX2 path: sixteen input
/// samples at a time in u16 lanes (at most 4·255 + 2), the row's two ends
/// by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 runs; `out.len() == 2·row.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_upsample_h2v1_fancy_u8(row: &[u8], out: &mut [u8]) {
    let n = row.len();
    let mut x = 1;
    let p = row.as_ptr();
    while x + 17 <= n {
        // SAFETY: x − 1 ≥ 0 and x + 16 < n: the loads stay in `row`; the
        // store writes out[2x..2x + 32] ⊂ out[..2n].
        unsafe {
            let c = load16(p.add(x));
            let v = _mm256_add_epi16(c, _mm256_add_epi16(c, c));
            let l = load16(p.add(x - 1));
            let r = load16(p.add(x + 1));
            let even = _mm256_srli_epi16::<2>(_mm256_add_epi16(
                _mm256_add_epi16(v, l),
                _mm256_set1_epi16(1),
            ));
            let odd = _mm256_srli_epi16::<2>(_mm256_add_epi16(
                _mm256_add_epi16(v, r),
                _mm256_set1_epi16(2),
            ));
            store_pairs(out.as_mut_ptr().add(2 * x), even, odd);
        }
        x += 16;
    }
    crate::jpeg::h2v1_fancy_span(row, out, 0, 1.min(n));
    crate::jpeg::h2v1_fancy_span(row, out, x.max(1).min(n), n);
}

/// Stores sixteen `(even, odd)` byte pairs (each lane below 256) as 32
/// interleaved bytes, in input order.
///
/// # Safety
/// `dst` points at 32 writable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_pairs(dst: *mut u8, even: __m256i, odd: __m256i) {
    let v = _mm256_or_si256(even, _mm256_slli_epi16::<8>(odd));
    // SAFETY: the caller's contract.
    unsafe { _mm256_storeu_si256(dst.cast(), v) };
}

/// The [`crate::Slot::UpsampleH2v2FancyU8`] of the AVX2 path: sixteen input
/// samples at a time in u16 lanes (at most 16·255 + 8), the row's two ends
/// by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 runs; `far.len() == near.len()`
/// and `out.len() == 2·near.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_upsample_h2v2_fancy_u8(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let (pn, pf) = (near.as_ptr(), far.as_ptr());
    let three = |v: __m256i| _mm256_add_epi16(v, _mm256_add_epi16(v, v));
    let mut x = 1;
    while x + 17 <= n {
        // SAFETY: x − 1 ≥ 0 and x + 16 < n: the loads stay in both rows;
        // the store writes out[2x..2x + 32] ⊂ out[..2n].
        unsafe {
            let cs = |o: usize| _mm256_add_epi16(three(load16(pn.add(o))), load16(pf.add(o)));
            let c = three(cs(x));
            let l = cs(x - 1);
            let r = cs(x + 1);
            let even = _mm256_srli_epi16::<4>(_mm256_add_epi16(
                _mm256_add_epi16(c, l),
                _mm256_set1_epi16(8),
            ));
            let odd = _mm256_srli_epi16::<4>(_mm256_add_epi16(
                _mm256_add_epi16(c, r),
                _mm256_set1_epi16(7),
            ));
            store_pairs(out.as_mut_ptr().add(2 * x), even, odd);
        }
        x += 16;
    }
    crate::jpeg::h2v2_fancy_span(near, far, out, 0, 1.min(n));
    crate::jpeg::h2v2_fancy_span(near, far, out, x.max(1).min(n), n);
}

/// `pshufb` masks interleaving three 16-byte channel vectors into 48 RGB
/// bytes: output byte `j` of chunk `k` takes channel `(16k + j) % 3` of
/// pixel `(16k + j) / 3`; −128 (a set high bit) writes zero.
const RGB_MASKS: [[[i8; 16]; 3]; 3] = {
    let mut m = [[[-128i8; 16]; 3]; 3];
    let mut k = 0;
    while k < 3 {
        let mut j = 0;
        while j < 16 {
            let o = 16 * k + j;
            m[k][o % 3][j] = (o / 3) as i8;
            j += 1;
        }
        k += 1;
    }
    m
};

/// `ycc_rgb_convert` of eight pixels (the low 8 bytes of each input) in
/// i32 lanes: `(R, G, B)`, not yet clamped.
#[inline]
#[target_feature(enable = "avx2")]
fn ycc8(y: __m128i, cb: __m128i, cr: __m128i) -> (__m256i, __m256i, __m256i) {
    let [fr, fb, fgr, fgb] = YCC_FIX;
    let half = _mm256_set1_epi32(1 << 15);
    let c128 = _mm256_set1_epi32(128);
    let yy = _mm256_cvtepu8_epi32(y);
    let b = _mm256_sub_epi32(_mm256_cvtepu8_epi32(cb), c128);
    let r = _mm256_sub_epi32(_mm256_cvtepu8_epi32(cr), c128);
    let m = |k: i32, v: __m256i| _mm256_mullo_epi32(_mm256_set1_epi32(k), v);
    let rr = _mm256_add_epi32(
        yy,
        _mm256_srai_epi32::<16>(_mm256_add_epi32(m(fr, r), half)),
    );
    let g = _mm256_sub_epi32(_mm256_sub_epi32(half, m(fgr, r)), m(fgb, b));
    let gg = _mm256_add_epi32(yy, _mm256_srai_epi32::<16>(g));
    let bb = _mm256_add_epi32(
        yy,
        _mm256_srai_epi32::<16>(_mm256_add_epi32(m(fb, b), half)),
    );
    (rr, gg, bb)
}

/// Two sets of eight i32 lanes → sixteen bytes clamped to 0..=255, in order
/// (saturating packs: the clamp of the scalar code).
#[inline]
#[target_feature(enable = "avx2")]
fn pack16(a: __m256i, b: __m256i) -> __m128i {
    let w = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(a, b));
    _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w))
}

/// The [`crate::Slot::YccToRgbU8`] of the AVX2 path: sixteen pixels at a
/// time in i32 lanes (the scalar formulas exactly), saturating packs for the
/// clamp, `pshufb` to interleave; the tail by the scalar code.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 runs; `cb`, `cr` as long as `y`,
/// `out` three times as long.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_ycc_to_rgb_u8(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    let n = y.len();
    // SAFETY: each mask is 16 readable bytes.
    let masks: [[__m128i; 3]; 3] =
        RGB_MASKS.map(|k| k.map(|m| unsafe { _mm_loadu_si128(m.as_ptr().cast()) }));
    let mut x = 0;
    while x + 16 <= n {
        // SAFETY: x + 16 ≤ n: 16 bytes of each input row, 48 of `out` at 3x.
        unsafe {
            let yv = _mm_loadu_si128(y.as_ptr().add(x).cast());
            let bv = _mm_loadu_si128(cb.as_ptr().add(x).cast());
            let rv = _mm_loadu_si128(cr.as_ptr().add(x).cast());
            let (r0, g0, b0) = ycc8(yv, bv, rv);
            let (r1, g1, b1) = ycc8(
                _mm_srli_si128::<8>(yv),
                _mm_srli_si128::<8>(bv),
                _mm_srli_si128::<8>(rv),
            );
            let rgb = [pack16(r0, r1), pack16(g0, g1), pack16(b0, b1)];
            for (k, m) in masks.iter().enumerate() {
                let v = _mm_or_si128(
                    _mm_or_si128(
                        _mm_shuffle_epi8(rgb[0], m[0]),
                        _mm_shuffle_epi8(rgb[1], m[1]),
                    ),
                    _mm_shuffle_epi8(rgb[2], m[2]),
                );
                _mm_storeu_si128(out.as_mut_ptr().add(3 * x + 16 * k).cast(), v);
            }
        }
        x += 16;
    }
    crate::jpeg::ycc_to_rgb_u8(&y[x..], &cb[x..], &cr[x..], &mut out[3 * x..]);
}

/// `jpeg_idct_4x4`'s 1-D step in each of four lanes (wrapping i32):
/// inputs 0, 1, 2, 3, 5, 6, 7, outputs 0..4 before the descale.
#[inline]
#[target_feature(enable = "avx2")]
fn idct4_1d(i: [__m128i; 8]) -> [__m128i; 4] {
    use crate::jpeg::{
        FIX_0_211164243 as F0211, FIX_0_509795579 as F0509, FIX_0_601344887 as F0601,
        FIX_1_061594337 as F1061, FIX_1_451774981 as F1451, FIX_2_172734803 as F2172,
    };
    let (a, s) = (_mm_add_epi32, _mm_sub_epi32);
    let m = |v: __m128i, k: i32| _mm_mullo_epi32(v, _mm_set1_epi32(k));
    let tmp0 = _mm_slli_epi32::<14>(i[0]);
    let tmp2 = a(m(i[2], 15137), m(i[6], -6270));
    let (tmp10, tmp12) = (a(tmp0, tmp2), s(tmp0, tmp2));
    let (z1, z2, z3, z4) = (i[7], i[5], i[3], i[1]);
    let tmp0 = a(
        a(m(z1, -F0211), m(z2, F1451)),
        a(m(z3, -F2172), m(z4, F1061)),
    );
    let tmp2 = a(
        a(m(z1, -F0509), m(z2, -F0601)),
        a(m(z3, 7373), m(z4, 20995)),
    );
    [
        a(tmp10, tmp2),
        a(tmp12, tmp0),
        s(tmp12, tmp0),
        s(tmp10, tmp2),
    ]
}

/// Transposes a 4×4 block of i32.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose4(r: [__m128i; 4]) -> [__m128i; 4] {
    let t0 = _mm_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm_unpackhi_epi32(r[2], r[3]);
    [
        _mm_unpacklo_epi64(t0, t2),
        _mm_unpackhi_epi64(t0, t2),
        _mm_unpacklo_epi64(t1, t3),
        _mm_unpackhi_epi64(t1, t3),
    ]
}

/// The [`crate::Slot::Idct4x4U8`] of the AVX2 path: the first pass on the
/// two 4-column halves of the block, the second on the four rows as lanes
/// after a transpose, a transpose back and saturating packs.
///
/// # Safety
/// The slot contract (`crate::table`): AVX2 runs; `out` holds
/// `3·stride + 4` bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn avx2_idct_4x4_u8(
    coef: &[i16; 64],
    quant: &[i16; 64],
    out: &mut [u8],
    stride: usize,
) {
    let rows = dequantize(coef, quant);
    let lo = rows.map(|d| _mm256_castsi256_si128(d));
    let hi = rows.map(|d| _mm256_extracti128_si256::<1>(d));
    let d12 = |v: __m128i| _mm_srai_epi32::<12>(_mm_add_epi32(v, _mm_set1_epi32(1 << 11)));
    let (wl, wh) = (idct4_1d(lo).map(d12), idct4_1d(hi).map(d12));
    let (cl, ch) = (transpose4(wl), transpose4(wh));
    let cols = [cl[0], cl[1], cl[2], cl[3], ch[0], ch[1], ch[2], ch[3]];
    let fin = |v: __m128i| {
        let x = _mm_srai_epi32::<19>(_mm_add_epi32(v, _mm_set1_epi32(1 << 18)));
        let u = _mm_and_si128(_mm_add_epi32(x, _mm_set1_epi32(128)), _mm_set1_epi32(1023));
        let big = _mm_cmpgt_epi32(u, _mm_set1_epi32(639));
        _mm_andnot_si128(big, _mm_min_epi32(u, _mm_set1_epi32(255)))
    };
    let r = transpose4(idct4_1d(cols).map(fin));
    let v = _mm_packus_epi16(_mm_packs_epi32(r[0], r[1]), _mm_packs_epi32(r[2], r[3]));
    let mut bytes = [0u8; 16];
    // SAFETY: `bytes` holds 16 writable bytes.
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), v) };
    for (row, src) in bytes.chunks_exact(4).enumerate() {
        out[row * stride..row * stride + 4].copy_from_slice(src);
    }
}
