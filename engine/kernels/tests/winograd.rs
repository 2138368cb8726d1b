//! Winograd F(4×4, 3×3) (`winograd.rs`) on every kernel path against the
//! exact (f64) direct convolution: edge sizes, channel counts, channel
//! ranges, tile blocks, with and without bias, every activation.
//!
//! A path not compiled for this architecture, or not run by this CPU, is
//! reported as **ignored**, never as passed (as in `equivalence.rs`).
//!
//! # Bound
//! The GEMM bound `(k + 2)·ε·Σ|a·b|` carried through the transforms with
//! absolute values: with `ε = 2⁻²³`, `|V| = |Bᵀ|·|d|·|B|` and
//! `|U| = |G|·|g|·|Gᵀ|` per channel pair, `|M_ξ| = Σ_ci |U_ξ|·|V_ξ|` and
//! `Y = |Aᵀ|·|M|·|A|` (all in f64), each output before the activation is
//! within `2·(cin + 8)·ε·Y + 8·ε·|bias|` of the exact sum (the transforms'
//! own roundings are a few ε of the same magnitudes, inside the `+ 8` and the
//! factor 2). After the activation the tolerance is 1.2 times that (steepest
//! slope) plus `8·ε·|act(y)|` (SIMD activations). `Y` is about 70 times the
//! direct convolution's `Σ|d·g|`, so the bound is about `10⁻³·Σ|d·g|` at
//! `cin = 64`: a wrong tap, tile, channel or sign is off by more.

// The reference bound is matrix arithmetic, written with indices.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{NATIVE, Rng, RngExt, tile_row_cuts, winograd_in_rows};
use edgedetr_kernels::table::{ALL_PATH_NAMES, PATHS};
use edgedetr_kernels::{
    Act, Caps, ConvGeom, Kernels, WinogradF32, winograd_f43_scratch_len, winograd_f43_weights,
    winograd_f43_weights_len,
};
use libtest_mimic::{Arguments, Failed, Trial};

const SIZES: [usize; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 17];
const CHANNELS: [usize; 4] = [1, 3, 17, 64];
const ACTS: [Act; 6] = [
    Act::None,
    Act::Relu,
    Act::Relu6,
    Act::Silu,
    Act::Gelu,
    Act::Sigmoid,
];
/// A value written past the output, which must survive.
const SENTINEL: f32 = 7777.0;

fn main() {
    let args = Arguments::from_args();
    let caps = Caps::detect();
    let mut trials = Vec::new();
    for &name in ALL_PATH_NAMES {
        let runnable = PATHS.iter().any(|p| p.name == name && p.available(caps));
        let trial = Trial::test(format!("winograd_f43_f32::{name}"), move || {
            let k = Kernels::for_path(name, caps)
                .ok_or_else(|| Failed::from(format!("path {name} is not available here")))?;
            check(&k).map_err(|e| Failed::from(format!("{name}: {e}")))
        });
        trials.push(trial.with_ignored_flag(!runnable));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// One case: the geometry, the computed channels, bias or not, activation.
struct Case {
    g: ConvGeom,
    co: (usize, usize),
    bias: bool,
    act: Act,
}

fn cases(r: &mut Rng) -> Vec<Case> {
    let mut v = Vec::new();
    let mut add = |r: &mut Rng, cin, h, w, cout| {
        let g = ConvGeom::new(cin, h, w, cout, 3, 1, 1);
        v.push(Case {
            g,
            co: (0, cout),
            bias: r.coin(),
            act: r.pick(&ACTS),
        });
    };
    // Every edge size pair, small random channel counts.
    for &h in &SIZES {
        for &w in &SIZES {
            let (ci, co) = (r.pick(&CHANNELS[..3]), r.pick(&CHANNELS[..3]));
            add(r, ci, h, w, co);
        }
    }
    // Every channel pair, random sizes.
    for &ci in &CHANNELS {
        for &co in &CHANNELS {
            let (h, w) = (r.pick(&SIZES), r.pick(&SIZES));
            add(r, ci, h, w, co);
        }
    }
    // Several blocks of tiles (32 per block) and of output channels (64).
    for (ci, h, w, co) in [
        (3, 29, 31, 5),
        (5, 40, 24, 130),
        (17, 26, 9, 65),
        (64, 20, 20, 64),
    ] {
        add(r, ci, h, w, co);
    }
    // Every activation on one mid-sized case.
    for act in ACTS {
        for bias in [false, true] {
            v.push(Case {
                g: ConvGeom::new(17, 13, 10, 17, 3, 1, 1),
                co: (0, 17),
                bias,
                act,
            });
        }
    }
    // Channel ranges (what one thread of a split op computes).
    for (start, end) in [(0, 1), (5, 6), (3, 70), (64, 130), (100, 130)] {
        v.push(Case {
            g: ConvGeom::new(7, 9, 14, 130, 3, 1, 1),
            co: (start, end),
            bias: true,
            act: Act::Silu,
        });
    }
    if !NATIVE {
        v.retain(|c| c.g.cin * c.g.cout * c.g.h * c.g.w <= 1 << 16);
    }
    v
}

fn check(k: &Kernels) -> Result<(), String> {
    let mut r = Rng(0x3141_5926);
    for c in cases(&mut r) {
        let g = c.g;
        let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
        // Inputs of mixed magnitudes per channel, so the bound's per-channel
        // maxima matter.
        let mut input = r.vec(cin * h * w);
        for (ci, plane) in input.chunks_mut(h * w).enumerate() {
            let s = [1.0, 0.1, 4.0][ci % 3];
            plane.iter_mut().for_each(|x| *x *= s);
        }
        let weight = r.vec(g.weight_len());
        let bias = if c.bias { r.vec(cout) } else { vec![0.0; cout] };
        let mut u = vec![f32::NAN; winograd_f43_weights_len(&g)];
        winograd_f43_weights(&g, &weight, &mut u);
        let n_out = (c.co.1 - c.co.0) * h * w;
        let mut out = vec![f32::NAN; n_out + 3];
        out[n_out..].fill(SENTINEL);
        let a = WinogradF32 {
            g,
            input: &input,
            u: &u,
            bias: &bias,
            act: c.act,
            co_start: c.co.0,
            co_end: c.co.1,
        };
        k.winograd_f43_f32(
            &a,
            &mut out,
            &mut vec![f32::NAN; winograd_f43_scratch_len(&g)],
        );
        if out[n_out..].iter().any(|&x| x != SENTINEL) {
            return Err(format!("{g:?}: wrote past the output"));
        }
        // Shared by rows of tiles, cut at random tile rows: the same bits.
        let cuts = tile_row_cuts(&mut r, h, w);
        let mut parts = vec![f32::NAN; n_out];
        winograd_in_rows(k, &a, &mut parts, &cuts);
        if parts
            .iter()
            .zip(&out)
            .any(|(p, o)| p.to_bits() != o.to_bits())
        {
            return Err(format!("{g:?}: in rows cut at {cuts:?} differs from whole"));
        }
        let eps = f32::EPSILON as f64;
        let bound = running_bound(&g, &input, &weight);
        for co in c.co.0..c.co.1 {
            for y in 0..h {
                for x in 0..w {
                    let mut pre = bias[co] as f64;
                    for ci in 0..cin {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((y + ky).wrapping_sub(1), (x + kx).wrapping_sub(1));
                                if iy < h && ix < w {
                                    pre += input[(ci * h + iy) * w + ix] as f64
                                        * weight[((co * cin + ci) * 3 + ky) * 3 + kx] as f64;
                                }
                            }
                        }
                    }
                    let want = c.act.apply(pre as f32) as f64;
                    let got = out[((co - c.co.0) * h + y) * w + x] as f64;
                    let tol_pre = 2.0 * (cin as f64 + 8.0) * eps * bound[(co * h + y) * w + x]
                        + 8.0 * eps * bias[co].abs() as f64;
                    let tol = 1.2 * tol_pre + 8.0 * eps * want.abs() + f32::MIN_POSITIVE as f64;
                    // NaN fails too.
                    let ok = (got - want).abs() <= tol;
                    if !ok {
                        return Err(format!(
                            "{g:?} co {:?} {:?} bias {}: out[{co}][{y}][{x}] = {got}, want {want} (tol {tol:.3e})",
                            c.co, c.act, c.bias
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `Y` of the module docs for every output `[cout][h][w]` of `g`.
fn running_bound(g: &ConvGeom, input: &[f32], weight: &[f32]) -> Vec<f64> {
    const BT: [[f64; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];
    const G: [[f64; 3]; 6] = [
        [0.25, 0.0, 0.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, 1.0, 2.0, 2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, 1.0, 8.0, 8.0, 1.0],
    ];
    let (cin, cout, h, w) = (g.cin, g.cout, g.h, g.w);
    // |X|·|Y|·|X|ᵀ of an n×n matrix.
    fn sandwich<const R: usize, const N: usize>(
        x: &[[f64; N]; R],
        y: &[[f64; N]; N],
    ) -> [[f64; R]; R] {
        let mut t = [[0f64; N]; R];
        for i in 0..R {
            for c in 0..N {
                t[i][c] = (0..N).map(|r| x[i][r].abs() * y[r][c]).sum();
            }
        }
        let mut o = [[0f64; R]; R];
        for i in 0..R {
            for j in 0..R {
                o[i][j] = (0..N).map(|c| t[i][c] * x[j][c].abs()).sum();
            }
        }
        o
    }
    let mut uabs = vec![[[0f64; 6]; 6]; cout * cin];
    for (p, u) in uabs.iter_mut().enumerate() {
        let k = &weight[p * 9..][..9];
        let mut t = [[0f64; 3]; 6];
        for i in 0..6 {
            for b in 0..3 {
                t[i][b] = (0..3).map(|a| G[i][a] * (k[a * 3 + b].abs() as f64)).sum();
            }
        }
        for i in 0..6 {
            for j in 0..6 {
                u[i][j] = (0..3).map(|b| t[i][b] * G[j][b]).sum();
            }
        }
    }
    let mut out = vec![0f64; cout * h * w];
    let mut vabs = vec![[[0f64; 6]; 6]; cin];
    for y0 in (0..h).step_by(4) {
        for x0 in (0..w).step_by(4) {
            for (ci, v) in vabs.iter_mut().enumerate() {
                let mut d = [[0f64; 6]; 6];
                for r in 0..6 {
                    for c in 0..6 {
                        let (y, x) = ((y0 + r).wrapping_sub(1), (x0 + c).wrapping_sub(1));
                        if y < h && x < w {
                            d[r][c] = input[(ci * h + y) * w + x].abs() as f64;
                        }
                    }
                }
                *v = sandwich(&BT, &d);
            }
            for co in 0..cout {
                let mut m = [[0f64; 6]; 6];
                for (ci, v) in vabs.iter().enumerate() {
                    let u = &uabs[co * cin + ci];
                    for i in 0..6 {
                        for j in 0..6 {
                            m[i][j] += u[i][j] * v[i][j];
                        }
                    }
                }
                let yb = sandwich(&AT, &m);
                for i in 0..4.min(h - y0) {
                    for j in 0..4.min(w - x0) {
                        out[(co * h + y0 + i) * w + x0 + j] = yb[i][j];
                    }
                }
            }
        }
    }
    out
}
