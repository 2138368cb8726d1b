//! Every slot of every kernel path against the specification, generated from
//! the inventory: one test per `(slot, path)` of [`Slot::ALL`] × the paths of
//! every architecture ([`ALL_PATH_NAMES`]).
//!
//! A path not compiled for this architecture, or compiled but not run by this
//! CPU (e.g. `neon_dotprod` under `QEMU_CPU=cortex-a72`), is reported as
//! **ignored**, never as passed; run the other architectures under qemu (CI
//! does). `cargo test -p edgedetr-kernels --test equivalence -- --list`
//! shows the inventory; a filter such as `conv_i8` or `avx2_fma` selects rows.
//!
//! # Exactness policy
//! - **Integers** (int8 convolutions, sums, requantisation, conversions):
//!   byte-identical to the written-out reference on every path and
//!   architecture.
//! - **Element-wise floats** (sums, copies, gathers, f16 expansion, image
//!   conversion): bit-identical to the scalar path (the same IEEE operations in
//!   the same order; NaN matches NaN).
//! - **Reductions in f32** (GEMM, convolutions): each output is compared with
//!   the exact value `y` of the pre-activation sum (f64) and its magnitude
//!   `S = Σ|a·b| + |bias| + |C_old|`; with `ε = 2⁻²³` and `d` the depth,
//!   `|got − act(y)| ≤ 1.2·((d + 2)·ε·S + ε·|y|) + 8·ε·|act(y)| + 2⁻¹²⁶`
//!   (the classic bound of f32 summation in any order, `(d+1)·u·S`, with a
//!   factor 2 of margin, times 1.2 for the steepest activation slope; the
//!   second term covers SIMD activations such as SiLU's polynomial `exp`,
//!   within 4 ulp).
//! - **Winograd convolutions**: within twice the bound of
//!   `edgedetr_kernels::winograd`'s docs of the scalar path's result (each is
//!   within the bound of the exact value; `tests/winograd.rs` checks that
//!   against f64), times 1.2 for the activation; any cut into tile rows gives
//!   the whole run's bits.
//! - **Layer norm**: bit-identical to the scalar path (f64 moments, the same
//!   operations in the same order).
//! - **Softmax and sampling** (softmaxes with a polynomial `exp`, deformable
//!   sampling with FMA): within `2⁻¹⁸·(|want| + 1)` of the scalar path (which
//!   is the specification and is checked by known answers in its unit tests).

mod common;

use common::{
    NATIVE, Problem, Rng, RngExt, SENTINEL_I8, tile_row_cuts, weighted_sum_written_out,
    winograd_in_rows,
};
use edgedetr_kernels::conv_i8::conv_i8_reduction_len;
use edgedetr_kernels::ops::decoder::{DeformGeom, FinalTopK};
use edgedetr_kernels::ops::norm::LayerNorm;
use edgedetr_kernels::table::{ALL_PATH_NAMES, PATHS};
use edgedetr_kernels::winograd::{WinogradF32, winograd_f43_weights, winograd_f43_weights_len};
use edgedetr_kernels::{
    Act, Caps, ConvF32, ConvGeom, Epilogue, Gemm, Kernels, LinearBf16, MatRef, OutPlanes, QMul,
    Resize, Slot, SumI8, SumInput, bf16_bits, bf16_value, linear_bf16_scratch_len,
    sgemm_scratch_len, weighted_sum_params,
};
use libtest_mimic::{Arguments, Failed, Trial};

/// Random cases per test.
const CASES: usize = if NATIVE { 1000 } else { 150 };
/// Largest multiply-add count of one float case.
const MAX_MACS: usize = if NATIVE { 1 << 22 } else { 1 << 20 };
/// Random int8 convolution cases.
const I8_CASES: usize = if NATIVE { 600 } else { 80 };
/// Largest multiply-add count of one int8 case.
const I8_MAX_MACS: usize = if NATIVE { 1 << 21 } else { 1 << 17 };
/// A value written outside every f32 output view, which must survive.
const SENTINEL: f32 = 7777.0;

/// Edge sizes: 1–10 and around powers of two, `KC = 256` and `NC = 128`.
const SIZES: [usize; 19] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 33, 63, 65, 255, 257,
];
/// Lengths of element-wise cases: tails of every vector width, and a long one.
const LENS: [usize; 14] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 1031];
const HW: [usize; 11] = [1, 2, 3, 5, 7, 8, 9, 16, 17, 20, 40];
const CHANNELS: [usize; 10] = [1, 2, 3, 5, 7, 8, 16, 17, 24, 33];
const ACTS: [Act; 6] = [
    Act::None,
    Act::Relu,
    Act::Relu6,
    Act::Silu,
    Act::Gelu,
    Act::Sigmoid,
];

fn main() {
    let args = Arguments::from_args();
    let caps = Caps::detect();
    let mut trials = Vec::new();
    for &name in ALL_PATH_NAMES {
        let compiled = PATHS.iter().find(|p| p.name == name);
        for &slot in Slot::ALL {
            let test_name = format!("{}::{name}", slot.name());
            let trial = Trial::test(test_name, move || {
                let k = Kernels::for_path(name, caps).ok_or_else(|| {
                    Failed::from(format!(
                        "path {name} is not available on this CPU or architecture"
                    ))
                })?;
                let origin = k.path().origin(slot).name;
                check(slot, &k)
                    .map_err(|e| Failed::from(format!("{name} (slot from {origin}): {e}")))
            });
            let runnable = compiled.is_some_and(|p| p.available(caps));
            trials.push(trial.with_ignored_flag(!runnable));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Runs the checker of `slot` on path `k`; a seed per slot, so every path
/// sees the same cases.
fn check(slot: Slot, k: &Kernels) -> Result<(), String> {
    let mut rng = Rng(0x5EED_0000 + Slot::ALL.iter().position(|&s| s == slot).unwrap() as u64);
    let r = &mut rng;
    match slot {
        Slot::Sgemm => sgemm(k, r),
        Slot::LinearBf16 => linear_bf16(k, r),
        Slot::WinogradF32 => winograd_f32(k, r),
        Slot::ConvF32 => conv_f32(k, r, false),
        Slot::DwConvF32 => conv_f32(k, r, true),
        Slot::ConvI8 => conv_i8(k, r, false),
        Slot::DwConvI8 => conv_i8(k, r, true),
        Slot::WeightedSumI8 => weighted_sum_i8(k, r),
        Slot::Quantize => quantize(k, r),
        Slot::Dequantize => dequantize(k, r),
        Slot::Upsample2xI8 => upsample_i8(k, r),
        Slot::U8ToI8 => u8_to_i8(k),
        Slot::WeightedSumF32 => weighted_sum_f32(k, r),
        Slot::AddF32 => add_f32(k, r),
        Slot::ActF32 => act_f32(k),
        Slot::Upsample2xF32 => upsample_f32(k, r),
        Slot::F16ToF32 => f16_to_f32(k),
        Slot::LayerNorm => layer_norm(k, r),
        Slot::SoftmaxCols => softmax_cols(k, r),
        Slot::ConcatTokens => concat_tokens(k, r),
        Slot::MaskTokens => mask_tokens(k, r),
        Slot::TopKTokens => topk_tokens(k, r),
        Slot::GatherTokens => gather_tokens(k, r),
        Slot::SoftmaxGroups => softmax_groups(k, r),
        Slot::DeformLocations => deform_locations(k, r),
        Slot::DeformSample => deform_sample(k, r),
        Slot::RefineBoxes => refine_boxes(k, r),
        Slot::FinalTopK => final_topk(k, r),
        Slot::ResizeRgb8 => resize_rgb8(k, r),
        Slot::HwcToChwU8 => hwc_to_chw_u8(k, r),
        Slot::HwcToChwF32 => hwc_to_chw_f32(k, r),
        Slot::IdctIslowU8 => idct_islow_u8(k, r),
        Slot::Idct4x4U8 => idct_4x4_u8(k, r),
        Slot::UpsampleH2v1FancyU8 => upsample_h2v1_fancy_u8(k, r),
        Slot::UpsampleH2v2FancyU8 => upsample_h2v2_fancy_u8(k, r),
        Slot::YccToRgbU8 => ycc_to_rgb_u8(k, r),
    }
}

// ---------------------------------------------------------------- helpers

/// Bitwise equality, NaN equal to NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// `got` and `want` are bitwise equal (NaN matching NaN).
fn same_f32(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} values, want {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(&a, &b)| !same(a, b)) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: [{i}] = {}, want {}", got[i], want[i])),
    }
}

/// A comparison of two outputs (`same_f32` or `close_f32`).
type Compare = fn(&str, &[f32], &[f32]) -> Result<(), String>;

/// Compares `run` on the candidate path with `run` on the scalar path.
fn vs_scalar(
    kern: &Kernels,
    what: &str,
    cmp: Compare,
    run: impl Fn(&Kernels) -> Vec<f32>,
) -> Result<(), String> {
    cmp(what, &run(kern), &run(&Kernels::scalar()))
}

/// `got` within `2⁻¹⁸·(|want| + 1)` of `want` (NaN matching NaN).
fn close_f32(what: &str, got: &[f32], want: &[f32]) -> Result<(), String> {
    let tol = |w: f32| (w.abs() + 1.0) / (1 << 18) as f32;
    match got
        .iter()
        .zip(want)
        .position(|(&a, &b)| !(same(a, b) || (a - b).abs() <= tol(b)))
    {
        None if got.len() == want.len() => Ok(()),
        None => Err(format!("{what}: length {} vs {}", got.len(), want.len())),
        Some(i) => Err(format!("{what}: [{i}] = {}, want {}", got[i], want[i])),
    }
}

/// Whether `got` agrees with the exact pre-activation `pre` (of magnitude
/// `scale`, depth `depth`) after `act`, by the bound of the module docs.
fn agree(got: f32, pre: f64, scale: f64, depth: usize, act: Act) -> bool {
    let eps = f32::EPSILON as f64;
    let want = act.apply(pre as f32) as f64;
    let tol = 1.2 * ((depth as f64 + 2.0) * eps * scale + eps * pre.abs())
        + 8.0 * eps * want.abs()
        + f32::MIN_POSITIVE as f64;
    (got as f64 - want).abs() <= tol
}

/// Whether a SIMD activation `got` matches the scalar `want`: exact, but
/// SiLU within 4 ulp (its vector `exp` is a polynomial).
fn act_agrees(act: Act, got: f32, want: f32) -> bool {
    if got == want {
        true
    } else if want.is_nan() {
        got.is_nan()
    } else if act == Act::Silu {
        (got - want).abs() <= 4.0 * f32::EPSILON * want.abs() + 1e-36
    } else {
        got == want
    }
}

/// Values that exercise the activations' edges, NaN included.
fn activation_inputs() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) * 0.37).collect();
    xs.extend([
        -100.0, -88.5, -87.0, -20.0, -1e-30, 0.0, 6.0, 6.5, 20.0, 88.5, 100.0,
    ]);
    xs.extend([
        f32::NAN,
        -0.0,
        1e-30,
        3.0,
        5.999,
        f32::INFINITY,
        -f32::INFINITY,
    ]);
    xs
}

/// A random size from `SIZES` not above `budget` (at least 1).
fn size_within(rng: &mut Rng, budget: usize) -> usize {
    let fitting: Vec<usize> = SIZES.iter().copied().filter(|&s| s <= budget).collect();
    if fitting.is_empty() {
        1
    } else {
        rng.pick(&fitting)
    }
}

// ---------------------------------------------------------------- sgemm

/// A random `rows × cols` matrix in a random layout: row-major, row-major
/// with padded rows, column-major (transposed), or every other column. The
/// buffer ends exactly at the last element (an over-read by slices panics).
fn random_mat(rng: &mut Rng, rows: usize, cols: usize) -> (Vec<f32>, usize, usize) {
    let (rs, cs) = match rng.below(4) {
        0 => (cols, 1),
        1 => (cols + 1 + rng.below(4), 1),
        2 => (1, rows + rng.below(3)),
        _ => (2 * cols + rng.below(3), 2),
    };
    let len = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    };
    (rng.vec(len), rs, cs)
}

/// Edge shapes (every size of `SIZES` in every role), then `CASES` random ones.
fn gemm_shapes(rng: &mut Rng) -> Vec<(usize, usize, usize)> {
    let mut shapes = Vec::new();
    for &s in &SIZES {
        for role in 0..3 {
            let x = size_within(rng, MAX_MACS / s);
            let y = size_within(rng, MAX_MACS / (s * x));
            shapes.push(match role {
                0 => (s, x, y),
                1 => (x, s, y),
                _ => (x, y, s),
            });
        }
    }
    for _ in 0..CASES {
        let m = rng.pick(&SIZES);
        let n = size_within(rng, MAX_MACS / m);
        let k = size_within(rng, MAX_MACS / (m * n));
        shapes.push((m, n, k));
    }
    shapes
}

fn sgemm(kern: &Kernels, rng: &mut Rng) -> Result<(), String> {
    for (m, n, k) in gemm_shapes(rng) {
        let a = random_mat(rng, m, k);
        let b = random_mat(rng, k, n);
        let bias = rng.coin().then(|| rng.vec(m));
        let accumulate = rng.coin();
        let act = rng.pick(&ACTS);
        let rsc = n + if rng.coin() { 0 } else { 1 + rng.below(5) };
        let g = Gemm {
            m,
            n,
            k,
            a: MatRef {
                data: &a.0,
                rs: a.1,
                cs: a.2,
            },
            b: MatRef {
                data: &b.0,
                rs: b.1,
                cs: b.2,
            },
            rsc,
            epi: Epilogue {
                bias: bias.as_deref(),
                accumulate,
                act,
            },
        };
        let mut c = vec![SENTINEL; (m - 1) * rsc + n];
        for i in 0..m {
            for j in 0..n {
                // Without `accumulate` the old value must not matter.
                c[i * rsc + j] = if accumulate { rng.f32() } else { f32::NAN };
            }
        }
        let old = c.clone();
        // NaN scratch: reading anything not packed poisons the result.
        let mut scratch = vec![f32::NAN; sgemm_scratch_len(k)];
        kern.sgemm(&g, &mut c, &mut scratch);
        let what = || {
            format!(
                "m {m} n {n} k {k} A {:?} B {:?} rsc {rsc} bias {} acc {accumulate} {act:?}",
                (a.1, a.2),
                (b.1, b.2),
                bias.is_some()
            )
        };
        for i in 0..m {
            for j in 0..n {
                let (mut pre, mut scale) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let t = g.a.at(i, p) as f64 * g.b.at(p, j) as f64;
                    pre += t;
                    scale += t.abs();
                }
                if let Some(bias) = &bias {
                    pre += bias[i] as f64;
                    scale += bias[i].abs() as f64;
                }
                if accumulate {
                    pre += old[i * rsc + j] as f64;
                    scale += old[i * rsc + j].abs() as f64;
                }
                let got = c[i * rsc + j];
                if !agree(got, pre, scale, k, act) {
                    return Err(format!("{}: C[{i}][{j}] = {got}, exact {pre}", what()));
                }
            }
        }
        for (idx, (&now, &was)) in c.iter().zip(&old).enumerate() {
            if idx % rsc >= n && now.to_bits() != was.to_bits() {
                return Err(format!("{}: padding C[{idx}] written", what()));
            }
        }
    }
    sgemm_degenerate(kern)?;
    sgemm_activations(kern)
}

/// The bfloat16 linear layer against the exact sum of its integer weights
/// times its bfloat16-rounded inputs (f64), within the f32 GEMM's bound: the
/// random shapes, and shapes in 32-row, 32-deep blocks with column tails
/// (the AMX tiles').
fn linear_bf16(kern: &Kernels, rng: &mut Rng) -> Result<(), String> {
    let mut shapes = gemm_shapes(rng);
    shapes.extend([
        (32, 1, 32),
        (32, 300, 256),
        (64, 33, 64),
        (256, 17, 32),
        (96, 40, 1024),
        (33, 31, 64),
        (64, 16, 48),
    ]);
    for (case, (m, n, k)) in shapes.into_iter().enumerate() {
        let w: Vec<u16> = (0..m * k)
            .map(|_| bf16_bits(rng.range(-128, 127) as f32))
            .collect();
        let scale: Vec<f32> = (0..m).map(|_| 0.001 + rng.f32().abs() / 64.0).collect();
        let bias = rng.vec(m);
        // Inputs of several magnitudes, so that rounding matters.
        let x: Vec<f32> = (0..k * n)
            .map(|i| rng.f32() * [1.0, 37.0, 0.01][i % 3])
            .collect();
        let act = ACTS[case % ACTS.len()];
        let a = LinearBf16 {
            m,
            n,
            k,
            weight: &w,
            scale: &scale,
            bias: &bias,
            input: &x,
            act,
        };
        let mut out = vec![SENTINEL; m * n + 3];
        // Poisoned scratch: anything read before it is packed shows.
        let mut scratch = vec![0xffu8; linear_bf16_scratch_len(k) + (case % 3)];
        kern.linear_bf16(&a, &mut out, &mut scratch);
        for r in 0..m {
            for j in 0..n {
                let (mut pre, mut mag) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let t = bf16_value(w[r * k + p]) as f64
                        * bf16_value(bf16_bits(x[p * n + j])) as f64;
                    pre += t;
                    mag += t.abs();
                }
                let s = scale[r] as f64;
                let (pre, mag) = (s * pre + bias[r] as f64, s * mag + bias[r].abs() as f64);
                let got = out[r * n + j];
                if !agree(got, pre, mag, k, act) {
                    return Err(format!(
                        "m {m} n {n} k {k} {act:?}: y[{r}][{j}] = {got}, exact {pre}"
                    ));
                }
            }
        }
        if out[m * n..].iter().any(|&v| v != SENTINEL) {
            return Err(format!("m {m} n {n} k {k}: wrote past the output"));
        }
        // Shared by columns (random cuts, or every 32): the same bits.
        let mut cuts: Vec<usize> = if case % 2 == 0 {
            (32..n).step_by(32).collect()
        } else {
            (0..rng.below(4)).map(|_| rng.below(n + 1)).collect()
        };
        cuts.sort_unstable();
        let mut parts = vec![SENTINEL; m * n];
        let mut planes = OutPlanes::new(&mut parts, n);
        let mut start = 0;
        for &end in cuts.iter().chain([&n]) {
            scratch.fill(0xff);
            kern.linear_bf16_planes(&a, &mut planes.narrow(start..end), &mut scratch);
            start = end;
        }
        if parts
            .iter()
            .zip(&out)
            .any(|(p, o)| p.to_bits() != o.to_bits())
        {
            return Err(format!(
                "m {m} n {n} k {k}: in columns cut at {cuts:?} differs from whole"
            ));
        }
    }
    Ok(())
}

/// Empty products: k == 0 leaves only the epilogue; m or n == 0 touches nothing.
fn sgemm_degenerate(kern: &Kernels) -> Result<(), String> {
    let bias = [0.5f32, -2.0];
    let mut c = [1.0f32, 2.0, SENTINEL, 3.0, 4.0];
    let none = MatRef {
        data: &[],
        rs: 0,
        cs: 0,
    };
    let epi = Epilogue {
        bias: Some(&bias),
        accumulate: true,
        act: Act::Relu,
    };
    let g = |m, n, k, a, b| Gemm {
        m,
        n,
        k,
        a,
        b,
        rsc: 3,
        epi,
    };
    kern.sgemm(&g(2, 2, 0, none, none), &mut c, &mut []);
    if c != [1.5, 2.5, SENTINEL, 1.0, 2.0] {
        return Err(format!("k = 0: {c:?}"));
    }
    let mut scratch = vec![0.0; sgemm_scratch_len(4)];
    let am = MatRef {
        data: &[1.0; 4],
        rs: 4,
        cs: 1,
    };
    let bm = MatRef {
        data: &[1.0; 8],
        rs: 2,
        cs: 1,
    };
    kern.sgemm(&g(0, 2, 4, am, bm), &mut c, &mut scratch);
    kern.sgemm(&g(1, 0, 4, am, none), &mut c, &mut scratch);
    if c != [1.5, 2.5, SENTINEL, 1.0, 2.0] {
        return Err(format!("m or n = 0 wrote: {c:?}"));
    }
    Ok(())
}

/// The epilogue activations against the scalar ones, through a 1-deep GEMM
/// (full tiles and an edge tile on every path).
fn sgemm_activations(kern: &Kernels) -> Result<(), String> {
    let xs = activation_inputs();
    let (n, m) = (xs.len(), 9);
    let ones = vec![1.0f32; m];
    for act in ACTS {
        let g = Gemm {
            m,
            n,
            k: 1,
            a: MatRef {
                data: &ones,
                rs: 1,
                cs: 1,
            },
            b: MatRef {
                data: &xs,
                rs: n,
                cs: 1,
            },
            rsc: n,
            epi: Epilogue {
                bias: None,
                accumulate: false,
                act,
            },
        };
        let mut c = vec![0.0f32; m * n];
        kern.sgemm(&g, &mut c, &mut vec![0.0f32; sgemm_scratch_len(1)]);
        for (idx, &got) in c.iter().enumerate() {
            let x = xs[idx % n];
            if !act_agrees(act, got, act.apply(x)) {
                return Err(format!("{act:?}({x}) = {got}, want {}", act.apply(x)));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- f32 convolutions

/// A random supported f32 geometry with the given kernel, stride and kind.
fn random_geom_f32(rng: &mut Rng, k: usize, stride: usize, dw: bool, h: usize) -> ConvGeom {
    loop {
        // A depthwise convolution has at least 2 channels (one is dense).
        let cin = rng.pick(&CHANNELS[usize::from(dw)..]);
        let g = ConvGeom {
            cin,
            h,
            w: rng.pick(&HW),
            cout: if dw { cin } else { rng.pick(&CHANNELS) },
            k,
            stride,
            groups: if dw { cin } else { 1 },
        };
        if g.weight_len() * g.out_h() * g.out_w() <= MAX_MACS {
            return g;
        }
    }
}

/// Winograd F(4×4, 3×3) of the path against the scalar path's, on edge
/// sizes, several blocks of tiles and channels, every activation, and cut into
/// random tile rows.
fn winograd_f32(kern: &Kernels, rng: &mut Rng) -> Result<(), String> {
    let scalar = Kernels::scalar();
    let mut geoms = Vec::new();
    for &h in &HW {
        let (cin, cout, w) = (rng.pick(&CHANNELS), rng.pick(&CHANNELS), rng.pick(&HW));
        geoms.push(ConvGeom::new(cin, h, w, cout, 3, 1, 1));
    }
    for (cin, h, w, cout) in [(33, 40, 24, 70), (17, 26, 9, 65), (64, 20, 20, 64)] {
        geoms.push(ConvGeom::new(cin, h, w, cout, 3, 1, 1));
    }
    let eps = f32::EPSILON as f64;
    for g in geoms {
        let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
        let act = rng.pick(&ACTS);
        let input = rng.vec(cin * h * w);
        let weight = rng.vec(g.weight_len());
        let bias = rng.vec(cout);
        let mut u = vec![f32::NAN; winograd_f43_weights_len(&g)];
        winograd_f43_weights(&g, &weight, &mut u);
        let a = WinogradF32 {
            g,
            input: &input,
            u: &u,
            bias: &bias,
            act,
            co_start: 0,
            co_end: cout,
        };
        let n = cout * h * w;
        let run = |k: &Kernels, cuts: &[usize]| {
            let mut out = vec![f32::NAN; n + 3];
            out[n..].fill(SENTINEL);
            winograd_in_rows(k, &a, &mut out[..n], cuts);
            out
        };
        let want = run(&scalar, &[]);
        let got = run(kern, &[]);
        if got[n..].iter().any(|&x| x != SENTINEL) {
            return Err(format!("{g:?}: wrote past the output"));
        }
        let cuts = tile_row_cuts(rng, h, w);
        if run(kern, &cuts)
            .iter()
            .zip(&got)
            .any(|(p, o)| p.to_bits() != o.to_bits())
        {
            return Err(format!(
                "{g:?}: cut into rows at {cuts:?} differs from whole"
            ));
        }
        // The docs' bound: (cin + 16)·ε·100·¼·361·Σ_ci max|d_ci|·max|g_co,ci| + 8·ε·|bias|.
        let dmax: Vec<f64> = input
            .chunks(h * w)
            .map(|p| p.iter().fold(0f64, |m, &x| m.max(x.abs() as f64)))
            .collect();
        for co in 0..cout {
            let sum: f64 = (0..cin)
                .map(|ci| {
                    let k9 = &weight[(co * cin + ci) * 9..][..9];
                    dmax[ci] * k9.iter().fold(0f64, |m, &x| m.max(x.abs() as f64))
                })
                .sum();
            let bound = (cin as f64 + 16.0) * eps * 100.0 * 0.25 * 361.0 * sum
                + 8.0 * eps * bias[co].abs() as f64;
            for i in co * h * w..(co + 1) * h * w {
                let (x, y) = (got[i] as f64, want[i] as f64);
                let tol = 1.2 * 2.0 * bound + 8.0 * eps * y.abs() + f32::MIN_POSITIVE as f64;
                // NaN fails too.
                let ok = (x - y).abs() <= tol;
                if !ok {
                    return Err(format!(
                        "{g:?} {act:?}: out[{i}] = {x}, scalar path {y} (tol {tol:.3e})"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn conv_f32(kern: &Kernels, rng: &mut Rng, depthwise: bool) -> Result<(), String> {
    let mut geoms = Vec::new();
    for k in [1, 3, 5] {
        for stride in [1, 2] {
            for &h in &HW {
                geoms.push(random_geom_f32(rng, k, stride, depthwise, h));
            }
        }
    }
    for _ in 0..CASES / 4 {
        let (k, stride, h) = (rng.pick(&[1, 3, 5]), rng.pick(&[1, 2, 3]), rng.pick(&HW));
        geoms.push(random_geom_f32(rng, k, stride, depthwise, h));
    }
    for g in geoms {
        let act = rng.pick(&ACTS);
        let (oh, ow, pad) = (g.out_h(), g.out_w(), g.pad());
        let input = rng.vec(g.cin * g.h * g.w);
        let weight = rng.vec(g.weight_len());
        let bias = rng.vec(g.cout);
        let out_len = g.cout * oh * ow;
        let mut out = vec![f32::NAN; out_len + 5];
        out[out_len..].fill(SENTINEL);
        let a = ConvF32 {
            g,
            input: &input,
            weight: &weight,
            bias: &bias,
            act,
        };
        if depthwise {
            kern.dwconv_f32(&a, &mut out);
        } else {
            kern.conv_f32(&a, &mut out, &mut vec![f32::NAN; g.scratch_len()]);
        }
        let cpg = g.cin / g.groups;
        let opg = g.cout / g.groups;
        for co in 0..g.cout {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut pre, mut scale) = (bias[co] as f64, bias[co].abs() as f64);
                    for cig in 0..cpg {
                        let ci = (co / opg) * cpg + cig;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.stride + ky) as isize - pad as isize;
                                let ix = (ox * g.stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let x = input[(ci * g.h + iy as usize) * g.w + ix as usize];
                                let wv = weight[((co * cpg + cig) * g.k + ky) * g.k + kx];
                                let t = x as f64 * wv as f64;
                                pre += t;
                                scale += t.abs();
                            }
                        }
                    }
                    let got = out[(co * oh + oy) * ow + ox];
                    if !agree(got, pre, scale, cpg * g.k * g.k, act) {
                        return Err(format!(
                            "{g:?} {act:?}: out[{co}][{oy}][{ox}] = {got}, exact {pre}"
                        ));
                    }
                }
            }
        }
        if out[out_len..].iter().any(|&v| v != SENTINEL) {
            return Err(format!("{g:?}: wrote past the output"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- int8 convolutions

/// A random supported int8 geometry of the given kind.
fn random_geom_i8(r: &mut Rng, depthwise: bool) -> ConvGeom {
    const HW8: [usize; 12] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33];
    const CH8: [usize; 11] = [1, 2, 3, 4, 5, 7, 8, 16, 17, 32, 33];
    loop {
        let cin = r.pick(&CH8[usize::from(depthwise)..]);
        let g = ConvGeom {
            cin,
            h: r.pick(&HW8),
            w: r.pick(&HW8),
            cout: if depthwise { cin } else { r.pick(&CH8) },
            k: r.pick(&[1, 3, 3, 5, 7]),
            stride: r.pick(&[1, 1, 2, 3]),
            groups: if depthwise { cin } else { 1 },
        };
        let macs = g.cout * conv_i8_reduction_len(&g) * g.out_h() * g.out_w();
        if g.is_supported() && macs <= I8_MAX_MACS {
            return g;
        }
    }
}

/// Sizes 1–10 and 2^k±1 along each axis, k = 1/3/5, strides 1 and 2; tile
/// boundaries of the dense kernel (32 pixels, 4 columns); deep reductions
/// (K = 1152, 2304) and wide depthwise rows (> 64 columns).
fn edge_geoms_i8(depthwise: bool) -> Vec<ConvGeom> {
    let geom = ConvGeom::new;
    let mut v = Vec::new();
    for &s in &[1usize, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 17, 31, 33] {
        for &k in &[1usize, 3, 5] {
            for &stride in &[1usize, 2] {
                if depthwise {
                    if s > 1 {
                        v.push(geom(s, 3, 3, s, k, stride, s));
                    }
                    v.push(geom(4, s, s, 4, k, stride, 4));
                } else {
                    v.push(geom(3, s, 5, 5, k, stride, 1));
                    v.push(geom(2, 4, s, 3, k, stride, 1));
                }
            }
        }
        if !depthwise {
            v.push(geom(s, 2, 3, 9, 3, 1, 1));
            v.push(geom(2, 5, 5, s, 1, 1, 1));
        }
    }
    if depthwise {
        v.push(geom(2, 2, 150, 2, 5, 1, 2));
        v.push(geom(2, 3, 150, 2, 3, 2, 2));
    } else {
        v.push(geom(128, 3, 4, 3, 3, 1, 1));
        v.push(geom(256, 2, 2, 2, 3, 2, 1));
        // Stride-1 kernels over 32-pixel tiles and 12-channel blocks: tails
        // of both, taps past the tile's first row, every kernel side.
        v.push(geom(16, 9, 13, 25, 3, 1, 1));
        v.push(geom(5, 6, 7, 13, 5, 1, 1));
        v.push(geom(33, 8, 5, 12, 1, 1, 1));
        v.push(geom(3, 11, 3, 14, 7, 1, 1));
        v.push(geom(64, 5, 7, 37, 3, 1, 1));
        v.push(geom(7, 4, 8, 24, 3, 1, 1));
        // Stride 2 over rows of at least 8 outputs: tiles spanning up to 5
        // rows, odd input sizes, 1x1 to 7x7.
        v.push(geom(3, 20, 17, 14, 3, 2, 1));
        v.push(geom(16, 33, 31, 25, 5, 2, 1));
        v.push(geom(8, 17, 16, 13, 1, 2, 1));
        v.push(geom(5, 14, 64, 12, 7, 2, 1));
        v.push(geom(9, 40, 15, 5, 3, 2, 1));
        // The AMX tiles: reductions in whole 64-byte chunks (K = 64, 576,
        // 2304), 32-channel blocks with and without a VNNI tail, pixel
        // tails, stride 2, with K not a multiple of 64 beside them.
        v.push(geom(64, 7, 9, 40, 1, 1, 1));
        v.push(geom(64, 8, 9, 32, 3, 1, 1));
        v.push(geom(256, 5, 7, 33, 3, 1, 1));
        v.push(geom(128, 17, 18, 64, 3, 2, 1));
        v.push(geom(48, 6, 6, 64, 3, 1, 1));
    }
    v
}

fn conv_i8(kern: &Kernels, r: &mut Rng, depthwise: bool) -> Result<(), String> {
    let mut geoms = edge_geoms_i8(depthwise);
    geoms.extend((0..I8_CASES / 2).map(|_| random_geom_i8(r, depthwise)));
    for (case, g) in geoms.into_iter().enumerate() {
        let p = Problem::random(r, g);
        let want = p.reference();
        if want[p.out_len()..].iter().any(|&b| b != SENTINEL_I8) {
            return Err(format!("{g:?}: the reference wrote past its output"));
        }
        if g.is_depthwise() != depthwise {
            return Err(format!("{g:?}: generated the wrong kind"));
        }
        let got = p.run(kern, case % 67);
        if got != want {
            return Err(format!(
                "case {case} {g:?} zp_in {} kpad {} mul {:?} zp_out {} lo {} hi {} lut {}: first difference at {:?}",
                p.zp_in,
                p.kpad,
                &p.mul[..p.mul.len().min(2)],
                p.zp_out,
                p.lo,
                p.hi,
                p.lut.is_some(),
                got.iter().zip(&want).position(|(a, b)| a != b)
            ));
        }
        if !depthwise {
            // Shared by pixels: cut at random points (tile-aligned or not,
            // empty parts included) or at every tile of 32.
            let n = g.out_h() * g.out_w();
            let mut cuts: Vec<usize> = if case % 3 == 0 {
                (32..n).step_by(32).collect()
            } else {
                (0..r.below(4)).map(|_| r.below(n + 1)).collect()
            };
            cuts.sort_unstable();
            let got = p.run_in_columns(kern, &cuts);
            if got != want {
                return Err(format!(
                    "case {case} {g:?} in columns cut at {cuts:?}: first difference at {:?}",
                    got.iter().zip(&want).position(|(a, b)| a != b)
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- int8 element-wise

fn weighted_sum_i8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for case in 0..CASES / 4 {
        let n = 1 + case % 4;
        // Rows up to 80 wide: several 16-lane blocks and their tails.
        let (c, h, w) = (1 + r.below(3), 2 * (1 + r.below(5)), 2 * (1 + r.below(40)));
        let upsampled = if case % 3 == 0 {
            0
        } else {
            (r.next() as u32) & ((1 << n) - 1)
        };
        let coefs: Vec<f64> = (0..n).map(|_| r.below(1000) as f64 / 400.0).collect();
        let scales: Vec<f64> = (0..n)
            .map(|_| 0.001 + r.below(1000) as f64 / 20000.0)
            .collect();
        let zps: Vec<i32> = (0..n)
            .map(|i| match (case + i) % 5 {
                0 => -128,
                1 => 127,
                _ => r.range(-128, 127),
            })
            .collect();
        let mut params = vec![SumInput::default(); n];
        let out_mul = weighted_sum_params(
            &coefs,
            &scales,
            &zps,
            0.002 + r.below(1000) as f64 / 10000.0,
            &mut params,
        );
        let len = c * h * w;
        let up = |i: usize| upsampled >> i & 1 == 1;
        let data: Vec<Vec<i8>> = (0..n)
            .map(|i| r.i8s(if up(i) { len / 4 } else { len }))
            .collect();
        let refs: Vec<&[i8]> = data.iter().map(|d| d.as_slice()).collect();
        let (lo, hi) = if case % 2 == 0 {
            (-128, 127)
        } else {
            (-20, 90)
        };
        let zp_out = match case % 9 {
            0 => r.range(-(1 << 25), 1 << 25),
            1 => i32::MAX,
            2 => i32::MIN,
            _ => r.range(-128, 127),
        };
        let a = SumI8 {
            inputs: &refs,
            upsampled,
            dims: (c, h, w),
            params: &params,
            out_mul,
            zp_out,
            lo,
            hi,
        };
        let mut out = vec![0i8; len];
        kern.weighted_sum_i8(&a, &mut out);
        for (j, &o) in out.iter().enumerate() {
            let (ch, y, x) = (j / (h * w), j / w % h, j % w);
            let qs: Vec<i8> = (0..n)
                .map(|i| {
                    if up(i) {
                        data[i][(ch * (h / 2) + y / 2) * (w / 2) + x / 2]
                    } else {
                        data[i][j]
                    }
                })
                .collect();
            let want = weighted_sum_written_out(&qs, &params, out_mul, zp_out, lo, hi);
            if o != want {
                return Err(format!(
                    "case {case} n {n} mask {upsampled:#b} {c}x{h}x{w}: [{j}] = {o}, want {want}"
                ));
            }
        }
    }
    weighted_sum_i8_every_value(kern, r)
}

/// Every input value against edge multipliers (the Q0.31 range's ends, the
/// low 11 bits all set or clear, 0) and every right shift: each input's
/// term `requant((q − zp)·2^20, m)` over all 256 `q` and extreme `zp`. With
/// a multiplier below 1025, no shift, the second input's multiplier 0 and
/// an output multiplier of 1 − 2^−31, the output is the first input's term
/// itself, so that an error of one in its rounding shows.
fn weighted_sum_i8_every_value(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let all: Vec<i8> = (-128..=127).collect();
    let mut ms = vec![
        0,
        1,
        2047,
        2048,
        1 << 30,
        (1 << 30) + 1,
        (1 << 30) + 2047,
        i32::MAX,
    ];
    let observable = ms.len();
    ms.extend([2, 3, 1023, 1024]);
    ms.extend((0..24).map(|_| r.range(1, 1024)));
    for (case, &m) in ms.iter().enumerate() {
        let exact = case >= observable;
        let shifts: &[i32] = if exact {
            &[0]
        } else {
            &[0, -1, -5, -11, -20, -31]
        };
        for &shift in shifts {
            let zp = [-128, 127, 0, r.range(-128, 127)][r.below(4)];
            let other = r.i8s(256);
            let params = [
                SumInput {
                    zp,
                    mul: QMul { m, shift },
                },
                SumInput {
                    zp: r.range(-128, 127),
                    mul: QMul {
                        m: if exact { 0 } else { r.range(1 << 30, i32::MAX) },
                        shift: -r.range(0, 31),
                    },
                },
            ];
            let out_mul = if exact {
                QMul {
                    m: i32::MAX,
                    shift: 0,
                }
            } else {
                QMul {
                    m: r.range(1 << 30, i32::MAX),
                    shift: -r.range(0, 12),
                }
            };
            let zp_out = if exact { 0 } else { r.range(-128, 127) };
            let inputs: [&[i8]; 2] = [&all, &other];
            let a = SumI8 {
                inputs: &inputs,
                upsampled: 0,
                dims: (1, 16, 16),
                params: &params,
                out_mul,
                zp_out,
                lo: -128,
                hi: 127,
            };
            let mut out = vec![0i8; 256];
            kern.weighted_sum_i8(&a, &mut out);
            for (j, &o) in out.iter().enumerate() {
                let want = weighted_sum_written_out(
                    &[all[j], other[j]],
                    &params,
                    out_mul,
                    zp_out,
                    -128,
                    127,
                );
                if o != want {
                    return Err(format!(
                        "every value, case {case} m {m} shift {shift} zp {zp}: q {} gives {o}, want {want}",
                        all[j]
                    ));
                }
            }
        }
    }
    Ok(())
}

fn quantize(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &len in &LENS {
        let mut xs: Vec<f32> = (0..len)
            .map(|_| f32::from_bits((r.next() as u32 & 0x8fff_ffff) | 0x3000_0000))
            .collect();
        let specials = [
            f32::NAN,
            f32::INFINITY,
            -f32::INFINITY,
            0.5,
            -0.5,
            2.5,
            -0.0,
        ];
        for (x, s) in xs.iter_mut().zip(specials) {
            *x = s;
        }
        let (inv, zp) = (37.5 + r.below(100) as f32, r.range(-128, 127));
        let mut q = vec![0i8; len];
        kern.quantize(&xs, inv, zp, &mut q);
        for (&x, &qq) in xs.iter().zip(&q) {
            let y = (x * inv) as f64;
            let want = if y.is_nan() {
                zp.clamp(-128, 127) as i8
            } else {
                ((y.abs() + 0.5).floor().copysign(y) + zp as f64).clamp(-128.0, 127.0) as i8
            };
            if qq != want {
                return Err(format!("quantize({x} · {inv}) + {zp} = {qq}, want {want}"));
            }
        }
    }
    Ok(())
}

fn dequantize(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &len in &LENS {
        let q = r.i8s(len);
        let (scale, zp) = (r.f32().abs() + 1e-3, r.range(-128, 127));
        let mut out = vec![0f32; len];
        kern.dequantize(&q, scale, zp, &mut out);
        let want: Vec<f32> = q.iter().map(|&v| (v as i32 - zp) as f32 * scale).collect();
        same_f32("dequantize", &out, &want)?;
    }
    Ok(())
}

/// Random `(c, h, w)` maps for upsampling, with the degenerate sizes.
fn upsample_dims(r: &mut Rng) -> Vec<(usize, usize, usize)> {
    let mut v = vec![(1, 1, 1), (2, 3, 5), (3, 4, 1), (1, 0, 3), (2, 1, 17)];
    v.extend((0..20).map(|_| (1 + r.below(4), 1 + r.below(20), 1 + r.below(40))));
    v
}

fn upsample_i8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for (c, h, w) in upsample_dims(r) {
        let input = r.i8s(c * h * w);
        let mut out = vec![0i8; 4 * c * h * w];
        kern.upsample2x_i8(&input, (c, h, w), &mut out);
        for (j, &o) in out.iter().enumerate() {
            let (ch, y, x) = (j / (4 * h * w), j / (2 * w) % (2 * h), j % (2 * w));
            if o != input[(ch * h + y / 2) * w + x / 2] {
                return Err(format!("{c}x{h}x{w}: [{j}]"));
            }
        }
    }
    Ok(())
}

fn u8_to_i8(kern: &Kernels) -> Result<(), String> {
    for &len in &LENS {
        let src: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
        let mut dst = vec![0i8; len];
        kern.u8_to_i8(&src, &mut dst);
        if let Some(i) = (0..len).find(|&i| dst[i] as i32 != src[i] as i32 - 128) {
            return Err(format!("[{i}]: {} -> {}", src[i], dst[i]));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- f32 element-wise

fn weighted_sum_f32(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for (case, &len) in LENS.iter().enumerate() {
        let n = 1 + case % 4;
        let data: Vec<Vec<f32>> = (0..n).map(|_| r.vec(len)).collect();
        let refs: Vec<&[f32]> = data.iter().map(|d| d.as_slice()).collect();
        let coef: Vec<f32> = r.vec(n);
        let mut out = vec![0f32; len];
        kern.weighted_sum_f32(&refs, &coef, &mut out);
        let want: Vec<f32> = (0..len)
            .map(|j| {
                let mut acc = coef[0] * data[0][j];
                for i in 1..n {
                    acc += coef[i] * data[i][j];
                }
                acc
            })
            .collect();
        same_f32("weighted_sum_f32", &out, &want)?;
    }
    Ok(())
}

fn add_f32(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let xs = activation_inputs();
    for act in ACTS {
        let ys = r.vec(xs.len());
        let mut out = vec![0f32; xs.len()];
        kern.add_f32(&xs, &ys, act, &mut out);
        for ((&x, &y), &o) in xs.iter().zip(&ys).zip(&out) {
            if !act_agrees(act, o, act.apply(x + y)) {
                return Err(format!("{act:?}({x} + {y}) = {o}"));
            }
        }
    }
    Ok(())
}

fn act_f32(kern: &Kernels) -> Result<(), String> {
    let xs = activation_inputs();
    for act in ACTS {
        let mut out = vec![0f32; xs.len()];
        kern.act_f32(act, &xs, &mut out);
        for (&x, &o) in xs.iter().zip(&out) {
            if !act_agrees(act, o, act.apply(x)) {
                return Err(format!("{act:?}({x}) = {o}, want {}", act.apply(x)));
            }
        }
    }
    Ok(())
}

fn upsample_f32(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for (c, h, w) in upsample_dims(r) {
        let input = r.vec(c * h * w);
        let mut out = vec![0f32; 4 * c * h * w];
        kern.upsample2x_f32(&input, (c, h, w), &mut out);
        let want: Vec<f32> = (0..out.len())
            .map(|j| {
                let (ch, y, x) = (j / (4 * h * w), j / (2 * w) % (2 * h), j % (2 * w));
                input[(ch * h + y / 2) * w + x / 2]
            })
            .collect();
        same_f32("upsample2x_f32", &out, &want)?;
    }
    Ok(())
}

fn f16_to_f32(kern: &Kernels) -> Result<(), String> {
    // Every binary16, in one call and in tails of every vector width.
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let want: Vec<f32> = all
        .iter()
        .map(|&h| edgedetr_kernels::f16::f16_to_f32(h))
        .collect();
    let mut out = vec![0f32; all.len()];
    kern.f16_to_f32(&all, &mut out);
    same_f32("f16_to_f32", &out, &want)?;
    for &len in &LENS {
        let mut o = vec![0f32; len];
        kern.f16_to_f32(&all[1000..1000 + len], &mut o);
        same_f32("f16_to_f32 tail", &o, &want[1000..1000 + len])?;
    }
    Ok(())
}

// ---------------------------------------------------------------- norms, decoder

fn layer_norm(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for _ in 0..60 {
        let (c, t) = (1 + r.below(70), 1 + r.below(40));
        let x = r.vec(c * t);
        let res = r.coin().then(|| r.vec(c * t));
        let (gamma, beta) = (r.vec(c), r.vec(c));
        let a = LayerNorm {
            x: &x,
            residual: res.as_deref(),
            c,
            t,
            gamma: &gamma,
            beta: &beta,
            eps: 1e-5,
        };
        vs_scalar(kern, "layer_norm", same_f32, |k| {
            let mut o = vec![0f32; c * t];
            k.layer_norm(&a, &mut o);
            o
        })?;
        // Shared by tokens, cut at random points: the same bits.
        let cuts: Vec<usize> = {
            let mut v: Vec<usize> = (0..r.below(4)).map(|_| r.below(t + 1)).collect();
            v.sort_unstable();
            v
        };
        let mut whole = vec![0f32; c * t];
        Kernels::scalar().layer_norm(&a, &mut whole);
        let mut o = vec![f32::NAN; c * t];
        let mut planes = OutPlanes::new(&mut o, t);
        let mut start = 0;
        for &end in cuts.iter().chain([&t]) {
            kern.layer_norm_planes(&a, &mut planes.narrow(start..end));
            start = end;
        }
        same_f32(&format!("layer_norm cut at {cuts:?}"), &o, &whole)?;
    }
    Ok(())
}

fn softmax_cols(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &cols in &LENS {
        for rows in [1, 2, 3, 1 + r.below(40), 257] {
            let mut x: Vec<f32> = r.vec(rows * cols).iter().map(|v| v * 30.0).collect();
            if rows > 2 {
                x[cols] = -1e30;
            }
            vs_scalar(kern, "softmax_cols", close_f32, |k| {
                let mut o = x.clone();
                k.softmax_cols(&mut o, cols);
                o
            })?;
        }
    }
    Ok(())
}

fn concat_tokens(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for _ in 0..20 {
        let c = 1 + r.below(8);
        let parts: Vec<Vec<f32>> = (0..1 + r.below(4))
            .map(|_| {
                let t = 1 + r.below(30);
                r.vec(c * t)
            })
            .collect();
        let refs: Vec<&[f32]> = parts.iter().map(|p| p.as_slice()).collect();
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let got = {
            let mut o = vec![0f32; n];
            kern.concat_tokens(&refs, c, &mut o);
            o
        };
        vs_scalar(kern, "concat_tokens", same_f32, |k| {
            let mut o = vec![0f32; n];
            k.concat_tokens(&refs, c, &mut o);
            o
        })?;
        // The layout: token t of part i is column (Σ_{j<i} T_j) + t.
        let t0 = parts[0].len() / c;
        if got[n / c * (c - 1)] != parts[0][t0 * (c - 1)] {
            return Err("concat_tokens: channel rows misplaced".into());
        }
    }
    Ok(())
}

fn mask_tokens(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &t in &LENS {
        let c = 1 + r.below(5);
        let x = r.vec(c * t);
        let mask: Vec<f32> = (0..t).map(|_| if r.coin() { 1.0 } else { 0.0 }).collect();
        vs_scalar(kern, "mask_tokens", same_f32, |k| {
            let mut o = vec![0f32; c * t];
            k.mask_tokens(&x, c, &mask, &mut o);
            o
        })?;
    }
    Ok(())
}

fn topk_tokens(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for case in 0..40 {
        let (c, n) = (1 + r.below(6), 1 + r.below(300));
        // Many ties: values on a coarse grid; every fourth case with NaNs
        // (torch.max propagates them, topk ranks them first) and infinities.
        let mut scores: Vec<f32> = (0..c * n).map(|_| r.below(40) as f32).collect();
        if case % 4 == 3 {
            for x in [f32::NAN, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let i = r.below(scores.len());
                scores[i] = x;
            }
        }
        let k = 1 + r.below(n);
        let (mut got, mut want) = (vec![0u32; k], vec![0u32; k]);
        kern.topk_tokens(&scores, c, &mut got, &mut vec![0f32; k]);
        s.topk_tokens(&scores, c, &mut want, &mut vec![0f32; k]);
        if got != want {
            return Err(format!("topk_tokens c {c} n {n} k {k}"));
        }
    }
    Ok(())
}

fn gather_tokens(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for _ in 0..20 {
        let (c, n, k) = (1 + r.below(6), 1 + r.below(50), 1 + r.below(60));
        let src = r.vec(c * n);
        // Some indices out of range: NaN, never a read past `src`.
        let idx: Vec<u32> = (0..k).map(|_| r.below(n + 3) as u32).collect();
        vs_scalar(kern, "gather_tokens", same_f32, |kk| {
            let mut o = vec![0f32; c * k];
            kk.gather_tokens(&src, c, &idx, &mut o);
            o
        })?;
    }
    Ok(())
}

fn softmax_groups(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for _ in 0..20 {
        let (g, l, t) = (1 + r.below(8), 1 + r.below(12), 1 + r.below(40));
        let x: Vec<f32> = r.vec(g * l * t).iter().map(|v| v * 20.0).collect();
        vs_scalar(kern, "softmax_groups", close_f32, |k| {
            let mut o = vec![0f32; x.len()];
            k.softmax_groups(&x, l, t, &mut o);
            o
        })?;
    }
    Ok(())
}

fn deform_locations(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for _ in 0..20 {
        let (q, samples, points) = (1 + r.below(40), 1 + r.below(24), 1 + r.below(4));
        let reference: Vec<f32> = r.vec(4 * q).iter().map(|v| v.abs()).collect();
        let off = r.vec(2 * samples * q);
        vs_scalar(kern, "deform_locations", same_f32, |k| {
            let mut o = vec![0f32; off.len()];
            k.deform_locations(&reference, &off, q, points, &mut o);
            o
        })?;
    }
    Ok(())
}

fn deform_sample(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for case in 0..40 {
        let heads = 1 + r.below(4);
        let levels = 1 + r.below(3);
        let mut shapes = [(0, 0); 4];
        for sh in shapes.iter_mut().take(levels) {
            *sh = (1 + r.below(9), 1 + r.below(9));
        }
        let g = DeformGeom {
            heads,
            levels,
            points: 1 + r.below(4),
            shapes,
            channels: heads * (1 + r.below(8)),
            queries: 1 + r.below(30),
        };
        let value = r.vec(g.channels * g.tokens());
        // Locations in [-0.25, 1.25): some taps outside every map; every
        // fourth case also far outside, infinite and NaN ones.
        let mut loc: Vec<f32> = r
            .vec(2 * g.samples() * g.queries)
            .iter()
            .map(|v| 0.5 + 0.75 * v)
            .collect();
        if case % 4 == 3 {
            for x in [-1e9, 1e9, f32::INFINITY, f32::NAN] {
                let i = r.below(loc.len());
                loc[i] = x;
            }
        }
        let aw: Vec<f32> = r
            .vec(g.samples() * g.queries)
            .iter()
            .map(|v| v.abs())
            .collect();
        let n = g.channels * g.queries;
        vs_scalar(kern, "deform_sample", close_f32, |k| {
            let mut o = vec![0f32; n];
            k.deform_sample(&g, &value, &loc, &aw, &mut o);
            o
        })?;
    }
    Ok(())
}

fn refine_boxes(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &len in &LENS {
        let delta: Vec<f32> = r.vec(len).iter().map(|v| v * 8.0).collect();
        let reference: Vec<f32> = r.vec(len).iter().map(|v| v * 0.7 + 0.5).collect();
        vs_scalar(kern, "refine_boxes", same_f32, |k| {
            let mut o = vec![0f32; len];
            k.refine_boxes(&delta, &reference, &mut o);
            o
        })?;
    }
    Ok(())
}

fn final_topk(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for _ in 0..20 {
        let (nc, q) = (1 + r.below(10), 1 + r.below(60));
        let logits: Vec<f32> = (0..nc * q)
            .map(|_| r.below(30) as f32 / 3.0 - 5.0)
            .collect();
        let boxes = r.vec(4 * q);
        let k = 1 + r.below(nc * q);
        let a = FinalTopK {
            logits: &logits,
            boxes: &boxes,
            nc,
            q,
        };
        let run = |k_: &Kernels| {
            let (mut rows, mut query) = (vec![0f32; 6 * k], vec![0u32; k]);
            k_.final_topk(
                &a,
                &mut rows,
                &mut query,
                &mut vec![0; k],
                &mut vec![0.0; k],
            );
            (rows, query)
        };
        let ((got, gq), (want, wq)) = (run(kern), run(&s));
        same_f32("final_topk rows", &got, &want)?;
        if gq != wq {
            return Err("final_topk: queries differ".into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- image

/// A random interleaved RGB image.
fn image(r: &mut Rng, w: usize, h: usize) -> Vec<u8> {
    (0..w * h * 3).map(|_| r.next() as u8).collect()
}

fn resize_rgb8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    let mut sizes = vec![
        (1, 1, 3, 2),
        (7, 5, 3, 4),
        (8, 6, 4, 3),
        (5, 4, 5, 4),
        (1080, 810, 64, 64),
    ];
    sizes.extend((0..30).map(|_| {
        (
            1 + r.below(90),
            1 + r.below(90),
            1 + r.below(90),
            1 + r.below(90),
        )
    }));
    for (sw, sh, dw, dh) in sizes {
        let rz = Resize { sw, sh, dw, dh };
        let src = image(r, sw, sh);
        let (mut got, mut want) = (vec![0u8; dw * dh * 3], vec![0u8; dw * dh * 3]);
        let mut scratch = vec![-1i32; rz.scratch_len()];
        kern.resize_rgb8(&rz, &src, &mut got, &mut scratch);
        s.resize_rgb8(&rz, &src, &mut want, &mut scratch);
        if got != want {
            return Err(format!(
                "resize {rz:?}: first difference at {:?}",
                got.iter().zip(&want).position(|(a, b)| a != b)
            ));
        }
    }
    Ok(())
}

fn hwc_to_chw_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &n in &LENS {
        let src = image(r, n, 1);
        for order in [[0, 1, 2], [2, 1, 0]] {
            let mut got = vec![0u8; 3 * n];
            kern.hwc_to_chw_u8(&src, order, &mut got);
            if let Some(i) = (0..3 * n).find(|&i| got[i] != src[3 * (i % n) + order[i / n]]) {
                return Err(format!("hwc_to_chw_u8 {order:?}: [{i}]"));
            }
        }
    }
    Ok(())
}

fn hwc_to_chw_f32(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for &n in &LENS {
        let src = image(r, n, 1);
        for order in [[0, 1, 2], [2, 1, 0]] {
            let mut got = vec![0f32; 3 * n];
            kern.hwc_to_chw_f32(&src, order, &mut got);
            let want: Vec<f32> = (0..3 * n)
                .map(|i| src[3 * (i % n) + order[i / n]] as f32 / 255.0)
                .collect();
            same_f32("hwc_to_chw_f32", &got, &want)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- jpeg

/// Case `case`'s block and quantiser, of kind `case % 4`: DC only, dense
/// small values, mostly zero (as an encoder makes them), or arbitrary `i16`
/// blocks and quantisers (where the wrapping 32-bit arithmetic must agree
/// too).
fn random_block(r: &mut Rng, case: usize) -> (usize, [i16; 64], [i16; 64]) {
    let kind = case % 4;
    let coef = core::array::from_fn(|i| match kind {
        0 if i > 0 => 0,
        0 | 1 => (r.below(2048) as i16) - 1024,
        2 if r.below(4) != 0 => 0,
        2 => (r.below(64) as i16) - 32,
        _ => r.next() as i16,
    });
    let quant = core::array::from_fn(|_| match kind {
        3 => r.next() as i16,
        _ => 1 + r.below(255) as i16,
    });
    (kind, coef, quant)
}

/// Every kind of [`random_block`]; output strides 8 and wider, with a
/// sentinel around the block.
fn idct_islow_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for case in 0..CASES * 4 {
        let (kind, coef, quant) = random_block(r, case);
        let stride = [8, 9, 16, 17, 33][case % 5];
        let (mut got, mut want) = (vec![0xA5u8; 8 * stride + 3], vec![0xA5u8; 8 * stride + 3]);
        kern.idct_islow_u8(&coef, &quant, &mut got[1..], stride);
        s.idct_islow_u8(&coef, &quant, &mut want[1..], stride);
        if got != want {
            return Err(format!(
                "idct kind {kind} stride {stride}: first difference at {:?}",
                got.iter().zip(&want).position(|(a, b)| a != b)
            ));
        }
    }
    Ok(())
}

/// `jpeg_idct_4x4` written out (jidctred.c without its zero-AC shortcuts,
/// in wrapping 32-bit arithmetic): the specification of the 4×4 slot.
fn idct_4x4_written_out(coef: &[i16; 64], q: &[i16; 64]) -> [u8; 16] {
    let (a, s, m) = (i32::wrapping_add, i32::wrapping_sub, i32::wrapping_mul);
    let step = |i: [i32; 8]| {
        let tmp0 = i[0].wrapping_shl(14);
        let tmp2 = a(m(i[2], 15137), m(i[6], -6270));
        let (tmp10, tmp12) = (a(tmp0, tmp2), s(tmp0, tmp2));
        let (z1, z2, z3, z4) = (i[7], i[5], i[3], i[1]);
        let t0 = a(a(m(z1, -1730), m(z2, 11893)), a(m(z3, -17799), m(z4, 8697)));
        let t2 = a(a(m(z1, -4176), m(z2, -4926)), a(m(z3, 7373), m(z4, 20995)));
        [a(tmp10, t2), a(tmp12, t0), s(tmp12, t0), s(tmp10, t2)]
    };
    let descale = |x: i32, n: u32| x.wrapping_add(1 << (n - 1)) >> n;
    let limit = |x: i32| match x & 1023 {
        m @ 0..=127 => (m + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        m => (m - 896) as u8,
    };
    let mut ws = [0i32; 32];
    for col in [0, 1, 2, 3, 5, 6, 7] {
        let o = step(core::array::from_fn(|r| {
            i32::from(coef[r * 8 + col]) * i32::from(q[r * 8 + col])
        }));
        for r in 0..4 {
            ws[r * 8 + col] = descale(o[r], 12);
        }
    }
    let mut out = [0u8; 16];
    for row in 0..4 {
        let o = step(core::array::from_fn(|c| ws[row * 8 + c]));
        for c in 0..4 {
            out[row * 4 + c] = limit(descale(o[c], 19));
        }
    }
    out
}

/// As [`idct_islow_u8`], against the written-out 4×4 IDCT too.
fn idct_4x4_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    for case in 0..CASES * 4 {
        let (kind, coef, quant) = random_block(r, case);
        let stride = [4, 5, 8, 9, 17][case % 5];
        let mut got = vec![0xA5u8; 4 * stride + 3];
        kern.idct_4x4_u8(&coef, &quant, &mut got[1..], stride);
        let spec = idct_4x4_written_out(&coef, &quant);
        for (i, &g) in got.iter().enumerate() {
            let (row, col) = (
                (i as isize - 1).div_euclid(stride as isize),
                (i as isize - 1).rem_euclid(stride as isize),
            );
            let want = if i > 0 && row < 4 && col < 4 {
                spec[row as usize * 4 + col as usize]
            } else {
                0xA5
            };
            if g != want {
                return Err(format!(
                    "idct_4x4 kind {kind} stride {stride}: byte {i}: {g} != {want}"
                ));
            }
        }
    }
    Ok(())
}

fn first_diff(what: &str, n: usize, got: &[u8], want: &[u8]) -> Result<(), String> {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Err(format!("{what} n={n}: [{i}] {} != {}", got[i], want[i])),
        None => Ok(()),
    }
}

fn upsample_h2v1_fancy_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for &n in LENS.iter().chain(&[63, 64, 65, 960]) {
        let row = image(r, n, 1)[..n].to_vec();
        let (mut got, mut want) = (vec![0u8; 2 * n], vec![1u8; 2 * n]);
        kern.upsample_h2v1_fancy_u8(&row, &mut got);
        s.upsample_h2v1_fancy_u8(&row, &mut want);
        first_diff("upsample_h2v1_fancy_u8", n, &got, &want)?;
        // Written out: the triangle filter with the ends clamped.
        let at = |x: isize| u32::from(row[x.clamp(0, n as isize - 1) as usize]);
        let spec: Vec<u8> = (0..2 * n as isize)
            .map(|o| {
                let x = o / 2;
                let nb = if o % 2 == 0 {
                    at(x - 1) + 1
                } else {
                    at(x + 1) + 2
                };
                ((3 * at(x) + nb) >> 2) as u8
            })
            .collect();
        first_diff("upsample_h2v1_fancy_u8 (written out)", n, &got, &spec)?;
    }
    Ok(())
}

fn upsample_h2v2_fancy_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for &n in LENS.iter().chain(&[63, 64, 65, 960]) {
        let near = image(r, n, 1)[..n].to_vec();
        let mut far = image(r, n, 1)[..n].to_vec();
        if n > 4 {
            far[..4].copy_from_slice(&[255; 4]);
        }
        let (mut got, mut want) = (vec![0u8; 2 * n], vec![1u8; 2 * n]);
        kern.upsample_h2v2_fancy_u8(&near, &far, &mut got);
        s.upsample_h2v2_fancy_u8(&near, &far, &mut want);
        first_diff("upsample_h2v2_fancy_u8", n, &got, &want)?;
        // Written out: column sums, then the triangle filter, ends clamped.
        let cs = |x: isize| {
            let x = x.clamp(0, n as isize - 1) as usize;
            3 * u32::from(near[x]) + u32::from(far[x])
        };
        let spec: Vec<u8> = (0..2 * n as isize)
            .map(|o| {
                let x = o / 2;
                let nb = if o % 2 == 0 {
                    cs(x - 1) + 8
                } else {
                    cs(x + 1) + 7
                };
                ((3 * cs(x) + nb) >> 4) as u8
            })
            .collect();
        first_diff("upsample_h2v2_fancy_u8 (written out)", n, &got, &spec)?;
    }
    Ok(())
}

fn ycc_to_rgb_u8(kern: &Kernels, r: &mut Rng) -> Result<(), String> {
    let s = Kernels::scalar();
    for &n in LENS.iter().chain(&[65536]) {
        let p = image(r, n, 1);
        let (mut y, mut cb, mut cr) = (p[..n].to_vec(), p[n..2 * n].to_vec(), p[2 * n..].to_vec());
        if n == 65536 {
            // Every (Y, Cb, Cr) corner and every Cb/Cr value.
            for i in 0..n {
                y[i] = [0, 255, (i >> 3) as u8, 128][i % 4];
                cb[i] = (i >> 8) as u8;
                cr[i] = i as u8;
            }
        }
        let (mut got, mut want) = (vec![0u8; 3 * n], vec![1u8; 3 * n]);
        kern.ycc_to_rgb_u8(&y, &cb, &cr, &mut got);
        s.ycc_to_rgb_u8(&y, &cb, &cr, &mut want);
        first_diff("ycc_to_rgb_u8", n, &got, &want)?;
    }
    Ok(())
}
