//! Every path against the specification, on random and edge shapes.
//!
//! # Exactness policy (floats)
//! Each output is compared with the exact value `y` of the pre-activation sum
//! (computed in f64) and its magnitude `S = Σ|a·b| + |bias| + |C_old|`. A path
//! agrees when, with `ε = 2⁻²³` (`f32::EPSILON`) and `d` the reduction depth,
//!
//! `|got − act(y)| ≤ 1.2·((d + 2)·ε·S + ε·|y|) + 8·ε·|act(y)| + 2⁻¹²⁶`
//!
//! The first term is the classic bound of f32 summation in *any* order
//! (`(d+1)·u·S`, `u = ε/2`) with a factor 2 of margin, times 1.2 for the
//! steepest activation slope (GELU, SiLU ≤ 1.13); the second covers the SIMD
//! activations (SiLU via a polynomial `exp`, within 4 ulp). The scalar path is
//! checked against the same bound. Random data is uniform in `[-1, 1)` from a
//! fixed-seed SplitMix64, so every run tests the same cases.
//!
//! A path this build or CPU cannot run is `#[ignore]`d (other architecture) or
//! prints `NOT TESTED` (feature missing at run time); every test prints which
//! path it ran.

use std::format;
use std::println;
use std::string::String;
use std::vec;
use std::vec::Vec;

use crate::blocked::{Im2col, MicroKernel, PackB, TileEpi, sgemm_blocked};
use crate::conv::ConvGeom;
use crate::dispatch::{Kernels, PATHS};
use crate::gemm::{Epilogue, KC, MatRef, NC_MAX, sgemm_scratch_len};
use crate::{Act, Caps};

/// Edge sizes: 1–10 and around powers of two, `KC = 256` and `NC = 128`.
const SIZES: [usize; 19] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 33, 63, 65, 255, 257,
];
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

/// Natively the tests run many and large cases; under qemu fewer and smaller.
const NATIVE: bool = cfg!(target_arch = "x86_64");
/// Random cases per test.
const CASES: usize = if NATIVE { 1000 } else { 150 };
/// Largest multiply-add count of one case.
const MAX_MACS: usize = if NATIVE { 1 << 22 } else { 1 << 20 };

/// A value written outside every output view, which must survive.
const SENTINEL: f32 = 7777.0;

/// SplitMix64: a tiny deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
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
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
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

/// The kernels of the named path, or `None` (printed) if this CPU lacks it.
fn kernels_for(name: &str) -> Option<Kernels> {
    let caps = PATHS.iter().find(|(n, _)| *n == name).expect("path").1;
    let k = Kernels::for_caps(caps);
    if k.name() == name {
        println!("testing path {name}");
        Some(k)
    } else {
        println!(
            "NOT TESTED: path {name} is not available on this CPU (got {})",
            k.name()
        );
        None
    }
}

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

/// One sgemm case with random layouts and epilogue.
struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    a: (Vec<f32>, usize, usize),
    b: (Vec<f32>, usize, usize),
    bias: Option<Vec<f32>>,
    accumulate: bool,
    act: Act,
    rsc: usize,
}

impl GemmCase {
    fn random(rng: &mut Rng, m: usize, n: usize, k: usize) -> GemmCase {
        GemmCase {
            m,
            n,
            k,
            a: random_mat(rng, m, k),
            b: random_mat(rng, k, n),
            bias: rng.coin().then(|| rng.vec(m)),
            accumulate: rng.coin(),
            act: rng.pick(&ACTS),
            rsc: n + if rng.coin() { 0 } else { 1 + rng.below(5) },
        }
    }

    fn describe(&self) -> String {
        format!(
            "m {} n {} k {} A rs {} cs {} B rs {} cs {} rsc {} bias {} acc {} act {:?}",
            self.m,
            self.n,
            self.k,
            self.a.1,
            self.a.2,
            self.b.1,
            self.b.2,
            self.rsc,
            self.bias.is_some(),
            self.accumulate,
            self.act
        )
    }

    /// Runs `f` (an sgemm) on this case and checks every output and the
    /// untouched padding of `C`.
    fn check(
        &self,
        rng: &mut Rng,
        f: impl FnOnce(MatRef<'_>, MatRef<'_>, &mut [f32], Epilogue<'_>, &mut [f32]),
    ) -> Result<(), String> {
        let (m, n, k, rsc) = (self.m, self.n, self.k, self.rsc);
        let a = MatRef {
            data: &self.a.0,
            rs: self.a.1,
            cs: self.a.2,
        };
        let b = MatRef {
            data: &self.b.0,
            rs: self.b.1,
            cs: self.b.2,
        };
        let len = if m == 0 || n == 0 {
            0
        } else {
            (m - 1) * rsc + n
        };
        let mut c = vec![SENTINEL; len];
        for i in 0..m {
            for j in 0..n {
                // Without `accumulate` the old value must not matter.
                c[i * rsc + j] = if self.accumulate { rng.f32() } else { f32::NAN };
            }
        }
        let old = c.clone();
        let epi = Epilogue {
            bias: self.bias.as_deref(),
            accumulate: self.accumulate,
            act: self.act,
        };
        // NaN scratch: reading anything not packed poisons the result.
        let mut scratch = vec![f32::NAN; sgemm_scratch_len(k)];
        f(a, b, &mut c, epi, &mut scratch);
        for i in 0..m {
            for j in 0..n {
                let (mut pre, mut scale) = (0.0f64, 0.0f64);
                for p in 0..k {
                    let t = a.at(i, p) as f64 * b.at(p, j) as f64;
                    pre += t;
                    scale += t.abs();
                }
                if let Some(bias) = &self.bias {
                    pre += bias[i] as f64;
                    scale += bias[i].abs() as f64;
                }
                if self.accumulate {
                    pre += old[i * rsc + j] as f64;
                    scale += old[i * rsc + j].abs() as f64;
                }
                let got = c[i * rsc + j];
                if !agree(got, pre, scale, k, self.act) {
                    return Err(format!(
                        "{}: C[{i}][{j}] = {got}, exact {pre} (scale {scale})",
                        self.describe()
                    ));
                }
            }
        }
        for (idx, (&now, &was)) in c.iter().zip(&old).enumerate() {
            if idx % rsc >= n && now.to_bits() != was.to_bits() {
                return Err(format!("{}: padding C[{idx}] written", self.describe()));
            }
        }
        Ok(())
    }
}

/// A random size from `SIZES` such that `other * size <= budget` (at least 1).
fn size_within(rng: &mut Rng, budget: usize) -> usize {
    let fitting: Vec<usize> = SIZES.iter().copied().filter(|&s| s <= budget).collect();
    if fitting.is_empty() {
        1
    } else {
        rng.pick(&fitting)
    }
}

/// Edge shapes: every size of `SIZES` in every role, the other two random
/// within the budget; then `CASES` random shapes.
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

fn sgemm_matches_reference(kern: Kernels, seed: u64) {
    let mut rng = Rng::new(seed);
    let shapes = gemm_shapes(&mut rng);
    for &(m, n, k) in &shapes {
        let case = GemmCase::random(&mut rng, m, n, k);
        let r = case.check(&mut rng, |a, b, c, epi, scratch| {
            kern.sgemm(m, n, k, a, b, c, case.rsc, epi, scratch)
        });
        if let Err(e) = r {
            panic!("path {}: {e}", kern.name());
        }
    }
    println!("{}: {} sgemm cases agree", kern.name(), shapes.len());
}

/// Empty products: k == 0 leaves only the epilogue; m or n == 0 touches nothing.
fn sgemm_degenerate(kern: Kernels) {
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
    kern.sgemm(2, 2, 0, none, none, &mut c, 3, epi, &mut []);
    assert_eq!(c, [1.5, 2.5, SENTINEL, 1.0, 2.0]);
    let mut scratch = vec![0.0; sgemm_scratch_len(4)];
    let a = [1.0f32; 4];
    let am = MatRef {
        data: &a,
        rs: 4,
        cs: 1,
    };
    let bm = MatRef {
        data: &[1.0; 8],
        rs: 2,
        cs: 1,
    };
    kern.sgemm(0, 2, 4, am, bm, &mut c, 3, epi, &mut scratch);
    kern.sgemm(1, 0, 4, am, none, &mut c, 3, epi, &mut scratch);
    assert_eq!(c, [1.5, 2.5, SENTINEL, 1.0, 2.0]);
}

/// The SIMD activations against the scalar ones on a wide range of values,
/// NaN included (it stays NaN).
fn activations_match(kern: Kernels) {
    let mut xs: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) * 0.37).collect();
    xs.extend([
        -100.0, -88.5, -87.0, -20.0, -1e-30, 0.0, 6.0, 6.5, 20.0, 88.5, 100.0,
    ]);
    xs.extend([f32::NAN, -0.0, 1e-30, 3.0, 5.999]);
    let n = xs.len();
    let m = 9; // full tiles and an edge tile on every path
    let ones = vec![1.0f32; m];
    let a = MatRef {
        data: &ones,
        rs: 1,
        cs: 1,
    };
    let b = MatRef {
        data: &xs,
        rs: n,
        cs: 1,
    };
    for act in ACTS {
        let mut c = vec![0.0f32; m * n];
        let mut scratch = vec![0.0f32; sgemm_scratch_len(1)];
        let epi = Epilogue {
            bias: None,
            accumulate: false,
            act,
        };
        kern.sgemm(m, n, 1, a, b, &mut c, n, epi, &mut scratch);
        for (idx, &got) in c.iter().enumerate() {
            let x = xs[idx % n];
            let want = act.apply(x);
            let ok = if want.is_nan() {
                got.is_nan()
            } else if act == Act::Silu {
                (got - want).abs() <= 4.0 * f32::EPSILON * want.abs() + 1e-36
            } else {
                got == want
            };
            assert!(ok, "{} {act:?}({x}) = {got}, want {want}", kern.name());
        }
    }
}

/// A random supported geometry with the given kernel, stride and kind.
fn random_geom(rng: &mut Rng, k: usize, stride: usize, depthwise: bool, h: usize) -> ConvGeom {
    loop {
        let w = rng.pick(&HW);
        let cin = rng.pick(&CHANNELS);
        let cout = if depthwise { cin } else { rng.pick(&CHANNELS) };
        let g = ConvGeom {
            cin,
            h,
            w,
            cout,
            k,
            stride,
            groups: if depthwise { cin } else { 1 },
        };
        assert!(g.is_supported());
        let macs = g.weight_len() * g.out_h() * g.out_w();
        if macs <= MAX_MACS {
            return g;
        }
    }
}

/// Runs `f` (a conv2d) on random data for `g` and checks every output, and
/// that nothing past the output was written.
fn check_conv(
    rng: &mut Rng,
    g: &ConvGeom,
    act: Act,
    f: impl FnOnce(&[f32], &[f32], &[f32], &mut [f32], &mut [f32]),
) -> Result<(), String> {
    let (oh, ow, pad) = (g.out_h(), g.out_w(), g.pad());
    let input = rng.vec(g.cin * g.h * g.w);
    let weight = rng.vec(g.weight_len());
    let bias = rng.vec(g.cout);
    let out_len = g.cout * oh * ow;
    let mut out = vec![f32::NAN; out_len + 5];
    out[out_len..].fill(SENTINEL);
    let mut scratch = vec![f32::NAN; g.scratch_len()];
    f(&input, &weight, &bias, &mut out, &mut scratch);
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
                        "{g:?} {act:?}: out[{co}][{oy}][{ox}] = {got}, exact {pre} (scale {scale})"
                    ));
                }
            }
        }
    }
    if out[out_len..].iter().any(|&v| v != SENTINEL) {
        return Err(format!("{g:?}: wrote past the output"));
    }
    Ok(())
}

/// Every (k, stride, dense/depthwise) with every height of `HW`, random
/// widths and channels; then `CASES / 2` random geometries.
fn conv_geoms(rng: &mut Rng) -> Vec<(ConvGeom, Act)> {
    let mut geoms = Vec::new();
    for k in [1, 3, 5] {
        for stride in [1, 2] {
            for depthwise in [false, true] {
                for &h in &HW {
                    let g = random_geom(rng, k, stride, depthwise, h);
                    geoms.push((g, rng.pick(&ACTS)));
                }
            }
        }
    }
    for _ in 0..CASES / 2 {
        let (k, stride, dw, h) = (
            rng.pick(&[1, 3, 5]),
            rng.pick(&[1, 2]),
            rng.coin(),
            rng.pick(&HW),
        );
        let g = random_geom(rng, k, stride, dw, h);
        geoms.push((g, rng.pick(&ACTS)));
    }
    geoms
}

fn conv_matches_reference(kern: Kernels, seed: u64) {
    let mut rng = Rng::new(seed);
    let geoms = conv_geoms(&mut rng);
    for (g, act) in &geoms {
        let r = check_conv(&mut rng, g, *act, |input, weight, bias, out, scratch| {
            kern.conv2d_f32(g, input, weight, bias, *act, out, scratch)
        });
        if let Err(e) = r {
            panic!("path {}: {e}", kern.name());
        }
    }
    println!("{}: {} conv2d cases agree", kern.name(), geoms.len());
}

/// One module of tests per path of the inventory ([`PATHS`]): a path not
/// compiled for this architecture is ignored, one the CPU lacks says so.
macro_rules! path_tests {
    ($path:ident, $cfg:meta) => {
        mod $path {
            use super::*;

            fn kernels() -> Option<Kernels> {
                kernels_for(stringify!($path))
            }

            #[test]
            #[cfg_attr(not($cfg), ignore = "path not compiled for this architecture")]
            fn sgemm_random_and_edge_shapes() {
                if let Some(k) = kernels() {
                    sgemm_matches_reference(k, 0x5EED_0001);
                }
            }

            #[test]
            #[cfg_attr(not($cfg), ignore = "path not compiled for this architecture")]
            fn sgemm_empty_products() {
                if let Some(k) = kernels() {
                    sgemm_degenerate(k);
                }
            }

            #[test]
            #[cfg_attr(not($cfg), ignore = "path not compiled for this architecture")]
            fn activations_match_scalar() {
                if let Some(k) = kernels() {
                    activations_match(k);
                }
            }

            #[test]
            #[cfg_attr(not($cfg), ignore = "path not compiled for this architecture")]
            fn conv2d_random_and_edge_geometries() {
                if let Some(k) = kernels() {
                    conv_matches_reference(k, 0x5EED_0002);
                }
            }
        }
    };
}

path_tests!(scalar, all());
path_tests!(avx2_fma, target_arch = "x86_64");
path_tests!(neon, all(target_arch = "aarch64", target_feature = "neon"));
path_tests!(
    neon_dotprod,
    all(target_arch = "aarch64", target_feature = "neon")
);

/// Every path in the inventory has a test module above.
#[test]
fn inventory_is_tested() {
    let names: Vec<&str> = PATHS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["scalar", "avx2_fma", "neon", "neon_dotprod"]);
}

/// A portable micro-kernel with odd tile sizes: tests the blocked driver and
/// the packers on every architecture, armv7 included.
#[derive(Clone, Copy)]
struct OddTile;

impl MicroKernel for OddTile {
    const MR: usize = 3;
    const NR: usize = 5;
    const NC: usize = 10;

    unsafe fn tile(
        self,
        kc: usize,
        a: *const f32,
        rs: usize,
        cs: usize,
        mr: usize,
        b: *const f32,
        c: *mut f32,
        rsc: usize,
        epi: &TileEpi,
    ) {
        for i in 0..Self::MR {
            for j in 0..Self::NR {
                let mut acc = 0.0f32;
                for p in 0..kc {
                    // SAFETY: the MicroKernel contract.
                    acc +=
                        unsafe { *a.add(i.min(mr - 1) * rs + p * cs) * *b.add(p * Self::NR + j) };
                }
                let mut v = acc + epi.bias[i];
                // SAFETY: the MicroKernel contract.
                let cp = unsafe { c.add(i * rsc + j) };
                if epi.load_c {
                    // SAFETY: as above.
                    v += unsafe { *cp };
                }
                if let Some(act) = epi.act {
                    v = act.apply(v);
                }
                // SAFETY: as above.
                unsafe { *cp = v };
            }
        }
    }
}

#[test]
fn blocked_driver_with_odd_tiles() {
    let mut rng = Rng::new(0x5EED_0003);
    let shapes = gemm_shapes(&mut rng);
    for &(m, n, k) in &shapes {
        let case = GemmCase::random(&mut rng, m, n, k);
        let r = case.check(&mut rng, |a, b, c, epi, scratch| {
            if m > 0 && n > 0 && k > 0 {
                sgemm_blocked(OddTile, m, n, k, a, &b, c, case.rsc, epi, scratch)
            }
        });
        r.unwrap();
    }
    let mut rng = Rng::new(0x5EED_0004);
    for (g, act) in conv_geoms(&mut rng) {
        if g.groups == 1 {
            check_conv(&mut rng, &g, act, |input, weight, bias, out, scratch| {
                crate::blocked::conv_dense(OddTile, &g, input, weight, bias, act, out, scratch)
            })
            .unwrap();
        }
    }
}

/// The im2col packer against im2col written out, for random blocks.
#[test]
fn im2col_packs_the_im2col_matrix() {
    let mut rng = Rng::new(0x5EED_0005);
    for _ in 0..CASES {
        let (k, stride, h) = (rng.pick(&[1, 3, 5]), rng.pick(&[1, 2, 3]), rng.pick(&HW));
        let g = random_geom(&mut rng, k, stride, false, h);
        let input = rng.vec(g.cin * g.h * g.w);
        let (kdim, ndim) = (g.cin * g.k * g.k, g.out_h() * g.out_w());
        let pad = g.pad() as isize;
        let naive = |p: usize, q: usize| -> f32 {
            let (ci, ky, kx) = (p / (g.k * g.k), p / g.k % g.k, p % g.k);
            let (oy, ox) = (q / g.out_w(), q % g.out_w());
            let iy = (oy * g.stride + ky) as isize - pad;
            let ix = (ox * g.stride + kx) as isize - pad;
            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                0.0
            } else {
                input[(ci * g.h + iy as usize) * g.w + ix as usize]
            }
        };
        let nr = rng.pick(&[1, 4, 5, 8, 16]);
        let p0 = rng.below(kdim);
        let kc = 1 + rng.below(kdim - p0);
        let j0 = rng.below(ndim);
        let nc = 1 + rng.below(ndim - j0);
        let mut dst = vec![f32::NAN; nc.div_ceil(nr) * kc * nr];
        Im2col {
            g: &g,
            input: &input,
        }
        .pack(nr, p0, kc, j0, nc, &mut dst);
        for (idx, &v) in dst.iter().enumerate() {
            let (q, p, jj) = (idx / (kc * nr), idx / nr % kc, idx % nr);
            let col = j0 + q * nr + jj;
            let want = if col < j0 + nc {
                naive(p0 + p, col)
            } else {
                0.0
            };
            assert_eq!(v.to_bits(), want.to_bits(), "{g:?} p {} col {col}", p0 + p);
        }
    }
}

#[test]
fn scratch_is_small_and_path_independent() {
    assert_eq!(sgemm_scratch_len(0), 0);
    assert_eq!(sgemm_scratch_len(1), NC_MAX + 16);
    assert_eq!(sgemm_scratch_len(100_000), KC * NC_MAX + 16);
    let g = ConvGeom {
        cin: 256,
        h: 80,
        w: 80,
        cout: 256,
        k: 3,
        stride: 1,
        groups: 1,
    };
    // 128 KiB for the 3x3 256->256 conv at 80x80, not its 59 MiB im2col.
    assert!(g.scratch_len() * 4 <= 130 * 1024);
    assert_eq!(ConvGeom { groups: 256, ..g }.scratch_len(), 0);
}

#[test]
fn geometry_rules() {
    let g = ConvGeom {
        cin: 3,
        h: 640,
        w: 640,
        cout: 16,
        k: 3,
        stride: 2,
        groups: 1,
    };
    assert!(g.is_supported());
    assert_eq!(
        (g.pad(), g.out_h(), g.out_w(), g.weight_len()),
        (1, 320, 320, 432)
    );
    let odd = ConvGeom {
        h: 7,
        w: 5,
        k: 5,
        ..g
    };
    assert_eq!((odd.pad(), odd.out_h(), odd.out_w()), (2, 4, 3));
    assert!(!ConvGeom { k: 2, ..g }.is_supported());
    assert!(!ConvGeom { k: 0, ..g }.is_supported());
    assert!(!ConvGeom { stride: 0, ..g }.is_supported());
    assert!(!ConvGeom { h: 0, ..g }.is_supported());
    assert!(!ConvGeom { groups: 3, ..g }.is_supported());
    assert!(!ConvGeom { groups: 0, ..g }.is_supported());
    assert!(
        ConvGeom {
            groups: 3,
            cout: 3,
            ..g
        }
        .is_supported()
    );
    assert!(!ConvGeom { w: usize::MAX, ..g }.is_supported());
    assert!(
        !ConvGeom {
            cin: usize::MAX / 2,
            ..g
        }
        .is_supported()
    );
    // Out-of-range geometries do not panic in the size helpers.
    let bad = ConvGeom {
        k: 0,
        stride: 0,
        groups: 0,
        ..g
    };
    let _ = (bad.pad(), bad.out_h(), bad.out_w(), bad.weight_len());
}

/// `Caps::compile_time()` never selects a path the CPU lacks.
#[test]
fn compile_time_caps_are_runnable() {
    let k = Kernels::for_caps(Caps::compile_time());
    println!("compile-time path: {}", k.name());
    let mut c = [0.0f32; 1];
    let one = [2.0f32];
    let m = MatRef {
        data: &one,
        rs: 1,
        cs: 1,
    };
    let epi = Epilogue {
        bias: None,
        accumulate: false,
        act: Act::None,
    };
    k.sgemm(1, 1, 1, m, m, &mut c, 1, epi, &mut [0.0; 200]);
    assert_eq!(c[0], 4.0);
}
