//! The int8 kernels' specifications: hand-computed cases, argument checks,
//! and a cross-architecture fingerprint. (Every path against these
//! references, on random and edge shapes, is `equivalence.rs`.)
//!
//! # Exactness policy (integers)
//! int32 accumulation is exact (wrapping, identically everywhere, past
//! `|bias| + K·2^14 ≥ 2^31`), and every int8 output must be *equal* to the
//! direct reference's — on x86_64, aarch64 (any CPU model) and armv7. The
//! reference itself is integer-only, so the bytes are the same on every
//! architecture; [`fingerprint_is_the_same_everywhere`] prints a hash of a
//! fixed workload so CI logs of different architectures can be compared.

mod common;

use common::{Problem, Rng, requant_written_out, weighted_sum_written_out};
use edgedetr_kernels::elementwise_i8::upsample_nearest2x_copy;
use edgedetr_kernels::f16::f32_to_f16_slice;
use edgedetr_kernels::quant::quantize_f32_slice;
use edgedetr_kernels::{
    Caps, ConvGeom, ConvI8, Kernels, QMul, Requant, SumInput, conv_i8_scratch_len,
    f16_to_f32_slice, reference_conv2d_i8, requant, u8_to_i8_image, upsample_nearest2x_i8,
    weight_kpad, weighted_sum_i8, weighted_sum_params,
};

/// FNV-1a over bytes.
fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A hand-computed convolution: the padding reads `zp_in`, the bias is added
/// as given (already corrected by the quantizer), per-channel multipliers.
#[test]
fn conv_i8_hand_computed() {
    // 1 input channel 2×2, 2 output channels, 3×3, pad 1.
    let g = ConvGeom::new(1, 2, 2, 2, 3, 1, 1);
    let input = [1i8, 2, 3, 4];
    let zp_in = -1;
    let mut weight = [0i8; 2 * 16];
    weight[..9].fill(1); // channel 0: box filter
    weight[16 + 4] = 2; // channel 1: 2 × centre
    let bias = [100, -3];
    let mul = [
        QMul {
            m: 1 << 30,
            shift: 1,
        }, // ×1
        QMul {
            m: 1 << 30,
            shift: -1,
        }, // ×¼
    ];
    let rq = Requant {
        mul: &mul,
        zp_out: 5,
        lo: -128,
        hi: 127,
        lut: None,
    };
    let mut out = [0i8; 8];
    let mut scratch = [0u8; 200];
    assert!(scratch.len() >= conv_i8_scratch_len(&g));
    let conv = ConvI8 {
        g,
        input: &input,
        zp_in,
        weight: &weight,
        kpad: 16,
        bias: &bias,
        rq,
    };
    Kernels::scalar().conv2d_i8(&conv, &mut out, &mut scratch);
    // Channel 0, every pixel sees the 4 inputs (sum 10) and 5 padding taps (−1 each).
    assert_eq!(&out[..4], &[5 + 100 + 10 - 5; 4]);
    // Channel 1: (−3 + 2·x)/4 by the two-step rule, + 5.
    let want: Vec<i8> = input
        .iter()
        .map(|&x| (5 + requant(-3 + 2 * x as i32, mul[1])) as i8)
        .collect();
    assert_eq!(&out[4..], &want[..]);
    // The rule's double rounding shows on tiny accumulators: ¼·(−1, 1, 3, 5)
    // = −0.25, 0.25, 0.75, 1.25 → SRDHM (×½): −0.5, 0.5, 1.5, 2.5 → 0, 1, 2, 3
    // → ÷2 half away from zero: 0, 1, 1, 2.
    assert_eq!(want, [5, 6, 6, 7]);
    let mut reference = [0i8; 8];
    reference_conv2d_i8(&conv, &mut reference);
    assert_eq!(out, reference);
}

#[test]
fn weight_kpad_and_scratch() {
    assert_eq!(weight_kpad(1), 16);
    assert_eq!(weight_kpad(16), 16);
    assert_eq!(weight_kpad(17), 32);
    assert_eq!(weight_kpad(9), 16);
    assert_eq!(weight_kpad(2304), 2304);
    assert_eq!(weight_kpad(0), 0);
    let dw = ConvGeom::new(8, 9, 9, 8, 3, 1, 8);
    assert_eq!(conv_i8_scratch_len(&dw), 0);
    let g = ConvGeom::new(3, 2, 2, 8, 3, 1, 1);
    assert_eq!(conv_i8_scratch_len(&g), 4 * 32 + 63);
    let g = ConvGeom::new(256, 80, 80, 256, 3, 1, 1);
    assert_eq!(conv_i8_scratch_len(&g), 32 * 2304 + 63);
}

/// A one-pixel convolution with kernel `k`, input zero point `zp_in` and
/// weight rows of `kpad` (any value: the checks under test reject some).
fn one_pixel(k: usize, zp_in: i32, kpad: usize) {
    let weight = vec![0i8; kpad];
    let conv = ConvI8 {
        g: ConvGeom::new(1, 1, 1, 1, k, 1, 1),
        input: &[0],
        zp_in,
        weight: &weight,
        kpad,
        bias: &[0],
        rq: Requant {
            mul: &[QMul::ZERO],
            zp_out: 0,
            lo: -128,
            hi: 127,
            lut: None,
        },
    };
    reference_conv2d_i8(&conv, &mut [0i8]);
    Kernels::scalar().conv2d_i8(&conv, &mut [0i8], &mut [0u8; 100]);
}

#[test]
#[should_panic(expected = "zp_in")]
fn conv_i8_rejects_a_wide_zero_point() {
    one_pixel(1, 128, 16);
}

#[test]
#[should_panic(expected = "kpad")]
fn conv_i8_rejects_an_unpadded_row() {
    one_pixel(3, 0, 9);
}

/// Hashes a fixed pseudo-random workload (convolutions dense and depthwise,
/// weighted sums, requantisation, quantize/dequantize, fp16 conversions)
/// computed by the kernels, and the same workload computed by the direct
/// references, asserts they agree and prints the hash: it must be the same in
/// the logs of every architecture.
#[test]
fn fingerprint_is_the_same_everywhere() {
    let mut r = Rng(0xf1_9e_4b_12);
    let shapes = [
        ConvGeom::new(16, 13, 11, 19, 3, 1, 1),
        ConvGeom::new(9, 12, 12, 8, 3, 2, 1),
        ConvGeom::new(33, 7, 9, 17, 1, 1, 1),
        ConvGeom::new(5, 10, 9, 6, 5, 1, 1),
        ConvGeom::new(24, 15, 14, 24, 3, 1, 24),
        ConvGeom::new(12, 17, 16, 12, 5, 2, 12),
    ];
    let (mut h_kernel, mut h_ref) = (FNV_OFFSET, FNV_OFFSET);
    for g in shapes {
        let p = Problem::random(&mut r, g);
        let want = p.reference();
        h_ref = fnv1a(h_ref, want.iter().map(|&b| b as u8));
        let got = p.run(&Kernels::for_caps(Caps::compile_time()), 0);
        h_kernel = fnv1a(h_kernel, got.iter().map(|&b| b as u8));
    }
    // Weighted sums of 2, 3 and 4 inputs.
    for n in 2..=4 {
        let len = 257;
        let data: Vec<Vec<i8>> = (0..n).map(|_| (0..len).map(|_| r.i8()).collect()).collect();
        let coefs: Vec<f64> = (0..n).map(|_| 0.1 + r.below(100) as f64 / 50.0).collect();
        let scales: Vec<f64> = (0..n)
            .map(|_| 0.01 + r.below(100) as f64 / 1000.0)
            .collect();
        let zps: Vec<i32> = (0..n).map(|_| r.range(-128, 127)).collect();
        let mut params = vec![SumInput::default(); n];
        let out_mul = weighted_sum_params(&coefs, &scales, &zps, 0.04, &mut params);
        let refs: Vec<&[i8]> = data.iter().map(|d| d.as_slice()).collect();
        let zp_out = r.range(-128, 127);
        let mut out = vec![0i8; len];
        weighted_sum_i8(&refs, &params, out_mul, zp_out, -128, 127, &mut out);
        h_kernel = fnv1a(h_kernel, out.iter().map(|&b| b as u8));
        let want = (0..len).map(|j| {
            let qs: Vec<i8> = data.iter().map(|d| d[j]).collect();
            weighted_sum_written_out(&qs, &params, out_mul, zp_out, -128, 127) as u8
        });
        h_ref = fnv1a(h_ref, want);
    }
    // Requantisation over extreme accumulators and multipliers.
    for _ in 0..4096 {
        let acc = (r.next() as i32) >> r.below(32);
        let q = QMul {
            m: (1 << 30) | (r.next() as i32 & 0x3fff_ffff),
            shift: r.range(-31, 31),
        };
        h_kernel = fnv1a(h_kernel, requant(acc, q).to_le_bytes());
        h_ref = fnv1a(h_ref, requant_written_out(acc, q).to_le_bytes());
    }
    println!(
        "int8 fingerprint (FNV-1a, {}): {h_kernel:016x}",
        std::env::consts::ARCH
    );
    assert_eq!(h_kernel, h_ref, "kernels and references disagree");

    // Float edges (plain IEEE binary32 arithmetic): printed for cross-arch
    // comparison of the logs, checked against written-out models.
    let xs: Vec<f32> = (0..4096)
        .map(|_| f32::from_bits((r.next() as u32 & 0x8fff_ffff) | 0x3000_0000))
        .collect();
    let mut q = vec![0i8; xs.len()];
    quantize_f32_slice(&xs, 37.5, -3, &mut q);
    for (x, &qq) in xs.iter().zip(&q) {
        let y = (x * 37.5) as f64;
        let want = ((y.abs() + 0.5).floor().copysign(y) - 3.0).clamp(-128.0, 127.0) as i8;
        assert_eq!(qq, want, "{x}");
    }
    let mut halfs = vec![0u16; xs.len()];
    f32_to_f16_slice(&xs, &mut halfs);
    let mut back = vec![0f32; xs.len()];
    f16_to_f32_slice(&halfs, &mut back);
    let h_float = fnv1a(
        fnv1a(FNV_OFFSET, q.iter().map(|&b| b as u8)),
        back.iter().flat_map(|v| v.to_bits().to_le_bytes()),
    );
    println!(
        "float-edge fingerprint (FNV-1a, {}): {h_float:016x}",
        std::env::consts::ARCH
    );
}

#[test]
fn small_helpers_byte_exact() {
    let mut r = Rng(7);
    for &(c, h, w) in &[(1, 1, 1), (3, 2, 5), (2, 7, 1)] {
        let input: Vec<i8> = (0..c * h * w).map(|_| r.i8()).collect();
        let mut out = vec![0i8; 4 * c * h * w];
        upsample_nearest2x_i8(&input, c, h, w, &mut out);
        let mut generic = vec![0i8; 4 * c * h * w];
        upsample_nearest2x_copy(&input, c, h, w, &mut generic);
        assert_eq!(out, generic);
        let f: Vec<u16> = input.iter().map(|&x| x as u8 as u16 * 3).collect();
        let mut fo = vec![0u16; 4 * c * h * w];
        upsample_nearest2x_copy(&f, c, h, w, &mut fo);
        for (i, (&a, &b)) in out.iter().zip(&fo).enumerate() {
            assert_eq!(a as u8 as u16 * 3, b, "{i}");
        }
    }
    let img: Vec<u8> = (0..=255u8).chain([0, 255, 128]).collect();
    let mut q = vec![0i8; img.len()];
    u8_to_i8_image(&img, &mut q);
    assert!(
        img.iter()
            .zip(&q)
            .all(|(&v, &q)| q as i32 == v as i32 - 128)
    );
}
