//! Helpers shared by the kernel tests: a deterministic generator, random
//! int8 convolution problems, and written-out references of the integer rules.
#![allow(dead_code)] // each test binary uses its own subset

use edgedetr_kernels::conv_i8::conv_i8_reduction_len;
use edgedetr_kernels::quant::lut_from_fn;
use edgedetr_kernels::winograd::{WinogradF32, winograd_f43_scratch_len};
use edgedetr_kernels::{
    ConvGeom, ConvI8, Kernels, OutPlanes, QMul, Requant, SumInput, conv_i8_scratch_len,
    quantize_multiplier, reference_conv2d_i8, weight_kpad,
};

/// Natively the tests run many and large cases; under qemu fewer and smaller.
pub const NATIVE: bool = cfg!(target_arch = "x86_64");

/// A byte written past every int8 output view, which must survive.
pub const SENTINEL_I8: i8 = 0x5a;

pub use edgedetr_kernels::testing::Rng;

/// What the tests draw besides [`Rng`]'s own values.
pub trait RngExt {
    /// `n` values in [-1, 1).
    fn vec(&mut self, n: usize) -> Vec<f32>;
    /// `n` random int8s.
    fn i8s(&mut self, n: usize) -> Vec<i8>;
    /// A weight in [-127, 127].
    fn weight(&mut self) -> i8;
}

impl RngExt for Rng {
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.i8()).collect()
    }
    fn weight(&mut self) -> i8 {
        (self.below(255) as i32 - 127) as i8
    }
}

/// A deterministic exp for the LUT (the tables only need to be the same on
/// both sides of a comparison, not accurate).
pub fn poly_exp(x: f32) -> f32 {
    let mut s = 1.0f32;
    let mut t = 1.0f32;
    for i in 1..20 {
        t *= x.clamp(-8.0, 8.0) / i as f32;
        s += t;
    }
    s.max(1e-6)
}

/// One int8 convolution problem with all its operands.
pub struct Problem {
    pub g: ConvGeom,
    pub input: Vec<i8>,
    pub zp_in: i32,
    pub weight: Vec<i8>,
    pub kpad: usize,
    pub bias: Vec<i32>,
    pub mul: Vec<QMul>,
    pub zp_out: i32,
    pub lo: i8,
    pub hi: i8,
    pub lut: Option<[i8; 256]>,
}

impl Problem {
    /// Random operands for `g`, with the edge cases mixed in: extreme zero
    /// points and biases (wrapping accumulators), zero and large multipliers,
    /// clamps, padded weight rows and lookup tables.
    pub fn random(r: &mut Rng, g: ConvGeom) -> Problem {
        let kk = conv_i8_reduction_len(&g);
        let kpad = match r.below(4) {
            0 => weight_kpad(kk) + 16,
            1 => weight_kpad(kk).div_ceil(64) * 64,
            _ => weight_kpad(kk),
        };
        let mut weight = vec![0i8; g.cout * kpad];
        let fill = r.below(8);
        for row in weight.chunks_exact_mut(kpad) {
            row[..kk].iter_mut().for_each(|w| {
                *w = match fill {
                    0 => 127,
                    1 => -127,
                    _ => r.weight(),
                }
            });
        }
        let zp_in = match r.below(4) {
            0 => -128,
            1 => 127,
            _ => r.range(-128, 127),
        };
        let input = match r.below(8) {
            0 => vec![-128; g.cin * g.h * g.w],
            1 => vec![127; g.cin * g.h * g.w],
            _ => r.i8s(g.cin * g.h * g.w),
        };
        let bias = (0..g.cout)
            .map(|_| match r.below(12) {
                0 => i32::MAX - r.range(0, 1000), // wraps with positive sums
                1 => i32::MIN + r.range(0, 1000),
                _ => r.range(-(1 << 20), 1 << 20),
            })
            .collect();
        // Scale so that typical accumulators (≈ 2^7·2^7·√K) land in int8.
        let spread = ((kk as f64).sqrt() * 128.0 * 128.0 / 64.0).max(1.0);
        let nmul = if r.coin() { 1 } else { g.cout };
        let mul = (0..nmul)
            .map(|_| match r.below(20) {
                0 => QMul::ZERO,
                1 => quantize_multiplier(1.5 + r.below(100) as f64 / 10.0),
                // The extremes of the right-shifting multipliers: the
                // largest mantissa, and shifts down to −31.
                2 => QMul {
                    m: i32::MAX - r.range(0, 3),
                    shift: -r.range(0, 2),
                },
                3 => QMul {
                    m: r.range(1 << 30, i32::MAX),
                    shift: -r.range(25, 31),
                },
                _ => quantize_multiplier((0.25 + r.below(1000) as f64 / 500.0) / spread),
            })
            .collect();
        let zp_out = match r.below(8) {
            0 => -128,
            1 => 127,
            2 => r.range(-300, 300),
            // Far outside int8 (any i32 is allowed; the sum saturates).
            3 => r.range(-(1 << 25), 1 << 25),
            4 => {
                if r.coin() {
                    i32::MAX
                } else {
                    i32::MIN
                }
            }
            _ => r.range(-128, 127),
        };
        let (lo, hi) = match r.below(4) {
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
                |x| x / (1.0 + poly_exp(-x)),
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

    pub fn conv(&self) -> ConvI8<'_> {
        ConvI8 {
            g: self.g,
            input: &self.input,
            zp_in: self.zp_in,
            weight: &self.weight,
            kpad: self.kpad,
            bias: &self.bias,
            rq: Requant {
                mul: &self.mul,
                zp_out: self.zp_out,
                lo: self.lo,
                hi: self.hi,
                lut: self.lut.as_ref(),
            },
        }
    }

    pub fn out_len(&self) -> usize {
        self.g.cout * self.g.out_h() * self.g.out_w()
    }

    /// The reference's output, followed by three sentinel bytes.
    pub fn reference(&self) -> Vec<i8> {
        let mut out = vec![SENTINEL_I8; self.out_len() + 3];
        reference_conv2d_i8(&self.conv(), &mut out);
        out
    }

    /// The dispatched kernel's output (three sentinel bytes after it), with
    /// its scratch at byte offset `scratch_off`.
    pub fn run(&self, k: &Kernels, scratch_off: usize) -> Vec<i8> {
        let mut out = vec![SENTINEL_I8; self.out_len() + 3];
        let mut scratch = vec![0xa5u8; conv_i8_scratch_len(&self.g) + scratch_off];
        k.conv2d_i8(&self.conv(), &mut out, &mut scratch[scratch_off..]);
        out
    }

    /// A dense problem run in parts: the output pixels cut at `cuts`
    /// (ascending, inside `0..out_h·out_w`), each part by
    /// [`Kernels::conv_i8_planes`] with a fresh scratch, as threads sharing
    /// the convolution by pixels run it.
    pub fn run_in_columns(&self, k: &Kernels, cuts: &[usize]) -> Vec<i8> {
        let n = self.g.out_h() * self.g.out_w();
        let mut out = vec![SENTINEL_I8; self.out_len() + 3];
        let mut planes = OutPlanes::new(&mut out[..self.out_len()], n);
        let mut start = 0;
        for &end in cuts.iter().chain([&n]) {
            let mut scratch = vec![0x5au8; conv_i8_scratch_len(&self.g)];
            k.conv_i8_planes(&self.conv(), &mut planes.narrow(start..end), &mut scratch);
            start = end;
        }
        out
    }
}

/// The gemmlowp rule written out on i128, independent of the crate's code.
pub fn requant_written_out(acc: i32, q: QMul) -> i32 {
    let s = q.shift.clamp(-31, 31);
    let x = ((acc as i128) << s.max(0)).clamp(i32::MIN as i128, i32::MAX as i128);
    let hi = (x * q.m as i128 + (1 << 30)).div_euclid(1 << 31);
    let hi = hi.min(i32::MAX as i128);
    let d = 1i128 << (-s).max(0);
    let mag = (hi.abs() + d / 2) / d;
    (if hi < 0 { -mag } else { mag }) as i32
}

/// The int8 weighted sum of one element written out on i128.
pub fn weighted_sum_written_out(
    qs: &[i8],
    p: &[SumInput],
    out_mul: QMul,
    zp_out: i32,
    lo: i8,
    hi: i8,
) -> i8 {
    let acc = qs.iter().zip(p).fold(0i32, |a, (&q, p)| {
        a.wrapping_add(requant_written_out((q as i32 - p.zp) << 20, p.mul))
    });
    (zp_out as i64 + requant_written_out(acc, out_mul) as i64).clamp(lo as i64, hi as i64) as i8
}

/// Up to three random cuts (sorted) of an `h × w` output into whole rows of
/// 4×4 Winograd tiles (empty parts included).
pub fn tile_row_cuts(r: &mut Rng, h: usize, w: usize) -> Vec<usize> {
    let rows = h.div_ceil(4);
    let mut cuts: Vec<usize> = (0..r.below(4))
        .map(|_| (r.below(rows + 1) * 4 * w).min(h * w))
        .collect();
    cuts.sort_unstable();
    cuts
}

/// [`Kernels::winograd_f43_f32_planes`] of `a` into `out` (its channels'
/// planes), one part per tile-row range between `cuts`, each with its own
/// scratch (what threads sharing the convolution do).
pub fn winograd_in_rows(k: &Kernels, a: &WinogradF32<'_>, out: &mut [f32], cuts: &[usize]) {
    let hw = a.g.h * a.g.w;
    let mut planes = OutPlanes::new(out, hw);
    let mut start = 0;
    for &end in cuts.iter().chain([&hw]) {
        k.winograd_f43_f32_planes(
            a,
            &mut planes.narrow(start..end),
            &mut vec![f32::NAN; winograd_f43_scratch_len(&a.g)],
        );
        start = end;
    }
}
