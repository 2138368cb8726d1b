//! The int8 kernels against their direct references, byte for byte, on
//! random and edge shapes; and a cross-architecture fingerprint.
//!
//! # Exactness policy (integers)
//! int32 accumulation is exact (wrapping, identically everywhere, past
//! `|bias| + K·2^14 ≥ 2^31`), and every int8 output must be *equal* to the
//! direct reference's — on x86_64, aarch64 (any CPU model) and armv7. The
//! reference itself is integer-only, so the bytes are the same on every
//! architecture; [`fingerprint_is_the_same_everywhere`] prints a hash of a
//! fixed workload so CI logs of different architectures can be compared.
//!
//! Natively the tests run many cases; under qemu fewer and smaller ones.

use edgedetr_kernels::conv_i8::conv_i8_reduction_len;
use edgedetr_kernels::elementwise_i8::upsample_nearest2x_copy;
use edgedetr_kernels::f16::f32_to_f16_slice;
use edgedetr_kernels::quant::{lut_from_fn, quantize_f32_slice};
use edgedetr_kernels::{
    Caps, ConvGeom, Kernels, QMul, Requant, SumInput, conv_i8_scratch_len, f16_to_f32_slice,
    quantize_multiplier, reference_conv2d_i8, requant, u8_to_i8_image, upsample_nearest2x_i8,
    weight_kpad, weighted_sum_i8, weighted_sum_params,
};

const NATIVE: bool = cfg!(target_arch = "x86_64");
/// Random convolution cases.
const CASES: usize = if NATIVE { 600 } else { 80 };
/// Largest multiply-add count of one random case.
const MAX_MACS: usize = if NATIVE { 1 << 21 } else { 1 << 17 };
/// A byte written past every output view, which must survive.
const SENTINEL: i8 = 0x5a;

/// SplitMix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    /// A weight in [-127, 127].
    fn weight(&mut self) -> i8 {
        (self.below(255) as i32 - 127) as i8
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1) as usize) as i32
    }
}

/// FNV-1a over bytes.
fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// One int8 convolution problem with all its operands.
struct Problem {
    g: ConvGeom,
    input: Vec<i8>,
    zp_in: i32,
    weight: Vec<i8>,
    kpad: usize,
    bias: Vec<i32>,
    mul: Vec<QMul>,
    zp_out: i32,
    lo: i8,
    hi: i8,
    lut: Option<[i8; 256]>,
}

impl Problem {
    fn random(r: &mut Rng, g: ConvGeom) -> Problem {
        let kk = conv_i8_reduction_len(&g);
        let kpad = match r.below(4) {
            0 => weight_kpad(kk) + 16,
            1 => weight_kpad(kk).div_ceil(64) * 64,
            _ => weight_kpad(kk),
        };
        let mut weight = vec![0i8; g.cout * kpad];
        for row in weight.chunks_exact_mut(kpad) {
            row[..kk].iter_mut().for_each(|w| *w = r.weight());
        }
        let zp_in = match r.below(4) {
            0 => -128,
            1 => 127,
            _ => r.range(-128, 127),
        };
        let input = (0..g.cin * g.h * g.w).map(|_| r.i8()).collect();
        let bias = (0..g.cout)
            .map(|_| match r.below(12) {
                0 => i32::MAX - r.range(0, 1000), // wraps with positive sums
                1 => i32::MIN + r.range(0, 1000),
                _ => r.range(-(1 << 20), 1 << 20),
            })
            .collect();
        // Scale so that typical accumulators (≈ 2^7·2^7·√K) land in int8.
        let spread = ((kk as f64).sqrt() * 128.0 * 128.0 / 64.0).max(1.0);
        let nmul = if r.below(2) == 0 { 1 } else { g.cout };
        let mul = (0..nmul)
            .map(|_| match r.below(16) {
                0 => QMul::ZERO,
                1 => quantize_multiplier(1.5 + r.below(100) as f64 / 10.0),
                _ => quantize_multiplier((0.25 + r.below(1000) as f64 / 500.0) / spread),
            })
            .collect();
        let zp_out = match r.below(5) {
            0 => -128,
            1 => 127,
            2 => r.range(-300, 300),
            _ => r.range(-128, 127),
        };
        let (lo, hi) = match r.below(4) {
            0 => (-128, 127),
            1 => {
                let a = r.i8();
                let b = r.i8();
                (a.min(b), a.max(b))
            }
            2 => (zp_out.clamp(-128, 127) as i8, 127), // a fused ReLU
            _ => (-128, 127),
        };
        let lut = (r.below(3) == 0).then(|| {
            let mut t = [0i8; 256];
            lut_from_fn(
                0.05,
                zp_out.clamp(-128, 127),
                1.0 / 0.03,
                -100,
                |x| x / (1.0 + libm_exp(-x)),
                &mut t,
            );
            t
        });
        Problem {
            g,
            input,
            zp_in,
            weight,
            kpad,
            bias,
            mul,
            zp_out,
            lo,
            hi,
            lut,
        }
    }

    fn rq(&self) -> Requant<'_> {
        Requant {
            mul: &self.mul,
            zp_out: self.zp_out,
            lo: self.lo,
            hi: self.hi,
            lut: self.lut.as_ref(),
        }
    }

    fn out_len(&self) -> usize {
        self.g.cout * self.g.out_h() * self.g.out_w()
    }

    fn reference(&self) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.out_len() + 3];
        let rq = self.rq();
        reference_conv2d_i8(
            &self.g,
            &self.input,
            self.zp_in,
            &self.weight,
            self.kpad,
            &self.bias,
            &rq,
            &mut out,
        );
        out
    }

    /// The dispatched kernel, with its scratch at byte offset `scratch_off`.
    fn run(&self, k: &Kernels, scratch_off: usize) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.out_len() + 3];
        let mut scratch = vec![0xa5u8; conv_i8_scratch_len(&self.g) + scratch_off];
        let rq = self.rq();
        k.conv2d_i8(
            &self.g,
            &self.input,
            self.zp_in,
            &self.weight,
            self.kpad,
            &self.bias,
            &rq,
            &mut out,
            &mut scratch[scratch_off..],
        );
        out
    }
}

/// A deterministic exp for the LUT (the tables only need to be the same on
/// both sides of a comparison, not accurate).
fn libm_exp(x: f32) -> f32 {
    let mut s = 1.0f32;
    let mut t = 1.0f32;
    for i in 1..20 {
        t *= x.clamp(-8.0, 8.0) / i as f32;
        s += t;
    }
    s.max(1e-6)
}

/// Every path this CPU runs: scalar, and the best SIMD path (AVX2 on
/// x86_64, confirmed by `cpuid`; NEON on aarch64).
fn paths() -> Vec<Kernels> {
    let mut v = vec![Kernels::scalar()];
    let best = Kernels::for_caps(Caps {
        avx2_fma: true,
        neon: true,
        dotprod: true,
        ..Caps::compile_time()
    });
    if best.name() != "scalar" {
        v.push(best);
    }
    v
}

fn random_geom(r: &mut Rng) -> ConvGeom {
    const HW: [usize; 12] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33];
    const CH: [usize; 11] = [1, 2, 3, 4, 5, 7, 8, 16, 17, 32, 33];
    loop {
        let depthwise = r.below(3) == 0;
        let cin = r.pick(&CH);
        let cout = if depthwise { cin } else { r.pick(&CH) };
        let g = ConvGeom {
            cin,
            h: r.pick(&HW),
            w: r.pick(&HW),
            cout,
            k: r.pick(&[1, 3, 3, 5, 7]),
            stride: r.pick(&[1, 1, 2, 3]),
            groups: if depthwise { cin } else { 1 },
        };
        let macs = g.cout * conv_i8_reduction_len(&g) * g.out_h() * g.out_w();
        if g.is_supported() && macs <= MAX_MACS {
            return g;
        }
    }
}

#[test]
fn conv_i8_matches_reference_on_random_shapes() {
    let mut r = Rng(0x5eed_0001);
    let (mut dense, mut dw) = (0, 0);
    for case in 0..CASES {
        let g = random_geom(&mut r);
        let p = Problem::random(&mut r, g);
        let want = p.reference();
        assert!(want[p.out_len()..].iter().all(|&b| b == SENTINEL));
        for k in paths() {
            let got = p.run(&k, case % 67);
            assert!(
                got == want,
                "case {case} path {} {g:?} zp_in {} kpad {} mul {:?} zp_out {} lo {} hi {} lut {}: first difference at {:?}",
                k.name(),
                p.zp_in,
                p.kpad,
                &p.mul[..p.mul.len().min(2)],
                p.zp_out,
                p.lo,
                p.hi,
                p.lut.is_some(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            );
        }
        if g.groups == 1 { dense += 1 } else { dw += 1 }
    }
    println!("conv2d_i8: {dense} dense and {dw} depthwise cases byte-identical to the reference");
}

#[test]
fn conv_i8_edge_shapes() {
    let mut r = Rng(0x5eed_0002);
    // Sizes 1–10 and 2^k±1 along each axis, k = 1/3/5, strides 1 and 2, dense
    // and depthwise; tile boundaries of the dense kernel (32 pixels, 4 columns).
    let mut shapes = Vec::new();
    for &s in &[1usize, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 17, 31, 33] {
        for &k in &[1usize, 3, 5] {
            for &stride in &[1usize, 2] {
                shapes.push(ConvGeom {
                    cin: 3,
                    h: s,
                    w: 5,
                    cout: 5,
                    k,
                    stride,
                    groups: 1,
                });
                shapes.push(ConvGeom {
                    cin: 2,
                    h: 4,
                    w: s,
                    cout: 3,
                    k,
                    stride,
                    groups: 1,
                });
                shapes.push(ConvGeom {
                    cin: s,
                    h: 3,
                    w: 3,
                    cout: s,
                    k,
                    stride,
                    groups: s,
                });
                shapes.push(ConvGeom {
                    cin: 4,
                    h: s,
                    w: s,
                    cout: 4,
                    k,
                    stride,
                    groups: 4,
                });
            }
        }
        shapes.push(ConvGeom {
            cin: s,
            h: 2,
            w: 3,
            cout: 9,
            k: 3,
            stride: 1,
            groups: 1,
        });
        shapes.push(ConvGeom {
            cin: 2,
            h: 5,
            w: 5,
            cout: s,
            k: 1,
            stride: 1,
            groups: 1,
        });
    }
    // Deep reductions (K = 1152, 2304) and a wide depthwise row (> 64 columns).
    shapes.push(ConvGeom {
        cin: 128,
        h: 3,
        w: 4,
        cout: 3,
        k: 3,
        stride: 1,
        groups: 1,
    });
    shapes.push(ConvGeom {
        cin: 256,
        h: 2,
        w: 2,
        cout: 2,
        k: 3,
        stride: 2,
        groups: 1,
    });
    shapes.push(ConvGeom {
        cin: 2,
        h: 2,
        w: 150,
        cout: 2,
        k: 5,
        stride: 1,
        groups: 2,
    });
    shapes.push(ConvGeom {
        cin: 2,
        h: 3,
        w: 150,
        cout: 2,
        k: 3,
        stride: 2,
        groups: 2,
    });
    for (i, g) in shapes.iter().enumerate() {
        let p = Problem::random(&mut r, *g);
        let want = p.reference();
        for k in paths() {
            assert!(p.run(&k, i % 5) == want, "{g:?} on {}", k.name());
        }
    }
    println!("{} edge shapes byte-identical", shapes.len());
}

/// A hand-computed convolution: the padding reads `zp_in`, the bias is added
/// as given (already corrected by the quantizer), per-channel multipliers.
#[test]
fn conv_i8_hand_computed() {
    // 1 input channel 2×2, 2 output channels, 3×3, pad 1.
    let g = ConvGeom {
        cin: 1,
        h: 2,
        w: 2,
        cout: 2,
        k: 3,
        stride: 1,
        groups: 1,
    };
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
    Kernels::scalar().conv2d_i8(
        &g,
        &input,
        zp_in,
        &weight,
        16,
        &bias,
        &rq,
        &mut out,
        &mut scratch,
    );
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
    reference_conv2d_i8(&g, &input, zp_in, &weight, 16, &bias, &rq, &mut reference);
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
    let dw = ConvGeom {
        cin: 8,
        h: 9,
        w: 9,
        cout: 8,
        k: 3,
        stride: 1,
        groups: 8,
    };
    assert_eq!(conv_i8_scratch_len(&dw), 0);
    let g = ConvGeom {
        cin: 3,
        h: 2,
        w: 2,
        cout: 8,
        k: 3,
        stride: 1,
        groups: 1,
    };
    assert_eq!(conv_i8_scratch_len(&g), 4 * 32 + 63);
    let g = ConvGeom {
        cin: 256,
        h: 80,
        w: 80,
        cout: 256,
        k: 3,
        stride: 1,
        groups: 1,
    };
    assert_eq!(conv_i8_scratch_len(&g), 32 * 2304 + 63);
}

#[test]
#[should_panic(expected = "zp_in")]
fn conv_i8_rejects_a_wide_zero_point() {
    let g = ConvGeom {
        cin: 1,
        h: 1,
        w: 1,
        cout: 1,
        k: 1,
        stride: 1,
        groups: 1,
    };
    let mul = [QMul::ZERO];
    let rq = Requant {
        mul: &mul,
        zp_out: 0,
        lo: -128,
        hi: 127,
        lut: None,
    };
    let mut out = [0i8];
    let mut scratch = [0u8; 100];
    Kernels::scalar().conv2d_i8(
        &g,
        &[0],
        128,
        &[0; 16],
        16,
        &[0],
        &rq,
        &mut out,
        &mut scratch,
    );
}

#[test]
#[should_panic(expected = "kpad")]
fn conv_i8_rejects_an_unpadded_row() {
    let g = ConvGeom {
        cin: 1,
        h: 1,
        w: 1,
        cout: 1,
        k: 3,
        stride: 1,
        groups: 1,
    };
    let mul = [QMul::ZERO];
    let rq = Requant {
        mul: &mul,
        zp_out: 0,
        lo: -128,
        hi: 127,
        lut: None,
    };
    let mut out = [0i8];
    reference_conv2d_i8(&g, &[0], 0, &[0; 9], 9, &[0], &rq, &mut out);
}

/// The gemmlowp rule written out on i128, independent of the crate's code.
fn requant_written_out(acc: i32, q: QMul) -> i32 {
    let s = q.shift.clamp(-31, 31);
    let x = ((acc as i128) << s.max(0)).clamp(i32::MIN as i128, i32::MAX as i128);
    let hi = (x * q.m as i128 + (1 << 30)).div_euclid(1 << 31);
    let hi = hi.min(i32::MAX as i128);
    let d = 1i128 << (-s).max(0);
    let mag = (hi.abs() + d / 2) / d;
    (if hi < 0 { -mag } else { mag }) as i32
}

/// The weighted sum written out element by element on i128.
fn weighted_sum_written_out(qs: &[i8], p: &[SumInput], out_mul: QMul, zp_out: i32) -> i8 {
    let acc: i32 = qs
        .iter()
        .zip(p)
        .map(|(&q, p)| requant_written_out((q as i32 - p.zp) << 20, p.mul))
        .sum();
    (zp_out as i64 + requant_written_out(acc, out_mul) as i64).clamp(-128, 127) as i8
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
        ConvGeom {
            cin: 16,
            h: 13,
            w: 11,
            cout: 19,
            k: 3,
            stride: 1,
            groups: 1,
        },
        ConvGeom {
            cin: 9,
            h: 12,
            w: 12,
            cout: 8,
            k: 3,
            stride: 2,
            groups: 1,
        },
        ConvGeom {
            cin: 33,
            h: 7,
            w: 9,
            cout: 17,
            k: 1,
            stride: 1,
            groups: 1,
        },
        ConvGeom {
            cin: 5,
            h: 10,
            w: 9,
            cout: 6,
            k: 5,
            stride: 1,
            groups: 1,
        },
        ConvGeom {
            cin: 24,
            h: 15,
            w: 14,
            cout: 24,
            k: 3,
            stride: 1,
            groups: 24,
        },
        ConvGeom {
            cin: 12,
            h: 17,
            w: 16,
            cout: 12,
            k: 5,
            stride: 2,
            groups: 12,
        },
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
            weighted_sum_written_out(&qs, &params, out_mul, zp_out) as u8
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

/// int8 convolution throughput of each path on the neck's convolutions.
/// `cargo test --release -p edgedetr-kernels --test int8_exact -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn conv_i8_throughput() {
    use std::time::Instant;
    let mut r = Rng(42);
    for hw in [40usize, 80] {
        for (k, groups, cin, cout) in [(3, 1, 256, 256), (1, 1, 256, 256), (3, 256, 256, 256)] {
            let g = ConvGeom {
                cin,
                h: hw,
                w: hw,
                cout,
                k,
                stride: 1,
                groups,
            };
            let p = Problem::random(&mut r, g);
            for kern in paths() {
                let mut out = vec![0i8; p.out_len()];
                let mut scratch = vec![0u8; conv_i8_scratch_len(&g)];
                let rq = p.rq();
                let mut best = f64::INFINITY;
                for _ in 0..3 {
                    let t = Instant::now();
                    kern.conv2d_i8(
                        &g,
                        &p.input,
                        p.zp_in,
                        &p.weight,
                        p.kpad,
                        &p.bias,
                        &rq,
                        &mut out,
                        &mut scratch,
                    );
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let ops = 2.0 * (g.cout * conv_i8_reduction_len(&g) * g.out_h() * g.out_w()) as f64;
                println!(
                    "conv2d_i8 {} {k}x{k} {cin}->{cout} groups {groups} at {hw}x{hw}: {:.2} ms, {:.2} GOP/s",
                    kern.name(),
                    best * 1e3,
                    ops / best / 1e9
                );
            }
        }
    }
}
