//! GFLOP/s of the scalar and the best path on the convolutions that dominate
//! RT-DETR's neck: 3×3 256→256 and 1×1 256→256 at 80×80, as `conv2d_f32`
//! (im2col packing included) and as a plain `sgemm` of the same shape; plus a
//! depthwise 3×3 for reference. Single thread.
//!
//! `cargo run --release -p edgedetr-kernels --features std --example sgemm_gflops`
//! (`EDGEDETR_KERNELS=scalar|avx2|neon|best` picks the "best" column's path).

use std::hint::black_box;
use std::time::Instant;

use edgedetr_kernels::{Act, ConvGeom, Epilogue, Kernels, MatRef, sgemm_scratch_len};

/// The epilogue activation of the convolutions (SiLU, as in the ultralytics neck).
const ACT: Act = Act::Silu;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Best seconds of `reps` runs of `f` (after one warm-up when `reps > 1`).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    if reps > 1 {
        f();
    }
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn conv(kern: &Kernels, g: &ConvGeom, reps: usize) -> f64 {
    let input = values(g.cin * g.h * g.w, 1);
    let weight = values(g.weight_len(), 2);
    let bias = values(g.cout, 3);
    let mut out = vec![0.0; g.cout * g.out_h() * g.out_w()];
    let mut scratch = vec![0.0; g.scratch_len()];
    let secs = time(reps, || {
        kern.conv2d_f32(g, &input, &weight, &bias, ACT, &mut out, &mut scratch);
        black_box(&out);
    });
    let flops = 2.0 * g.weight_len() as f64 * (g.out_h() * g.out_w()) as f64;
    flops / secs / 1e9
}

fn sgemm(kern: &Kernels, m: usize, n: usize, k: usize, reps: usize) -> f64 {
    let a = values(m * k, 4);
    let b = values(k * n, 5);
    let mut c = vec![0.0; m * n];
    let mut scratch = vec![0.0; sgemm_scratch_len(k)];
    let (am, bm) = (
        MatRef {
            data: &a,
            rs: k,
            cs: 1,
        },
        MatRef {
            data: &b,
            rs: n,
            cs: 1,
        },
    );
    let epi = Epilogue {
        bias: None,
        accumulate: false,
        act: Act::None,
    };
    let secs = time(reps, || {
        kern.sgemm(m, n, k, am, bm, &mut c, n, epi, &mut scratch);
        black_box(&c);
    });
    2.0 * (m * n * k) as f64 / secs / 1e9
}

/// A named measurement: GFLOP/s of a path with a repetition count.
type Bench<'a> = (&'a str, &'a dyn Fn(&Kernels, usize) -> f64);

fn main() {
    let best = Kernels::from_env();
    let scalar = Kernels::scalar();
    let g3 = ConvGeom {
        cin: 256,
        h: 80,
        w: 80,
        cout: 256,
        k: 3,
        stride: 1,
        groups: 1,
    };
    let g1 = ConvGeom { k: 1, ..g3 };
    let dw = ConvGeom { groups: 256, ..g3 };
    let dw2 = ConvGeom { stride: 2, ..dw };
    println!(
        "{:<44} {:>10} {:>10}",
        "GFLOP/s (single thread)",
        "scalar",
        best.name()
    );
    let rows: [Bench<'_>; 6] = [
        ("conv2d 3x3 256->256 80x80 (+im2col, SiLU)", &|k, r| {
            conv(k, &g3, r)
        }),
        ("sgemm m256 k2304 n6400", &|k, r| {
            sgemm(k, 256, 6400, 2304, r)
        }),
        ("conv2d 1x1 256->256 80x80 (SiLU)", &|k, r| conv(k, &g1, r)),
        ("sgemm m256 k256 n6400", &|k, r| sgemm(k, 256, 6400, 256, r)),
        ("depthwise 3x3 256ch 80x80 s1 (SiLU)", &|k, r| {
            conv(k, &dw, r)
        }),
        ("depthwise 3x3 256ch 80x80 s2 (SiLU)", &|k, r| {
            conv(k, &dw2, r)
        }),
    ];
    for (name, f) in rows {
        let s = f(&scalar, 1);
        let b = f(&best, 5);
        println!("{name:<44} {s:>10.2} {b:>10.2}");
    }
}
