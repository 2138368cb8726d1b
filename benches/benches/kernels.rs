//! Kernel tier: `sgemm` and `conv2d_f32` on the shapes that dominate RT-DETR
//! (MobileNetV4-Conv-Small + BiFPN), on the scalar reference and on the best
//! path of this CPU (`Kernels::from_env`: detected, or forced with
//! `EDGEDETR_KERNELS`). Single thread.
//!
//! One criterion group per shape, named after where the shape occurs; in each,
//! `conv2d_f32/<path>` (im2col packing included) and, for dense convolutions,
//! `sgemm/<path>`: the GEMM that convolution runs, with `B` already in memory.
//! Throughput is counted in FLOPs (`2·m·n·k`), so criterion's `elem/s` reads as
//! FLOP/s (`Gelem/s` = GFLOP/s).
//!
//! `cargo bench -p edgedetr-benches --bench kernels [-- <filter>]`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use edgedetr_benches::values;
use edgedetr_kernels::{Act, ConvGeom, Epilogue, Kernels, MatRef, sgemm_scratch_len};

/// A benchmarked shape: where it occurs in the model, its geometry and the
/// activation fused into it there.
struct Case {
    /// Group name: stage, block, kernel and the output map.
    name: &'static str,
    geom: ConvGeom,
    act: Act,
}

/// A dense convolution of the neck: 256→256 channels, stride 1.
const fn neck(k: usize, hw: usize) -> ConvGeom {
    ConvGeom {
        cin: 256,
        h: hw,
        w: hw,
        cout: 256,
        k,
        stride: 1,
        groups: 1,
    }
}

/// A depthwise convolution of the backbone.
const fn depthwise(c: usize, k: usize, hw: usize, stride: usize) -> ConvGeom {
    ConvGeom {
        cin: c,
        h: hw,
        w: hw,
        cout: c,
        k,
        stride,
        groups: c,
    }
}

/// Map sizes are those of a 640×640 input (P3 = 80×80, P4 = 40×40); at 320
/// every map is half as wide.
const CASES: [Case; 5] = [
    // RepC3 at P4 (L13, L16, L22): 3 RepConvs each, fused to one 3×3 conv + SiLU.
    Case {
        name: "neck_repconv_3x3_256to256_40x40",
        geom: neck(3, 40),
        act: Act::Silu,
    },
    // RepC3 at P3 (L19): the most expensive convolutions of the model.
    Case {
        name: "neck_repconv_3x3_256to256_80x80",
        geom: neck(3, 80),
        act: Act::Silu,
    },
    // RepC3 cv1 / cv2 at P3: 1×1 conv + SiLU (B is the input itself).
    Case {
        name: "neck_repc3_cv_1x1_256to256_80x80",
        geom: neck(1, 80),
        act: Act::Silu,
    },
    // layer3.uib_0._start_dw_: depthwise 5×5, 64 channels, no activation
    // (40×40 at 320, 80×80 at 640).
    Case {
        name: "backbone_uib_start_dw_5x5_64ch_40x40",
        geom: depthwise(64, 5, 40, 1),
        act: Act::None,
    },
    // layer3.uib_0._middle_dw: depthwise 5×5 stride 2, 192 channels, ReLU6,
    // 80×80 → 40×40 at 640.
    Case {
        name: "backbone_uib_middle_dw_5x5_192ch_s2_80to40",
        geom: depthwise(192, 5, 80, 2),
        act: Act::Relu6,
    },
];

/// The paths to compare: the scalar reference, and the best one when it differs.
fn paths() -> Vec<Kernels> {
    let best = Kernels::from_env();
    if best.name() == Kernels::scalar().name() {
        vec![best]
    } else {
        vec![Kernels::scalar(), best]
    }
}

/// Sizes criterion's sampling to one run taking `once`: 10 samples in flat
/// mode over about 22 runs' worth of time (at least half a second). A scalar
/// run of seconds then costs ~20 runs (criterion warns when a sample holds a
/// single run, so 2 per sample is the floor) and a fast one gets many runs
/// per sample.
fn fit(group: &mut BenchmarkGroup<'_, WallTime>, once: Duration) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time((once * 22).max(Duration::from_millis(500)));
}

/// Runs `f` once (warming caches and pages) and returns how long it took.
fn time_once(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn bench_case(c: &mut Criterion, case: &Case) {
    let g = &case.geom;
    let (oh, ow) = (g.out_h(), g.out_w());
    // 2 FLOPs (multiply, add) per weight per output pixel.
    let flops = 2 * g.weight_len() * oh * ow;
    let input = values(g.cin * g.h * g.w, 1);
    let weight = values(g.weight_len(), 2);
    let bias = values(g.cout, 3);
    let mut out = vec![0.0f32; g.cout * oh * ow];
    let mut scratch = vec![0.0f32; g.scratch_len()];

    let mut group = c.benchmark_group(case.name);
    group.throughput(Throughput::Elements(flops as u64));
    for kern in paths() {
        let conv = |out: &mut [f32], scratch: &mut [f32]| {
            kern.conv2d_f32(g, black_box(&input), &weight, &bias, case.act, out, scratch);
        };
        fit(&mut group, time_once(|| conv(&mut out, &mut scratch)));
        group.bench_function(BenchmarkId::new("conv2d_f32", kern.name()), |b| {
            b.iter(|| {
                conv(&mut out, &mut scratch);
                black_box(&mut out);
            })
        });
    }

    if g.groups == 1 {
        // The same GEMM with B (the im2col matrix, [cin·k·k, oh·ow]) in memory.
        let (m, n, k) = (g.cout, oh * ow, g.cin * g.k * g.k);
        let b_mat = values(k * n, 4);
        let mut gemm_scratch = vec![0.0f32; sgemm_scratch_len(k)];
        let a = MatRef {
            data: &weight,
            rs: k,
            cs: 1,
        };
        let b = MatRef {
            data: &b_mat,
            rs: n,
            cs: 1,
        };
        let epi = Epilogue {
            bias: Some(&bias),
            accumulate: false,
            act: case.act,
        };
        for kern in paths() {
            let gemm = |out: &mut [f32], scratch: &mut [f32]| {
                kern.sgemm(m, n, k, a, black_box(b), out, n, epi, scratch);
            };
            fit(&mut group, time_once(|| gemm(&mut out, &mut gemm_scratch)));
            group.bench_function(BenchmarkId::new("sgemm", kern.name()), |bench| {
                bench.iter(|| {
                    gemm(&mut out, &mut gemm_scratch);
                    black_box(&mut out);
                })
            });
        }
    }
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let best = Kernels::from_env();
    println!(
        "kernel tier: scalar vs {} (EDGEDETR_KERNELS={:?}), single thread; elem/s = FLOP/s",
        best.name(),
        std::env::var("EDGEDETR_KERNELS").unwrap_or_default()
    );
    for case in &CASES {
        bench_case(c, case);
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
